"""Resumable training checkpoints: tensors and plain values only (``torch.load(weights_only=True)``).

A checkpoint holds the model, the optimizer (with its parameter groups by name), the schedule
position, the freeze state, the split and the history, so a resumed run continues exactly.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ftgui.core.base.errors import CheckpointError, FtguiError
from ftgui.core.base.text import class_names_problem
from ftgui.core.data.samples import ScanResult, Split, split_record_problem
from ftgui.core.models import BuiltModel, Preprocess, describe_mismatch, load_state, rebuild_for_inference
from ftgui.core.models.layers import set_trainable_exactly, trainable_names
from ftgui.core.training.config import TrainConfig
from ftgui.core.training.state import TrainerState, new_run_id

CHECKPOINT_FORMAT = "ftgui-checkpoint"
CHECKPOINT_VERSION = 2  # 2: the config holds a ``freeze`` plan; 1 (still read): strategy fields


def checkpoint_record(
    config: TrainConfig,
    built: BuiltModel,
    optimizer: torch.optim.Optimizer,
    scan: ScanResult,
    split: Split,
    state: TrainerState,
    requested: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Everything needed to resume, as tensors and plain values (loads with weights_only=True).

    ``requested``: the configuration as asked for (before the learning rate was chosen), by
    which a restarted torchrun job recognises its own checkpoint."""
    model = built.model
    return {
        "requested": requested,
        "format": CHECKPOINT_FORMAT,
        "version": CHECKPOINT_VERSION,
        "config": config.to_dict(),
        "classes": list(scan.classes),
        "root": scan.root,
        "split": split.to_dict(),
        "skipped": [[p, r] for p, r in state.skipped.items()],
        "epoch": state.epoch,
        "step": state.step,
        "unfrozen_blocks": state.unfrozen_blocks,
        "arch": built.arch,
        "head": list(built.head),
        "model_kwargs": dict(built.model_kwargs),
        "preprocess": built.preprocess.to_dict(),
        "weights_source": built.weights_source,
        "trainable_parameter_names": trainable_names(model),
        "group_names": [list(g["names"]) for g in optimizer.param_groups],
        "model": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "optimizer": optimizer.state_dict(),
        "history": state.history,
        "run_id": state.run_id,
        "best_epoch": state.best_epoch,
        "best_val_loss": state.best_val_loss,
        "best_state": {k: v.cpu() for k, v in state.best_state.items()} if state.best_state else None,
        "rng_state": state.rng_state,
        "rank_rng_states": state.rank_rng_states,
    }


@dataclass
class Restored:
    """A checkpoint's run, ready for a trainer to take over (the model on the CPU)."""

    config: TrainConfig
    built: BuiltModel
    scan: ScanResult
    split: Split
    state: TrainerState
    group_names: list[list[str]]
    optimizer_groups: list[dict[str, Any]]  # the saved groups' settings, without parameters
    optimizer_state: dict[str, Any]
    name: str = "checkpoint.pt"
    requested: dict[str, Any] | None = None

    def optimizer(self, model: torch.nn.Module) -> torch.optim.Optimizer:
        """The saved optimizer over ``model``'s parameters (moved to its device), state included."""
        from ftgui.core.training.optim import make_optimizer

        params = dict(model.named_parameters())
        cfg = self.config
        try:
            groups = [
                {**saved, "params": [params[n] for n in names]}
                for names, saved in zip(self.group_names, self.optimizer_groups)
            ]
            optimizer = make_optimizer(cfg.optimizer, groups, float(cfg.lr or 0.0), cfg.momentum)
            optimizer.load_state_dict(self.optimizer_state)
        except (KeyError, TypeError, ValueError, IndexError, RuntimeError) as exc:
            raise CheckpointError(
                f"{self.name} is damaged or was not written by this ftgui: its optimizer state "
                f"does not fit the model ({type(exc).__name__}: {str(exc)[:200]})."
            ) from None
        return optimizer


_CONFIG_TYPES: dict[str, tuple[type, ...]] = {
    "data_dir": (str,),
    "arch": (str,),
    "weights": (str, type(None)),
    "strategy": (str,),
    "trainable": (list, tuple),
    "train_bn": (bool,),
    "device": (str,),
    "augment": (bool,),
    "amp": (bool,),
    "sync_bn": (bool,),
    "bn_stats": (str,),
    "channels_last": (bool, type(None)),
    "optimizer": (str,),
    "schedule": (str,),
    "cache": (str,),
    "precision": (str,),
    "precision_note": (str,),
}


def _whole(v: Any, low: int = 0) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v >= low


def _names(v: Any) -> bool:
    return isinstance(v, (list, tuple)) and all(isinstance(x, str) for x in v)


def _tensors(v: Any) -> bool:
    return (
        isinstance(v, dict)
        and bool(v)
        and all(isinstance(k, str) and isinstance(t, torch.Tensor) for k, t in v.items())
    )


def validate_checkpoint(state: dict[str, Any], name: str) -> None:
    """Every field that resuming reads, with its type and range: a damaged file gets a message.

    Fields are read as ``Any`` and checked one by one (``need``) before use."""
    from ftgui.core.bundle.format import MAX_CLASSES, validate_metadata
    from ftgui.core.models import is_known_arch

    def need(ok: bool, what: str) -> None:
        if not ok:
            raise CheckpointError(f"{name} is damaged or was not written by ftgui: {what}.")

    version = state.get("version")
    need(version in (1, CHECKPOINT_VERSION) and not isinstance(version, bool), "'version' must be 1 or 2")
    config: Any = state.get("config")
    need(isinstance(config, dict), "'config' must be an object")
    for key, kinds in _CONFIG_TYPES.items():
        if key in config:
            need(isinstance(config[key], kinds), f"'config.{key}' has the wrong type")
    need(_names(config.get("trainable", [])), "'config.trainable' must list parameter names")
    need(isinstance(config.get("freeze", {}), dict), "'config.freeze' must be an object")
    try:
        TrainConfig.from_dict(config).validate()
    except (FtguiError, TypeError, ValueError) as exc:
        need(False, f"its training settings are invalid: {exc}")
    classes: Any = state.get("classes")
    need(_names(classes) and 2 <= len(classes) <= MAX_CLASSES, "'classes' must list 2 or more class names")
    need(class_names_problem(classes) is None, str(class_names_problem(classes)))
    need(isinstance(state.get("root"), str), "'root' must be the dataset folder")
    problem = split_record_problem(state.get("split"), len(classes))
    need(problem is None, str(problem))
    skipped = state.get("skipped")
    need(
        isinstance(skipped, list)
        and all(isinstance(x, (list, tuple)) and len(x) == 2 and _names(x) for x in skipped),
        "'skipped' must list [file, reason] pairs",
    )
    history: Any = state.get("history")
    need(
        isinstance(history, list) and all(isinstance(h, dict) for h in history), "'history' must list epochs"
    )
    need(_whole(state.get("epoch")) and state["epoch"] == len(history), "'epoch' must match the history")
    need(_whole(state.get("step")), "'step' must be a whole number")
    need(_whole(state.get("unfrozen_blocks")), "'unfrozen_blocks' must be a whole number")
    need(
        isinstance(state.get("arch"), str) and is_known_arch(state["arch"]),
        "'arch' must be a torchvision classification model (or timm:NAME with timm installed)",
    )
    need(_names(state.get("head")) and bool(state["head"]), "'head' must name the classifier layers")
    need(isinstance(state.get("weights_source"), str), "'weights_source' must be text")
    names_key = "trainable" if version == 1 else "trainable_parameter_names"
    need(_names(state.get(names_key)), f"'{names_key}' must list parameter names")
    groups: Any = state.get("group_names")
    need(isinstance(groups, list) and all(_names(g) for g in groups), "'group_names' must list name lists")
    need(_tensors(state.get("model")), "'model' must hold the weights as tensors")
    need(
        all(bool(torch.isfinite(t).all()) for t in state["model"].values() if t.is_floating_point()),
        "its weights are not finite numbers (NaN or infinity)",
    )
    optimizer: Any = state.get("optimizer")
    need(
        isinstance(optimizer, dict)
        and isinstance(optimizer.get("state"), dict)
        and isinstance(optimizer.get("param_groups"), list)
        and len(optimizer["param_groups"]) == len(groups)
        and all(isinstance(g, dict) and isinstance(g.get("params"), list) for g in optimizer["param_groups"]),
        "'optimizer' must hold one parameter group per name list",
    )
    best_epoch, best_loss = state.get("best_epoch"), state.get("best_val_loss")
    need(
        best_epoch is None or (_whole(best_epoch, 1) and best_epoch <= state["epoch"]),
        "'best_epoch' is out of range",
    )
    finite = (
        isinstance(best_loss, (int, float)) and not isinstance(best_loss, bool) and math.isfinite(best_loss)
    )
    need(best_loss is None or finite, "'best_val_loss' must be a finite number")
    need(state.get("best_state") is None or _tensors(state["best_state"]), "'best_state' must hold tensors")
    rng = state.get("rng_state")
    need(
        rng is None or (isinstance(rng, torch.Tensor) and rng.dtype == torch.uint8),
        "'rng_state' is not a random state",
    )
    ranks = state.get("rank_rng_states")
    need(
        ranks is None
        or (
            isinstance(ranks, list)
            and all(isinstance(r, torch.Tensor) and r.dtype == torch.uint8 for r in ranks)
        ),
        "'rank_rng_states' must list random states",
    )
    pre: Any = state.get("preprocess")
    need(isinstance(pre, dict), "'preprocess' must be an object")
    try:
        validate_metadata(
            {
                "format": "ftgui-model",
                "version": 1,
                "arch": state["arch"],
                "classes": list(classes),
                "num_classes": len(classes),
                "input_size": pre.get("crop_size"),
                "resize_size": pre.get("resize_size"),
                "mean": pre.get("mean"),
                "std": pre.get("std"),
                "interpolation": pre.get("interpolation", "bilinear"),
                "model_kwargs": state.get("model_kwargs"),
            },
            name,
        )
    except CheckpointError as exc:
        need(False, str(exc).split(": ", 1)[-1].rstrip("."))


def read_checkpoint(
    path: str | os.PathLike[str],
    data_dir: str | None = None,
    epochs: int | None = None,
    device: str | None = None,
) -> Restored:
    """A checkpoint's run, checked field by field; ``data_dir``/``epochs``/``device`` override."""
    state = load_checkpoint(path)
    validate_checkpoint(state, Path(path).name)
    try:
        restored = _restored(state, data_dir, epochs, device)
        restored.name = Path(path).name
        requested = state.get("requested")
        restored.requested = requested if isinstance(requested, dict) else None
        return restored
    except (KeyError, TypeError, ValueError, IndexError, AttributeError, RuntimeError) as exc:
        raise CheckpointError(
            f"{Path(path).name} is damaged or was not written by this ftgui: {type(exc).__name__}: "
            f"{str(exc).splitlines()[0][:200] if str(exc) else 'inconsistent content'}."
        ) from None


def _restored(
    state: dict[str, Any], data_dir: str | None, epochs: int | None, device: str | None
) -> Restored:
    cfg = TrainConfig.from_dict(state["config"])
    if data_dir:
        cfg.data_dir = str(data_dir)
    if epochs is not None:
        cfg.epochs = int(epochs)
    if device:
        cfg.device = device
    root = cfg.data_dir or state["root"]
    if not os.path.isdir(root):
        raise CheckpointError(f"The dataset folder of this checkpoint is missing: {root}")
    classes = list(state["classes"])
    split = Split.from_dict(state["split"])
    model = rebuild_for_inference(state["arch"], len(classes), state["model_kwargs"])
    problem = describe_mismatch(model, state["model"])
    if problem:
        raise CheckpointError(f"The checkpoint's weights do not fit {state['arch']}: {problem}.")
    load_state(model, state["model"])
    set_trainable_exactly(model, state["trainable" if state["version"] == 1 else "trainable_parameter_names"])
    built = BuiltModel(
        model,
        state["arch"],
        len(classes),
        list(state["head"]),
        Preprocess.from_dict(state["preprocess"]),
        state["weights_source"],
        dict(state["model_kwargs"]),
    )
    run = TrainerState(
        epoch=int(state["epoch"]),
        step=int(state["step"]),
        unfrozen_blocks=int(state["unfrozen_blocks"]),
        history=list(state["history"]),
        best_epoch=state["best_epoch"],
        best_val_loss=state["best_val_loss"],
        best_state=state["best_state"],
        skipped={p: r for p, r in state["skipped"]},
        rng_state=state["rng_state"],
        rank_rng_states=state.get("rank_rng_states"),
        run_id=str(state.get("run_id") or new_run_id()),  # older checkpoints have none
    )
    return Restored(
        cfg,
        built,
        ScanResult(str(root), classes, split.train + split.val),
        split,
        run,
        [list(g) for g in state["group_names"]],
        [{k: v for k, v in g.items() if k != "params"} for g in state["optimizer"]["param_groups"]],
        state["optimizer"],
    )


def requested_record(config: TrainConfig) -> dict[str, Any]:
    """A configuration as asked for, comparable between runs (the dataset by its real path)."""
    d = config.to_dict()
    d.pop("lr_note", None)
    d.pop("precision_note", None)
    d["data_dir"] = os.path.realpath(d["data_dir"]) if d.get("data_dir") else ""
    return d


def same_run_checkpoint(path: str | os.PathLike[str], config: TrainConfig) -> bool:
    """Whether ``path`` is a readable checkpoint of a run asked for with ``config``."""
    if not Path(path).is_file():
        return False
    try:
        state = load_checkpoint(path)
        validate_checkpoint(state, Path(path).name)
    except FtguiError:
        return False
    return bool(state.get("requested") == requested_record(config))


def load_checkpoint(path: str | os.PathLike[str]) -> dict[str, Any]:
    p = Path(path)
    if not p.is_file():
        raise CheckpointError(f"Checkpoint not found: {p}")
    damaged = _failed_checksum(p)
    if damaged:
        raise CheckpointError(
            f"Refused to load checkpoint {p.name}: it is damaged ({damaged} fails its checksum); "
            "use an earlier copy or train again."
        )
    try:
        state = torch.load(str(p), map_location="cpu", weights_only=True)
    except Exception as exc:
        from ftgui.core.models import unsafe_pickle_reason

        code = unsafe_pickle_reason(exc)
        detail = (
            f"it holds Python objects other than tensors ({code})" if code else "it is not a checkpoint file"
        )
        raise CheckpointError(
            f"Refused to load checkpoint {p.name}: {detail}. "
            "ftgui only loads checkpoints made of tensors and plain values, and never runs code from a file."
        ) from None
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"{p.name} is not an ftgui training checkpoint.")
    return state


def _failed_checksum(path: Path) -> str | None:
    """The first record of a torch zip file whose CRC-32 does not match (torch.load never checks)."""
    import zipfile

    if not zipfile.is_zipfile(path):
        return None  # not a zip: torch.load says what it is
    try:
        with zipfile.ZipFile(path) as zf:
            return zf.testzip()
    except (zipfile.BadZipFile, OSError, EOFError, ValueError, RuntimeError) as exc:
        return f"the archive ({exc})"
