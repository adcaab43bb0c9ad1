"""Live loss and accuracy plot. Data is appended per event; drawing happens on a timer."""

from __future__ import annotations

import os

os.environ.setdefault("PYQTGRAPH_QT_LIB", "PySide6")

import pyqtgraph as pg  # noqa: E402
from PySide6.QtCore import QTimer  # noqa: E402
from PySide6.QtWidgets import QVBoxLayout, QWidget  # noqa: E402

MAX_SMOOTHING = 0.95  # exponential moving average of the per-batch loss
MIN_SMOOTHING = 0.6  # with a handful of batches an epoch, still about the last two or three


def smoothing_for(batches_per_epoch: int) -> float:
    """Average over about a quarter of an epoch, and over the last few batches at least (with 4
    batches an epoch the smoothed line was the raw one, drawn over it, so neither showed)."""
    return min(MAX_SMOOTHING, max(MIN_SMOOTHING, 1.0 - 4.0 / max(batches_per_epoch, 1)))


def plain_axes(*plots: pg.PlotItem) -> None:
    """Axes that print the numbers themselves: pyqtgraph's SI prefixes turned a loss of 0.0004
    into "loss (x0.001)" with ticks of 200 to 900."""
    for plot in plots:
        for side in ("left", "bottom"):
            plot.getAxis(side).enableAutoSIPrefix(False)


class TrainingPlot(QWidget):
    """Training loss per batch (raw and smoothed), validation loss and accuracy per epoch."""

    def __init__(self, parent: QWidget | None = None, redraw_ms: int = 200) -> None:
        super().__init__(parent)
        pg.setConfigOptions(antialias=True)
        self.view = pg.GraphicsLayoutWidget()
        self.view.setBackground("w")
        self.loss_plot = self.view.addPlot(row=0, col=0)
        self.acc_plot = self.view.addPlot(row=1, col=0)
        self.view.ci.layout.setRowStretchFactor(0, 3)
        self.view.ci.layout.setRowStretchFactor(1, 2)
        self.acc_plot.setXLink(self.loss_plot)
        for plot, label in ((self.loss_plot, "loss"), (self.acc_plot, "val accuracy (%)")):
            plot.showGrid(x=True, y=True, alpha=0.2)
            plot.setLabel("left", label)
            plot.setClipToView(True)
            plot.setDownsampling(mode="peak")
        self.acc_plot.setLabel("bottom", "epoch")
        self.acc_plot.setYRange(0, 100)
        plain_axes(self.loss_plot, self.acc_plot)
        self.loss_plot.addLegend(offset=(-10, 10))
        self.raw_curve = self.loss_plot.plot(pen=pg.mkPen((31, 119, 180, 130), width=1), name="train (batch)")
        self.smooth_curve = self.loss_plot.plot(
            pen=pg.mkPen((31, 119, 180), width=2), name="train (smoothed)"
        )
        self.val_curve = self.loss_plot.plot(
            pen=pg.mkPen((214, 39, 40), width=2),
            symbol="o",
            symbolSize=7,
            symbolBrush=(214, 39, 40),
            name="validation",
        )
        self.acc_curve = self.acc_plot.plot(
            pen=pg.mkPen((44, 160, 44), width=2), symbol="s", symbolSize=7, symbolBrush=(44, 160, 44)
        )
        self.hint = pg.TextItem(
            "The loss appears here while training runs", color=(120, 120, 120), anchor=(0.5, 0.5)
        )
        self.loss_plot.addItem(self.hint, ignoreBounds=True)
        self.hint.setPos(0.5, 0.5)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.view)
        self.clear()
        self.timer = QTimer(self)
        self.timer.setInterval(redraw_ms)
        self.timer.timeout.connect(self._redraw)
        self.timer.start()

    def clear(self) -> None:
        self.batch_x: list[float] = []
        self.batch_loss: list[float] = []
        self.batch_smooth: list[float] = []
        self.epoch_x: list[float] = []
        self.val_loss: list[float] = []
        self.val_acc: list[float] = []
        self._ema = 0.0
        self._ema_weight = 0.0
        self._dirty = True
        self._redraw()

    def add_batch(self, epoch: int, batch: int, batches: int, loss: float) -> None:
        """x is in epochs: epoch 1's batches lie between 0 and 1."""
        x = (epoch - 1) + batch / max(batches, 1)
        beta = smoothing_for(batches)
        # Debiased EMA (as TensorBoard does), so the curve does not start from zero and lag.
        self._ema = beta * self._ema + (1 - beta) * loss
        self._ema_weight = beta * self._ema_weight + (1 - beta)
        self.batch_x.append(x)
        self.batch_loss.append(loss)
        self.batch_smooth.append(self._ema / self._ema_weight if self._ema_weight else loss)
        self._dirty = True

    def add_epoch(self, epoch: int, val_loss: float | None, val_accuracy: float | None) -> None:
        if val_loss is None:
            return
        self.epoch_x.append(float(epoch))
        self.val_loss.append(val_loss)
        self.val_acc.append(100.0 * (val_accuracy or 0.0))
        self._dirty = True

    @property
    def point_count(self) -> int:
        return len(self.batch_x) + len(self.epoch_x)

    def _redraw(self) -> None:
        if not self._dirty:
            return
        self._dirty = False
        self.hint.setVisible(not self.batch_x and not self.epoch_x)
        self.raw_curve.setData(self.batch_x, self.batch_loss)
        self.smooth_curve.setData(self.batch_x, self.batch_smooth)
        self.val_curve.setData(self.epoch_x, self.val_loss)
        self.acc_curve.setData(self.epoch_x, self.val_acc)


# One colour per compared candidate or overlaid run (matplotlib's first six).
COLOURS = [(31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189), (140, 86, 75)]


class ValidationCurves(pg.GraphicsLayoutWidget):
    """Validation loss and accuracy per epoch, side by side, one coloured curve per run."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setBackground("w")
        self.loss_plot = self.addPlot(row=0, col=0)
        self.acc_plot = self.addPlot(row=0, col=1)
        for plot, label in ((self.loss_plot, "validation loss"), (self.acc_plot, "validation accuracy (%)")):
            plot.showGrid(x=True, y=True, alpha=0.2)
            plot.setLabel("left", label)
            plot.setLabel("bottom", "epoch")
        plain_axes(self.loss_plot, self.acc_plot)
        self.acc_plot.setYRange(0, 100)
        self.legend = self.loss_plot.addLegend(offset=(-10, 10))

    def clear_curves(self) -> None:
        self.loss_plot.clear()
        self.acc_plot.clear()
        self.legend.clear()

    def add_curves(self, name: str) -> tuple[pg.PlotDataItem, pg.PlotDataItem]:
        """A new pair of curves (loss, accuracy) in the next colour; fill them with setData."""
        colour = COLOURS[len(self.loss_plot.listDataItems()) % len(COLOURS)]
        style = {"pen": pg.mkPen(colour, width=2), "symbol": "o", "symbolSize": 6, "symbolBrush": colour}
        return self.loss_plot.plot(name=name, **style), self.acc_plot.plot(**style)
