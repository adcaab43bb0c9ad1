"""Learning-rate range test: raise the learning rate exponentially, watch the loss.

The model, its optimizer and the random state are restored afterwards, bit for bit: the
test never changes the run the user is about to start.
"""

from __future__ import annotations

import copy
import math
import statistics
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


def _moving_average(values: list[float], half: int) -> list[float]:
    out = []
    for i in range(len(values)):
        lo, hi = max(0, i - half), min(len(values), i + half + 1)
        out.append(sum(values[lo:hi]) / (hi - lo))
    return out


def _slope(xs: list[float], ys: list[float]) -> float:
    """Least-squares slope of ys against xs."""
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    var = sum((x - mx) ** 2 for x in xs)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / var if var > 0 else 0.0


def suggest(lrs: list[float], losses: list[float]) -> float | None:
    """The learning rate where the loss falls fastest in the curve's final fall, or None when
    the curve does not clearly fall.

    The curve is smoothed again (a centred window, since the range test's running average
    lags), the plateau is the median of its first tenth, and only the stretch from the last
    point still near the plateau to the minimum counts: a dip in the flat, noisy start (where
    a bias-corrected running average of a few batches wanders) is never the answer. There the
    slope is a least-squares fit over about a tenth of the range, not a two-point difference.
    """
    n = len(lrs)
    if n < 10 or len(losses) != n:
        return None
    smooth = _moving_average(losses, max(1, n // 40))
    end = min(range(n), key=lambda i: smooth[i])
    level = statistics.median(smooth[: max(3, n // 10)])
    drop = level - smooth[end]
    if end < 3 or drop <= 0.05 * abs(level):
        return None  # no clear fall: the loss hardly moved, or it only rose
    start = max((i for i in range(end) if smooth[i] >= level - 0.1 * drop), default=0)
    logs = [math.log(x) for x in lrs]
    half = max(2, n // 20)
    best, best_slope = None, 0.0
    for i in range(start, end + 1):
        lo, hi = max(start, i - half), min(end, i + half)
        if hi - lo < 2:
            continue
        slope = _slope(logs[lo : hi + 1], smooth[lo : hi + 1])
        if slope < best_slope:
            best, best_slope = i, slope
    return lrs[best] if best is not None else None


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
