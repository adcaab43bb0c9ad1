"""Background work for the window: training and folder scanning, each in a QThread.

A training loop inside a worker slot never sees queued signals, so Stop sets the engine's
``CancelToken`` directly from the GUI thread. Events cross back as signals carrying the
engine's frozen dataclasses (plain values).
"""

from __future__ import annotations

import io
import traceback
from typing import Any

from PySide6.QtCore import QObject, QThread, Signal, Slot


class TrainingWorker(QObject):
    """Runs one ``Trainer`` in a thread; ``reported`` carries each engine event."""

    reported = Signal(object)
    finished = Signal()

    def __init__(self, trainer: Any, scan: Any | None = None, checkpoint_path: str | None = None) -> None:
        super().__init__()
        from ..core.engine import CancelToken

        self.trainer = trainer
        self.scan = scan
        self.checkpoint_path = checkpoint_path
        self.cancel_token = CancelToken()

    def stop(self) -> None:
        """Safe to call from the GUI thread at any time."""
        self.cancel_token.cancel()

    @Slot()
    def run(self) -> None:
        from ..core import events as ev
        from ..core.errors import FtguiError

        try:
            if not self.trainer.prepared:
                self.trainer.prepare(scan=self.scan)
            for event in self.trainer.run(self.cancel_token):
                self.reported.emit(event)
                if isinstance(event, ev.EpochEnded) and self.checkpoint_path:
                    # Saved here, between epochs, while the engine waits: a consistent state.
                    try:
                        path = self.trainer.save_checkpoint(self.checkpoint_path)
                        self.reported.emit(
                            ev.Message("info", f"Saved checkpoint after epoch {event.epoch}: {path}")
                        )
                    except OSError as exc:
                        self.reported.emit(ev.Message("warning", f"Could not save the checkpoint: {exc}"))
        except FtguiError as exc:
            self.reported.emit(ev.Failed(str(exc), self.trainer.epoch))
        except Exception as exc:  # the window must survive anything the engine throws
            detail = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__, limit=4))
            self.reported.emit(ev.Failed(f"Unexpected error: {exc}\n\n{detail}", self.trainer.epoch))
        finally:
            self.finished.emit()


class ScanWorker(QObject):
    """Scans an image folder and makes one thumbnail per class (PNG bytes)."""

    progressed = Signal(int, str)
    scanned = Signal(object, object)  # ScanResult, {class index: png bytes}
    failed = Signal(str)
    finished = Signal()

    def __init__(self, folder: str) -> None:
        super().__init__()
        self.folder = folder

    @Slot()
    def run(self) -> None:
        from ..core.data import scan_folder
        from ..core.errors import FtguiError

        try:
            scan = scan_folder(self.folder, progress=self._progress)
            self.scanned.emit(scan, _thumbnails(scan))
        except FtguiError as exc:
            self.failed.emit(str(exc))
        except Exception as exc:
            self.failed.emit(f"Could not scan {self.folder}: {exc}")
        finally:
            self.finished.emit()

    def _progress(self, count: int, path: str) -> None:
        if count % 25 == 0:
            self.progressed.emit(count, path)


def thumbnail_png(path: str, size: int = 48) -> bytes | None:
    """A small PNG of an image file (decoded at reduced size), or None if it cannot be read."""
    from ..core.data import load_rgb

    try:
        img = load_rgb(path, target=size)
        img.thumbnail((size, size))
        buf = io.BytesIO()
        img.save(buf, "PNG")
        return buf.getvalue()
    except Exception:
        return None


def _thumbnails(scan: Any, size: int = 48) -> dict[int, bytes]:
    import os

    thumbs: dict[int, bytes] = {}
    for sample in scan.samples:
        if sample.label not in thumbs:
            png = thumbnail_png(os.path.join(scan.root, sample.path), size)
            if png:
                thumbs[sample.label] = png
    return thumbs


class FunctionWorker(QObject):
    """Runs ``fn(progress, cancelled)`` in a thread: evaluation, the learning-rate finder, ..."""

    progressed = Signal(int, int)
    returned = Signal(object)
    failed = Signal(str)
    finished = Signal()

    def __init__(self, fn: Any) -> None:
        super().__init__()
        self.fn = fn
        self._cancel = False

    def stop(self) -> None:
        self._cancel = True

    @Slot()
    def run(self) -> None:
        from ..core.errors import FtguiError

        try:
            result = self.fn(
                lambda done, total, *_: self.progressed.emit(int(done), int(total)), lambda: self._cancel
            )
            self.returned.emit(result)
        except FtguiError as exc:
            self.failed.emit(str(exc))
        except Exception as exc:
            detail = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__, limit=4))
            self.failed.emit(f"{exc}\n\n{detail}")
        finally:
            self.finished.emit()


def start_in_thread(worker: QObject, parent: QObject) -> QThread:
    """Move ``worker`` to a new QThread, run its ``run`` slot, clean up when it finishes."""
    thread = QThread(parent)
    worker.moveToThread(thread)
    thread.started.connect(worker.run)  # type: ignore[attr-defined]
    worker.finished.connect(thread.quit)  # type: ignore[attr-defined]
    thread.start()
    return thread
