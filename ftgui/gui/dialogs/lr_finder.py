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
    """Loss against learning rate (log axis) with the suggestion, accepted with one click.

    What Use sets is what ``--lr auto`` would take from the same curve: the steepest point of
    its final fall, kept within 10x of the strategy's default (``recipe.choose_auto_lr``)."""

    def __init__(self, result: LRFinderResult, parent: QWidget | None = None, strategy: str = "head") -> None:
        super().__init__(parent)
        from ftgui.core.training.recipe import choose_auto_lr, default_lr
        from ftgui.gui.widgets.plot import pg

        self.finder_result = result
        fallback = default_lr(strategy)
        choice = choose_auto_lr(result.suggestion, result.losses, strategy)
        # None: the curve gave nothing to trust (choose_auto_lr fell back on the default)
        self.chosen_lr: float | None = choice.lr if choice.from_curve else None
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
        if result.suggestion and self.chosen_lr is not None and self.chosen_lr != result.suggestion:
            plot.addItem(  # where the curve falls fastest, outside the range Use keeps to
                pg.InfiniteLine(
                    pos=math.log10(result.suggestion), angle=90,
                    pen=pg.mkPen((150, 150, 150), width=1, style=Qt.PenStyle.DotLine),
                )
            )  # fmt: skip
        if self.chosen_lr is not None:
            plot.addItem(
                pg.InfiniteLine(
                    pos=math.log10(self.chosen_lr), angle=90,
                    pen=pg.mkPen((214, 39, 40), width=2, style=Qt.PenStyle.DashLine),
                )
            )  # fmt: skip
        if self.chosen_lr is None:
            text = (
                "No clear suggestion: the loss did not clearly fall over the range tried. "
                f"Start keeps the {fallback.reason}."
            )
        elif result.suggestion is None or self.chosen_lr == result.suggestion:
            text = (
                f"Suggested learning rate: <b>{self.chosen_lr:.1e}</b>, where the loss falls fastest "
                f"in its final fall (the {fallback.reason})."
            )
        else:
            text = (
                f"Suggested learning rate: <b>{self.chosen_lr:.1e}</b>. The loss falls fastest at "
                f"{result.suggestion:.1e} (dotted), which is more than 10\u00d7 from the "
                f"{fallback.reason}; the suggestion keeps within that range."
            )
        label = QLabel(text)
        label.setWordWrap(True)
        self.message = label
        buttons = QDialogButtonBox()
        self.use_button = buttons.addButton(
            f"Use {self.chosen_lr:.1e}" if self.chosen_lr else "Use",
            QDialogButtonBox.ButtonRole.AcceptRole,
        )
        self.use_button.setEnabled(self.chosen_lr is not None)
        buttons.addButton(QDialogButtonBox.StandardButton.Close)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(plot, 1)
        layout.addWidget(label)
        layout.addWidget(buttons)
        self.plot = plot
        self.resize(640, 440)
