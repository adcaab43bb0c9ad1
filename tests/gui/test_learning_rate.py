"""The window says which learning rate Start will use, and why; the run reports the one it used."""

from __future__ import annotations

import pytest


@pytest.mark.slow
def test_the_learning_rate_note_follows_the_strategy_and_the_run(qtbot, window, image_folder):
    panel = window.train_panel
    assert panel.lr_mode_key == "default" and not panel.lr.isEnabled()
    window.model_panel.set_strategy("head")
    assert panel.lr_note.text() == "The default for head: 3e-02 (a new head alone takes a high rate)."
    window.model_panel.set_strategy("last", blocks=1)
    assert panel.lr_note.text() == "The default for last-1: 3e-03 (one block adapts with the new head)."
    panel.set_lr_mode("auto")
    assert panel.lr_note.text().startswith("Auto runs the range test for a head alone; here: the default")
    window.model_panel.set_strategy("head")
    assert panel.lr_note.text().startswith("Auto: a range test at Start picks the rate")
    window.model_panel.set_strategy("full")
    assert "default for full: 1e-03" in panel.lr_note.text()
    panel.set_lr_mode("set", 0.02)
    assert panel.lr.isEnabled() and panel.lr_note.text() == "Set by you: 0.02"
    panel.set_lr_mode("auto")

    with qtbot.waitSignal(window.data_panel.verified, timeout=30_000):
        window.data_panel.load_folder(str(image_folder))
    window.model_panel.set_weights("none")
    window.model_panel.set_strategy("head")
    panel.epochs.setValue(2)
    panel.image_size.setValue(32)
    assert window.build_config().lr == "auto"
    window.start_training()
    qtbot.waitUntil(lambda: not window.busy, timeout=120_000)
    note = panel.lr_note.text()
    assert note.startswith("This run: ") and "auto:" in note, note
    log = window.log.toPlainText()
    assert f"Learning rate: {window.trainer.config.lr_note}." in log
    assert note == f"This run: {window.trainer.config.lr_note}"
    assert window.trainer.config.lr == pytest.approx(float(note.split()[3]), rel=0.05)
