"""The backbone bake-off's results: ranked backbones with their linear-probe accuracy, latency,
size and licence, and the one-line pick."""

from __future__ import annotations

from typing import TYPE_CHECKING

from PySide6.QtCore import Qt
from PySide6.QtGui import QBrush, QColor, QFont
from PySide6.QtWidgets import QAbstractItemView, QHeaderView, QTableWidget, QTableWidgetItem, QWidget

if TYPE_CHECKING:
    from ftgui.core.workflows.backbones import BackboneResult

COLUMNS = ("backbone", "probe", "vs best", "ms/img", "params", "licence")
TIPS = (
    "the model whose frozen features were compared",
    "cross-validated accuracy of a linear head on its frozen features, with its 95% range",
    "points behind the top backbone, fold by fold, with a 95% interval (corrected resampled "
    "t-test); ≈: these images cannot tell the two apart",
    "one image through the whole model on this machine",
    "parameters",
    "licence of its pretrained weights, where the source records it",
)


class BackboneTable(QTableWidget):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(0, len(COLUMNS), parent)
        self.setHorizontalHeaderLabels(list(COLUMNS))
        for col, tip in enumerate(TIPS):
            item = self.horizontalHeaderItem(col)
            if item is not None:
                item.setToolTip(tip)
        self.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.verticalHeader().setVisible(False)
        header = self.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.Stretch)
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.Interactive)
        header.setMinimumSectionSize(40)

    def show_results(self, results: list[BackboneResult], picked: str | None) -> None:
        self.setRowCount(len(results))
        from ftgui.core.base.intervals import with_range
        from ftgui.core.workflows.backbones import difference_text, versus_best

        differences = versus_best(results)
        bold = QFont()
        bold.setBold(True)
        for row, r in enumerate(results):
            ci = r.interval() or (None, None)
            cells = [
                QTableWidgetItem(r.name),
                QTableWidgetItem("failed" if r.accuracy is None else with_range(r.accuracy, *ci)),
                QTableWidgetItem("" if r.accuracy is None else difference_text(r.arch, differences)),
                QTableWidgetItem("" if r.latency_ms is None else f"{r.latency_ms:.1f}"),
                QTableWidgetItem("" if r.params is None else f"{r.params / 1e6:.1f} M"),
                QTableWidgetItem(r.licence or "–"),
            ]
            cells[0].setData(Qt.ItemDataRole.UserRole, r.arch)
            cells[0].setToolTip(
                r.error or f"{r.images:,} images, {r.feature_dim:,} features, {r.seconds:.1f} s"
            )
            for col, cell in enumerate(cells):
                if col in (1, 2, 3, 4):
                    cell.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
                if r.arch == picked:
                    cell.setFont(bold)
                    cell.setBackground(QBrush(QColor(220, 240, 220)))
                self.setItem(row, col, cell)
        self.resizeColumnToContents(0)
        # Room for every row up to six (at 1280 x 800 the tab gave it two of four); more scroll.
        rows = min(len(results), 6)
        header = self.horizontalHeader().sizeHint().height()
        self.setMinimumHeight(
            header + rows * self.verticalHeader().defaultSectionSize() + 2 * self.frameWidth() + 2
        )
        for row, r in enumerate(results):
            if r.arch == picked:
                self.selectRow(row)

    def selected_arch(self) -> str | None:
        rows = self.selectionModel().selectedRows()
        item = self.item(rows[0].row(), 0) if rows else None
        return None if item is None else str(item.data(Qt.ItemDataRole.UserRole))
