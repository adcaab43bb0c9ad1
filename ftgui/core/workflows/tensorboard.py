"""Training runs as TensorBoard scalars (``torch.utils.tensorboard``), for people who use it.

One sub-folder per run (or comparison candidate): batch loss and learning rate per step, the
epoch metrics, and the run's hyperparameters with its final metrics. ``tensorboard`` is an
optional extra (``pip install 'ftgui[tensorboard]'``).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from ftgui.core.base import events as ev
from ftgui.core.base.errors import FtguiError

if TYPE_CHECKING:
    from collections.abc import Mapping

    from ftgui.core.training.config import TrainConfig
    from ftgui.core.training.engine import Trainer

INSTALL = "pip install 'ftgui[tensorboard]'"


def tensorboard_missing() -> str | None:
    """What to install for TensorBoard logs, or None when they can be written."""
    try:
        import tensorboard  # noqa: F401
        from torch.utils.tensorboard import SummaryWriter  # noqa: F401
    except ImportError:
        return f"TensorBoard logs need the tensorboard package: {INSTALL}"
    return None


class TensorBoardLog:
    """Writes a run's events to ``folder`` (created); call it with every event, then close()."""

    def __init__(self, folder: str | os.PathLike[str], config: TrainConfig) -> None:
        missing = tensorboard_missing()
        if missing:
            raise FtguiError(missing)
        from torch.utils.tensorboard import SummaryWriter

        self.folder = Path(folder)
        self.config = config
        self.writer = SummaryWriter(log_dir=str(self.folder))
        self.metrics: dict[str, float] = {}

    def __call__(self, event: ev.Event) -> None:
        w = self.writer
        if isinstance(event, ev.BatchEnded):
            w.add_scalar("loss/batch", event.loss, event.step)
            w.add_scalar("learning_rate", event.lr, event.step)
        elif isinstance(event, ev.EpochEnded):
            values = {
                "loss/train": event.train_loss,
                "loss/val": event.val_loss,
                "accuracy/train": event.train_accuracy,
                "accuracy/val": event.val_accuracy,
            }
            for tag, value in values.items():
                if value is not None:
                    w.add_scalar(tag, value, event.epoch)
        elif isinstance(event, ev.Finished):
            if event.best_val_loss is not None:
                self.metrics["hparam/best_val_loss"] = event.best_val_loss
            if event.best_val_accuracy is not None:
                self.metrics["hparam/best_val_accuracy"] = event.best_val_accuracy
            cfg = self.config
            hparams: dict[str, str | float | int | bool] = {
                "arch": cfg.arch,
                "weights": str(cfg.weights),
                "strategy": cfg.strategy,
                "lr": float(cfg.lr) if isinstance(cfg.lr, (int, float)) else str(cfg.lr),
                "optimizer": cfg.optimizer,
                "schedule": cfg.schedule,
                "batch_size": cfg.batch_size,
                "epochs": cfg.epochs,
                "image_size": cfg.image_size or 0,
                "seed": cfg.seed,
            }
            w.add_hparams(hparams, self.metrics, run_name=".")
        if isinstance(event, (ev.Finished, ev.Cancelled, ev.Failed)):
            w.flush()

    def close(self) -> None:
        self.writer.close()


class CandidateLogs:
    """A comparison's TensorBoard logs: a sub-folder of ``root`` per candidate, opened when the
    candidate's trainer exists (a refused candidate gets none)."""

    def __init__(self, root: Path, trainers: Mapping[str, Trainer]) -> None:
        self.root = root
        self.trainers = trainers
        self.logs: dict[str, TensorBoardLog] = {}

    def __call__(self, candidate: str, event: ev.Event) -> None:
        if candidate not in self.logs and candidate in self.trainers:
            self.logs[candidate] = TensorBoardLog(self.root / candidate, self.trainers[candidate].config)
        if candidate in self.logs:
            self.logs[candidate](event)

    def close(self) -> bool:
        """Close every log; True when any was written."""
        for log in self.logs.values():
            log.close()
        return bool(self.logs)
