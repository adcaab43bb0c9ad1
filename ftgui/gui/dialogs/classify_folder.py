"""Classify a folder: the trained (or opened) model sorts other images, in the background, into a
table filterable by class and confidence; export to CSV, or copy into class folders."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QSize, Qt, Signal
from PySide6.QtGui import QIcon, QImage, QPixmap
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QDialog,
    QDoubleSpinBox,
    QFileDialog,
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
from ftgui.gui.jobs import JobRunner
from ftgui.gui.settings import dialog_folder
from ftgui.gui.widgets.thumbs import thumbnail_png

if TYPE_CHECKING:
    from ftgui.core.bundle.predict import Prediction, Predictor
    from ftgui.core.insight.classify import CopyReport

CLASS_WIDTH = 180  # the predicted class's column: long names elide, the file names keep their room
THUMB = 48
MAX_THUMBS = 2000  # beyond this the table shows names only (a thumbnail is decoded per image)


class ClassifyFolderDialog(QDialog):
    """One folder at a time; the job runs through the window's job runner (Stop cancels it)."""

    batch_ready = Signal(object)  # emitted from the worker: a list of (Prediction, png)

    def __init__(self, runner: JobRunner, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.runner = runner
        self.predictor: Predictor | None = None
        self.folder = ""
        self.start_folder: str | None = None  # where the first Choose opens: beside the open dataset
        self.predictions: list[Prediction] = []
        self._thumbs: list[bytes | None] = []
        self.setWindowTitle("Classify a folder")
        self.resize(860, 600)
        self.model_label = QLabel("No model yet: train one, or open an exported model.")
        self.model_label.setWordWrap(True)
        self.choose_button = QPushButton("Choose folder…")
        self.stop_button = QPushButton("Stop")
        self.stop_button.setEnabled(False)
        self.progress = QProgressBar()
        self.progress.setVisible(False)
        self.status = QLabel("")
        self.status.setWordWrap(True)  # a long refusal wraps; it never widens the dialog off the screen
        self.class_filter = QComboBox()
        self.class_filter.setToolTip("Show the images predicted as one class")
        self.class_filter.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToContents)
        self.class_filter.setMinimumContentsLength(len("All classes") + 1)
        self.min_confidence = QDoubleSpinBox()
        self.min_confidence.setRange(0, 100)
        self.min_confidence.setSuffix(" %")
        self.min_confidence.setDecimals(0)
        self.min_confidence.setToolTip("Show only predictions at least this sure")
        self.table = QTableWidget(0, 4)
        self.table.setHorizontalHeaderLabels(["", "Image", "Predicted class", "Confidence"])
        self.table.setIconSize(QSize(THUMB, THUMB))
        self.table.verticalHeader().setVisible(False)
        self.table.verticalHeader().setDefaultSectionSize(THUMB + 4)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(1, QHeaderView.ResizeMode.Stretch)  # file names keep the room
        header.setSectionResizeMode(2, QHeaderView.ResizeMode.Interactive)
        self.table.setColumnWidth(0, THUMB + 8)
        self.table.setColumnWidth(2, CLASS_WIDTH)
        self.table.setTextElideMode(Qt.TextElideMode.ElideMiddle)
        self.csv_button = QPushButton("Export CSV…")
        self.unsure_below = QDoubleSpinBox()
        self.unsure_below.setRange(0, 100)
        self.unsure_below.setValue(50)
        self.unsure_below.setSuffix(" %")
        self.unsure_below.setDecimals(0)
        self.unsure_below.setToolTip("Images the model is less sure of go to an 'unsure' folder")
        self.copy_button = QPushButton("Copy into class folders…")
        self.copy_button.setToolTip("Copies (never moves) each image into OUTPUT/<class>/")

        top = QHBoxLayout()
        top.addWidget(self.model_label, 1)
        top.addWidget(self.choose_button)
        top.addWidget(self.stop_button)
        filters = QHBoxLayout()
        filters.addWidget(self.progress)
        filters.addWidget(self.status, 1)
        filters.addWidget(QLabel("Class:"))
        filters.addWidget(self.class_filter)
        filters.addWidget(QLabel("At least:"))
        filters.addWidget(self.min_confidence)
        bottom = QHBoxLayout()
        bottom.addWidget(self.csv_button)
        bottom.addStretch(1)
        bottom.addWidget(QLabel("Unsure below:"))
        bottom.addWidget(self.unsure_below)
        bottom.addWidget(self.copy_button)
        layout = QVBoxLayout(self)
        layout.addLayout(top)
        layout.addLayout(filters)
        layout.addWidget(self.table, 1)
        layout.addLayout(bottom)

        self.choose_button.clicked.connect(self._on_choose_clicked)
        self.stop_button.clicked.connect(self.runner.stop)
        self.class_filter.currentIndexChanged.connect(self._fill)
        self.min_confidence.valueChanged.connect(self._fill)
        self.csv_button.clicked.connect(self._on_csv_clicked)
        self.copy_button.clicked.connect(self._on_copy_clicked)
        self.batch_ready.connect(self._on_batch_ready)
        self._update_buttons()

    def set_predictor(self, predictor: Predictor | None, description: str) -> None:
        self.predictor = predictor
        if predictor is not None:
            self.model_label.setText(f"Model: {display_path(description)}")
        else:
            self.model_label.setText("No model yet: train one, or open an exported model.")
        self._update_buttons()

    def _update_buttons(self) -> None:
        running = self.stop_button.isEnabled()
        self.choose_button.setEnabled(self.predictor is not None and not running)
        have = bool(self.predictions) and not running
        self.csv_button.setEnabled(have)
        self.copy_button.setEnabled(have)

    # ------------------------------------------------------------ classifying

    def _beside_folder(self) -> Path | None:
        """The folder holding the one classified last (where its dialogs open)."""
        return Path(self.folder).parent if self.folder else None

    def _on_choose_clicked(self) -> None:
        start = dialog_folder(self._beside_folder(), self.start_folder)
        folder = QFileDialog.getExistingDirectory(self, "Folder of images to classify", start)
        if folder:
            self.classify(folder)

    def classify(self, folder: str) -> bool:
        """Classify every image under ``folder`` in the background; False if nothing runs."""
        predictor = self.predictor
        if predictor is None:
            return False
        from ftgui.core.insight.classify import find_images

        self.folder = folder
        self.predictions, self._thumbs = [], []
        self.table.setRowCount(0)

        def work(job: Any, progress: Any) -> int:
            paths = find_images([folder])
            batch: list[tuple[Prediction, bytes | None]] = []
            for n, p in enumerate(predictor.predict_batches(paths, 5, cancel=job.cancel, progress=progress)):
                batch.append((p, thumbnail_png(p.path, THUMB) if n < MAX_THUMBS and not p.error else None))
                if len(batch) >= 64:
                    self.batch_ready.emit(batch)
                    batch = []
            if batch:
                self.batch_ready.emit(batch)
            return len(paths)

        started = self.runner.start("classify folder", work, on_error=self._on_failed, on_done=self._on_done)
        if not started:
            self.status.setText("Busy: try again when the current job has finished.")
            return False
        self.status.setText(f"Classifying the images in {display_path(folder)}…")
        self.progress.setVisible(True)
        self.progress.setRange(0, 0)
        self.runner.progressed.connect(self._on_progressed)
        self.stop_button.setEnabled(True)
        self._update_buttons()
        return True

    def _on_progressed(self, done: int, total: int) -> None:
        self.progress.setRange(0, max(total, 1))
        self.progress.setValue(done)

    def _on_batch_ready(self, batch: list[tuple[Prediction, bytes | None]]) -> None:
        for p, png in batch:
            self.predictions.append(p)
            self._thumbs.append(png)
        self._refresh_classes()
        self._fill()

    def _on_failed(self, message: str) -> None:
        self.status.setText(f"⚠ {display_path(message.splitlines()[0])}")

    def _on_done(self) -> None:
        self.runner.progressed.disconnect(self._on_progressed)
        self.progress.setVisible(False)
        self.stop_button.setEnabled(False)
        failed = sum(1 for p in self.predictions if p.error)
        if not self.status.text().startswith("⚠"):
            self.status.setText(
                f"{len(self.predictions) - failed} images classified"
                + (f", {failed} could not be read" if failed else "")
                + ("" if self.predictions else " (no images found)")
            )
        self._update_buttons()

    # ------------------------------------------------------------ the table

    def _refresh_classes(self) -> None:
        current = self.class_filter.currentData()
        found = sorted({p.top[0][0] for p in self.predictions if p.top})
        if self.class_filter.count() == len(found) + 1:
            return
        self.class_filter.blockSignals(True)
        self.class_filter.clear()
        self.class_filter.addItem("All classes", "")
        for c in found:
            self.class_filter.addItem(display_path(c), c)
        index = self.class_filter.findData(current)
        self.class_filter.setCurrentIndex(max(index, 0))
        self.class_filter.blockSignals(False)

    def shown(self) -> list[int]:
        """Indices of the predictions the filters let through, in folder order."""
        cls = self.class_filter.currentData() or ""
        least = self.min_confidence.value() / 100
        keep = []
        for i, p in enumerate(self.predictions):
            if p.error:
                if not cls and least == 0:
                    keep.append(i)
                continue
            if (not cls or p.top[0][0] == cls) and p.top[0][1] >= least:
                keep.append(i)
        return keep

    def _fill(self) -> None:
        rows = self.shown()
        self.table.setRowCount(len(rows))
        base = Path(self.folder)
        for r, i in enumerate(rows):
            p = self.predictions[i]
            icon = QTableWidgetItem()
            png = self._thumbs[i]
            if png:
                icon.setIcon(QIcon(QPixmap.fromImage(QImage.fromData(png))))
            try:
                name = Path(p.path).relative_to(base).as_posix()
            except ValueError:
                name = p.path
            # One short word for an unreadable file; its reason in the tooltip (and the CSV).
            cls = QTableWidgetItem(display_path(p.top[0][0]) if p.top else "⚠ not read")
            cls.setToolTip(display_path(p.top[0][0]) if p.top else display_path(p.error or ""))
            conf = QTableWidgetItem(f"{100 * p.top[0][1]:.1f}%" if p.top else "")
            conf.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
            for c, cell in enumerate((icon, QTableWidgetItem(display_path(name)), cls, conf)):
                self.table.setItem(r, c, cell)

    # ------------------------------------------------------------ output

    def _on_csv_clicked(self) -> None:
        base = Path(self.folder)
        suggested = Path(dialog_folder(self._beside_folder())) / f"{base.name or 'images'}-predictions.csv"
        path, _ = QFileDialog.getSaveFileName(self, "Export predictions", str(suggested), "CSV (*.csv)")
        if path:
            self.export_csv(path)

    def export_csv(self, path: str) -> bool:
        """Write the predictions' CSV; the save dialog asked before replacing a file, and a file in
        a model folder or a class folder of the model's dataset is refused all the same."""
        from ftgui.core.base.errors import FtguiError
        from ftgui.core.base.files import atomic_write
        from ftgui.core.base.outputs import check_output_file
        from ftgui.core.insight.classify import PREDICTIONS_CSV, predictions_csv

        k = max((len(p.top) for p in self.predictions), default=1)
        text = predictions_csv(self.predictions, k).encode("utf-8")
        try:
            check_output_file(path, "The file", PREDICTIONS_CSV, True, self._datasets())
            atomic_write(Path(path), lambda fh: fh.write(text))
        except (FtguiError, OSError) as exc:
            self.status.setText(f"⚠ Not written: {display_path(str(exc).splitlines()[0])}")
            return False
        self.status.setText(f"Wrote {display_path(path)} ({len(self.predictions)} images)")
        return True

    def _datasets(self) -> list[str]:
        return self.predictor.datasets() if self.predictor is not None else []

    def _on_copy_clicked(self) -> None:
        start = dialog_folder(self._beside_folder())
        out = QFileDialog.getExistingDirectory(self, "Copy into class folders under", start)
        if out:
            self.copy_into(out)

    def copy_into(self, out: str) -> bool:
        """Copy the images into ``out``/<class>/ in the background (never moving a file)."""
        from ftgui.core.insight.classify import copy_into_class_folders

        try:
            Path(out).resolve().relative_to(Path(self.folder).resolve())
            self.status.setText("⚠ Choose an output folder outside the folder being classified.")
            return False
        except ValueError:
            pass
        predictions, below = list(self.predictions), self.unsure_below.value() / 100
        datasets = self._datasets()
        started = self.runner.start(
            "copy into class folders",
            lambda job, progress: copy_into_class_folders(
                predictions, out, below, cancel=lambda: job.cancel.cancelled, datasets=datasets
            ),
            on_result=self._on_copied,
            on_error=self._on_failed,
        )
        if started:
            self.status.setText(f"Copying into {display_path(out)}…")
        return started

    def _on_copied(self, report: CopyReport) -> None:
        parts = ", ".join(f"{n} to {display_path(c)}/" for c, n in sorted(report.copied.items()))
        self.status.setText(f"Copied {report.total} images into {display_path(report.folder)}: {parts}")
