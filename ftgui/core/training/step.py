"""One optimisation step, shared by training and the learning-rate range test.

Forward (under the run's mixed precision: see ``compute/precision.py``), cross-entropy (in fp32) with the auxiliary classifiers' losses at 0.3
(GoogLeNet, Inception), a check that the loss is a finite number, backward, optimizer step.
``DistributedStep`` is the same step on one shard of a batch under DistributedDataParallel.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from torch import nn

from ftgui.core.base.errors import TrainingError
from ftgui.core.compute.precision import FP32, Precision

if TYPE_CHECKING:
    from ftgui.core.compute.distributed import World

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


@contextlib.contextmanager
def norms_fixed_for_one_image(model: torch.nn.Module, images: torch.Tensor) -> Iterator[None]:
    """BatchNorm cannot compute statistics from one value per channel ("Expected more than 1 value
    per channel when training"): a batch that shrank to one image (its others unreadable, a file
    gone mid-run, a short last batch) trains with the running statistics instead, for that step."""
    if images.dim() == 0 or images.shape[0] != 1:
        yield
        return
    norms = [
        m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm) and m.training
    ]
    for m in norms:
        m.eval()
    try:
        yield
    finally:
        for m in norms:
            m.train()


class TrainStep:
    """Steps ``optimizer`` on batches through ``forward`` (the model, or its cached suffix)."""

    def __init__(
        self,
        forward: Callable[[torch.Tensor], Any],
        optimizer: torch.optim.Optimizer,
        device: torch.device,
        precision: Precision = FP32,
    ) -> None:
        self.forward = forward
        self.optimizer = optimizer
        self.device = device
        self.precision = precision  # parameters, gradients, optimizer state and loss stay fp32
        fp16 = device.type == "cuda" and precision.train == torch.float16
        self.scaler = torch.amp.GradScaler("cuda", enabled=fp16)

    def __call__(self, images: torch.Tensor, labels: torch.Tensor) -> StepResult:
        """One step. Raises :class:`NonFiniteLoss` (before any weight changes) on NaN/inf."""
        x = images
        if self.device.type == "cuda":
            x = x.pin_memory()
        x = x.to(self.device, non_blocking=True)
        y = labels.to(self.device, non_blocking=True)
        with self.precision.autocast("train"):
            main, aux = split_logits(self.forward(x))
        main, aux = main.float(), [a.float() for a in aux]
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


class DistributedStep(TrainStep):
    """One step of DistributedDataParallel on this rank's shard of a batch.

    Each rank's loss is its shard's sum scaled by ``world size / images in the whole batch``;
    DDP averages the gradients over ranks, so the step equals one process's step on the whole
    batch (up to the order of float additions), shards of unequal size and a last short batch
    included. Loss and accuracy are summed over ranks before the backward pass: every rank
    reports (and checks for NaN) the whole batch's numbers and takes the same decisions.
    ``forward`` is the DDP module; ``empty`` gives a zero-image input for a rank whose shard is
    empty (all its files unreadable, or fewer images than ranks), which must still take part.
    """

    def __init__(
        self,
        forward: Callable[[torch.Tensor], Any],
        optimizer: torch.optim.Optimizer,
        device: torch.device,
        precision: Precision,
        world: World,
        empty: Callable[[], torch.Tensor],
    ) -> None:
        super().__init__(forward, optimizer, device, precision)
        self.world = world
        self.empty = empty

    def __call__(self, images: torch.Tensor, labels: torch.Tensor) -> StepResult:
        x = images if images.numel() else self.empty()
        x = x.to(self.device, non_blocking=True)
        y = labels.to(self.device, non_blocking=True)
        with self.precision.autocast("train"):
            main, aux = split_logits(self.forward(x))
        main, aux = main.float(), [a.float() for a in aux]
        loss = F.cross_entropy(main, y, reduction="sum")
        full = loss + sum(
            (AUX_LOSS_WEIGHT * F.cross_entropy(a, y, reduction="sum") for a in aux),
            torch.zeros((), device=x.device),
        )
        correct = (main.detach().argmax(1) == y).sum()
        local = torch.stack([loss.detach().float(), full.detach().float(), correct.float()])
        local = torch.cat([local, torch.tensor([float(y.numel())], device=local.device)])
        loss_sum, full_sum, hits, count = self.world.sum(local).tolist()
        n = int(count)
        if n and not math.isfinite(full_sum):
            raise NonFiniteLoss(full_sum / n)
        self.optimizer.zero_grad(set_to_none=True)
        # A batch no rank could read still runs backward (DDP expects it) but steps nothing.
        scale = self.world.size / n if n else 0.0
        self.scaler.scale(full * scale).backward()
        if n:
            self.scaler.step(self.optimizer)
            self.scaler.update()
        return StepResult(loss_sum / n if n else math.nan, int(hits), n)


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

    def reduced(self, world: World) -> Tally:
        """The tally over every rank's shard (itself in a single process)."""
        if not world.active:
            return self
        k = len(self.hits)
        packed = torch.cat(
            [torch.tensor([self.loss_sum, self.correct, self.seen], dtype=torch.float64),
             self.hits.double(), self.totals.double()]
        )  # fmt: skip
        total = world.sum(packed)
        out = Tally(k)
        out.loss_sum, out.correct, out.seen = float(total[0]), int(total[1]), int(total[2])
        out.hits, out.totals = total[3 : 3 + k].long(), total[3 + k :].long()
        return out

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
    """Time left in a run, from the steps done since it (re)started. Time spent outside the
    steps' rhythm (the frozen-layer cache being filled, once) is left out: a run whose first
    epoch fills the cache would otherwise be estimated at many times its length."""

    def __init__(self, total: int, start_step: int, now: Callable[[], float] = time.perf_counter) -> None:
        self.total, self.start_step, self._now = total, start_step, now
        self.t0 = now()
        self.excluded = 0.0

    def exclude(self, seconds: float) -> None:
        self.excluded += seconds

    def eta(self, step: int) -> float:
        done = step - self.start_step
        spent = max(self._now() - self.t0 - self.excluded, 0.0)
        return spent / done * max(self.total - step, 0) if done else 0.0


class TrainerForward(nn.Module):
    """The trainer's forward as a module for DistributedDataParallel: it holds the whole model
    (so DDP sees every trainable parameter) and calls the cached suffix or the whole model."""

    def __init__(self, model: nn.Module, forward: Callable[[torch.Tensor], Any]) -> None:
        super().__init__()
        self.model = model
        self._forward = forward

    def forward(self, x: torch.Tensor) -> Any:
        return self._forward(x)
