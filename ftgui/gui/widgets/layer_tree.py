"""The layer tree: a model's modules as rows with checkboxes, greyed where nothing trains.

It only renders: ``fill`` takes a module (a meta-device skeleton), ``show_states`` takes the
freeze plan's per-layer states, and a click is reported as ``toggled(name, checked)``. What a
click means for the plan is the model panel's business.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QBrush, QColor, QStandardItem, QStandardItemModel
from PySide6.QtWidgets import QHeaderView, QTreeView, QWidget

if TYPE_CHECKING:
    from torch import nn

NAME_ROLE = Qt.ItemDataRole.UserRole + 1
CHECK_STATES = {
    "all": Qt.CheckState.Checked,
    "none": Qt.CheckState.Unchecked,
    "partial": Qt.CheckState.PartiallyChecked,
}


class LayerTree(QTreeView):
    """Layer, type and parameter count per module; a checkbox on every module with parameters."""

    toggled = Signal(str, bool)  # qualified layer name, checked

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.tree_model = QStandardItemModel(0, 3, self)
        self.tree_model.setHorizontalHeaderLabels(["Layer", "Type", "Parameters"])
        self.setModel(self.tree_model)
        self.setUniformRowHeights(True)
        self.setAlternatingRowColors(True)
        header = self.header()
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        header.setSectionResizeMode(1, QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(2, QHeaderView.ResizeMode.ResizeToContents)
        header.setStretchLastSection(False)
        self._items: dict[str, QStandardItem] = {}
        self._updating = False
        self.tree_model.itemChanged.connect(self._on_tree_model_item_changed)

    def fill(self, module: nn.Module | None) -> None:
        """One row per submodule, nested as the model nests them (nothing when ``module`` is None)."""
        self._updating = True
        self.tree_model.removeRows(0, self.tree_model.rowCount())
        self._items = {}

        def add(parent: QStandardItem, name: str, module: nn.Module) -> None:
            for child_name, child in module.named_children():
                qname = f"{name}.{child_name}" if name else child_name
                total = sum(p.numel() for p in child.parameters())
                item = QStandardItem(child_name)
                item.setData(qname, NAME_ROLE)
                item.setEditable(False)
                item.setCheckable(total > 0)
                item.setToolTip(qname)
                kind = QStandardItem(type(child).__name__)
                kind.setEditable(False)
                count = QStandardItem(f"{total:,}")
                count.setEditable(False)
                count.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
                parent.appendRow([item, kind, count])
                self._items[qname] = item
                add(item, qname, child)

        if module is not None:
            add(self.tree_model.invisibleRootItem(), "", module)
        self._updating = False

    def show_states(self, states: Mapping[str, str]) -> None:
        """Check states from the plan ('all', 'none', 'partial'); rows that do not train greyed."""
        dim = QBrush(QColor(150, 150, 150))
        normal = QBrush(self.palette().text().color())
        self._updating = True
        for name, state in states.items():
            item = self._items.get(name)
            if item is None:
                continue
            check = CHECK_STATES[state]
            if item.isCheckable() and item.checkState() != check:
                item.setCheckState(check)
            brush = dim if state == "none" else normal
            parent = item.parent() or self.tree_model.invisibleRootItem()
            for col in range(3):
                cell = parent.child(item.row(), col)
                if cell is not None and cell.foreground() != brush:
                    cell.setForeground(brush)
        self._updating = False

    def item_for(self, name: str) -> QStandardItem | None:
        return self._items.get(name)

    def _on_tree_model_item_changed(self, item: QStandardItem) -> None:
        if self._updating or not item.isCheckable():
            return
        self.toggled.emit(item.data(NAME_ROLE), item.checkState() != Qt.CheckState.Unchecked)
