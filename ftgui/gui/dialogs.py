"""Dialogs: export (with extra formats), a training job for another machine, and the
learning-rate finder's result."""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QCheckBox,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from ftgui.core.base.options import EXPORT_FORMATS

if TYPE_CHECKING:
    from ftgui.core.training.lr_finder import LRFinderResult
    from ftgui.core.workflows.job import ClusterSettings


def onnx_missing() -> str | None:
    """What to install for ONNX export (the same check as ``ftgui-train --export onnx``), or None."""
    from ftgui.core.bundle.formats import missing_format_packages

    return missing_format_packages(("onnx",))


class ExportDialog(QDialog):
    """Where to export, and which formats besides safetensors + JSON."""

    def __init__(self, folder: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Export model")
        self.folder = QLineEdit(folder)
        browse = QPushButton("Browse…")
        # The formats ftgui-train --export offers (core/base/options.py), one box each.
        self.format_boxes = {key: QCheckBox(label) for key, (_, label) in EXPORT_FORMATS.items()}
        self.onnx = self.format_boxes["onnx"]
        self.torchscript = self.format_boxes["torchscript"]
        missing = onnx_missing()
        if missing:
            self.onnx.setEnabled(False)
            self.onnx.setText(self.onnx.text() + " — not installed")
            self.onnx.setToolTip(missing)
        note = QLabel(
            "Always written: model.safetensors, model.json and MODEL_CARD.md, swapped in together. Each "
            "extra format is loaded back and compared with the model on validation images."
            + (f"<br><i>{missing}</i>" if missing else "")
        )
        note.setWordWrap(True)
        row = QHBoxLayout()
        row.addWidget(self.folder, 1)
        row.addWidget(browse)
        buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel
        )
        buttons.button(QDialogButtonBox.StandardButton.Ok).setText("Export")
        layout = QVBoxLayout(self)
        layout.addWidget(QLabel("Folder"))
        layout.addLayout(row)
        for box in self.format_boxes.values():
            layout.addWidget(box)
        layout.addWidget(note)
        layout.addWidget(buttons)
        browse.clicked.connect(self._on_browse_clicked)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        self.resize(520, self.sizeHint().height())

    def _on_browse_clicked(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Export model to folder", self.folder.text())
        if folder:
            self.folder.setText(folder)

    def formats(self) -> tuple[str, ...]:
        chosen = ["safetensors"]
        chosen += [key for key, box in self.format_boxes.items() if box.isChecked()]
        return tuple(chosen)


class TrainingJobDialog(QDialog):
    """Where to write a training job for another machine, and what its SLURM script asks for."""

    def __init__(self, folder: str, gpus: int, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Export training job")
        self.folder = QLineEdit(folder)
        browse = QPushButton("Browse…")
        self.nodes = QSpinBox(minimum=1, maximum=4096, value=1)
        self.gpus = QSpinBox(minimum=0, maximum=64, value=gpus)
        self.gpus.setSpecialValueText("none (CPU nodes)")
        self.cpus = QSpinBox(minimum=1, maximum=4096, value=8)
        self.time = QLineEdit("04:00:00")
        self.time.setPlaceholderText("HH:MM:SS or D-HH:MM:SS")
        self.partition = QLineEdit()
        self.partition.setPlaceholderText("the cluster's default")
        row = QHBoxLayout()
        row.addWidget(self.folder, 1)
        row.addWidget(browse)
        form = QFormLayout()
        form.addRow("Folder", row)
        form.addRow("Nodes", self.nodes)
        form.addRow("GPUs per node", self.gpus)
        form.addRow("CPUs per node", self.cpus)
        form.addRow("Time limit", self.time)
        form.addRow("Partition", self.partition)
        note = QLabel(
            "Writes <b>job.json</b> (these settings, the layer tree and the split's file lists), "
            "<b>run.sh</b> (one machine: <code>bash run.sh DATA_DIR OUT_DIR</code>, a process per "
            "GPU) and <b>slurm.sbatch</b> (<code>sbatch slurm.sbatch DATA_DIR OUT_DIR</code>). "
            "Copy OUT_DIR back and open it with File → Open exported model…"
        )
        note.setWordWrap(True)
        buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Save | QDialogButtonBox.StandardButton.Cancel
        )
        buttons.button(QDialogButtonBox.StandardButton.Save).setText("Write job")
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(note)
        layout.addWidget(buttons)
        browse.clicked.connect(self._on_browse_clicked)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        self.resize(560, self.sizeHint().height())

    def _on_browse_clicked(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Write the training job to", self.folder.text())
        if folder:
            self.folder.setText(folder)

    def cluster(self) -> ClusterSettings:
        from ftgui.core.workflows.job import ClusterSettings

        return ClusterSettings(
            nodes=self.nodes.value(),
            gpus_per_node=self.gpus.value(),
            cpus_per_node=self.cpus.value(),
            time=self.time.text().strip(),
            partition=self.partition.text().strip(),
        )


class LRFinderDialog(QDialog):
    """Loss against learning rate (log axis) with the suggestion, accepted with one click."""

    def __init__(self, result: LRFinderResult, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        from ftgui.gui.plot import pg

        self.finder_result = result
        self.setWindowTitle("Learning-rate finder")
        plot = pg.PlotWidget(background="w")
        plot.setLogMode(x=True, y=False)
        plot.showGrid(x=True, y=True, alpha=0.2)
        plot.setLabel("bottom", "learning rate")
        plot.setLabel("left", "loss (smoothed)")
        plot.plot(result.lrs, result.losses, pen=pg.mkPen((31, 119, 180), width=2))
        if result.losses:
            top = min(max(result.losses), 3 * min(result.losses) + 1e-6)
            plot.setYRange(min(result.losses) * 0.95, top)
        if result.suggestion:
            line = pg.InfiniteLine(
                pos=math.log10(result.suggestion),
                angle=90,
                pen=pg.mkPen((214, 39, 40), width=2, style=Qt.PenStyle.DashLine),
            )
            plot.addItem(line)
            text = f"Suggested learning rate: <b>{result.suggestion:.2e}</b> (where the loss falls fastest)"
        else:
            text = "No clear suggestion: the loss did not fall over the range tried."
        label = QLabel(text)
        buttons = QDialogButtonBox()
        self.use_button = buttons.addButton(
            f"Use {result.suggestion:.1e}" if result.suggestion else "Use",
            QDialogButtonBox.ButtonRole.AcceptRole,
        )
        self.use_button.setEnabled(bool(result.suggestion))
        buttons.addButton(QDialogButtonBox.StandardButton.Close)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(plot, 1)
        layout.addWidget(label)
        layout.addWidget(buttons)
        self.plot = plot
        self.resize(640, 440)


def default_export_folder(settings_value: str | None, dataset_root: str | None) -> str:
    if settings_value:
        return settings_value
    base = Path(dataset_root).parent if dataset_root else Path.home()
    name = Path(dataset_root).name if dataset_root else "model"
    return str(base / f"{name}-model")
