"""Resumable training checkpoints: tensors and plain values only (``torch.load(weights_only=True)``).

A checkpoint holds the model, the optimizer (with its parameter groups by name), the schedule
position, the freeze state, the split and the history, so a resumed run continues exactly.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from .data import ScanResult, Split
from .errors import CheckpointError
from .layers import set_trainable_exactly, trainable_names
from .models import BuiltModel, Preprocess, rebuild_for_inference
from .optim import make_optimizer

CHECKPOINT_FORMAT = "ftgui-checkpoint"


def checkpoint_state(trainer: Any) -> dict[str, Any]:
    """Everything needed to resume, as tensors and plain values (loads with weights_only=True)."""
    assert (
        trainer.built is not None
        and trainer.optimizer is not None
        and trainer.split is not None
        and trainer.scan
    )
    return {
        "format": CHECKPOINT_FORMAT,
        "version": 1,
        "config": trainer.config.to_dict(),
        "classes": list(trainer.scan.classes),
        "root": trainer.scan.root,
        "split": trainer.split.to_dict(),
        "skipped": [[p, r] for p, r in trainer.skipped.items()],
        "epoch": trainer.epoch,
        "step": trainer.step,
        "unfrozen_blocks": trainer.unfrozen_blocks,
        "arch": trainer.built.arch,
        "head": list(trainer.built.head),
        "model_kwargs": dict(trainer.built.model_kwargs),
        "preprocess": trainer.built.preprocess.to_dict(),
        "weights_source": trainer.built.weights_source,
        "trainable": trainable_names(trainer.model),
        "group_names": [list(g["names"]) for g in trainer.optimizer.param_groups],
        "model": {k: v.detach().cpu() for k, v in trainer.model.state_dict().items()},
        "optimizer": trainer.optimizer.state_dict(),
        "history": trainer.history,
        "best_epoch": trainer.best_epoch,
        "best_val_loss": trainer.best_val_loss,
        "best_state": {k: v.cpu() for k, v in trainer.best_state.items()} if trainer.best_state else None,
        "rng_state": trainer._rng_state,
    }


def restore(
    cls: Any,
    path: str | os.PathLike[str],
    data_dir: str | None = None,
    epochs: int | None = None,
    device: str | None = None,
) -> Any:
    """A ``cls`` (Trainer) in the state the checkpoint recorded, ready to ``run()`` on."""
    from .engine import TrainConfig, select_device

    state = load_checkpoint(path)
    cfg = TrainConfig.from_dict(state["config"])
    if data_dir:
        cfg.data_dir = str(data_dir)
    if epochs is not None:
        cfg.epochs = int(epochs)
    if device:
        cfg.device = device
    trainer = cls(cfg)
    root = cfg.data_dir or state["root"]
    if not os.path.isdir(root):
        raise CheckpointError(f"The dataset folder of this checkpoint is missing: {root}")
    classes = list(state["classes"])
    trainer.split = Split.from_dict(state["split"])
    trainer.scan = ScanResult(str(root), classes, trainer.split.train + trainer.split.val)
    trainer.device = select_device(cfg.device)
    model = rebuild_for_inference(state["arch"], len(classes), state["model_kwargs"])
    try:
        model.load_state_dict(state["model"])
    except RuntimeError as exc:
        raise CheckpointError(f"The checkpoint's weights do not fit {state['arch']}: {exc}") from None
    pre = Preprocess.from_dict(state["preprocess"])
    trainer.built = BuiltModel(
        model,
        state["arch"],
        len(classes),
        list(state["head"]),
        pre,
        state["weights_source"],
        dict(state["model_kwargs"]),
    )
    set_trainable_exactly(model, state["trainable"])
    trainer.unfrozen_blocks = int(state["unfrozen_blocks"])
    model.to(trainer.device)
    trainer._apply_memory_format()
    params = dict(model.named_parameters())
    groups = []
    for names, saved in zip(state["group_names"], state["optimizer"]["param_groups"]):
        groups.append(
            {**{k: v for k, v in saved.items() if k != "params"}, "params": [params[n] for n in names]}
        )
    trainer.optimizer = make_optimizer(cfg.optimizer, groups, cfg.lr, cfg.momentum)
    trainer.optimizer.load_state_dict(state["optimizer"])
    trainer.epoch = int(state["epoch"])
    trainer.step = int(state["step"])
    trainer.history = list(state["history"])
    trainer.best_epoch = state["best_epoch"]
    trainer.best_val_loss = state["best_val_loss"]
    trainer.best_state = state["best_state"]
    if trainer.best_state is not None:
        trainer.best_state = {k: v.to(trainer.device) for k, v in trainer.best_state.items()}
    trainer._rng_state = state["rng_state"]
    trainer.skipped = {p: r for p, r in state["skipped"]}
    return trainer


def load_checkpoint(path: str | os.PathLike[str]) -> dict[str, Any]:
    p = Path(path)
    if not p.is_file():
        raise CheckpointError(f"Checkpoint not found: {p}")
    try:
        state = torch.load(str(p), map_location="cpu", weights_only=True)
    except Exception as exc:
        from .models import unsafe_pickle_reason

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
