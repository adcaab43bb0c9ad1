"""Learning-rate range test: raise the learning rate exponentially, watch the loss.

The model, its optimizer and the random state are restored afterwards, bit for bit: the
test never changes the run the user is about to start.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F


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


def find_lr(
    trainer: Any,
    start_lr: float = 1e-7,
    end_lr: float = 10.0,
    steps: int = 100,
    diverge: float = 4.0,
    progress: Callable[[int, int, float, float], None] | None = None,
    cancelled: Callable[[], bool] | None = None,
) -> LRFinderResult:
    """Range test on a prepared trainer's training data. Restores everything afterwards."""
    if not trainer.prepared:
        trainer.prepare()
    model, optimizer = trainer.model, trainer.optimizer
    saved_model = copy.deepcopy(model.state_dict())
    saved_optimizer = copy.deepcopy(optimizer.state_dict())
    saved_rng = torch.get_rng_state()
    saved_cuda = torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None
    saved_epoch = trainer.epoch
    lrs: list[float] = []
    losses: list[float] = []
    stopped_early = False
    try:
        from .engine import CancelToken

        for _ in trainer._ensure_cache(CancelToken()):
            pass
        factor = (end_lr / start_lr) ** (1.0 / max(steps - 1, 1))
        avg, best = 0.0, math.inf
        step = 0
        epoch = 0
        while step < steps:
            trainer.epoch = saved_epoch + epoch  # a fresh shuffle each pass over the data
            trainer._set_train_mode()
            got_batch = False
            for batch in trainer._batches(train=True):
                if step >= steps or (cancelled and cancelled()):
                    break
                if batch.images.numel() == 0:
                    continue
                got_batch = True
                lr = start_lr * factor**step
                for g in optimizer.param_groups:
                    g["lr"] = lr * g["base_lr"] / trainer.config.lr
                x = batch.images.to(trainer.device)
                y = batch.labels.to(trainer.device)
                main = trainer._forward(x)
                main = main[0] if not isinstance(main, torch.Tensor) else main
                loss = F.cross_entropy(main, y)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                value = float(loss.detach())
                avg = 0.98 * avg + 0.02 * value
                smoothed = avg / (1 - 0.98 ** (step + 1))
                lrs.append(lr)
                losses.append(smoothed)
                if progress:
                    progress(step + 1, steps, lr, smoothed)
                step += 1
                if not math.isfinite(smoothed) or smoothed > diverge * best:
                    stopped_early = True
                    break
                best = min(best, smoothed)
            if stopped_early or (cancelled and cancelled()) or not got_batch:
                break
            epoch += 1
    finally:
        model.load_state_dict(saved_model)
        optimizer.load_state_dict(saved_optimizer)
        torch.set_rng_state(saved_rng)
        if saved_cuda is not None:
            torch.cuda.set_rng_state_all(saved_cuda)
        trainer.epoch = saved_epoch
    finite = [(a, b) for a, b in zip(lrs, losses) if math.isfinite(b)]
    lrs, losses = [a for a, _ in finite], [b for _, b in finite]
    return LRFinderResult(lrs, losses, suggest(lrs, losses), stopped_early)
