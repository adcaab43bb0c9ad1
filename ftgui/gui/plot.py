"""Live loss and accuracy plot. Data is appended per event; drawing happens on a timer."""

from __future__ import annotations

import os

os.environ.setdefault("PYQTGRAPH_QT_LIB", "PySide6")

import pyqtgraph as pg  # noqa: E402
from PySide6.QtCore import QTimer  # noqa: E402
from PySide6.QtWidgets import QVBoxLayout, QWidget  # noqa: E402

SMOOTHING = 0.9  # exponential moving average of the per-batch loss


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
        self.loss_plot.addLegend(offset=(-10, 10))
        self.raw_curve = self.loss_plot.plot(pen=pg.mkPen((31, 119, 180, 70), width=1), name="train (batch)")
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
        self._dirty = True
        self._redraw()

    def add_batch(self, epoch: int, batch: int, batches: int, loss: float) -> None:
        """x is in epochs: epoch 1's batches lie between 0 and 1."""
        x = (epoch - 1) + batch / max(batches, 1)
        prev = self.batch_smooth[-1] if self.batch_smooth else loss
        self.batch_x.append(x)
        self.batch_loss.append(loss)
        self.batch_smooth.append(SMOOTHING * prev + (1 - SMOOTHING) * loss if self.batch_smooth else loss)
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
        self.raw_curve.setData(self.batch_x, self.batch_loss)
        self.smooth_curve.setData(self.batch_x, self.batch_smooth)
        self.val_curve.setData(self.epoch_x, self.val_loss)
        self.acc_curve.setData(self.epoch_x, self.val_acc)
