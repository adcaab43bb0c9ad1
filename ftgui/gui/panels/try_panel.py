"""Try tab: drop images on the model and see its top-5 classes with probability bars."""

from __future__ import annotations

import html
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtGui import QDragEnterEvent, QDropEvent, QImage, QPixmap
from PySide6.QtWidgets import (
    QCheckBox,
    QFileDialog,
    QFrame,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QScrollArea,
    QVBoxLayout,
    QWidget,
)

from ftgui.core.base.text import display_path
from ftgui.gui.jobs import JobRunner
from ftgui.gui.settings import dialog_folder
from ftgui.gui.widgets.thumbs import thumbnail_png

if TYPE_CHECKING:
    from ftgui.core.bundle.predict import Prediction, Predictor

MAX_IMAGES = 50


def image_paths(paths: list[str]) -> list[str]:
    """Image files among dropped paths; folders contribute the images inside them."""
    from ftgui.core.data.scan import is_image_name

    out: list[str] = []
    for p in paths:
        path = Path(p)
        if path.is_dir():
            out.extend(
                str(f)
                for f in sorted(path.rglob("*"))
                if f.is_file()
                and is_image_name(f.name)
                and not any(part.startswith(".") for part in f.relative_to(path).parts)
            )
        elif path.is_file():
            out.append(str(path))
    return out[:MAX_IMAGES]


class ResultRow(QFrame):
    """One image: thumbnail, file name, and a bar per top class."""

    def __init__(
        self, prediction: Prediction, heat: bytes | None = None, parent: QWidget | None = None
    ) -> None:
        super().__init__(parent)
        self.prediction = prediction
        self.setFrameShape(QFrame.Shape.StyledPanel)
        thumb = QLabel()
        thumb.setFixedSize(96, 96)
        thumb.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.heat_shown = heat is not None
        png = heat or thumbnail_png(prediction.path, 96)
        if heat is not None:
            thumb.setToolTip("Heat map (Grad-CAM): where the evidence for the top class lies")
        if png:
            thumb.setPixmap(QPixmap.fromImage(QImage.fromData(png)))
        grid = QGridLayout()
        name = QLabel(f"<b>{html.escape(display_path(Path(prediction.path).name))}</b>")
        name.setToolTip(display_path(prediction.path))
        grid.addWidget(name, 0, 0, 1, 2)
        self.bars: list[QProgressBar] = []
        if prediction.error:
            grid.addWidget(QLabel(f"⚠ {display_path(prediction.error)}"), 1, 0, 1, 2)
        for row, (cls, prob) in enumerate(prediction.top, start=1):
            label = QLabel(display_path(cls))
            bar = QProgressBar()
            bar.setRange(0, 1000)
            bar.setValue(int(round(prob * 1000)))
            bar.setFormat(f"{100 * prob:.1f}%")
            bar.setMaximumHeight(16)
            grid.addWidget(label, row, 0)
            grid.addWidget(bar, row, 1)
            self.bars.append(bar)
        grid.setColumnStretch(1, 1)
        layout = QHBoxLayout(self)
        layout.addWidget(thumb)
        layout.addLayout(grid, 1)


class TryPanel(QWidget):
    """Predicts with the model just trained, or with an exported bundle opened from disk."""

    open_bundle_requested = Signal()

    def __init__(self, runner: JobRunner, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.runner = runner  # predictions run off the GUI thread
        self.setAcceptDrops(True)
        self.predictor: Predictor | None = None
        self.rows: list[ResultRow] = []
        self.model_label = QLabel("No model yet: train one, or open an exported model.")
        self.model_label.setWordWrap(True)
        self.open_button = QPushButton("Open exported model…")
        self.choose_button = QPushButton("Choose images…")
        self.heat_toggle = QCheckBox("Heat map")
        self.heat_toggle.setToolTip("Overlay where the evidence for the predicted class lies (Grad-CAM)")
        self._last: list[str] = []
        self.start_folder: str | None = None  # where Choose images opens: the open dataset
        self.drop_label = QLabel("Drop images (or a folder of images) here to see what the model says")
        self.drop_label.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.drop_label.setMinimumHeight(60)
        self.drop_label.setStyleSheet("border: 2px dashed #9a9a9a; border-radius: 8px; color: #555;")
        self.results = QWidget()
        self.results_layout = QVBoxLayout(self.results)
        self.results_layout.addStretch(1)
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setWidget(self.results)
        top = QHBoxLayout()
        top.addWidget(self.model_label, 1)
        top.addWidget(self.heat_toggle)
        top.addWidget(self.choose_button)
        top.addWidget(self.open_button)
        layout = QVBoxLayout(self)
        layout.addLayout(top)
        layout.addWidget(self.drop_label)
        layout.addWidget(scroll, 1)
        self.open_button.clicked.connect(self.open_bundle_requested)
        self.choose_button.clicked.connect(self._on_choose_clicked)
        self.choose_button.setEnabled(False)
        self.heat_toggle.toggled.connect(lambda _on: self._last and self.try_images(self._last))

    def set_predictor(self, predictor: Predictor | None, description: str) -> None:
        """The model Try uses; results of another model are cleared (they would read as this
        one's), the same model under a new description (exported since) keeps them."""
        again = predictor is not self.predictor and bool(self.rows) and predictor is not None
        if predictor is not self.predictor and self.rows:
            self._clear_rows()
            self.drop_label.setText("Another model is selected: drop images again to see what it says.")
        self.predictor = predictor
        self.model_label.setText(f"Model: {description}")
        self.choose_button.setEnabled(predictor is not None)
        if again and predictor is not None and self._last:  # the same images, asked of the model now shown
            self._again_when_free(predictor, 100)

    def _again_when_free(self, predictor: Predictor, tries: int) -> None:
        """Try's images once more with ``predictor``, once the job that brought it has ended."""
        if self.predictor is not predictor or not self._last or tries <= 0:
            return
        if self.runner.busy:  # a timer of the panel's own: it goes with the panel
            QTimer.singleShot(100, self, lambda: self._again_when_free(predictor, tries - 1))
            return
        self.try_images(list(self._last))

    def _clear_rows(self) -> None:
        for row in self.rows:
            row.deleteLater()
        self.rows = []

    def _on_choose_clicked(self) -> None:
        files, _ = QFileDialog.getOpenFileNames(
            self,
            "Choose images",
            dialog_folder(self.start_folder),
            "Images (*.jpg *.jpeg *.png *.bmp *.gif *.webp *.tif *.tiff);;All files (*)",
        )
        if files:
            self.try_images(files)

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:
        if event.mimeData().hasUrls() and any(u.isLocalFile() for u in event.mimeData().urls()):
            event.acceptProposedAction()

    def dropEvent(self, event: QDropEvent) -> None:
        paths = [u.toLocalFile() for u in event.mimeData().urls() if u.isLocalFile()]
        if paths:
            event.acceptProposedAction()
            self.try_images(paths)

    def try_images(self, paths: list[str]) -> bool:
        """Predict in the background, then show the top-5 for each image. False if nothing runs."""
        self._clear_rows()
        if self.predictor is None:
            self.drop_label.setText("No model yet: train one, or open an exported model first.")
            return False
        files = image_paths(paths)
        if not files:
            self.drop_label.setText("No images among the dropped files.")
            return False
        predictor = self.predictor
        self._last = files
        heat = self.heat_toggle.isChecked()
        self.drop_label.setText(f"Classifying {len(files)} image(s)…")
        started = self.runner.start(
            "try",
            lambda job, progress: predict_with_heat_maps(predictor, files, heat),
            on_result=lambda result: self.show_predictions(*result),
            on_error=lambda message: self.drop_label.setText(f"⚠ {message.splitlines()[0]}"),
        )
        if not started:
            self.drop_label.setText("Busy: try again when the current job has finished.")
        return started

    def show_predictions(
        self, predictions: list[Prediction], heat: dict[str, bytes] | None = None, problem: str = ""
    ) -> None:
        heat = heat or {}
        for p in predictions:
            row = ResultRow(p, heat.get(p.path))
            self.results_layout.insertWidget(self.results_layout.count() - 1, row)
            self.rows.append(row)
        text = f"{len(predictions)} image(s). Drop more to try again."
        self.drop_label.setText(f"{text}\n⚠ {display_path(problem)}" if problem else text)


def predict_with_heat_maps(
    predictor: Predictor, files: list[str], heat: bool
) -> tuple[list[Prediction], dict[str, bytes], str]:
    """Top-5 per image and, with ``heat``, each readable image's heat-map picture (PNG), or why
    the model has none (off the GUI thread)."""
    import io

    predictions = predictor.predict(files, topk=5)
    pictures: dict[str, bytes] = {}
    if not heat:
        return predictions, pictures, ""
    from ftgui.core.insight.cam import CamUnavailable, image_heat_map

    for p in predictions:
        if p.error:
            continue
        try:
            picture, _ = image_heat_map(predictor, p.path)
        except CamUnavailable as exc:
            return predictions, {}, str(exc)
        picture.thumbnail((96, 96))
        buf = io.BytesIO()
        picture.save(buf, "PNG")
        pictures[p.path] = buf.getvalue()
    return predictions, pictures, ""
