"""The learning-rate finder's curve and its suggestion, with Use."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QLabel,
    QVBoxLayout,
    QWidget,
)

if TYPE_CHECKING:
    from ftgui.core.training.lr_finder import LRFinderResult


class LRFinderDialog(QDialog):
    """Loss against learning rate (log axis) with the suggestion, accepted with one click."""

    def __init__(self, result: LRFinderResult, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        from ftgui.gui.widgets.plot import pg

        self.finder_result = result
        self.setWindowTitle("Learning-rate finder")
        plot = pg.PlotWidget(background="w")
        plot.setLogMode(x=True, y=False)
        plot.showGrid(x=True, y=True, alpha=0.2)
        plot.setLabel("bottom", "learning rate")
        plot.setLabel("left", "loss (smoothed)")
        plot.plot(result.lrs, result.losses, pen=pg.mkPen((31, 119, 180), width=2))
        if result.losses:
            top = min(max(result.losses), 3 * min(result.losses) + 1e-6)
            plot.setYRange(min(result.losses) * 0.95, top)
        if result.suggestion:
            line = pg.InfiniteLine(
                pos=math.log10(result.suggestion),
                angle=90,
                pen=pg.mkPen((214, 39, 40), width=2, style=Qt.PenStyle.DashLine),
            )
            plot.addItem(line)
            text = f"Suggested learning rate: <b>{result.suggestion:.2e}</b> (where the loss falls fastest)"
        else:
            text = "No clear suggestion: the loss did not fall over the range tried."
        label = QLabel(text)
        buttons = QDialogButtonBox()
        self.use_button = buttons.addButton(
            f"Use {result.suggestion:.1e}" if result.suggestion else "Use",
            QDialogButtonBox.ButtonRole.AcceptRole,
        )
        self.use_button.setEnabled(bool(result.suggestion))
        buttons.addButton(QDialogButtonBox.StandardButton.Close)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(plot, 1)
        layout.addWidget(label)
        layout.addWidget(buttons)
        self.plot = plot
        self.resize(640, 440)
