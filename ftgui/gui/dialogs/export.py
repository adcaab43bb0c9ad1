"""The Export dialog: the folder, and the formats beside the bundle (each measured after writing)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path

from PySide6.QtWidgets import (
    QCheckBox,
    QDialog,
    QDialogButtonBox,
    QDoubleSpinBox,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from ftgui.core.base.options import EXPORT_FORMATS, MAX_ACCURACY_DROP


def format_missing(fmt: str) -> str | None:
    """What to install for one format (the same check as ``ftgui-export --format``), or None."""
    from ftgui.core.deploy.registry import missing_format_packages

    return missing_format_packages((fmt,))


class ExportDialog(QDialog):
    """Where to export, and which formats besides safetensors + JSON."""

    def __init__(
        self,
        folder: str,
        parent: QWidget | None = None,
        ticked: Iterable[str] = (),
        estimate: Callable[[tuple[str, ...]], float] | None = None,
        val_images: int = 0,
        max_drop: float = MAX_ACCURACY_DROP,
    ) -> None:
        super().__init__(parent)
        self.setWindowTitle("Export model")
        self.folder = QLineEdit(folder)
        browse = QPushButton("Browse…")
        # The formats ftgui-export offers (core/base/options.py), one box each; a format whose
        # packages are missing is greyed, with the command that installs them.
        self.format_boxes = {key: QCheckBox(label) for key, (_, label) in EXPORT_FORMATS.items()}
        self.onnx = self.format_boxes["onnx"]
        self.torchscript = self.format_boxes["torchscript"]
        hints: list[str] = []
        for key, box in self.format_boxes.items():
            missing = format_missing(key)
            if missing:
                box.setEnabled(False)
                hint = missing.split("Install with: ", 1)[-1]
                box.setText(f"{box.text()} — not installed")
                box.setToolTip(missing)
                if hint not in hints:
                    hints.append(hint)
        self.install_hints = hints
        for key in ticked:  # the formats ticked last time, where they can still be written
            if key in self.format_boxes and self.format_boxes[key].isEnabled():
                self.format_boxes[key].setChecked(True)
        self.estimate = estimate
        self.estimate_label = QLabel()
        self.val_images = val_images
        self.max_drop = QDoubleSpinBox()
        self.max_drop.setRange(0.0, 100.0)
        self.max_drop.setDecimals(1)
        self.max_drop.setSingleStep(0.5)
        self.max_drop.setSuffix(" points")
        self.max_drop.setValue(max_drop)
        self.max_drop.setToolTip("ftgui-export --max-accuracy-drop: an INT8 file that loses more is not kept")
        self.gate_note = QLabel()
        self.gate_note.setWordWrap(True)
        note = QLabel(
            "Always written: model.safetensors, model.json and MODEL_CARD.md, swapped in together. Each "
            "extra format is run in its own runtime on the validation images and compared with the model; "
            "an INT8 format that loses more accuracy than the limit below is not kept."
            + "".join(f"<br><i>To enable the greyed formats: {h}</i>" for h in hints)
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
        gate = QHBoxLayout()
        gate.addWidget(QLabel("INT8 formats may lose at most"))
        gate.addWidget(self.max_drop)
        gate.addStretch(1)
        layout.addLayout(gate)
        layout.addWidget(self.gate_note)
        layout.addWidget(self.estimate_label)
        layout.addWidget(buttons)
        for box in self.format_boxes.values():
            box.toggled.connect(self._update_estimate)
        self.max_drop.valueChanged.connect(self._update_gate_note)
        self._update_estimate()
        self._update_gate_note()
        browse.clicked.connect(self._on_browse_clicked)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        self.resize(520, self.sizeHint().height())

    def _on_browse_clicked(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Export model to folder", self.folder.text())
        if folder:
            self.folder.setText(folder)

    def _update_estimate(self) -> None:
        from ftgui.gui.dialogs.export_progress import duration_text

        if self.estimate is None:
            self.estimate_label.hide()
            return
        self.estimate_label.setText(
            f"Takes about {duration_text(self.estimate(self.formats()))} on this computer."
        )

    def _update_gate_note(self) -> None:
        """How much the accuracy gate can tell on this many validation images."""
        n = self.val_images
        if n <= 0:
            self.gate_note.setText(
                "<i>No validation images: INT8 files are compared with the model only.</i>"
            )
            return
        step = 100.0 / n
        if step > self.max_drop.value():
            said = (
                f"With {n} validation images one image is {step:.1f} points, more than the limit: an INT8 "
                "file that gets a single image wrong is not kept, and the gate says little either way."
            )
        else:
            said = f"With {n} validation images one image is {step:.1f} points."
        self.gate_note.setText(f"<i>{said}</i>")

    def formats(self) -> tuple[str, ...]:
        chosen = ["safetensors"]
        chosen += [key for key, box in self.format_boxes.items() if box.isChecked()]
        return tuple(chosen)


def default_export_folder(settings_value: str | None, dataset_root: str | None) -> str:
    if settings_value:
        return settings_value
    base = Path(dataset_root).parent if dataset_root else Path.home()
    name = Path(dataset_root).name if dataset_root else "model"
    return str(base / f"{name}-model")
