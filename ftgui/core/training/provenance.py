"""What model.json records so that a run can be repeated: every seed the run drew from, whether
deterministic algorithms were on, the precision that actually ran, the versions and the machine
(``compute/environment.py``); and the precision such a record asks a repeat to use."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import torch

from ftgui.core.compute import environment
from ftgui.core.compute.distributed import World
from ftgui.core.compute.precision import DTYPE_NAMES, Precision, dtype_name
from ftgui.core.training.config import TrainConfig


def seeds(cfg: TrainConfig, split_drawn: bool) -> dict[str, Any]:
    """Every random stream of a run and the seed it starts from (the seed is ``--seed``)."""
    s = cfg.seed
    return {
        "seed": s,
        "split": s if split_drawn else None,  # None: train/ and val/ folders, or a job's lists
        "initialisation": s,  # torch.manual_seed before the new head is made
        "training": f"{s} + 1 + process rank",  # augmentation and dropout
        "epoch_order": f"{s} + epoch",  # each epoch's shuffle
        "batchnorm_probe": 0,  # the images bn_stats=auto measures
        "bootstrap": 0,  # the balanced accuracy's interval
    }


def run_record(
    cfg: TrainConfig, precision: Precision, world: World, device: torch.device, split_drawn: bool
) -> dict[str, Any]:
    """model.json's ``reproducibility``: how to repeat this run, and what it ran on."""
    return {
        "seeds": seeds(cfg, split_drawn),
        "deterministic": bool(cfg.deterministic),
        "processes": world.size if world.active else 1,
        "precision": {
            "train": dtype_name(precision.train),
            "infer": dtype_name(precision.infer),
            "device_type": precision.device_type,
        },
        "versions": environment.versions(),
        "machine": environment.machine(device),
    }


def recorded_precision(record: dict[str, Any]) -> Precision:
    """The precision a recorded run computed in (a repeat does not time a trial again)."""
    train, infer = DTYPE_NAMES.get(record.get("train", "fp32")), DTYPE_NAMES.get(record.get("infer", "fp32"))
    ran = Precision(train, infer, device_type=record.get("device_type", "cpu"))
    return replace(ran, note=f"{ran.label} (as recorded)")
