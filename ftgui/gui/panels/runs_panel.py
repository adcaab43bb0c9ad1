"""The Runs tab: every past run on the open dataset, its curves overlaid, reopened or forgotten.

Records come from ``core/workflows/runs.py`` (written by the window, ``ftgui-train`` and
``ftgui-compare``); reading them is quick (small JSON files), so the list fills on the GUI thread.
"""

from __future__ import annotations

import datetime as _dt
import os

os.environ.setdefault("PYQTGRAPH_QT_LIB", "PySide6")

from PySide6.QtCore import Qt, Signal  # noqa: E402
from PySide6.QtGui import QColor  # noqa: E402
from PySide6.QtWidgets import (  # noqa: E402
    QAbstractItemView,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from ftgui.core.base.intervals import interval_of, with_range
from ftgui.core.workflows.runs import RunRecord, delete_run, list_runs
from ftgui.gui.widgets.plot import ValidationCurves

COLUMNS = ("date", "model", "layout", "epochs", "best val", "time", "from")


class RunsPanel(QWidget):
    reopen_requested = Signal(object)  # RunRecord
    deleted = Signal(str)  # run id

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.records: list[RunRecord] = []
        self.dataset: str | None = None
        self.classes: list[str] | None = None
        self.title = QLabel("Open a dataset to see its past runs.")
        self.refresh_button = QPushButton("Refresh")
        top = QHBoxLayout()
        top.addWidget(self.title, 1)
        top.addWidget(self.refresh_button)
        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setHorizontalHeaderLabels(list(COLUMNS))
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.verticalHeader().setVisible(False)
        self.table.setWordWrap(False)
        self.table.setTextElideMode(Qt.TextElideMode.ElideMiddle)  # "timm:vit_…_in1k": both ends show
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        for col in (1, 2):  # model and layout take the room that is left
            header.setSectionResizeMode(col, QHeaderView.ResizeMode.Stretch)
        self.view = ValidationCurves()
        self.loss_plot, self.acc_plot = self.view.loss_plot, self.view.acc_plot
        self.reopen_button = QPushButton("Reopen")
        self.reopen_button.setToolTip(
            "Show the run's curves on the training plot; open its exported model if it has one"
        )
        self.delete_button = QPushButton("Delete")
        self.delete_button.setToolTip("Forget the selected runs (their exported models stay on disk)")
        self.hint = QLabel("Select several runs to overlay their curves.")
        buttons = QHBoxLayout()
        buttons.addWidget(self.hint, 1)
        buttons.addWidget(self.reopen_button)
        buttons.addWidget(self.delete_button)
        layout = QVBoxLayout(self)
        layout.addLayout(top)
        layout.addWidget(self.table, 2)
        layout.addWidget(self.view, 3)
        layout.addLayout(buttons)
        self.refresh_button.clicked.connect(self.refresh)
        self.table.itemSelectionChanged.connect(self._on_selection_changed)
        self.reopen_button.clicked.connect(self._on_reopen_clicked)
        self.delete_button.clicked.connect(self.delete_selected)
        self._on_selection_changed()

    def set_dataset(self, root: str | None, classes: list[str] | None) -> None:
        self.dataset, self.classes = root, classes
        self.refresh()

    def refresh(self) -> None:
        self.records = list_runs(self.dataset, self.classes) if self.dataset else []
        name = os.path.basename(self.dataset or "")
        self.title.setText(
            f"<b>{len(self.records)} run(s)</b> on {name}"
            if self.dataset
            else "Open a dataset to see its past runs."
        )
        self.table.setRowCount(len(self.records))
        for row, r in enumerate(self.records):
            stamp = _dt.datetime.fromisoformat(r.created).astimezone()
            when = stamp.strftime("%d %b %H:%M")
            kept = r.history[r.best_epoch - 1] if r.best_epoch and r.best_epoch <= len(r.history) else {}
            ci = interval_of(r.best_val_accuracy, int(kept.get("val_images") or 0))
            acc = (
                "–" if r.best_val_accuracy is None else with_range(r.best_val_accuracy, *(ci or (None, None)))
            )
            took = "–" if r.seconds is None else f"{r.seconds:.0f}s"
            layout = r.candidate if r.candidate and r.candidate != r.strategy else r.strategy
            source = "window compare" if r.source == "window" and r.comparison else r.source
            planned = r.config.get("epochs")
            epochs = str(r.epochs) if r.ended == "finished" else f"{r.epochs}/{planned} · {r.ended}"
            for col, text in enumerate((when, r.arch, layout, epochs, acc, took, source)):
                item = QTableWidgetItem(text)
                item.setToolTip(
                    f"{r.arch} · {stamp:%Y-%m-%d %H:%M} · {r.dataset} · "
                    f"{'exported to ' + r.bundle if r.bundle else 'not exported'} · {r.ended}"
                )
                if r.ended in ("stopped", "failed"):
                    item.setForeground(QColor(140, 140, 140))  # a run that did not end on its own
                if col == 0:
                    item.setData(Qt.ItemDataRole.UserRole, r.id)
                self.table.setItem(row, col, item)
        self._on_selection_changed()

    def selected(self) -> list[RunRecord]:
        rows = sorted({i.row() for i in self.table.selectionModel().selectedRows()})
        return [self.records[r] for r in rows if r < len(self.records)]

    def _on_selection_changed(self) -> None:
        chosen = self.selected()
        self.reopen_button.setEnabled(len(chosen) == 1)
        self.delete_button.setEnabled(bool(chosen))
        self.view.clear_curves()
        for r in chosen:
            epochs = [h for h in r.history if h.get("val_loss") is not None]
            xs = [float(h["epoch"]) for h in epochs]
            local = _dt.datetime.fromisoformat(r.created).astimezone()
            loss_curve, acc_curve = self.view.add_curves(f"{r.candidate or r.strategy} · {local:%H:%M}")
            loss_curve.setData(xs, [float(h["val_loss"]) for h in epochs])
            accs = [100 * float(h["val_accuracy"]) for h in epochs if h.get("val_accuracy") is not None]
            acc_curve.setData(xs[: len(accs)], accs)

    def _on_reopen_clicked(self) -> None:
        chosen = self.selected()
        if len(chosen) == 1:
            self.reopen_requested.emit(chosen[0])

    def delete_selected(self) -> None:
        for r in self.selected():
            delete_run(r.id)
            self.deleted.emit(r.id)
        self.refresh()
