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
    assert not panel.lr.isEnabled() and panel.lr.text() == "1e-03"  # greyed: the rate Start uses
    panel.set_lr_mode("set", 0.02)
    assert panel.lr.isEnabled() and panel.lr_note.text() == "Set by you: 2e-02"
    assert panel.lr.text() == "2e-02"
    window.model_panel.set_strategy("head")
    panel.set_lr_mode("default")
    assert panel.lr.text() == "3e-02" and not panel.lr.isEnabled()
    panel.set_lr_mode("set")
    assert panel.lr.text() == "2e-02"  # the user's own number comes back
    window.model_panel.set_strategy("full")
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


def test_the_rate_box_keeps_small_rates_and_steps_by_factors(qtbot):
    from ftgui.gui.widgets.rate_box import RateSpinBox

    box = RateSpinBox()
    qtbot.addWidget(box)
    box.setValue(1.4e-6)
    assert box.value() == pytest.approx(1.4e-6) and box.text() == "1.4e-06"  # not 0.000001
    box.setValue(1e-3)
    seen = []
    for _ in range(4):
        box.stepBy(1)
        seen.append(box.text())
    assert seen == ["2e-03", "5e-03", "1e-02", "2e-02"]
    box.setValue(3e-4)  # between grid points: down goes to the one below
    box.stepBy(-1)
    assert box.text() == "2e-04"
    box.lineEdit().selectAll()
    qtbot.keyClicks(box.lineEdit(), "3e-5")
    box.interpretText()
    assert box.value() == pytest.approx(3e-5)


def test_the_finder_dialog_offers_what_auto_would_take(qtbot):
    from ftgui.core.training.lr_finder import LRFinderResult
    from ftgui.gui.dialogs.lr_finder import LRFinderDialog

    lrs = [1e-7 * 10 ** (8 * i / 99) for i in range(100)]
    falling = [2.0] * 60 + [2.0 - 0.04 * i for i in range(30)] + [0.8 + 0.3 * i for i in range(10)]
    inside = LRFinderDialog(LRFinderResult(lrs, falling, 1e-2, False), None, "head")
    qtbot.addWidget(inside)
    assert inside.chosen_lr == 1e-2 and inside.use_button.text() == "Use 1.0e-02"
    far = LRFinderDialog(LRFinderResult(lrs, falling, 1e-6, False), None, "head")
    qtbot.addWidget(far)
    assert far.chosen_lr == pytest.approx(3e-3)  # kept within 10x of head's default
    assert "1.0e-06" in far.message.text() and "10\u00d7" in far.message.text()
    flat = LRFinderDialog(LRFinderResult(lrs, [2.0] * 100, None, False), None, "head")
    qtbot.addWidget(flat)
    assert flat.chosen_lr is None and not flat.use_button.isEnabled()
    assert "default for head: 3e-02" in flat.message.text()
