"""The Export dialog offers every deployment format ftgui-export does, greyed with the install
command where a format's packages are missing."""

from __future__ import annotations

from ftgui.core.base.options import EXPORT_FORMATS
from ftgui.core.deploy import registry
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
