"""One optimisation step, shared by training and the learning-rate range test.

Forward (mixed precision on CUDA), cross-entropy with the auxiliary classifiers' losses at 0.3
(GoogLeNet, Inception), a check that the loss is a finite number, backward, optimizer step.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from .errors import TrainingError

AUX_LOSS_WEIGHT = 0.3


class NonFiniteLoss(TrainingError):
    """The loss was NaN or infinite; the step did not change any weight."""

    def __init__(self, value: float) -> None:
        super().__init__(f"The loss became {value}.")
        self.value = value


def split_logits(output: Any) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """Main logits plus auxiliary logits (GoogLeNet/Inception return named tuples in training)."""
    if isinstance(output, torch.Tensor):
        return output, []
    main, *aux = tuple(output)
    return main, [a for a in aux if isinstance(a, torch.Tensor)]


@dataclass(frozen=True)
class StepResult:
    loss: float  # the main classifier's mean loss
    correct: int
    count: int


class TrainStep:
    """Steps ``optimizer`` on batches through ``forward`` (the model, or its cached suffix)."""

    def __init__(
        self,
        forward: Callable[[torch.Tensor], Any],
        optimizer: torch.optim.Optimizer,
        device: torch.device,
        amp: bool = True,
    ) -> None:
        self.forward = forward
        self.optimizer = optimizer
        self.device = device
        self.use_amp = amp and device.type == "cuda"
        self.amp_dtype = torch.bfloat16 if self.use_amp and torch.cuda.is_bf16_supported() else torch.float16
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.use_amp and self.amp_dtype == torch.float16)

    def __call__(self, images: torch.Tensor, labels: torch.Tensor) -> StepResult:
        """One step. Raises :class:`NonFiniteLoss` (before any weight changes) on NaN/inf."""
        x = images
        if self.device.type == "cuda":
            x = x.pin_memory()
        x = x.to(self.device, non_blocking=True)
        y = labels.to(self.device, non_blocking=True)
        with torch.autocast(self.device.type, dtype=self.amp_dtype, enabled=self.use_amp):
            main, aux = split_logits(self.forward(x))
            loss = F.cross_entropy(main, y)
            full = loss + sum(
                (AUX_LOSS_WEIGHT * F.cross_entropy(a, y) for a in aux), torch.zeros((), device=x.device)
            )
        if not torch.isfinite(full):
            raise NonFiniteLoss(float(full.item()))
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(full).backward()
        self.scaler.step(self.optimizer)
        self.scaler.update()
        return StepResult(float(loss.detach()), int((main.detach().argmax(1) == y).sum()), int(y.numel()))


class Tally:
    """Loss, accuracy and per-class accuracy over the batches of a training epoch or a validation."""

    def __init__(self, num_classes: int) -> None:
        self.loss_sum, self.correct, self.seen = 0.0, 0, 0
        self.hits = torch.zeros(num_classes, dtype=torch.long)
        self.totals = torch.zeros(num_classes, dtype=torch.long)

    def add_step(self, result: StepResult) -> None:
        self.loss_sum += result.loss * result.count
        self.correct += result.correct
        self.seen += result.count

    def add_logits(self, logits: torch.Tensor, labels: torch.Tensor) -> None:
        self.loss_sum += float(F.cross_entropy(logits, labels, reduction="sum"))
        ok = (logits.argmax(1) == labels).cpu()
        y = labels.cpu()
        self.correct += int(ok.sum())
        self.seen += int(y.numel())
        self.totals += torch.bincount(y, minlength=len(self.totals))
        self.hits += torch.bincount(y[ok], minlength=len(self.hits))

    @property
    def loss(self) -> float | None:
        return self.loss_sum / self.seen if self.seen else None

    @property
    def accuracy(self) -> float | None:
        return self.correct / self.seen if self.seen else None

    def per_class(self) -> list[float | None]:
        return [float(h) / float(t) if t else None for h, t in zip(self.hits.tolist(), self.totals.tolist())]


def first_non_finite(model: torch.nn.Module) -> str | None:
    """The first trainable parameter holding NaN or infinity, or None."""
    return next(
        (n for n, p in model.named_parameters() if p.requires_grad and not bool(p.isfinite().all())), None
    )


class Clock:
    """Time left in a run, from the steps done since it (re)started."""

    def __init__(self, total: int, start_step: int) -> None:
        self.total, self.start_step, self.t0 = total, start_step, time.perf_counter()

    def eta(self, step: int) -> float:
        done = step - self.start_step
        return (time.perf_counter() - self.t0) / done * max(self.total - step, 0) if done else 0.0
