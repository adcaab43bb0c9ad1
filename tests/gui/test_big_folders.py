"""Opening a folder in the window: classes at once, header checks in the background."""

from __future__ import annotations

import shutil
import threading

import pytest
from PySide6.QtCore import Qt

from ftgui.core import headers


@pytest.fixture
def held_checks(monkeypatch):
    """The real header checks, each chunk waiting until the test lets it go (so a test sees
    the window while they run)."""
    gate = threading.Event()
    real = headers._check_chunk

    def held(root, chunk):
        gate.wait(60)
        return real(root, chunk)

    monkeypatch.setattr(headers, "_check_chunk", held)
    yield gate
    gate.set()


@pytest.fixture
def folder_with_a_broken_file(tmp_path, image_folder):
    data = tmp_path / "shapes"
    shutil.copytree(image_folder, data)
    first = sorted((data / "circle").iterdir())[0]
    (data / "circle" / "zz-broken.jpg").write_bytes(first.read_bytes()[:120])
    return data


def _counts(table):
    return {table.item(r, 0).text(): table.item(r, 1).text() for r in range(table.rowCount())}


def test_training_starts_while_the_images_are_checked(
    qtbot, window, drop, held_checks, folder_with_a_broken_file
):
    panel = window.data_panel
    with qtbot.waitSignal(panel.scanned, timeout=30_000):
        assert drop(qtbot, window, folder_with_a_broken_file)
    # Classes and counts are there at once; the checks go on with progress and Cancel.
    assert _counts(panel.table) == {"circle": "21", "square": "20", "triangle": "20", "stripes": "20"}
    assert panel.verifying and panel.progress.isVisible() and panel.cancel_button.isVisible()
    assert panel.progress.maximum() == 81 and "Checking images" in panel.progress.format()
    window.model_panel.set_weights("none")
    window.train_panel.epochs.setValue(1)
    window.train_panel.image_size.setValue(32)
    window.data_panel.val_fraction.setValue(0.05)
    assert window.train_panel.start_button.isEnabled()

    qtbot.mouseClick(window.train_panel.start_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: window.session.trained and not window.busy, timeout=120_000)
    assert panel.verifying  # training finished before the checks did
    log = window.log.toPlainText()
    assert "circle/zz-broken.jpg" in log  # skipped by the training, with its reason

    with qtbot.waitSignal(panel.verified, timeout=30_000):
        held_checks.set()
    items = [panel.skipped.item(i).text() for i in range(panel.skipped.count())]
    assert items == ["circle/zz-broken.jpg: truncated image file (it ends before the image data does)"]
    assert (
        panel.skipped.isVisible() and not panel.progress.isVisible() and not panel.cancel_button.isVisible()
    )
    assert _counts(panel.table)["circle"] == "20" and len(panel.scan.samples) == 80
    assert "Checked 81 images, 1 of them unusable" in window.log.toPlainText()


def test_cancel_keeps_what_was_checked(qtbot, window, drop, held_checks, folder_with_a_broken_file):
    panel = window.data_panel
    with qtbot.waitSignal(panel.scanned, timeout=30_000):
        assert drop(qtbot, window, folder_with_a_broken_file)
    assert panel.cancel_button.isEnabled()
    with qtbot.waitSignal(panel.verified, timeout=30_000) as verified:
        qtbot.mouseClick(panel.cancel_button, Qt.MouseButton.LeftButton)
        assert not panel.cancel_button.isEnabled()
        held_checks.set()
    scan = verified.args[0]
    assert 0 < scan.checked < 81 and len(scan.pending) == 81 - scan.checked
    assert "Stopped checking images" in window.log.toPlainText()
    assert not panel.cancel_button.isVisible()

    # Opening it again checks only what was left, and finds the broken file.
    with qtbot.waitSignal(panel.verified, timeout=30_000) as again:
        assert drop(qtbot, window, folder_with_a_broken_file)
    assert again.args[0].checked == 81 - scan.checked and not again.args[0].pending
    assert [p for p, _ in again.args[0].skipped] == ["circle/zz-broken.jpg"]
