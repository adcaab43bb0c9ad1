"""``ftgui --self-check [OUT]``: does this installation work? The window does what a new user
does first, through the same calls as its buttons: it opens the example dataset, trains a new
head for one epoch, and exports to OUT (the bundle, TorchScript and ONNX where installed),
printing each step with its time; it exits 0 when all of it worked and 1 otherwise. Without OUT
it only measures how long the window took to appear, and quits.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import TextIO

import psutil
from PySide6.QtCore import QObject, QTimer
from PySide6.QtWidgets import QApplication, QWidget

from ftgui.gui.main_window import MainWindow

POLL_MS = 100
STEP_LIMIT_S = 600.0  # one step that takes longer than this has failed


def seconds_since_start() -> float:
    """Seconds since this process started (the launcher's exec, not Python's first line)."""
    return time.time() - psutil.Process().create_time()


class SelfCheck(QObject):
    """Runs the steps one after the other, each waiting for the window without blocking it."""

    def __init__(
        self, window: MainWindow, out: str | None, stream: TextIO = sys.stdout, quit_app: bool = True
    ) -> None:
        super().__init__(window)
        self.quit_app = quit_app  # ftgui --self-check ends the application with the check's status
        self.window = window
        self.out = out
        self.stream = stream
        self.failed: str | None = None
        self.formats: list[str] = []  # the formats exported and checked
        self.done = False
        self._steps: list[tuple[str, Callable[[], None], Callable[[], bool]]] = [
            ("window visible", lambda: None, self._painted),
            ("PyTorch loaded", lambda: None, lambda: window.ready),
            ("example dataset open", window.open_example, self._data_open),
            ("trained a head for one epoch", self._start_training, self._trained),
        ]
        if out:
            self._steps.append(("exported", self._export, self._exported))
        else:
            self._steps = self._steps[:1]
        self._step = -1
        self._step_started = time.monotonic()
        self._painted_at: float | None = None
        window.installEventFilter(self)
        self._timer = QTimer(self)
        self._timer.timeout.connect(self._tick)
        self._timer.start(POLL_MS)

    def eventFilter(self, obj: QObject, event: object) -> bool:  # noqa: N802 (Qt's name)
        from PySide6.QtCore import QEvent

        if obj is self.window and getattr(event, "type", lambda: None)() == QEvent.Type.Paint:
            if self._painted_at is None:
                self._painted_at = seconds_since_start()
        return False

    def _say(self, text: str) -> None:
        self.stream.write(f"self-check: {text}\n")
        self.stream.flush()

    def _painted(self) -> bool:
        return self._painted_at is not None

    def _data_open(self) -> bool:
        panel = self.window.data_panel
        if panel.scan is None or panel.scanning or panel.verifying:
            return False
        return self.window.train_panel.start_button.isEnabled()

    def _start_training(self) -> None:
        w = self.window
        w.model_panel.set_strategy("head")
        w.train_panel.epochs.setValue(1)
        w.start_training()

    def _trained(self) -> bool:
        w = self.window
        if w.busy:
            return False
        t = w.session.trainer
        if t is None or t.epoch < 1:
            raise RuntimeError("training ended without a finished epoch")
        return True

    def _export(self) -> None:
        from ftgui.core.deploy.registry import missing_packages

        formats = ("safetensors", "torchscript", *(("onnx",) if not missing_packages("onnx") else ()))
        assert self.out is not None
        if not self.window.export_to(self.out, formats, replace_other=True):
            raise RuntimeError(f"the export to {self.out} did not start")

    def _exported(self) -> bool:
        import json
        from pathlib import Path

        if self.window.busy:
            return False
        meta = Path(self.out or "") / "model.json"
        if not meta.is_file():
            raise RuntimeError(f"no model.json in {self.out} after the export")
        formats = json.loads(meta.read_text(encoding="utf-8")).get("exports", {}).get("formats", {})
        failed = [f"{name}: {c['error']}" for name, c in formats.items() if c.get("error")]
        if failed:
            raise RuntimeError("; ".join(failed))
        self.formats = sorted(formats)
        return True

    def _tick(self) -> None:
        box = self.window.last_error_box
        if box is not None and box.isVisible():
            self._finish(f"{box.windowTitle()}: {box.text()}")
            return
        try:
            if self._step >= 0:
                name, _, finished = self._steps[self._step]
                if not finished():
                    if time.monotonic() - self._step_started > STEP_LIMIT_S:
                        self._finish(f"{name}: not done after {STEP_LIMIT_S:.0f} s")
                    return
                elapsed = time.monotonic() - self._step_started
                if self._step == 0 and self._painted_at is not None:
                    self._say(f"window visible {self._painted_at:.2f} s after start")
                elif name == "exported":
                    self._say(
                        f"exported and checked {', '.join(self.formats)} in {self.out} ({elapsed:.1f} s)"
                    )
                else:
                    self._say(f"{name} ({elapsed:.1f} s)")
            self._step += 1
            if self._step == len(self._steps):
                self._finish(None)
                return
            self._step_started = time.monotonic()
            self._steps[self._step][1]()
        except Exception as exc:  # noqa: BLE001 (reported as the check's failure)
            self._finish(f"{self._steps[max(self._step, 0)][0]}: {exc}")

    def _finish(self, failure: str | None) -> None:
        self._timer.stop()
        self.failed, self.done = failure, True
        self._say(f"FAILED: {failure}" if failure else "passed")
        for w in QApplication.topLevelWidgets():
            if isinstance(w, QWidget) and w is not self.window:
                w.close()
        self.window.close()
        app = QApplication.instance()
        if app is not None and self.quit_app:
            app.exit(1 if failure else 0)
