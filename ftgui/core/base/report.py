"""Engine events as sentences: one wording for the window's log and ftgui-train's output."""

from __future__ import annotations

from ftgui.core.base import events as ev
from ftgui.core.base.intervals import proportion


def pct(v: float | None) -> str:
    return "n/a" if v is None else f"{100 * v:.1f}%"


def duration(seconds: float) -> str:
    s = int(round(seconds))
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}" if s >= 3600 else f"{s // 60}:{s % 60:02d}"


def batch_status(e: ev.BatchEnded) -> str:
    """The live line under the plot: speed, loss, learning rate."""
    return f"{e.images_per_s:,.0f} images/s · loss {e.loss:.4f} · lr {e.lr:.2g}"


def preparing(e: ev.Preparing) -> str:
    """What a step before the epochs is doing, in a few words."""
    return {"caching": "caching frozen layers", "adapting": "adapting BatchNorm statistics"}.get(
        e.what, e.what
    )


def describe(e: ev.Event) -> tuple[str, str] | None:
    """(level, sentence) for the log; None for per-batch events (progress shows those)."""
    if isinstance(e, ev.RunStarted):
        names = ", ".join(e.classes[:8]) + (", ..." if len(e.classes) > 8 else "")
        return "info", (
            f"Training {len(e.classes)} classes ({names}) on {e.device}: {e.num_train} train / "
            f"{e.num_val} val images, {e.trainable_params:,} of {e.total_params:,} parameters trainable"
            + (
                f"; accuracies in brackets: the range (95%) that {e.num_val} images allow"
                if e.num_val
                else ""
            )
        )
    if isinstance(e, ev.EpochEnded):
        acc = "n/a" if e.val_accuracy is None else proportion(e.val_accuracy, e.val_images, with_count=False)
        val = "" if e.val_loss is None else f", val loss {e.val_loss:.4f}, val accuracy {acc}"
        return "info", (
            f"Epoch {e.epoch}/{e.epochs}: train loss {e.train_loss:.4f}, train accuracy "
            f"{pct(e.train_accuracy)}{val} ({e.seconds:.1f}s){' — best so far' if e.is_best else ''}"
        )
    if isinstance(e, ev.FileSkipped):
        return "warning", f"Skipped {e.path}: {e.reason}"
    if isinstance(e, ev.Message):
        return e.level, e.text
    if isinstance(e, ev.BlocksUnfrozen):
        return (
            "info",
            f"Epoch {e.epoch}: unfroze {', '.join(e.blocks)} ({e.trainable_params:,} trainable parameters)",
        )
    if isinstance(e, ev.Finished):
        return "info", f"Finished {e.epochs_completed} epochs" + (
            " (stopped early)" if e.stopped_early else ""
        ) + ("" if kept(e) is None else f"; {kept(e)}")
    if isinstance(e, ev.Cancelled):
        return "info", f"Stopped after {e.epochs_completed} complete epoch(s)"
    if isinstance(e, ev.Failed):
        return "error", e.message
    return None


def kept(e: ev.Finished) -> str | None:
    """Which epoch's weights the model keeps and its validation accuracy: the epoch of the
    lowest validation loss, which need not be the epoch of the highest accuracy (a run that
    reached 93.8 % in one epoch and kept another at 84.4 % said "best val acc 84.4 %")."""
    if e.best_epoch is None or e.best_val_accuracy is None:
        return None
    return (
        f"kept epoch {e.best_epoch} (lowest validation loss): {proportion(e.best_val_accuracy, e.val_images)}"
    )


def short_status(e: ev.Event) -> str | None:
    """The few words beside the Start button when a run ends."""
    if isinstance(e, ev.Finished):
        return "Finished" + ("" if kept(e) is None else f" · {kept(e)}")
    if isinstance(e, ev.Cancelled):
        return f"Stopped · {e.epochs_completed} epoch(s) done"
    if isinstance(e, ev.Failed):
        return "Failed"
    return None
