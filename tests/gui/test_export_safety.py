"""The window's export never replaces another model's bundle without asking, shows each format
as it is written, and Cancel leaves the folder as it was."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PySide6.QtWidgets import QApplication

from ftgui.gui.dialogs.export import ExportDialog


def _files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}


def _run_id(folder: Path) -> str:
    return json.loads((folder / "model.json").read_text())["run_id"]


def _exported(qtbot, window, image_folder, out: Path, train_tiny) -> None:
    """One epoch trained in the window, exported to ``out``."""
    train_tiny(qtbot, window, image_folder)
    assert window.export_to(str(out))
    qtbot.waitUntil(lambda: not window.busy, timeout=60_000)


def _click(box, text: str) -> None:
    button = next(b for b in box.buttons() if b.text().startswith(text))
    button.click()


@pytest.mark.slow
def test_another_runs_bundle_is_replaced_only_when_the_user_says_so(
    qtbot, window, image_folder, tmp_path, train_tiny
):
    out = tmp_path / "m"
    _exported(qtbot, window, image_folder, out, train_tiny)
    first_run = _run_id(out)
    assert window.export_to(str(out))  # the same run again: no question
    qtbot.waitUntil(lambda: not window.busy, timeout=60_000)
    assert window.replace_box is None and _run_id(out) == first_run
    first = _files(out)

    train_tiny(qtbot, window, image_folder)  # a second run of the same data and settings
    assert not window.export_to(str(out))
    box = window.replace_box
    assert box is not None and box.isVisible() and box.windowTitle() == "Replace another model?"
    assert "another training run" in box.text() and "resnet18" in box.text() and str(out) in box.text()
    _click(box, "Cancel")
    qtbot.wait(50)
    assert not window.busy and _files(out) == first

    assert not window.export_to(str(out))
    _click(window.replace_box, "Export to m-2")
    qtbot.waitUntil(lambda: not window.busy and (tmp_path / "m-2" / "model.json").is_file(), timeout=60_000)
    assert _files(out) == first and _run_id(tmp_path / "m-2") != first_run

    # Export model… opens on a new folder once the last one holds another run's model.
    window.settings.setValue("export/last_folder", str(out))
    seen: list[str] = []

    def look() -> None:
        dialog = QApplication.activeModalWidget()
        assert isinstance(dialog, ExportDialog)
        seen.append(dialog.folder.text())
        dialog.reject()

    from PySide6.QtCore import QTimer

    QTimer.singleShot(0, look)
    window.export_action.trigger()
    assert seen == [str(tmp_path / "m-3")]

    assert not window.export_to(str(out))
    _click(window.replace_box, "Replace it")
    qtbot.waitUntil(lambda: not window.busy and _run_id(out) != first_run, timeout=60_000)
    assert "Replacing " in window.log.toPlainText()


@pytest.mark.slow
def test_export_shows_each_format_and_cancel_leaves_the_folder_as_it_was(
    qtbot, window, image_folder, tmp_path, train_tiny
):
    out = tmp_path / "m"
    _exported(qtbot, window, image_folder, out, train_tiny)
    (out / "notes.txt").write_text("mine")
    before = _files(out)

    formats = ("safetensors", "onnx", "torchscript")
    assert window.export_to(str(out), formats)
    progress = window.export_progress
    assert progress.isVisible() and progress.formats == ["onnx", "torchscript"]
    assert "about" in progress.clock.text()
    qtbot.waitUntil(lambda: progress.state("onnx").startswith("writing"), timeout=60_000)
    progress.cancel_button.click()  # while ONNX is written: it finishes, TorchScript never begins
    assert not progress.cancel_button.isEnabled()
    qtbot.waitUntil(lambda: not window.busy, timeout=120_000)
    assert progress.state("torchscript") == "waiting" and progress.state("onnx").startswith("kept")
    assert not progress.isVisible()
    assert _files(out) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ftgui.ini", "m"]  # no stage left
    assert f"Export cancelled; {out} is as it was." in window.log.toPlainText()
    assert window.last_error_box is None

    assert window.export_to(str(out), formats)  # not cancelled: both kept, each with its time
    qtbot.waitUntil(lambda: not window.busy, timeout=120_000)
    assert progress is not window.export_progress
    done = window.export_progress
    assert done.bar.value() == 2 and set(done.seconds) == {"onnx", "torchscript"}
    assert all(done.state(f).startswith("kept: ") and done.state(f).endswith(")") for f in done.formats)
    assert (out / "model.onnx").is_file() and (out / "notes.txt").read_text() == "mine"
    assert window.settings.value("export/seconds_per_mparam/onnx") is not None  # the next estimate


def test_the_dialog_keeps_the_ticked_formats_and_says_how_long_they_take(qtbot, tmp_path):
    asked: list[tuple[str, ...]] = []

    def estimate(formats: tuple[str, ...]) -> float:
        asked.append(formats)
        return 30.0 + 50.0 * (len(formats) - 1)

    dialog = ExportDialog(str(tmp_path / "m"), None, ("onnx", "no-such-format"), estimate)
    qtbot.addWidget(dialog)
    assert dialog.formats() == ("safetensors", "onnx")
    assert dialog.estimate_label.text() == "Takes about 80 s on this computer."
    dialog.format_boxes["torchscript"].setChecked(True)
    assert asked[-1] == ("safetensors", "onnx", "torchscript")
    assert dialog.estimate_label.text() == "Takes about 2 min on this computer."
    assert (
        dialog.gate_note.text() == "<i>No validation images: INT8 files are compared with the model only.</i>"
    )


def test_the_dialog_offers_the_accuracy_limit_and_says_what_one_image_weighs(qtbot, tmp_path):
    dialog = ExportDialog(str(tmp_path / "m"), None, (), None, val_images=32, max_drop=1.0)
    qtbot.addWidget(dialog)
    assert dialog.max_drop.value() == 1.0
    assert "one image is 3.1 points, more than the limit" in dialog.gate_note.text()
    dialog.max_drop.setValue(5.0)
    assert dialog.gate_note.text() == "<i>With 32 validation images one image is 3.1 points.</i>"
