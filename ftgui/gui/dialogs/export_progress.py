"""While an export runs: each format's state (waiting, being written and checked, kept, refused,
failed: one plain line each), the time so far against the estimate, and Cancel."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from PySide6.QtCore import QTimer, Signal
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QHeaderView,
    QLabel,
    QProgressBar,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from ftgui.core.base.options import EXPORT_FORMATS
from ftgui.core.base.text import display_path

if TYPE_CHECKING:
    from ftgui.core.deploy.measure import ExportCheck

# Seconds per million parameters each format takes to be written and checked in its runtime on a
# 2-core computer (ResNet18 and a small ViT); replaced by this computer's own figures after its
# first export of the format.
FIRST_GUESS = {
    "onnx": 0.6,
    "onnx-int8": 1.5,
    "torchscript": 0.5,
    "openvino": 0.8,
    "openvino-int8": 2.0,
    "coreml": 1.0,
    "tflite": 2.5,
    "tflite-int8": 4.0,
}
BUNDLE_SECONDS = 2.0  # the weights, the split, the evaluation and the card


def estimate_seconds(formats: tuple[str, ...], mparams: float, measured: dict[str, float]) -> float:
    """About how long an export of ``formats`` takes for a model of ``mparams`` million parameters:
    this computer's seconds per million parameters where it has them, else the first guess."""
    rates = [measured.get(f) or FIRST_GUESS.get(f, 2.0) for f in formats if f != "safetensors"]
    return BUNDLE_SECONDS + sum(rates) * max(mparams, 0.1)


def duration_text(seconds: float) -> str:
    if seconds < 90:
        return f"{max(1, round(seconds))} s"
    return f"{seconds / 60:.0f} min" if seconds < 5400 else f"{seconds / 3600:.1f} h"


def outcome_line(check: ExportCheck) -> str:
    """One plain line for a format that is done (the log and the card keep the whole text)."""
    if check.refused:
        return "not kept: " + check.error.removeprefix("refused: ").splitlines()[0]
    if check.error:
        first = check.error.strip().splitlines()[0] if check.error.strip() else "unknown error"
        return "failed: " + (first if len(first) <= 110 else first[:107] + "…")
    if check.note:
        return f"written; {check.note}"
    return f"kept: {100 * (check.agreement or 0):.1f}% agreement with the model"


class ExportProgress(QDialog):
    """The export's progress; ``changed`` may be emitted from the export's thread."""

    changed = Signal(str, object)  # format, its ExportCheck when done (None when it begins)
    cancel_requested = Signal()

    def __init__(
        self, folder: str, formats: tuple[str, ...], estimate: float, parent: QWidget | None = None
    ) -> None:
        super().__init__(parent)
        self.setWindowTitle("Exporting model")
        self.formats = [f for f in formats if f != "safetensors"]
        self.estimate = estimate
        self.started = time.monotonic()
        self.began: dict[str, float] = {}
        self.seconds: dict[str, float] = {}  # each finished format's time
        self.heading = QLabel(f"Exporting to {display_path(folder)}")
        self.heading.setWordWrap(True)
        self.table = QTableWidget(len(self.formats) + 1, 2)
        self.table.setHorizontalHeaderLabels(["File", "State"])
        self.table.verticalHeader().hide()
        self.table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        self.table.setSelectionMode(QTableWidget.SelectionMode.NoSelection)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(1, QHeaderView.ResizeMode.Stretch)
        self._set_row(0, "model.safetensors, model.json, MODEL_CARD.md", "written and swapped in at the end")
        for row, fmt in enumerate(self.formats, start=1):
            self._set_row(row, EXPORT_FORMATS[fmt][0], "waiting")
        self.bar = QProgressBar()
        self.bar.setRange(0, max(1, len(self.formats)))
        self.bar.setValue(0)
        self.clock = QLabel()
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Cancel)
        self.cancel_button = self.buttons.button(QDialogButtonBox.StandardButton.Cancel)
        self.cancel_button.setToolTip("Stop after the format being written; the folder stays as it was")
        layout = QVBoxLayout(self)
        layout.addWidget(self.heading)
        layout.addWidget(self.table, 1)
        layout.addWidget(self.bar)
        layout.addWidget(self.clock)
        layout.addWidget(self.buttons)
        self.buttons.rejected.connect(self._on_cancel)
        self.changed.connect(self._on_changed)
        self.timer = QTimer(self)
        self.timer.timeout.connect(self._tick)
        self.timer.start(1000)
        self._tick()
        self.resize(640, min(560, 150 + 30 * (len(self.formats) + 1)))

    def _set_row(self, row: int, name: str, state: str) -> None:
        self.table.setItem(row, 0, QTableWidgetItem(name))
        item = QTableWidgetItem(state)
        item.setToolTip(state)
        self.table.setItem(row, 1, item)

    def state(self, fmt: str) -> str:
        item = self.table.item(self.formats.index(fmt) + 1, 1)
        return item.text() if item is not None else ""

    def _on_changed(self, fmt: str, check: object) -> None:
        if fmt not in self.formats:
            return
        row = self.formats.index(fmt) + 1
        now = time.monotonic()
        if check is None:
            self.began[fmt] = now
            self._set_row(row, EXPORT_FORMATS[fmt][0], "writing and checking in its runtime…")
            return
        self.seconds[fmt] = now - self.began.get(fmt, now)
        line = outcome_line(check)  # type: ignore[arg-type]
        self._set_row(row, EXPORT_FORMATS[fmt][0], f"{line} ({duration_text(self.seconds[fmt])})")
        full, item = getattr(check, "error", ""), self.table.item(row, 1)
        if full and item is not None:
            item.setToolTip(full[:2000])
        self.bar.setValue(len(self.seconds))

    def _tick(self) -> None:
        spent = time.monotonic() - self.started
        self.clock.setText(f"{duration_text(spent)} so far, about {duration_text(self.estimate)} in all")

    def _on_cancel(self) -> None:
        self.cancel_button.setEnabled(False)
        self.cancel_button.setText("Cancelling…")
        self.heading.setText(
            self.heading.text().split("<br>")[0]
            + "<br><i>Cancelling after the format being written; the folder stays as it was.</i>"
        )
        self.cancel_requested.emit()

    def reject(self) -> None:  # Escape or the close button: the same as Cancel
        if self.cancel_button.isEnabled():
            self._on_cancel()

    def finish(self) -> None:
        """The export ended: the clock stops and the dialog goes (the window keeps the last one)."""
        self.timer.stop()
        self.hide()
