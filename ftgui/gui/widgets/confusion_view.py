"""The confusion matrix of many classes as one heat-map image (pyqtgraph ImageItem).

A table of 1,000 classes would be a million widgets; one image is drawn at once whatever the
size. Each cell's colour is the share of the true class (row) predicted as the column, on a
square-root scale so that rare confusions still show. Hovering reads a cell out, the mouse
wheel and drag zoom and pan, a click lists the cell's images, and the most frequent
confusions are listed beside it.
"""

from __future__ import annotations

import os

os.environ.setdefault("PYQTGRAPH_QT_LIB", "PySide6")

from collections.abc import Sequence  # noqa: E402

import numpy as np  # noqa: E402
import pyqtgraph as pg  # noqa: E402
from PySide6.QtCore import QPointF, QRectF, Qt, Signal  # noqa: E402
from PySide6.QtWidgets import (  # noqa: E402
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

TOP_LISTED = 100  # confusions listed beside the picture
CELL_ROLE = Qt.ItemDataRole.UserRole + 4


class ConfusionHeatMap(QWidget):
    """``set_matrix(confusion, names)``; ``cell_clicked(true, predicted)`` on a click or a pick
    from the top-confusions list."""

    cell_clicked = Signal(int, int)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.counts = np.zeros((0, 0), dtype=np.int64)
        self.names: list[str] = []
        self.plot = pg.PlotWidget()
        self.plot.setBackground("w")
        item = self.plot.getPlotItem()
        item.invertY(True)
        item.setLabel("left", "true class (index)")
        item.setLabel("bottom", "predicted class (index)")
        item.hideButtons()
        item.setMenuEnabled(False)
        # Downsampled by averaging when a cell is smaller than a pixel: plain subsampling would
        # drop whole cells from the picture.
        self.image = pg.ImageItem(axisOrder="row-major", autoDownsample=True)
        # White for zero, then rising fast (orange at 4 %, red at 25 %): averaged cells that
        # are smaller than a pixel still stand out.
        self.image.setColorMap(
            pg.ColorMap([0.0, 0.04, 0.25, 1.0], ["#ffffff", "#fdbb84", "#e34a33", "#7f0000"])
        )
        item.addItem(self.image)
        self.marker = pg.QtWidgets.QGraphicsRectItem(0, 0, 1, 1)
        self.marker.setPen(pg.mkPen("#2a82da", width=0))
        self.marker.setVisible(False)
        item.addItem(self.marker)
        self.readout = QLabel(
            "Hover over a cell to read it; scroll to zoom, drag to pan, click to list its images."
        )
        self.readout.setWordWrap(True)
        self.reset_button = QPushButton("Whole matrix")
        self.reset_button.setToolTip("Zoom out to see every class")
        self.top = QListWidget()
        self.top.setToolTip("The most frequent confusions; click one to list its images")
        self.top.setWordWrap(True)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.plot, 1)
        row = QHBoxLayout()
        row.addWidget(self.readout, 1)
        row.addWidget(self.reset_button)
        layout.addLayout(row)
        # The list goes where the window has room for it (beside the picture, above the
        # chosen cell's images): the picture keeps the width.
        self.top_box = QWidget()
        side = QVBoxLayout(self.top_box)
        side.setContentsMargins(0, 0, 0, 0)
        side.addWidget(QLabel("<b>Top confusions</b>"))
        side.addWidget(self.top, 1)

        self.plot.scene().sigMouseMoved.connect(self._on_mouse_moved)
        self.plot.scene().sigMouseClicked.connect(self._on_mouse_clicked)
        self.reset_button.clicked.connect(self.show_all)
        self.top.currentItemChanged.connect(self._on_top_changed)

    def set_matrix(self, confusion: Sequence[Sequence[int]], names: Sequence[str]) -> None:
        counts = np.asarray(confusion, dtype=np.int64).reshape(len(names), len(names))
        self.counts, self.names = counts, list(names)
        self.marker.setVisible(False)
        if not names:
            self.image.clear()
            self.top.blockSignals(True)
            self.top.clear()
            self.top.blockSignals(False)
            return
        totals = np.maximum(counts.sum(axis=1, keepdims=True), 1)
        self.image.setImage(np.sqrt(counts / totals).astype(np.float32), levels=(0.0, 1.0))
        k = len(names)
        self.image.setRect(QRectF(0, 0, k, k))
        # Cells fill the plot (no class indices below 0 or past the last), zoomed in down to
        # a few cells.
        self.plot.getPlotItem().getViewBox().setLimits(
            xMin=0, xMax=k, yMin=0, yMax=k, minXRange=min(k, 4), minYRange=min(k, 4)
        )

        self.marker.setVisible(False)
        self.show_all()
        self.top.blockSignals(True)  # refilling is no pick
        self.top.clear()
        off = counts.copy()
        np.fill_diagonal(off, 0)
        flat = np.flatnonzero(off)
        if flat.size:
            order = flat[np.lexsort((flat, -off.flat[flat]))][:TOP_LISTED]
            for cell in order:
                t, p = divmod(int(cell), k)
                n = int(counts[t, p])
                entry = QListWidgetItem(f"{n:,}  {names[t]} → {names[p]}  ({100 * n / totals[t, 0]:.0f}%)")
                entry.setData(CELL_ROLE, (t, p))
                entry.setToolTip(f"true {names[t]} (#{t}), predicted {names[p]} (#{p})")
                self.top.addItem(entry)
        else:
            self.top.addItem("No confusions: every image is in its class.")
        self.top.blockSignals(False)

    def show_all(self) -> None:
        k = max(len(self.names), 1)
        self.plot.getPlotItem().getViewBox().setRange(QRectF(0, 0, k, k), padding=0)

    def cell_at(self, scene_pos: QPointF) -> tuple[int, int] | None:
        """(true, predicted) of the cell under a scene position, or None outside the matrix."""
        if not self.names:
            return None
        point = self.plot.getPlotItem().getViewBox().mapSceneToView(scene_pos)
        col, row = int(np.floor(point.x())), int(np.floor(point.y()))
        k = len(self.names)
        return (row, col) if 0 <= row < k and 0 <= col < k else None

    def scene_position(self, true: int, predicted: int) -> QPointF:
        """Where a cell's centre is, in scene coordinates (for the window's tests and tours)."""
        return self.plot.getPlotItem().getViewBox().mapViewToScene(QPointF(predicted + 0.5, true + 0.5))

    def describe(self, true: int, predicted: int) -> str:
        n = int(self.counts[true, predicted])
        total = max(int(self.counts[true].sum()), 1)
        what = "correct" if true == predicted else "mistaken"
        return (
            f"true {self.names[true]} (#{true}), predicted {self.names[predicted]} (#{predicted}): "
            f"{n:,} of {total:,} images ({100 * n / total:.1f}%, {what})"
        )

    def _on_mouse_moved(self, pos: QPointF) -> None:
        cell = self.cell_at(pos)
        if cell is not None:
            self.readout.setText(self.describe(*cell))

    def _on_mouse_clicked(self, event: object) -> None:
        cell = self.cell_at(event.scenePos())  # type: ignore[attr-defined]
        if cell is not None:
            self.select(*cell)

    def select(self, true: int, predicted: int) -> None:
        """Mark a cell, read it out and list its images."""
        self.marker.setRect(QRectF(predicted, true, 1, 1))
        self.marker.setVisible(True)
        self.readout.setText(self.describe(true, predicted))
        self.cell_clicked.emit(true, predicted)

    def _on_top_changed(self, item: QListWidgetItem | None, _: QListWidgetItem | None) -> None:
        cell = item.data(CELL_ROLE) if item is not None else None
        if cell:
            self.select(*cell)
