"""The window with hostile input: odd file names, unusable export folders, missing extras."""

from __future__ import annotations

import os
import sys

import pytest
from PIL import Image
from PySide6.QtCore import Qt

from ftgui.gui.dialogs.export import ExportDialog
from ftgui.gui.main_window import MainWindow
from ftgui.gui.widgets.rows_model import cell_text


def _load(qtbot, window, folder):
    with qtbot.waitSignal(window.data_panel.verified, timeout=30_000):
        window.data_panel.load_folder(str(folder))


def _train(qtbot, window, epochs=1):
    window.model_panel.set_weights("none")
    window.model_panel.set_strategy("head")
    window.train_panel.epochs.setValue(epochs)
    window.train_panel.batch_size.setValue(8)
    window.train_panel.image_size.setValue(32)
    window.start_training()
    qtbot.waitUntil(lambda: not window.busy, timeout=120_000)


@pytest.mark.skipif(sys.platform != "linux", reason="only Linux allows any bytes in file names")
def test_names_that_are_not_utf8_show_readably_and_train(qtbot, window, tmp_path):
    root = tmp_path / "data"
    bad_class = os.fsdecode(b"caf\xe9")
    for cls, color in ((bad_class, (220, 20, 20)), ("plain", (20, 20, 220))):
        (root / cls).mkdir(parents=True)
        for i in range(6):
            name = os.fsdecode(b"x\xff%d.png" % i)
            Image.new("RGB", (32, 32), color).save(root / cls / name)
    _load(qtbot, window, root)
    assert cell_text(window.data_panel.table, 0, 0) == "caf\\xe9"  # Qt would cut it to "caf"
    _train(qtbot, window)
    assert "Finished 1 epochs" in window.log.toPlainText()
    qtbot.waitUntil(lambda: window.eval_panel.evaluation is not None, timeout=60_000)
    confusion = window.eval_panel.confusion
    assert confusion.horizontalHeaderItem(0).text() == "caf\\xe9"
    ev = window.eval_panel.evaluation
    cell = next((0, j) for j in range(2) if ev.confusion[0][j])
    confusion.cellClicked.emit(*cell)
    listed = [window.eval_panel.cell_images.item(i) for i in range(window.eval_panel.cell_images.count())]
    assert listed and all("\\xff" in item.text() for item in listed)
    # The path behind each row keeps its real bytes (a QString would have lost them).
    assert all(os.path.isfile(window.eval_panel.path_of(item)) for item in listed)
    out = tmp_path / "model"
    assert window.export_to(str(out))
    qtbot.waitUntil(lambda: not window.busy, timeout=60_000)
    assert window.open_bundle(str(out))
    qtbot.waitUntil(lambda: not window.busy, timeout=60_000)
    assert window.bundle.classes[0] == bad_class


@pytest.mark.slow
def test_export_to_unusable_folders_shows_a_message(qtbot, window, image_folder, tmp_path):
    _load(qtbot, window, image_folder)
    _train(qtbot, window)
    (tmp_path / "file").write_text("x")
    for target, message in [
        (tmp_path / "file", "is a file; give a folder"),
        (tmp_path / "file" / "sub", "is a file, not a folder"),
        (image_folder / "circle" / "export", "inside the class folder 'circle'"),
    ]:
        assert not window.export_to(str(target))
        box = window.last_error_box
        assert box.windowTitle() == "Cannot export there" and message in box.text()
        box.close()
    assert not (image_folder / "circle" / "export").exists()
    assert not window.save_checkpoint_to(str(tmp_path / "file" / "ckpt.pt"))
    assert "is a file, not a folder" in window.last_error_box.text()
    from ftgui.core.base.files import OutputLock

    lock = OutputLock(tmp_path / "busy").acquire("ftgui-train data --out busy")
    assert not window.export_to(str(tmp_path / "busy"))
    assert "in use by another ftgui run" in window.last_error_box.text()
    lock.release()
    assert window.export_to(str(tmp_path / "good"))
    qtbot.waitUntil(lambda: not window.busy, timeout=60_000)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file", "ftgui.ini", "good"]  # no lock or temporary


@pytest.mark.slow
def test_export_dialog_says_how_to_get_onnx_when_it_is_missing(qtbot, window, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnxscript", None)  # as if it were not installed
    dialog = ExportDialog(str(window.settings.fileName()), window)
    qtbot.addWidget(dialog)
    assert not dialog.onnx.isEnabled() and "not installed" in dialog.onnx.text()
    assert "pip install 'ftgui[onnx]'" in dialog.onnx.toolTip()
    monkeypatch.undo()
    pytest.importorskip("onnxscript", reason="the onnx extra is not installed")
    pytest.importorskip("onnxruntime", reason="the onnx extra is not installed")
    dialog = ExportDialog("x", window)
    qtbot.addWidget(dialog)
    assert dialog.onnx.isEnabled()
    dialog.onnx.setCheckState(Qt.CheckState.Checked)
    assert dialog.formats() == ("safetensors", "onnx")


SETTING_KEYS = [
    "window/geometry", "window/size", "window/screen", "data/last_folder", "data/val_fraction",
    "model/arch", "model/freeze", "job/last_folder", "export/last_folder", "checkpoint/last_folder",
    "fixes/confirmed_move", "fixes/confirmed_exclude",
    *(f"training/{k}" for k in ("epochs", "batch_size", "lr_mode", "lr", "image_size", "augment",
                                "early_stopping", "checkpoint_every_epoch", "tensorboard", "optimizer",
                                "schedule", "device", "weight_decay", "val_fraction")),
]  # fmt: skip
SETTING_VALUES = [
    "", "garbage", "-1", "0", "1e309", "nan", "-inf", "99999999999999999999", "true", "@Invalid()",
    "@ByteArray(\\0\\0\\xff)", "@Size(-5 -5)", "@Size(100000 100000)", "@Rect(0 0 -1 -1)", "[1, 2]",
    '{"unit": 5}', "null", "/no/such/folder", "\\x00", "é" * 300,
]  # fmt: skip


@pytest.mark.parametrize("value", SETTING_VALUES)
def test_the_window_opens_whatever_its_settings_file_holds(qtbot, tmp_path, value):
    """A settings file edited by hand, from another version or damaged: every key the window
    reads holding the same odd value. The window opens, usable, with defaults where needed."""
    from PySide6.QtCore import QSettings

    ini = tmp_path / "ftgui.ini"
    ini.write_text("[General]\n" + "".join(f"{key}={value}\n" for key in SETTING_KEYS), encoding="utf-8")
    settings = QSettings(str(ini), QSettings.Format.IniFormat)
    w = MainWindow(settings=settings)
    qtbot.addWidget(w)
    w.show()
    w.start_background_init()
    qtbot.waitUntil(lambda: w.ready, timeout=60_000)
    assert w.isVisible() and 100 <= w.width() <= 100_000 and w.train_panel.epochs.value() >= 1
    w.jobs.shutdown()
    w.close()
