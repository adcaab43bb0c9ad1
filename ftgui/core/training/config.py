"""What defines a training run: ``TrainConfig``, and its checks before any slow work."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from ftgui.core.base.errors import FtguiError, ModelError
from ftgui.core.base.options import BN_STATS, CACHE_MODES, HEADS, OPTIMIZERS, PRECISIONS, SCHEDULES
from ftgui.core.models import arch_info, is_local_weights, model_source
from ftgui.core.models.freeze import FreezePlan


@dataclass
class TrainConfig:
    """Everything that defines a run; saved with checkpoints and exports."""

    data_dir: str = ""
    arch: str = "resnet18"
    weights: str | None = "default"
    freeze: FreezePlan = field(default_factory=FreezePlan)  # which layers train
    epochs: int = 5
    batch_size: int = 32
    # None: the strategy's default (core/training/recipe.py); "auto": a quick range test (head only, where
    # the frozen layers' output is cached); or a number. prepare() turns it into the number used,
    # and ``lr_note`` says why.
    lr: float | str | None = None
    lr_note: str = ""
    lr_decay: float = 1.0  # discriminative LRs: each earlier block gets lr * lr_decay**depth
    optimizer: str = "adam"
    weight_decay: float = 1e-4
    momentum: float = 0.9
    schedule: str = "cosine"
    image_size: int | None = None
    val_fraction: float = 0.2
    seed: int = 0
    device: str = "auto"
    augment: bool = False
    early_stopping: int = 0  # patience in epochs; 0 = off
    num_workers: int = 0
    amp: bool = True  # mixed precision when on CUDA
    # auto | fp32 | bf16: auto takes bf16 mixed precision where this processor (or GPU) computes it
    # natively and a trial shows it faster (compute/precision.py); ``precision_note`` says what ran.
    precision: str = "auto"
    precision_note: str = ""
    cache: str = "auto"  # frozen-prefix and decoded-image caches: auto | off
    cache_memory_mb: int | None = None  # RAM budget for caches; None = a quarter of free RAM
    channels_last: bool | None = None  # None: on for convolutional networks
    sync_bn: bool = False  # under torchrun on GPUs: BatchNorm statistics over all processes' shards
    # Frozen BatchNorm layers' statistics (norm_stats.py): adapt (set to the training images' before the
    # first epoch), keep (the pretrained ones) or auto (adapt only when the images' statistics are far
    # from the pretrained ones: it gained there and lost a little elsewhere, the README's table).
    bn_stats: str = "auto"
    # Deterministic algorithms (torch.use_deterministic_algorithms; cuDNN without autotuning): with
    # one process on the same machine a run repeats bit for bit (ftgui-train --reproduce).
    deterministic: bool = False
    # The new classifier's form (models/heads.py): auto (concat where the model takes it, else
    # linear), linear or concat. Earlier versions built linear heads (from_dict keeps that).
    head: str = "auto"

    def validate(self) -> None:
        """Refuse a number out of range before any slow work, naming the option and its range."""
        validate_config(self)

    @property
    def strategy(self) -> str:
        """The freeze plan's name: head, last-N, full, gradual or custom."""
        return self.freeze.label

    def to_dict(self) -> dict[str, Any]:
        d = {f.name: getattr(self, f.name) for f in fields(self)}
        d["freeze"] = self.freeze.to_dict()
        d["strategy"] = self.freeze.label  # for people reading model.json; ``freeze`` is the record
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> TrainConfig:
        """A configuration a record holds (earlier versions' strategy fields included)."""
        known = {f.name for f in fields(cls)} - {"freeze"}
        kw: dict[str, Any] = {k: v for k, v in d.items() if k in known}
        kw.setdefault("bn_stats", "keep")  # earlier versions kept the pretrained BatchNorm statistics
        kw.setdefault("head", "linear")  # and built a linear classifier
        plan = d.get("freeze")
        kw["freeze"] = FreezePlan.from_dict(plan) if plan is not None else FreezePlan.from_legacy(d)
        return cls(**kw)


MAX_IMAGE_SIZE = 4096  # the largest input size ftgui-predict accepts in model.json


def _finite_number(v: object) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _whole(v: object) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def validate_config(cfg: TrainConfig) -> None:
    """The checks of :meth:`TrainConfig.validate` (options as ``ftgui-train`` names them)."""

    def need(ok: bool, option: str, rule: str, value: object) -> None:
        if not ok:
            raise FtguiError(f"{option} must be {rule} (got {value!r}).")

    need(
        cfg.lr is None or cfg.lr == "auto" or (_finite_number(cfg.lr) and cfg.lr > 0),  # type: ignore[operator]
        "--lr (learning rate)",
        "a finite number above 0, or auto",
        cfg.lr,
    )
    need(
        _finite_number(cfg.lr_decay) and 0 < cfg.lr_decay <= 1,
        "--lr-decay",
        "a number above 0 and at most 1 (1 = off)",
        cfg.lr_decay,
    )
    need(
        _finite_number(cfg.weight_decay) and 0 <= cfg.weight_decay < 1,
        "--weight-decay",
        "a number from 0 to below 1",
        cfg.weight_decay,
    )
    need(
        _finite_number(cfg.momentum) and 0 <= cfg.momentum < 1, "momentum", "from 0 to below 1", cfg.momentum
    )
    need(
        _whole(cfg.epochs) and 1 <= cfg.epochs <= 100_000,
        "--epochs",
        "a whole number from 1 to 100000",
        cfg.epochs,
    )
    need(
        _whole(cfg.batch_size) and 1 <= cfg.batch_size <= 65_536,
        "--batch-size",
        "a whole number from 1 to 65536",
        cfg.batch_size,
    )
    need(
        _whole(cfg.freeze.unfreeze_every) and cfg.freeze.unfreeze_every >= 1,
        "--unfreeze-every",
        "a whole number of at least 1",
        cfg.freeze.unfreeze_every,
    )
    need(
        _whole(cfg.freeze.blocks) and cfg.freeze.blocks >= 1, "last-N", "at least 1 block", cfg.freeze.blocks
    )
    need(
        _finite_number(cfg.val_fraction) and 0 <= cfg.val_fraction < 1,
        "--val-fraction",
        "a number from 0 to below 1 (0.2 keeps a fifth for validation)",
        cfg.val_fraction,
    )
    need(_whole(cfg.seed) and 0 <= cfg.seed < 2**63, "--seed", "a whole number from 0 to 2^63-1", cfg.seed)
    need(
        _whole(cfg.early_stopping) and cfg.early_stopping >= 0,
        "--early-stopping",
        "a whole number of epochs, 0 or more (0 = off)",
        cfg.early_stopping,
    )
    need(
        _whole(cfg.num_workers) and 0 <= cfg.num_workers <= 256,
        "--num-workers",
        "from 0 to 256",
        cfg.num_workers,
    )
    need(
        cfg.cache_memory_mb is None or (_whole(cfg.cache_memory_mb) and cfg.cache_memory_mb >= 0),
        "--cache-memory",
        "a whole number of MB, 0 or more",
        cfg.cache_memory_mb,
    )
    need(isinstance(cfg.arch, str) and bool(cfg.arch), "--model", "a model's name", cfg.arch)
    for option, text in (("--weights", cfg.weights), ("--device", cfg.device)):
        need(text is None or isinstance(text, str), option, "a name", text)
    need(cfg.optimizer in OPTIMIZERS, "--optimizer", f"one of {', '.join(OPTIMIZERS)}", cfg.optimizer)
    need(cfg.head in HEADS, "--head", f"one of {', '.join(HEADS)}", cfg.head)
    need(cfg.bn_stats in BN_STATS, "--bn-stats", f"one of {', '.join(BN_STATS)}", cfg.bn_stats)
    need(cfg.schedule in SCHEDULES, "--schedule", f"one of {', '.join(SCHEDULES)}", cfg.schedule)
    need(cfg.cache in CACHE_MODES, "--cache", " or ".join(CACHE_MODES), cfg.cache)
    need(cfg.precision in PRECISIONS, "--precision", ", ".join(PRECISIONS), cfg.precision)
    if cfg.image_size is not None:
        need(_whole(cfg.image_size), "--image-size", "a whole number of pixels", cfg.image_size)
        arch_info(cfg.arch)  # refuses an unknown architecture
        need(
            8 <= cfg.image_size <= MAX_IMAGE_SIZE,
            "--image-size",
            f"from 8 to {MAX_IMAGE_SIZE} pixels",
            cfg.image_size,
        )
        if not is_local_weights(cfg.weights):  # (a file's model is checked when it is read)
            try:
                model_source(cfg.arch, cfg.weights, cfg.image_size)  # runs it at that size on meta
            except ModelError as exc:
                raise FtguiError(f"--image-size {cfg.image_size}: {exc}") from None
