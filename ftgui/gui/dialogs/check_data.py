"""Check data window: the ranked list of likely wrong labels, duplicates, leaks, outliers and rare
classes (``core/insight/check.py``), with thumbnails, and Move to class… / Exclude on the selection."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QPoint, QSize, Qt
from PySide6.QtGui import QIcon, QImage, QPixmap
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QDialog,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QProgressBar,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from ftgui.core.base.text import display_path
from ftgui.gui.desktop import open_file
from ftgui.gui.file_fixes import FileFixes, fix_menu
from ftgui.gui.jobs import JobRunner
from ftgui.gui.widgets.thumbs import thumbnail_png

if TYPE_CHECKING:
    from ftgui.core.bundle.trained import TrainedModel
    from ftgui.core.insight.check import DataCheck, Finding
    from ftgui.core.training.config import TrainConfig

RANDOM_WARNING = (
    "⚠ <b>These features come from {arch} with random weights</b> (no pretrained weights are "
    "chosen): the scores below say little about the labels. Check with the model just trained, "
    "or choose pretrained weights."
)

THUMB = 64
MAX_THUMBS = 400  # thumbnails made for the first findings; the rest show the file name only
COLUMNS = ["", "Problem", "Image", "In class", "Model says", "Score", "Why"]


def check_with_thumbnails(
    config: TrainConfig, bundle: str | None, job: Any, progress: Callable[..., None],
    trained: TrainedModel | None = None,
) -> tuple[DataCheck, dict[str, bytes]]:  # fmt: skip
    """The check (off the GUI thread) and thumbnails of its first findings."""
    from ftgui.core.insight.check import check_data

    result = check_data(config, bundle=bundle, cancel=job.cancel, progress=progress, trained=trained)
    thumbs: dict[str, bytes] = {}
    for f in result.findings[:MAX_THUMBS]:
        if f.kind != "imbalance":
            png = thumbnail_png(os.path.join(result.root, f.path), THUMB)
            if png:
                thumbs[f.path] = png
    return result, thumbs


class CheckDataDialog(QDialog):
    """Runs the check through the window's job runner and lists what it found."""

    def __init__(
        self, runner: JobRunner, fixes: FileFixes, config_source: Callable[[], TrainConfig],
        parent: QWidget | None = None, trained_source: Callable[[], TrainedModel | None] | None = None,
    ) -> None:  # fmt: skip
        super().__init__(parent)
        self.runner = runner
        self.fixes = fixes
        self.config_source = config_source
        self.trained_source = trained_source or (lambda: None)  # the model just trained, if any
        self.report: DataCheck | None = None
        self.rows: list[Finding] = []  # the table's rows, in order
        self.setWindowTitle("Check data")
        self.resize(980, 620)
        self.summary = QLabel("Looks for likely wrong labels, duplicates, leaks, outliers and rare classes.")
        self.summary.setWordWrap(True)
        self.kind = QComboBox()
        self.kind.setToolTip("Show one kind of problem")
        self.kind.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToContents)
        self.progress = QProgressBar()
        self.progress.setRange(0, 0)
        self.progress.setVisible(False)
        self.run_button = QPushButton("Check")
        self.stop_button = QPushButton("Stop")
        self.stop_button.setEnabled(False)
        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setHorizontalHeaderLabels(COLUMNS)
        self.table.setIconSize(QSize(THUMB, THUMB))
        self.table.verticalHeader().setVisible(False)
        self.table.verticalHeader().setDefaultSectionSize(THUMB + 6)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.table.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.table.setWordWrap(True)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(len(COLUMNS) - 1, QHeaderView.ResizeMode.Stretch)
        self.table.setColumnWidth(0, THUMB + 8)
        self.move_suggested_button = QPushButton("Move to the model's class")
        self.move_button = QPushButton("Move to class…")
        self.exclude_button = QPushButton("Exclude from training")
        self.open_button = QPushButton("Show in folder")
        self.features_label = QLabel("")
        self.features_label.setStyleSheet("color: #666;")
        self.random_warning = QLabel()
        self.random_warning.setWordWrap(True)
        self.random_warning.setStyleSheet("color: #b35900;")
        self.random_warning.setVisible(False)
        self.use_trained_button = QPushButton("Check with the model just trained")
        self.use_trained_button.setVisible(False)

        top = QHBoxLayout()
        top.addWidget(self.summary, 1)
        top.addWidget(self.progress)
        top.addWidget(self.kind)
        top.addWidget(self.run_button)
        top.addWidget(self.stop_button)
        actions = QHBoxLayout()
        actions.addWidget(self.features_label, 1)
        for b in (self.move_suggested_button, self.move_button, self.exclude_button, self.open_button):
            actions.addWidget(b)
        warning = QHBoxLayout()
        warning.addWidget(self.random_warning, 1)
        warning.addWidget(self.use_trained_button)
        layout = QVBoxLayout(self)
        layout.addLayout(top)
        layout.addLayout(warning)
        layout.addWidget(self.table, 1)
        layout.addLayout(actions)

        self.run_button.clicked.connect(lambda: self.start())
        self.use_trained_button.clicked.connect(lambda: self.start(use_trained=True))
        self.stop_button.clicked.connect(self.runner.stop)
        self.kind.currentIndexChanged.connect(self._fill)
        self.table.itemSelectionChanged.connect(self._update_buttons)
        self.table.customContextMenuRequested.connect(self._on_table_context_menu)
        self.table.cellDoubleClicked.connect(lambda row, _col: self._open(row))
        self.move_suggested_button.clicked.connect(self._on_move_suggested_clicked)
        self.move_button.clicked.connect(self._on_move_clicked)
        self.exclude_button.clicked.connect(self._on_exclude_clicked)
        self.open_button.clicked.connect(lambda: self._open(self.table.currentRow()))
        self.runner.progressed.connect(self._on_progressed)
        self.fixes.changed.connect(self._on_files_changed)
        self._update_buttons()

    # ------------------------------------------------------------ running

    def start(self, use_trained: bool | None = None) -> bool:
        """Check the window's dataset in the background: with the features of the model just
        trained (``use_trained``; by default when the chosen weights are random and there is
        one), else with the model settings' backbone."""
        try:
            config = self.config_source()
        except AssertionError:
            self.summary.setText("Open a dataset first.")
            return False
        trained = self.trained_source()
        if use_trained is None:
            use_trained = (config.weights or "none") == "none"
        trained = trained if use_trained else None
        started = self.runner.start(
            "check data",
            lambda job, progress: check_with_thumbnails(config, None, job, progress, trained),
            on_result=lambda result: self.show_result(*result),
            on_error=self._on_failed,
            on_done=self._on_done,
        )
        if not started:
            self.summary.setText("Busy: check again when the current job has finished.")
            return False
        model = f"the model just trained ({trained.built.arch})" if trained else config.arch
        self.summary.setText(
            f"Checking {display_path(config.data_dir)} with {model}: computing the features "
            "(cached for next time), then training the head 5 times…"
        )
        self.random_warning.setVisible(False)
        self.use_trained_button.setVisible(False)
        self.progress.setVisible(True)
        self.run_button.setEnabled(False)
        self.stop_button.setEnabled(True)
        return True

    def _on_progressed(self, done: int, total: int) -> None:
        if self.progress.isVisible() and total:
            self.progress.setRange(0, total)
            self.progress.setValue(done)

    def _on_failed(self, message: str) -> None:
        self.summary.setText(f"⚠ {display_path(message.splitlines()[0])}")

    def _on_done(self) -> None:
        self.progress.setVisible(False)
        self.progress.setRange(0, 0)
        self.run_button.setEnabled(True)
        self.run_button.setText("Check again")
        self.stop_button.setEnabled(False)

    def show_result(self, result: DataCheck, thumbs: dict[str, bytes]) -> None:
        from ftgui.core.insight.check import KIND_NAMES, KINDS

        self.report = result
        self._thumbs = thumbs
        self.summary.setText(f"<b>{display_path(result.summary())}</b>")
        self.features_label.setText(f"Features: {display_path(result.features_from)}")
        if result.random_features:  # said above the list, not only in the grey line below it
            arch = result.features_from.split(" ", 1)[0]
            self.random_warning.setText(RANDOM_WARNING.format(arch=display_path(arch)))
        self.random_warning.setVisible(result.random_features)
        self.use_trained_button.setVisible(result.random_features and self.trained_source() is not None)
        self.kind.blockSignals(True)
        self.kind.clear()
        self.kind.addItem(f"All problems ({len(result.findings)})", "")
        for k in KINDS:
            if result.of_kind(k):
                self.kind.addItem(f"{KIND_NAMES[k]} ({len(result.of_kind(k))})", k)
        self.kind.blockSignals(False)
        self._fill()

    # ------------------------------------------------------------ the list

    def _fill(self) -> None:
        from ftgui.core.insight.check import KIND_NAMES

        result = self.report
        self.table.setRowCount(0)
        self.rows = []
        if result is None:
            return
        kind = self.kind.currentData() or ""
        self.rows = [f for f in result.findings if not kind or f.kind == kind]
        self.table.setRowCount(len(self.rows))
        for r, f in enumerate(self.rows):
            icon = QTableWidgetItem()
            png = self._thumbs.get(f.path)
            if png:
                icon.setIcon(QIcon(QPixmap.fromImage(QImage.fromData(png))))
            cells = [
                icon,
                QTableWidgetItem(KIND_NAMES[f.kind]),
                QTableWidgetItem(display_path(f.path)),
                QTableWidgetItem(display_path(f.given)),
                QTableWidgetItem(display_path(f.suggested)),
                QTableWidgetItem(f"{f.score:.2f}"),
                QTableWidgetItem(display_path(f.detail)),
            ]
            cells[5].setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
            cells[6].setToolTip(display_path(f.detail))
            for c, cell in enumerate(cells):
                self.table.setItem(r, c, cell)
        self._update_buttons()

    def selected(self) -> list[Finding]:
        rows = sorted({i.row() for i in self.table.selectionModel().selectedRows()})
        return [self.rows[r] for r in rows if r < len(self.rows) and self.rows[r].kind != "imbalance"]

    def _update_buttons(self) -> None:
        chosen = self.selected()
        suggested = {f.suggested for f in chosen}
        one_guess = len(suggested) == 1 and "" not in suggested
        self.move_suggested_button.setEnabled(bool(chosen) and one_guess)
        if one_guess:
            self.move_suggested_button.setText(f"Move to {display_path(next(iter(suggested)))}")
        else:
            self.move_suggested_button.setText("Move to the model's class")
        for b in (self.move_button, self.exclude_button):
            b.setEnabled(bool(chosen))
        self.open_button.setEnabled(len(chosen) == 1)

    def _open(self, row: int) -> None:
        if self.report is not None and 0 <= row < len(self.rows):
            target = Path(self.report.root) / self.rows[row].path
            open_file(str(target.parent if target.is_file() else target))

    # ------------------------------------------------------------ fixing

    def _paths(self) -> list[str]:
        return [f.path for f in self.selected()]

    def _on_move_suggested_clicked(self) -> None:
        chosen = self.selected()
        if self.report is not None and chosen and chosen[0].suggested:
            self.fixes.move(self.report.root, self._paths(), chosen[0].suggested, self)

    def _on_move_clicked(self) -> None:
        chosen = self.selected()
        if self.report is not None and chosen:
            self.fixes.ask_move(
                self.report.root, self._paths(), self.report.classes, self, chosen[0].suggested
            )

    def _on_exclude_clicked(self) -> None:
        if self.report is not None:
            self.fixes.exclude(self.report.root, self._paths(), self)

    def _on_table_context_menu(self, pos: QPoint) -> None:
        chosen = self.selected()
        if self.report is None or not chosen:
            return
        guesses = {f.suggested for f in chosen}
        suggested = next(iter(guesses)) if len(guesses) == 1 else ""
        menu = fix_menu(self.fixes, self, self.report.root, self._paths(), self.report.classes, suggested)
        menu.exec(self.table.viewport().mapToGlobal(pos))

    def _on_files_changed(self, root: str) -> None:
        """Rows whose file moved or was excluded leave the list (Check again to see it anew)."""
        result = self.report
        if result is None or Path(result.root).resolve() != Path(root):
            return
        from ftgui.core.data.fixes import Fixes

        excluded = Fixes().excluded(root)
        gone = {
            f.path for f in result.findings
            if f.kind != "imbalance" and (f.path in excluded or not (Path(result.root) / f.path).is_file())
        }  # fmt: skip
        if gone:
            result.findings = [f for f in result.findings if f.path not in gone]
            self._fill()
