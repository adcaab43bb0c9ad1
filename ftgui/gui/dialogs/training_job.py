"""The training-job dialog: a job for another machine or a cluster (torchrun, SLURM)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from PySide6.QtWidgets import (
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

if TYPE_CHECKING:
    from ftgui.core.workflows.job import ClusterSettings


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
