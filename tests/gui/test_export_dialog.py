"""The Export dialog offers every deployment format ftgui-export does, greyed with the install
command where a format's packages are missing."""

from __future__ import annotations

import json

import pytest
from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication, QMessageBox

from ftgui.core.base.options import EXPORT_FORMATS, format_files
from ftgui.core.deploy import registry
from ftgui.core.deploy.measure import ExportCheck
from ftgui.gui.dialogs.export import ExportDialog


def test_every_format_is_offered_and_a_missing_one_is_greyed_with_its_install_command(
    qtbot, monkeypatch, tmp_path
):
    monkeypatch.setitem(registry.FORMAT_PACKAGES, "coreml", ("ftgui_no_such_module",))
    dialog = ExportDialog(str(tmp_path / "out"))
    qtbot.addWidget(dialog)
    assert list(dialog.format_boxes) == list(EXPORT_FORMATS)
    box = dialog.format_boxes["coreml"]
    assert not box.isEnabled() and box.text().endswith("— not installed")
    assert "pip install 'ftgui[coreml]'" in box.toolTip()
    assert any("ftgui[coreml]" in hint for hint in dialog.install_hints)
    for key, other in dialog.format_boxes.items():
        if key != "coreml":
            assert other.isEnabled() == (not registry.missing_packages(key)), key
    dialog.format_boxes["openvino-int8"].setChecked(True)
    dialog.format_boxes["onnx"].setChecked(True)
    assert dialog.formats() == ("safetensors", "onnx", "openvino-int8")
    dialog.show()
    qtbot.waitExposed(dialog)
    assert dialog.width() <= 1280 and dialog.height() <= 760


@pytest.mark.slow
def test_the_window_exports_every_installed_format_from_its_dialog(
    qtbot, window, image_folder, tmp_path, train_tiny
):
    """Train in the window, open Export model… (Ctrl+E), tick every format that is installed:
    each is written, measured in its runtime and listed in the log, the confirmation and model.json."""
    train_tiny(qtbot, window, image_folder)
    out, chosen = tmp_path / "exported", []

    def fill_in() -> None:
        dialog = QApplication.activeModalWidget()
        assert isinstance(dialog, ExportDialog)
        dialog.folder.setText(str(out))
        for key, box in dialog.format_boxes.items():
            if box.isEnabled():
                box.setChecked(True)
                chosen.append(key)
        dialog.accept()

    QTimer.singleShot(0, fill_in)
    window.export_action.trigger()
    qtbot.waitUntil(lambda: window.export_box is not None, timeout=300_000)
    assert chosen == [f for f in EXPORT_FORMATS if not registry.missing_packages(f)] and "onnx" in chosen
    log, table = window.log.toPlainText(), window.export_box.informativeText()
    for fmt in chosen:
        name = format_files(fmt)[0]
        kept = (out / name).is_file()
        assert f"<td align='left' nowrap>{name}</td>" in table, fmt  # a row of its own, kept or not
        if kept:
            assert f"Wrote {name}: " in log and name in window.export_box.text(), fmt
        else:  # the gate may refuse an INT8 file of a model trained for one epoch: it says so
            assert fmt.endswith("-int8") and f"⚠ {name} was not kept: refused: " in log, fmt
            assert name not in window.export_box.text()
    recorded = json.loads((out / "model.json").read_text())["exports"]["formats"]
    assert sorted(recorded) == sorted(chosen)  # refused ones too, with their figures
    assert all(recorded[f].get("agreement") is not None or recorded[f].get("note") for f in chosen)


def test_a_refused_int8_export_is_a_warning_with_its_figures_not_a_failure(qtbot, window, tmp_path):
    reason = (
        "refused: accuracy 25.0% against 84.4% for the float model (59.4 points lost, more than "
        "the 1 point allowed)"
    )
    checks = [
        ExportCheck("onnx", str(tmp_path / "model.onnx"), runtime="onnxruntime 1.23", agreement=1.0,
                    max_difference=1e-6, accuracy=0.844, reference_accuracy=0.844, latency_ms=0.5),
        ExportCheck("onnx-int8", str(tmp_path / "model.int8.onnx"), error=reason, refused=True),
    ]  # fmt: skip
    window._on_exported(str(tmp_path), checks)
    assert window.last_error_box is None  # not "Export incomplete": the gate did its work
    box = window.export_box
    assert box.icon() == QMessageBox.Icon.Warning
    written = box.text().split("\n\n")[0].split(":\n", 1)[1].split(", ")
    assert written == ["model.safetensors", "model.json", "MODEL_CARD.md", "model.onnx"]
    table = box.informativeText()
    assert (
        "<td align='left' nowrap>model.onnx</td><td align='right' nowrap>100.0%</td><td align='right' nowrap>+0.0&nbsp;pt</td>"
        in table
    )
    assert "not kept: accuracy 25.0% against 84.4% for the float model (59.4 points lost" in table
    assert f"⚠ model.int8.onnx was not kept: {reason}" in window.log.toPlainText()
