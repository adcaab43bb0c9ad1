"""Evaluation view: confusion matrix, per-class metrics, and the worst mistakes."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import QPoint, QSize, Qt, Signal
from PySide6.QtGui import QBrush, QColor, QIcon, QImage, QPixmap, QResizeEvent, QShowEvent
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QProgressBar,
    QPushButton,
    QSplitter,
    QStackedWidget,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from ftgui.core.base.intervals import with_range
from ftgui.gui.desktop import open_file
from ftgui.gui.widgets.rows_model import rows_table

if TYPE_CHECKING:
    from ftgui.core.evaluation.metrics import Evaluation
    from ftgui.gui.file_fixes import FileFixes

MISTAKE_ROLE = Qt.ItemDataRole.UserRole + 3


def heading(text: str) -> QLabel:
    """A section's title line; it wraps, so it never sets the window's minimum width."""
    label = QLabel(text)
    label.setWordWrap(True)
    return label


class EvaluationPanel(QWidget):
    evaluate_requested = Signal()
    heat_maps_requested = Signal()  # the mistakes' heat maps are wanted (the toggle went on)
    heat_maps_unwanted = Signal()  # the toggle went off (stops heat maps being made)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.evaluation: Evaluation | None = None
        self.fixes: FileFixes | None = None  # Move to class… / Exclude on the image lists
        self._cell_paths: list[str] = []  # the cell list's rows
        self._thumbs: dict[str, bytes] = {}
        self._heat: dict[str, bytes] = {}  # mistake path -> [predicted | true] heat-map picture
        self._cell: tuple[int, int] | None = None  # the confusion-matrix cell listed
        self.summary = QLabel("Train a model (or open an exported one) to see where it is right and wrong.")
        self.summary.setWordWrap(True)
        self.evaluate_button = QPushButton("Evaluate")
        self.evaluate_button.setToolTip("Run the model over the validation images")
        self.progress = QProgressBar()
        self.progress.setVisible(False)

        self.confusion = QTableWidget(0, 0)
        self.confusion.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.confusion.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.confusion.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Stretch)
        self.confusion.verticalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Stretch)
        self.confusion.setToolTip(
            "Rows: true class. Columns: predicted class. Click a cell to list its images."
        )
        from ftgui.gui.widgets.confusion_view import ConfusionHeatMap

        self.heat_map = ConfusionHeatMap()  # for more classes than a table shows legibly
        self.matrix_stack = QStackedWidget()
        self.matrix_stack.addWidget(self.confusion)
        self.matrix_stack.addWidget(self.heat_map)
        self.cell_label = QLabel("Click a cell to list its images.")
        self.cell_images = QListWidget()
        self.cell_images.setUniformItemSizes(True)  # thousands of rows lay out at once
        # A model/view table (click a header to sort: the worst recall first, say).
        self.metrics, self.metrics_model = rows_table(
            ["Class", "Images", "Precision", "Recall", "F1", "Accuracy"]
        )
        self.metrics.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Stretch)

        self.gallery = QListWidget()
        self.gallery.setViewMode(QListWidget.ViewMode.IconMode)
        self.gallery.setIconSize(QSize(96, 96))
        self.gallery.setGridSize(QSize(150, 150))
        self.gallery.setResizeMode(QListWidget.ResizeMode.Adjust)
        self.gallery.setMovement(QListWidget.Movement.Static)
        self.gallery.setWordWrap(True)
        self.gallery.setToolTip("Double-click to open the image")
        self.show_in_folder = QPushButton("Show in folder")
        self.show_in_folder.setEnabled(False)
        self.heat_toggle = QCheckBox("Heat maps (predicted | true)")
        self.heat_toggle.setToolTip(
            "Where the model looks (Grad-CAM): left, the evidence for the predicted class; right, "
            "for the true class"
        )
        for view in (self.gallery, self.cell_images):
            view.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
            view.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)

        top = QHBoxLayout()
        top.addWidget(self.summary, 1)
        top.addWidget(self.progress)
        top.addWidget(self.evaluate_button)
        matrix_box = QWidget()
        matrix_layout = QVBoxLayout(matrix_box)
        matrix_layout.setContentsMargins(0, 0, 0, 0)
        matrix_layout.addWidget(heading("<b>Confusion matrix</b> (rows: true class, columns: predicted)"))
        matrix_layout.addWidget(self.matrix_stack, 1)
        cell_box = QWidget()
        cell_layout = QVBoxLayout(cell_box)
        cell_layout.setContentsMargins(0, 0, 0, 0)
        self.cell_label.setWordWrap(True)
        cell_layout.addWidget(self.heat_map.top_box, 1)  # shown with the heat map only
        self.heat_map.top_box.setVisible(False)
        cell_layout.addWidget(self.cell_label)
        cell_layout.addWidget(self.cell_images, 1)
        upper = QSplitter(Qt.Orientation.Horizontal)
        upper.addWidget(matrix_box)
        upper.addWidget(cell_box)
        upper.setStretchFactor(0, 3)
        upper.setStretchFactor(1, 2)
        upper.setSizes([600, 400])  # 3:2 from the start (the list's file names need the width)
        metrics_box = QWidget()
        metrics_layout = QVBoxLayout(metrics_box)
        metrics_layout.setContentsMargins(0, 0, 0, 0)
        metrics_layout.addWidget(
            heading("<b>Per class</b> (recall is the class's accuracy; accuracy is one-vs-rest)")
        )
        metrics_layout.addWidget(self.metrics)
        gallery_box = QWidget()
        gallery_layout = QVBoxLayout(gallery_box)
        gallery_layout.setContentsMargins(0, 0, 0, 0)
        header = QHBoxLayout()
        header.addWidget(
            heading("<b>Worst mistakes</b> (highest loss first; double-click to open, right-click to fix)"), 1
        )
        header.addWidget(self.heat_toggle)
        header.addWidget(self.show_in_folder)
        gallery_layout.addLayout(header)
        gallery_layout.addWidget(self.gallery)
        body = QSplitter(Qt.Orientation.Vertical)
        body.addWidget(upper)
        body.addWidget(metrics_box)
        body.addWidget(gallery_box)
        body.setStretchFactor(0, 3)
        body.setStretchFactor(1, 2)
        body.setStretchFactor(2, 2)
        layout = QVBoxLayout(self)
        layout.addLayout(top)
        layout.addWidget(body, 1)
        self.body = body
        self._body_moved = False  # by the user: then the heights stay theirs
        body.splitterMoved.connect(lambda *_: setattr(self, "_body_moved", True))

        self.evaluate_button.clicked.connect(self.evaluate_requested)
        self.confusion.cellClicked.connect(self._on_confusion_cell_clicked)
        self.heat_map.cell_clicked.connect(self._on_confusion_cell_clicked)
        self.cell_images.itemDoubleClicked.connect(self._on_item_double_clicked)
        self.gallery.itemDoubleClicked.connect(self._on_item_double_clicked)
        self.gallery.currentItemChanged.connect(
            lambda item, _: self.show_in_folder.setEnabled(item is not None)
        )
        self.show_in_folder.clicked.connect(self._on_show_in_folder_clicked)
        self.heat_toggle.toggled.connect(self._on_heat_toggle_toggled)
        self.gallery.customContextMenuRequested.connect(lambda pos: self._fix_menu(self.gallery, pos))
        self.cell_images.customContextMenuRequested.connect(lambda pos: self._fix_menu(self.cell_images, pos))

    def resizeEvent(self, event: QResizeEvent) -> None:  # noqa: N802 (Qt's name)
        super().resizeEvent(event)
        self._share_height()

    def showEvent(self, event: QShowEvent) -> None:  # noqa: N802 (the splitter has no sizes before)
        super().showEvent(event)
        self._share_height()

    def _share_height(self) -> None:
        """The per-class table gets room for every class (up to 8 rows; it scrolls beyond) and
        the mistakes one full row of pictures; the confusion matrix the rest (at 1280 x 800 the
        matrix's stretched cells took the table down to 2 of 5 rows and the mistakes to 90 px)."""
        if self._body_moved:
            return
        total = sum(self.body.sizes())
        if total <= 0:
            return
        rows = min(max(self.metrics_model.rowCount(), 3), 8)
        row_height = self.metrics.verticalHeader().defaultSectionSize()
        table = 26 + self.metrics.horizontalHeader().height() + rows * row_height + 6
        gallery = 32 + self.gallery.gridSize().height() + 16
        upper = max(total - table - gallery, 160)
        self.body.setSizes([upper, table, max(total - upper - table, 0)])

    def set_busy(self, busy: bool, text: str = "Evaluating…") -> None:
        self.progress.setVisible(busy)
        self.progress.setRange(0, 0)
        self.progress.setFormat(text)
        self.evaluate_button.setEnabled(not busy)

    def show_progress(self, done: int, total: int) -> None:
        self.progress.setRange(0, max(total, 1))
        self.progress.setValue(done)

    def clear_results(self, text: str) -> None:
        """Another model is shown now: the results of the last one go (Evaluate shows its own)."""
        self.evaluation, self._thumbs, self._heat, self._cell_paths = None, {}, {}, []
        self.confusion.setRowCount(0)
        self.matrix_stack.setCurrentWidget(self.confusion)
        self.metrics_model.set_rows([])
        for view in (self.gallery, self.cell_images):
            view.clear()
        self.summary.setText(text)

    def set_evaluation(self, ev: Evaluation, thumbs: dict[str, bytes] | None = None, model: str = "") -> None:
        import html

        from ftgui.core.base.text import display_path
        from ftgui.core.evaluation.metrics import headline

        self.evaluation = ev
        shown = f"<b>{html.escape(display_path(model))}</b><br>" if model else ""  # which model this is
        thumbs = thumbs or {}
        k = len(ev.classes)
        # Qt cuts a string at bytes that are not UTF-8; show such names as \xNN instead.
        names = [display_path(c) for c in ev.classes]
        if ev.accuracy is None:
            self.summary.setText(f"{shown}<b>{html.escape(display_path(headline(ev)))}</b>")
        else:
            which = "Validation" if ev.split == "validation" else "Training-set (no validation images)"
            unread = f" · {ev.unreadable} unreadable" if ev.unreadable else ""
            wrong = ev.count - sum(ev.confusion[i][i] for i in range(k))
            ci, bal, bal_ci = ev.accuracy_interval(), ev.balanced_accuracy(), ev.balanced_interval()
            self.summary.setText(
                f"{shown}<b>{which} accuracy {with_range(ev.accuracy, *(ci or (None, None)))}</b> · balanced accuracy "
                f"{with_range(bal, *(bal_ci or (None, None)))} · loss {ev.loss:.4f} · {ev.count:,} images{unread} · "
                f"{wrong:,} mistake{'' if wrong == 1 else 's'} · in brackets: 95% ranges for {ev.count:,} images"
            )
        self._show_confusion(ev, names)
        self.metrics_model.set_rows(
            [
                [
                    (display_path(m.name), m.name.casefold()),
                    (f"{m.support:,}", m.support),
                    *((with_range(*c), -1.0 if c[0] is None else c[0]) for c in m.cells()),
                ]
                for m in ev.per_class
            ]
        )
        self._thumbs, self._heat = thumbs, {}
        self.heat_toggle.setEnabled(True)
        self._share_height()
        self._fill_gallery()
        if self.heat_toggle.isChecked():
            self.heat_maps_requested.emit()
        self.cell_images.clear()
        self.cell_label.setText("Click a cell to list its images.")

    def _show_confusion(self, ev: Evaluation, names: list[str]) -> None:
        """A coloured table up to 20 classes; beyond, one heat-map image (a table of 1,000
        classes would be a million cells)."""
        from ftgui.core.evaluation.metrics import FULL_MATRIX_MAX_CLASSES

        k = len(names)
        self.confusion.clear()
        self.heat_map.top_box.setVisible(k > FULL_MATRIX_MAX_CLASSES)
        if k > FULL_MATRIX_MAX_CLASSES:
            self.confusion.setRowCount(0)
            self.confusion.setColumnCount(0)
            self.heat_map.set_matrix(ev.confusion, names)
            self.matrix_stack.setCurrentWidget(self.heat_map)
            return
        self.heat_map.set_matrix([], [])  # nothing of an earlier evaluation stays behind
        self.matrix_stack.setCurrentWidget(self.confusion)
        self.confusion.setRowCount(k)
        self.confusion.setColumnCount(k)
        self.confusion.setHorizontalHeaderLabels(names)
        self.confusion.setVerticalHeaderLabels(names)
        for i, row in enumerate(ev.confusion):
            total = max(sum(row), 1)
            for j, count in enumerate(row):
                share = count / total
                item = QTableWidgetItem(str(count))
                item.setTextAlignment(Qt.AlignmentFlag.AlignCenter)
                if i == j:
                    color = QColor.fromRgbF(0.17, 0.63, 0.17, 0.15 + 0.75 * share)
                else:
                    color = QColor.fromRgbF(0.84, 0.15, 0.16, (0.1 + 0.8 * share) if count else 0.0)
                item.setBackground(QBrush(color))
                if share > 0.6:
                    item.setForeground(QBrush(QColor("white")))
                item.setToolTip(f"true {names[i]}, predicted {names[j]}: {count} ({100 * share:.0f}%)")
                self.confusion.setItem(i, j, item)

    def _fill_gallery(self) -> None:
        from ftgui.core.base.text import display_path

        ev = self.evaluation
        self.gallery.clear()
        if ev is None:
            return
        heat = self.heat_toggle.isChecked() and bool(self._heat)
        self.gallery.setIconSize(QSize(196, 96) if heat else QSize(96, 96))
        self.gallery.setGridSize(QSize(214, 150) if heat else QSize(150, 150))
        names = [display_path(c) for c in ev.classes]
        for n, mk in enumerate(ev.worst):
            caption = f"{names[mk.true_label]} → {names[mk.predicted]}\n{100 * mk.confidence:.0f}% sure"
            if mk.true_label == mk.predicted:
                caption = f"{names[mk.true_label]} ✓\n{100 * mk.confidence:.0f}% sure"
            entry = QListWidgetItem(caption)
            png = (self._heat if heat else self._thumbs).get(mk.path)
            if png:
                entry.setIcon(QIcon(QPixmap.fromImage(QImage.fromData(png))))
            entry.setData(MISTAKE_ROLE, n)
            tip = f"{display_path(mk.path)}\nloss {mk.loss:.3f}"
            if heat:
                tip += f"\nleft: evidence for {names[mk.predicted]}; right: for {names[mk.true_label]}"
            entry.setToolTip(tip)
            self.gallery.addItem(entry)

    def show_heat_maps(self, pictures: dict[str, bytes], problem: str = "") -> None:
        """The mistakes' heat-map pictures (or why there are none) arrived."""
        self._heat = pictures
        if problem:
            self.heat_toggle.setToolTip(problem)
            self.heat_toggle.setChecked(False)
            self.heat_toggle.setEnabled(False)
            return
        self._fill_gallery()

    def _on_heat_toggle_toggled(self, on: bool) -> None:
        if on and not self._heat and self.evaluation is not None and self.evaluation.worst:
            self.heat_maps_requested.emit()
        else:
            if not on:
                self.heat_maps_unwanted.emit()
            self._fill_gallery()

    def _fix_menu(self, view: QListWidget, pos: QPoint) -> None:
        ev = self.evaluation
        items = view.selectedItems()
        if ev is None or self.fixes is None or not items:
            return
        from ftgui.gui.file_fixes import fix_menu

        rels = [self._relative_path(i) for i in items]
        if view is self.gallery:
            guesses = {ev.worst[int(i.data(MISTAKE_ROLE))].predicted for i in items}
        else:
            guesses = {self._cell[1]} if self._cell else set()
        suggested = ev.classes[next(iter(guesses))] if len(guesses) == 1 else ""
        if all(r.split("/")[-2:-1] == [suggested] for r in rels):
            suggested = ""
        fix_menu(self.fixes, self, ev.root, rels, ev.classes, suggested).exec(
            view.viewport().mapToGlobal(pos)
        )

    def _on_confusion_cell_clicked(self, row: int, column: int) -> None:
        ev = self.evaluation
        if ev is None:
            return
        from ftgui.core.base.text import display_path

        self._cell = (row, column)
        paths = ev.paths_in_cell(row, column)
        self.cell_label.setText(
            f"{len(paths)} image(s) of {display_path(ev.classes[row])} predicted as "
            f"{display_path(ev.classes[column])}:"
        )
        self.cell_images.clear()
        # One call for the whole list (a diagonal cell of a big folder lists thousands): a row
        # finds its path by its number, as a QString would lose bytes that are not UTF-8.
        self._cell_paths = paths
        self.cell_images.addItems([display_path(p) for p in paths])

    def _relative_path(self, item: QListWidgetItem) -> str:
        ev = self.evaluation
        assert ev is not None
        if item.listWidget() is self.gallery:
            return ev.worst[int(item.data(MISTAKE_ROLE))].path
        return self._cell_paths[self.cell_images.row(item)]

    def path_of(self, item: QListWidgetItem) -> str:
        assert self.evaluation is not None
        return os.path.join(self.evaluation.root, self._relative_path(item))

    def _on_item_double_clicked(self, item: QListWidgetItem) -> None:
        open_file(self.path_of(item))

    def _on_show_in_folder_clicked(self) -> None:
        item = self.gallery.currentItem()
        if item is not None:
            open_file(str(Path(self.path_of(item)).parent))
