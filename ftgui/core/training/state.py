"""Where a run stands: everything that changes while it trains, and what a checkpoint restores."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn


def new_run_id() -> str:
    """What tells one training run from another (kept by its checkpoints and its exports)."""
    return uuid.uuid4().hex


@dataclass
class TrainerState:
    epoch: int = 0  # epochs completed
    step: int = 0  # optimizer steps taken (the schedule's position)
    unfrozen_blocks: int = 0  # gradual unfreezing's stage
    history: list[dict[str, Any]] = field(default_factory=list)  # one EpochEnded record per epoch
    best_epoch: int | None = None
    best_val_loss: float | None = None  # the measure the best epoch was chosen by
    best_state: dict[str, torch.Tensor] | None = None  # that epoch's weights
    skipped: dict[str, str] = field(default_factory=dict)  # unreadable file -> reason
    rng_state: torch.Tensor | None = None  # torch's RNG after the last epoch (augmentation, dropout)
    stale: int = 0  # epochs since the best one (early stopping)
    rank_rng_states: list[torch.Tensor] | None = None  # under torchrun: every rank's RNG, by rank
    run_id: str = field(default_factory=new_run_id)  # the same across resumes of one run

    def rank_rng_state(self, rank: int, size: int) -> torch.Tensor | None:
        """The RNG state a rank resumes with: its own, when the job has the same size (one
        process: ``rng_state``); None for a rank that has none (it seeds a fresh stream)."""
        states = self.rank_rng_states
        if states is not None and len(states) == size:
            return states[rank]
        return self.rng_state if rank == 0 else None

    def end_epoch(self, metric: float, model: torch.nn.Module) -> bool:
        """Count the finished epoch; keep its weights when ``metric`` is the lowest so far (True)."""
        self.epoch += 1
        self.rng_state = torch.get_rng_state()
        if self.best_val_loss is None or metric < self.best_val_loss:
            self.best_val_loss, self.best_epoch, self.stale = metric, self.epoch, 0
            self.best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
            return True
        self.stale += 1
        return False

    def kept_because(self, measure: str) -> str:
        """Which epoch's weights the model holds, and why (for the log and model.json)."""
        if self.best_epoch is None:
            return "no epoch finished"
        later = " (later epochs did not lower it)" if self.best_epoch != self.epoch else ""
        return (
            f"epoch {self.best_epoch} of {self.epoch}, the lowest {measure} ({self.best_val_loss:.4f}){later}"
        )

    def best_val_images(self) -> int:
        """The validation images the kept epoch's accuracy was measured on (0: not recorded)."""
        if self.best_epoch is None or self.best_epoch > len(self.history):
            return 0
        return int(self.history[self.best_epoch - 1].get("val_images") or 0)

    def best_val_accuracy(self) -> float | None:
        if self.best_epoch is None or self.best_epoch > len(self.history):
            return None
        value = self.history[self.best_epoch - 1].get("val_accuracy")
        return float(value) if isinstance(value, (int, float)) else None


@dataclass(frozen=True)
class KeptOutcomes:
    """The validation outcomes of the epoch whose weights a trainer kept, and a digest of
    those weights (outcomes are reused only while the model still holds them)."""

    positions: list[int]
    rows: torch.Tensor
    digest: list[float]


def weights_digest(model: nn.Module) -> list[float]:
    """A cheap summary of every floating-point tensor of the model (parameters and statistics)."""
    with torch.no_grad():
        return [float(t.double().sum()) for t in model.state_dict().values() if t.is_floating_point()]
