"""A read-only table model over plain Python rows, sortable, with icons supplied on demand.

Qt's item widgets make one object per cell up front (1,000 classes x 6 columns = 6,000 of
them); a model answers only for the rows on screen, so a table of any length fills at once.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from PySide6.QtCore import QAbstractTableModel, QModelIndex, QPersistentModelIndex, QSortFilterProxyModel, Qt
from PySide6.QtGui import QIcon
from PySide6.QtWidgets import QAbstractItemView, QHeaderView, QTableView, QWidget

SORT_ROLE = Qt.ItemDataRole.UserRole + 10
ROW_ROLE = Qt.ItemDataRole.UserRole + 11  # the row's place in the model's own list

Index = QModelIndex | QPersistentModelIndex


class RowsModel(QAbstractTableModel):
    """Rows of (text, sort key) cells; column 0 may get an icon from ``icon(row)``."""

    def __init__(self, headers: Sequence[str], parent: Any = None) -> None:
        super().__init__(parent)
        self.headers = list(headers)
        self.rows: list[list[tuple[str, Any]]] = []
        self.icon: Callable[[int], QIcon | None] | None = None
        self.tooltip: Callable[[int], str] | None = None

    def set_rows(self, rows: Sequence[Sequence[tuple[str, Any]]]) -> None:
        self.beginResetModel()
        self.rows = [list(r) for r in rows]
        self.endResetModel()

    def row_changed(self, row: int) -> None:
        """Row ``row``'s icon (or tooltip) changed."""
        self.dataChanged.emit(self.index(row, 0), self.index(row, 0))

    def rowCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self.rows)

    def columnCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self.headers)

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid():
            return None
        row, col = index.row(), index.column()
        text, key = self.rows[row][col]
        if role == Qt.ItemDataRole.DisplayRole:
            return text
        if role == SORT_ROLE:
            return key
        if role == ROW_ROLE:
            return row
        if role == Qt.ItemDataRole.TextAlignmentRole and col:
            return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        if role == Qt.ItemDataRole.DecorationRole and col == 0 and self.icon is not None:
            return self.icon(row)
        if role == Qt.ItemDataRole.ToolTipRole and self.tooltip is not None:
            return self.tooltip(row)
        return None

    def headerData(
        self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole
    ) -> Any:
        if role == Qt.ItemDataRole.DisplayRole and orientation == Qt.Orientation.Horizontal:
            return self.headers[section]
        return None


def rows_table(headers: Sequence[str], parent: QWidget | None = None) -> tuple[QTableView, RowsModel]:
    """A sortable read-only table view (click a header to sort) over a new RowsModel."""
    model = RowsModel(headers)
    proxy = QSortFilterProxyModel()
    proxy.setSourceModel(model)
    proxy.setSortRole(SORT_ROLE)
    view = QTableView(parent)
    view.setModel(proxy)
    proxy.setParent(view)
    model.setParent(view)
    view.setSortingEnabled(True)
    view.sortByColumn(-1, Qt.SortOrder.AscendingOrder)  # model order until a header is clicked
    view.verticalHeader().setVisible(False)
    view.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
    # Tab moves on to the next control, not cell by cell (20 stops in a 5-class table); the
    # arrow keys still walk the cells once the table has the focus.
    view.setTabKeyNavigation(False)
    view.horizontalHeader().setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
    return view, model


def cell_text(view: QTableView, row: int, col: int) -> str:
    """What a view shows at (row, col), in the view's current order."""
    return str(view.model().index(row, col).data())
