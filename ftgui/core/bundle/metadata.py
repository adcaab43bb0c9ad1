"""model.json's content for a trained model (kept apart from writing it)."""

from __future__ import annotations

import datetime as _dt
from typing import TYPE_CHECKING, Any

import torch
import torchvision

from ftgui import __version__
from ftgui.core.base.errors import CheckpointError
from ftgui.core.base.text import class_names_problem
from ftgui.core.bundle.format import (
    BUNDLE_FORMAT,
    BUNDLE_VERSION,
    EVALUATION_FILE,
    SKIPPED_LISTED,
    SPLIT_FILE,
    TOP_CONFUSIONS,
)
from ftgui.core.bundle.trained import TrainedModel
from ftgui.core.compute.distributed import World
from ftgui.core.models.layers import trainable_names

if TYPE_CHECKING:
    from ftgui.core.evaluation.metrics import Evaluation


def bundle_metadata(trained: TrainedModel) -> dict[str, Any]:
    """model.json's content for a trained model."""
    built, scan, split = trained.built, trained.scan, trained.split
    problem = class_names_problem(scan.classes)
    if problem:
        raise CheckpointError(f"Cannot write the bundle: {problem}.")
    pre = built.preprocess
    counts = scan.counts(split.train) if split else []
    val_counts = scan.counts(split.val) if split else []
    return {
        "format": BUNDLE_FORMAT,
        "version": BUNDLE_VERSION,
        "ftgui_version": __version__,
        "torch_version": torch.__version__,
        "torchvision_version": torchvision.__version__,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "run_id": trained.run_id,
        "arch": built.arch,
        "num_classes": built.num_classes,
        "classes": list(scan.classes),
        "model_kwargs": dict(built.model_kwargs),
        "input_size": pre.crop_size,
        "resize_size": pre.resize_size,
        "mean": list(pre.mean),
        "std": list(pre.std),
        "interpolation": pre.interpolation,
        "weights_source": built.weights_source,
        **_source_record(built.arch, built.weights_source),
        "head": list(built.head),
        "trainable_parameter_names": trainable_names(built.model),
        "training": dict(trained.training),
        "distributed": dict(trained.distributed),
        "epochs_completed": trained.epochs_completed,
        "best_epoch": trained.best_epoch,
        "weights_from": trained.weights_from,
        "history": list(trained.history),
        "class_counts": {"train": counts, "val": val_counts},
        "split": {
            "root": scan.root,
            "file": SPLIT_FILE,
            "counts": {"train": len(split.train) if split else 0, "val": len(split.val) if split else 0},
        },
        "skipped": [[p, r] for p, r in sorted(trained.skipped.items())[:SKIPPED_LISTED]],
        "skipped_total": len(trained.skipped),
        # The files' fingerprint (each file's size and SHA-256 are in split.json.gz), the seeds,
        # the precision that ran, the versions and the machine: ftgui-train --reproduce.
        "data": {**trained.data.summary(), "file": SPLIT_FILE} if trained.data else None,
        "reproducibility": dict(trained.reproducibility),
    }


def split_record(trained: TrainedModel) -> dict[str, Any]:
    """split.json.gz's content: the dataset folder, the split's file lists, every skipped file."""
    scan, split = trained.scan, trained.split
    return {
        "root": scan.root,
        **(split.to_dict() if split else {"train": [], "val": []}),
        "skipped": [[p, r] for p, r in sorted(trained.skipped.items())],
        "fingerprint": trained.data.listing() if trained.data else [],
    }


def evaluation_summary(evaluation: Evaluation) -> dict[str, Any]:
    """model.json's part of an evaluation: the headline figures and the most frequent
    confusions (the whole matrix, per-class figures and worst mistakes are in evaluation.json)."""
    d = evaluation.to_dict()
    cells = evaluation.top_confusions(TOP_CONFUSIONS)
    return {
        **{key: d[key] for key in ("split", "count", "unreadable", "accuracy", "accuracy_ci_low")},
        **{key: d[key] for key in ("accuracy_ci_high", "balanced_accuracy", "balanced_accuracy_ci_low")},
        **{key: d[key] for key in ("balanced_accuracy_ci_high", "ci_level", "loss")},
        "top_confusions": [{"true": i, "predicted": j, "count": n} for n, i, j in cells],
        "file": EVALUATION_FILE,
    }


def distributed_record(world: World, batch_size: int, sync_bn: bool) -> dict[str, Any]:
    """How many processes trained, and the batch: ``--batch-size`` is always the global batch."""
    size = world.size if world.active else 1
    return {
        "world_size": size,
        "backend": world.backend if world.active else None,
        "global_batch_size": batch_size,
        "per_process_batch_size": -(-batch_size // size),
        "sync_bn": bool(sync_bn and size > 1),
    }


def _source_record(arch: str, weights_source: str) -> dict[str, Any]:
    """Where the architecture comes from; for timm, its version and (when the model started
    from timm's pretrained weights) their licence."""
    from ftgui.core.models import timm_source

    if not timm_source.is_timm(arch):
        return {"model_source": "torchvision"}
    import timm

    return {
        "model_source": "timm",
        "timm_version": timm.__version__,
        "weights_licence": timm_source.licence(arch) if weights_source.startswith("timm ") else None,
    }
