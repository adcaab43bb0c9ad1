"""What the engine reports while it runs: frozen dataclasses of plain values.

The window, the command line and the tests all read these; none of them touches torch
objects while a run is going.
"""

from __future__ import annotations

import threading
from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class Event:
    def to_dict(self) -> dict[str, object]:
        return {"type": type(self).__name__, **asdict(self)}


@dataclass(frozen=True)
class RunStarted(Event):
    classes: tuple[str, ...]
    num_train: int
    num_val: int
    device: str
    trainable_params: int
    total_params: int
    epochs: int
    start_epoch: int
    batches_per_epoch: int


@dataclass(frozen=True)
class Message(Event):
    """Something the user should read: a warning or a note (shown in the log)."""

    level: str  # "info" | "warning"
    text: str


@dataclass(frozen=True)
class FileSkipped(Event):
    path: str
    reason: str


@dataclass(frozen=True)
class Preparing(Event):
    """A step before (or between) epochs that takes a while: the frozen layers' output being
    computed once for the cache. ``done`` of ``total`` images."""

    # "caching" (the frozen-layer cache of the training and validation images) or "adapting"
    # (BatchNorm statistics set to the training images', training/norm_stats.py)
    what: str
    done: int
    total: int


@dataclass(frozen=True)
class BlocksUnfrozen(Event):
    epoch: int
    blocks: tuple[str, ...]
    trainable_params: int


@dataclass(frozen=True)
class BatchEnded(Event):
    epoch: int  # 1-based
    batch: int  # 1-based within the epoch
    batches: int
    step: int  # global, 1-based
    loss: float
    lr: float
    images_per_s: float
    eta_s: float


@dataclass(frozen=True)
class EpochEnded(Event):
    epoch: int  # 1-based
    epochs: int
    train_loss: float
    train_accuracy: float
    val_loss: float | None
    val_accuracy: float | None
    per_class_accuracy: tuple[float | None, ...]
    lr: float
    seconds: float
    is_best: bool
    val_images: int = 0  # the validation images the accuracy was measured on


@dataclass(frozen=True)
class Finished(Event):
    epochs_completed: int
    best_epoch: int | None
    best_val_loss: float | None
    best_val_accuracy: float | None
    stopped_early: bool
    val_images: int = 0


@dataclass(frozen=True)
class Cancelled(Event):
    epochs_completed: int


@dataclass(frozen=True)
class Failed(Event):
    message: str
    epochs_completed: int


class CancelToken:
    """Set from any thread; the engine checks it before every batch."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def cancel(self) -> None:
        self._event.set()

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()
