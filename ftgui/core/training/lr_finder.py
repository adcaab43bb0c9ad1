"""Learning-rate range test: raise the learning rate exponentially, watch the loss.

The model, its optimizer and the random state are restored afterwards, bit for bit: the
test never changes the run the user is about to start.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from ftgui.core.data.images import Batch
from ftgui.core.models import load_state
from ftgui.core.training.step import NonFiniteLoss, TrainStep, norms_fixed_for_one_image


@dataclass(frozen=True)
class RangeTestRun:
    """What the range test uses of a run: its model and optimizer (restored afterwards), its
    training step, how to set train mode, its training batches for an epoch, the learning rate
    the optimizer's groups are relative to, the epoch to shuffle from, and whether every
    process must take part in every step (torchrun)."""

    model: nn.Module
    optimizer: torch.optim.Optimizer
    step: TrainStep
    set_train_mode: Callable[[], None]
    batches: Callable[[int], Iterable[Batch]]
    base_lr: float
    epoch: int = 0
    every_rank: bool = False


@dataclass(frozen=True)
class LRFinderResult:
    lrs: list[float]
    losses: list[float]  # smoothed
    suggestion: float | None
    stopped_early: bool  # the loss exploded before the last step

    def to_dict(self) -> dict[str, Any]:
        return {"lrs": self.lrs, "losses": self.losses, "suggestion": self.suggestion}


def suggest(lrs: list[float], losses: list[float]) -> float | None:
    """The learning rate where the smoothed loss falls fastest (steepest slope against log lr)."""
    if len(lrs) < 5:
        return None
    # Ignore the very start (warm-up noise) and the explosion at the end.
    end = min(range(len(losses)), key=lambda i: losses[i])
    start = max(1, len(losses) // 10)
    if end - start < 2:
        return lrs[end] / 10 if end > 0 else None
    slopes = [
        (losses[i + 1] - losses[i - 1]) / (math.log(lrs[i + 1]) - math.log(lrs[i - 1]))
        for i in range(start, end)
    ]
    best = min(range(len(slopes)), key=lambda j: slopes[j])
    return lrs[start + best]


def range_test(
    run: RangeTestRun,
    start_lr: float = 1e-7,
    end_lr: float = 10.0,
    steps: int = 100,
    diverge: float = 4.0,
    progress: Callable[[int, int, float, float], None] | None = None,
    cancelled: Callable[[], bool] | None = None,
) -> LRFinderResult:
    """Range test over a run's training batches with its own training step (``Trainer.find_lr``
    prepares one). Restores the weights, the optimizer and the random state afterwards."""
    model, optimizer, step = run.model, run.optimizer, run.step
    saved_model = copy.deepcopy(model.state_dict())
    saved_optimizer = copy.deepcopy(optimizer.state_dict())
    saved_rng = torch.get_rng_state()
    saved_cuda = torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None
    lrs: list[float] = []
    losses: list[float] = []
    stopped_early = False
    try:
        factor = (end_lr / start_lr) ** (1.0 / max(steps - 1, 1))
        avg, best = 0.0, math.inf
        epoch = run.epoch  # a fresh shuffle for each pass over the data
        while len(lrs) < steps:
            run.set_train_mode()
            got_batch = False
            for batch in run.batches(epoch):
                if len(lrs) >= steps or (cancelled and cancelled()):
                    break
                if batch.images.numel() == 0 and not run.every_rank:
                    continue  # under torchrun every rank takes part in every step
                lr = start_lr * factor ** len(lrs)
                for g in optimizer.param_groups:
                    g["lr"] = lr * g["base_lr"] / run.base_lr
                try:
                    with norms_fixed_for_one_image(model, batch.images):
                        result = step(batch.images, batch.labels)
                    if result.count == 0:
                        continue
                    value = result.loss
                except NonFiniteLoss:
                    value = math.inf
                got_batch = True
                avg = 0.98 * avg + 0.02 * value
                smoothed = avg / (1 - 0.98 ** (len(lrs) + 1))
                lrs.append(lr)
                losses.append(smoothed)
                if progress:
                    progress(len(lrs), steps, lr, smoothed)
                if not math.isfinite(smoothed) or smoothed > diverge * best:
                    stopped_early = True
                    break
                best = min(best, smoothed)
            if stopped_early or (cancelled and cancelled()) or not got_batch:
                break
            epoch += 1
    finally:
        load_state(model, saved_model)
        optimizer.load_state_dict(saved_optimizer)
        torch.set_rng_state(saved_rng)
        if saved_cuda is not None:
            torch.cuda.set_rng_state_all(saved_cuda)
    finite = [(a, b) for a, b in zip(lrs, losses) if math.isfinite(b)]
    lrs, losses = [a for a, _ in finite], [b for _, b in finite]
    return LRFinderResult(lrs, losses, suggest(lrs, losses), stopped_early)
