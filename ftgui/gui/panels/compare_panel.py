"""The Compare tab: tick freeze layouts, train them on the same split, see which to use.

The panel only renders: the window runs the comparison (``core/workflows/compare.py``) on its job runner
and hands each event to :meth:`ComparePanel.show_event`.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

os.environ.setdefault("PYQTGRAPH_QT_LIB", "PySide6")

import pyqtgraph as pg  # noqa: E402
from PySide6.QtCore import Qt, Signal  # noqa: E402
from PySide6.QtGui import QBrush, QColor, QFont  # noqa: E402
from PySide6.QtWidgets import (  # noqa: E402
    QAbstractItemView,
    QCheckBox,
    QGridLayout,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QPushButton,
    QSpinBox,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from ftgui.core.base import events as ev
from ftgui.core.base.intervals import with_range
from ftgui.core.base.report import duration
from ftgui.gui.widgets.backbone_table import BackboneTable
from ftgui.gui.widgets.plot import ValidationCurves

if TYPE_CHECKING:
    from ftgui.core.workflows.backbones import BackboneResult
    from ftgui.core.workflows.compare import CandidateEvent, CandidateSummary, ComparisonFinished
    from ftgui.core.workflows.repeats import RepeatedOutcome

# Strategy texts offered as candidates (the current tree is added as "current").
CHOICES = (
    ("head", "Head only", True),
    ("last-1", "Last block + head", True),
    ("last-2", "Last 2 blocks + head", False),
    ("full", "Full fine-tuning", True),
    ("gradual", "Gradual unfreezing", False),
)
COLUMNS = ("layout", "trains", "best", "val", "val loss", "train", "gap", "time", "img/s")
# gap: train minus validation accuracy, in points
TIPS = (
    "the freeze layout (candidate)",
    "trainable parameters",
    "the epoch whose weights are kept (lowest validation loss)",
    "validation accuracy of that epoch, with its 95% range on the validation images",
    "validation loss of that epoch",
    "training accuracy of the last epoch (%)",
    "train minus validation accuracy, in points: large means overfitting",
    "wall time of the candidate's training",
    "training images per second",
)


def _short(n: int) -> str:
    return f"{n / 1e6:.1f} M" if n >= 1e6 else f"{n / 1e3:.1f} k" if n >= 1e3 else str(n)


class _SortItem(QTableWidgetItem):
    """A cell that sorts by its number, not its text."""

    def __init__(self, text: str, value: float) -> None:
        super().__init__(text)
        self.value = value

    def __lt__(self, other: QTableWidgetItem) -> bool:
        return self.value < getattr(other, "value", 0.0)


class ComparePanel(QWidget):
    start_requested = Signal()
    stop_requested = Signal()
    estimate_wanted = Signal()  # how long would the ticked layouts over the folds take? (show_estimate)
    use_requested = Signal(str)  # candidate name
    backbones_requested = Signal()  # rank the backbones typed in the box
    use_backbone_requested = Signal(str)  # a backbone for the model panel

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.boxes: dict[str, QCheckBox] = {}
        grid = QGridLayout()
        for i, (key, label, checked) in enumerate(CHOICES):
            box = QCheckBox(label)
            box.setChecked(checked)
            self.boxes[key] = box
            grid.addWidget(box, i // 3, i % 3)
        self.current_box = QCheckBox("Current tree")
        self.current_box.setToolTip("The layout in the layer tree now (custom edits included)")
        self.boxes["current"] = self.current_box
        grid.addWidget(self.current_box, len(CHOICES) // 3, len(CHOICES) % 3)
        self.start_button = QPushButton("Start comparison")
        self.stop_button = QPushButton("Stop")
        self.stop_button.setEnabled(False)
        # Folds: every layout trains on each of N stratified splits, for a mean, a 95% interval
        # and a verdict on each difference (core/workflows/repeats.py).
        self.repeats = QSpinBox()
        self.repeats.setRange(1, 20)
        self.repeats.setPrefix("Folds: ")
        self.repeats.setToolTip(
            "Train every layout on this many stratified train/validation splits: each gets a mean with "
            "a 95% interval, and each difference from the best a test of whether it is real. Set from the "
            "dataset's size when a folder opens (5 below 500 images, 3 below 2,000, else 1)."
        )
        self.repeats_note = QLabel("")
        buttons = QVBoxLayout()
        buttons.addWidget(self.start_button)
        buttons.addWidget(self.stop_button)
        buttons.addWidget(self.repeats)
        buttons.addWidget(self.repeats_note)
        top = QHBoxLayout()
        top.addLayout(grid, 1)
        top.addLayout(buttons)

        self.status = QLabel("Tick the layouts to compare; each trains with the settings on the right.")
        self.status.setWordWrap(True)
        self.view = ValidationCurves()
        self.loss_plot, self.acc_plot = self.view.loss_plot, self.view.acc_plot
        self.curves: dict[str, tuple[pg.PlotDataItem, pg.PlotDataItem]] = {}
        self.points: dict[str, tuple[list[float], list[float], list[float]]] = {}

        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setHorizontalHeaderLabels(list(COLUMNS))
        for col, tip in enumerate(TIPS):
            header_item = self.table.horizontalHeaderItem(col)
            if header_item is not None and tip:
                header_item.setToolTip(tip)
        self.table.setSortingEnabled(True)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.verticalHeader().setVisible(False)
        # Short cells (8.4 M, 99.2%, +0.8): nine equal columns fit the tab without scrolling.
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Stretch)
        # ... but "val" with its range (97.5% (87–100%)) is read whole.
        self.table.horizontalHeader().setSectionResizeMode(3, QHeaderView.ResizeMode.ResizeToContents)
        self.table.horizontalHeader().setMinimumSectionSize(40)
        self.table.horizontalHeader().setSortIndicatorShown(False)  # no room for the arrow
        self.recommendation = QLabel("")
        self.recommendation.setWordWrap(True)
        self.use_button = QPushButton("Use this")
        self.use_button.setToolTip("Make the selected candidate the current model (Evaluate, Try, Export)")
        self.use_button.setEnabled(False)
        bottom = QHBoxLayout()
        bottom.addWidget(self.recommendation, 1)
        bottom.addWidget(self.use_button)

        # The backbone bake-off: minutes, no training (core/workflows/backbones.py).
        self.backbones = QLineEdit()
        self.backbones.setPlaceholderText(
            "Backbones to rank, e.g. resnet18, timm:convnextv2_atto.fcmae_ft_in1k"
        )
        self.backbones.setToolTip(
            "Comma-separated models (torchvision names or timm:NAME), ranked by a cross-validated linear "
            "head on their frozen features with the weights and image size chosen on the left and right"
        )
        self.rank_button = QPushButton("Rank backbones")
        self.backbone_table = BackboneTable()
        self.backbone_table.setVisible(False)
        self.backbone_pick = QLabel("")
        self.backbone_pick.setWordWrap(True)
        self.use_backbone_button = QPushButton("Use this backbone")
        self.use_backbone_button.setToolTip("Choose the selected backbone in the model panel")
        self.use_backbone_button.setVisible(False)
        rank_row = QHBoxLayout()
        rank_row.addWidget(QLabel("Backbones"))
        rank_row.addWidget(self.backbones, 1)
        rank_row.addWidget(self.rank_button)
        pick_row = QHBoxLayout()
        pick_row.addWidget(self.backbone_pick, 1)
        pick_row.addWidget(self.use_backbone_button)

        layout = QVBoxLayout(self)
        layout.addLayout(top)
        layout.addWidget(self.status)
        layout.addWidget(self.view, 3)
        layout.addWidget(self.table, 2)
        layout.addLayout(bottom)
        layout.addLayout(rank_row)
        layout.addWidget(self.backbone_table, 1)
        layout.addLayout(pick_row)
        self.rank_button.clicked.connect(self.backbones_requested)
        self.use_backbone_button.clicked.connect(self._on_use_backbone_clicked)
        self.start_button.clicked.connect(self.start_requested)
        self.stop_button.clicked.connect(self.stop_requested)
        self.use_button.clicked.connect(self._on_use_clicked)
        self.table.itemSelectionChanged.connect(self._update_use_button)
        self.repeats.valueChanged.connect(self.refresh_estimate)
        for box in self.boxes.values():
            box.toggled.connect(self.refresh_estimate)
        self.refresh_estimate()
        self.summaries: dict[str, CandidateSummary] = {}
        self.recommended: str | None = None

    # ------------------------------------------------------------ choosing and running

    def chosen(self) -> list[str]:
        """The ticked candidates: strategy texts, and "current" for the tree's layout."""
        return [key for key, box in self.boxes.items() if box.isChecked()]

    def backbone_names(self) -> list[str]:
        return [b.strip() for b in self.backbones.text().split(",") if b.strip()]

    def show_backbones(self, results: list[BackboneResult], picked: str | None, line: str) -> None:
        self.backbone_table.show_results(results, picked)
        self.backbone_table.setVisible(True)
        # Before any comparison, the empty curves and table give their room to the ranking.
        compared = bool(self.curves)
        for widget in (self.view, self.table, self.use_button):
            widget.setVisible(compared)
        self.backbone_pick.setText(f"<b>Backbones:</b> {line}")
        self.use_backbone_button.setVisible(True)

    def _on_use_backbone_clicked(self) -> None:
        arch = self.backbone_table.selected_arch()
        if arch:
            self.use_backbone_requested.emit(arch)

    def refresh_estimate(self) -> None:
        self.show_estimate(None)
        self.estimate_wanted.emit()  # the window answers with show_estimate(seconds)

    def show_estimate(self, seconds: float | None) -> None:
        """How long the comparison will take, before it starts: from this dataset's earlier runs
        of the ticked layouts where there are some, else relative to one split."""
        n = self.repeats.value()
        if seconds is not None:
            self.repeats_note.setText(f"about {duration(seconds)} in all")
            self.repeats_note.setToolTip(
                "From this dataset's earlier runs of the ticked layouts (Runs tab). Starting accepts it: "
                "no fold starts that would end past it (the verdict then says how many folds ran)."
            )
        else:
            self.repeats_note.setText("one split" if n == 1 else f"{n}× the time of one")
            self.repeats_note.setToolTip("No earlier run of these layouts on this dataset to time it by")

    def show_fold(self, fold: int, folds: int, remaining_s: float | None) -> None:
        """Which fold is training, and (from the first fold's time) how long the rest will take."""
        left = "" if remaining_s is None else f"; about {max(1, round(remaining_s / 60))} min left"
        self.status.setText(f"Fold {fold} of {folds}{left} (the table and curves show fold 1)")

    def show_repeats(self, outcome: RepeatedOutcome) -> None:
        """The verdict over the folds: each layout's mean and 95% interval, and its difference
        from the best with whether it is real; the recommended one is selected."""
        from ftgui.core.base.intervals import points, span

        rows = []
        for c in outcome.candidates:
            d = outcome.differences.get(c.name)
            versus = "best" if c.name == outcome.best else "–" if d is None else points(d)
            verdict = "" if d is None or c.name == outcome.best else (" real" if d.real else " ≈ not real")
            rows.append(
                f"<tr><td>{c.name}</td><td align=right>{100 * c.mean:.1f}%</td><td align=right>"
                f"{span(*c.interval(outcome.n_train, outcome.n_val))}</td><td>{versus}{verdict}</td></tr>"
            )
        folds = len(outcome.candidates[0].accuracies)
        self.recommendation.setText(
            f"<b>Over {folds} folds</b> ({outcome.n_val} validation images each; 95% intervals):"
            "<table cellspacing=6><tr><th align=left>layout</th><th>mean</th><th>interval</th>"
            f"<th align=left>vs best</th></tr>{''.join(rows)}</table><b>Recommended:</b> {outcome.reason}"
        )
        self.recommended = outcome.recommended
        self.select(outcome.recommended)
        self.status.setText(f"Finished {folds} folds; the table and curves show the first fold's training")

    def set_running(self, running: bool) -> None:
        self.rank_button.setEnabled(not running)
        self.start_button.setEnabled(not running)
        self.stop_button.setEnabled(running)
        for box in self.boxes.values():
            box.setEnabled(not running)
        self.repeats.setEnabled(not running)
        self._update_use_button()

    def clear(self) -> None:
        for widget in (self.view, self.table, self.use_button):
            widget.setVisible(True)
        self.view.clear_curves()
        self.curves, self.points, self.summaries, self.recommended = {}, {}, {}, None
        self.table.setRowCount(0)
        self.recommendation.setText("")

    def show_event(self, event: CandidateEvent | ComparisonFinished) -> None:
        from ftgui.core.workflows.compare import ComparisonFinished

        if isinstance(event, ComparisonFinished):
            self.show_summary(event)
            return
        name, e = event.candidate, event.event
        if isinstance(e, ev.RunStarted):
            self._add_curves(name)
            self.status.setText(f"Training {name}: {e.trainable_params:,} trainable parameters…")
        elif isinstance(e, ev.BatchEnded):
            self.status.setText(f"Training {name}: epoch {e.epoch}, batch {e.batch}/{e.batches}")
        elif isinstance(e, ev.EpochEnded) and e.val_loss is not None and e.val_accuracy is not None:
            xs, losses, accs = self.points.setdefault(name, ([], [], []))
            xs.append(e.epoch)
            losses.append(e.val_loss)
            accs.append(100 * e.val_accuracy)
            loss_curve, acc_curve = self.curves[name]
            loss_curve.setData(xs, losses)
            acc_curve.setData(xs, accs)
        elif isinstance(e, ev.Failed):
            self.status.setText(f"{name}: {e.message.splitlines()[0]}")

    def _add_curves(self, name: str) -> None:
        self.curves[name] = self.view.add_curves(name)

    # ------------------------------------------------------------ the summary

    def show_summary(self, final: ComparisonFinished) -> None:
        self.summaries = {s.name: s for s in final.summaries}
        self.recommended = final.recommended
        self.table.setSortingEnabled(False)
        self.table.setRowCount(len(final.summaries))
        bold = QFont()
        bold.setBold(True)
        for row, s in enumerate(final.summaries):

            def num(value: float | None, fmt: str) -> _SortItem:
                return _SortItem(
                    "–" if value is None else fmt.format(value), -1e18 if value is None else value
                )

            cells = [
                QTableWidgetItem(s.name if s.status == "finished" else f"{s.name} ({s.status})"),
                _SortItem(_short(s.trainable_params), s.trainable_params),
                num(s.best_epoch, "{}"),
                _SortItem(
                    with_range(s.best_val_accuracy, *(s.val_interval() or (None, None))),
                    -1e18 if s.best_val_accuracy is None else s.best_val_accuracy,
                ),  # fmt: skip
                num(s.best_val_loss, "{:.3f}"),
                num(s.final_train_accuracy, "{:.1%}"),
                num(None if s.gap is None else 100 * s.gap, "{:+.1f}"),
                num(s.seconds, "{:.1f}s"),
                num(s.images_per_s, "{:.0f}"),
            ]
            cells[0].setData(Qt.ItemDataRole.UserRole, s.name)
            cells[1].setToolTip(f"{s.trainable_params:,} of {s.total_params:,} parameters train")
            for col, cell in enumerate(cells):
                if col:
                    cell.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
                if s.name == final.recommended:
                    cell.setFont(bold)
                    cell.setBackground(QBrush(QColor(220, 240, 220)))
                self.table.setItem(row, col, cell)
        self.table.setSortingEnabled(True)
        self.table.sortItems(3, Qt.SortOrder.DescendingOrder)  # the most accurate first
        notes = "".join(f"<br>⚠ {n}" for n in final.notes)
        head = "Recommended" if final.recommended else "No recommendation"
        self.recommendation.setText(f"<b>{head}:</b> {final.reason}{notes}")
        self.status.setText("Comparison finished." if final.recommended else "Comparison ended.")
        if final.recommended:
            self.select(final.recommended)

    def select(self, name: str) -> None:
        for row in range(self.table.rowCount()):
            item = self.table.item(row, 0)
            if item is not None and item.data(Qt.ItemDataRole.UserRole) == name:
                self.table.selectRow(row)
                return

    def selected(self) -> str | None:
        rows = self.table.selectionModel().selectedRows()
        if not rows:
            return None
        item = self.table.item(rows[0].row(), 0)
        return None if item is None else str(item.data(Qt.ItemDataRole.UserRole))

    def _update_use_button(self) -> None:
        name = self.selected()
        summary = self.summaries.get(name or "")
        self.use_button.setEnabled(
            summary is not None and summary.epochs >= 1 and self.start_button.isEnabled()
        )

    def _on_use_clicked(self) -> None:
        name = self.selected()
        if name:
            self.use_requested.emit(name)
