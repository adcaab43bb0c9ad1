"""A checkpoint of another folder never trains behind the folder the window shows."""

from __future__ import annotations

import shutil

import pytest
from PIL import Image

TIMEOUT = 120_000


def _five_classes(image_folder, root):
    shutil.copytree(image_folder, root)
    (root / "dots").mkdir()
    for i in range(20):
        Image.new("RGB", (32, 32), (10 * i, 200, 30)).save(root / "dots" / f"{i}.png")
    return root


@pytest.mark.slow
def test_a_checkpoint_of_another_folder_asks_and_never_trains_the_old_data(
    qtbot, window, image_folder, tmp_path, train_tiny
):
    train_tiny(qtbot, window, image_folder)
    ckpt = tmp_path / "four.pt"
    assert window.save_checkpoint_to(str(ckpt))
    qtbot.waitUntil(lambda: not window.busy, timeout=TIMEOUT)
    assert window._checkpoint_folder() == str(tmp_path)  # the next save or load opens where this went
    five = _five_classes(image_folder, tmp_path / "five")
    with qtbot.waitSignal(window.data_panel.verified, timeout=TIMEOUT):
        window.data_panel.load_folder(str(five))

    # Cancel: the checkpoint is left, Start trains the five classes shown.
    assert window.load_checkpoint_from(str(ckpt))
    qtbot.waitUntil(
        lambda: window.checkpoint_box is not None and window.checkpoint_box.isVisible(), timeout=TIMEOUT
    )
    box = window.checkpoint_box
    assert box.windowTitle() == "Checkpoint of another folder"
    assert str(image_folder) in box.text() and str(five) in box.text() and "4 classes" in box.text()
    box.button(box.StandardButton.Cancel).click()
    qtbot.waitUntil(lambda: not window.session.resuming, timeout=5_000)
    assert window.trainer is None and "Left the checkpoint" in window.log.toPlainText()
    window.start_training()
    qtbot.waitUntil(lambda: not window.busy and window.trainer is not None and window.trainer.epoch >= 1,
                    timeout=TIMEOUT)  # fmt: skip
    assert window.trainer.classes == ["circle", "dots", "square", "stripes", "triangle"]

    # Open its folder: the window shows the checkpoint's folder, and Start continues that run.
    assert window.load_checkpoint_from(str(ckpt))
    qtbot.waitUntil(
        lambda: window.checkpoint_box is not None and window.checkpoint_box is not box, timeout=TIMEOUT
    )
    opened = next(b for b in window.checkpoint_box.buttons() if b.text() == "Open its folder")
    with qtbot.waitSignal(window.data_panel.verified, timeout=TIMEOUT):
        opened.click()
    assert window.data_panel.scan.root == str(image_folder) and window.session.resuming
    assert window.session.resume_mismatch(window.data_panel.scan) is None
    resumed = window.trainer
    window.train_panel.epochs.setValue(2)
    window.start_training()
    qtbot.waitUntil(lambda: not window.busy, timeout=TIMEOUT)
    assert window.trainer is resumed and resumed.epoch == 2 and len(resumed.classes) == 4

    # The folder shown changes after the checkpoint loaded: a new folder trains afresh.
    assert window.load_checkpoint_from(str(ckpt))
    qtbot.waitUntil(lambda: not window.busy and window.session.resuming, timeout=TIMEOUT)
    with qtbot.waitSignal(window.data_panel.verified, timeout=TIMEOUT):
        window.data_panel.load_folder(str(five))
    assert not window.session.resuming
