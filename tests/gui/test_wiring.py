"""The window's wiring with a scripted trainer: what each engine event becomes on screen.

End-to-end runs with the real engine live in test_main_window.py; here the events are fixed,
so every line, label and button state can be checked exactly, and fast.
"""

import threading

from PySide6.QtCore import Qt

from ftgui.core.base import events as ev
from ftgui.core.base import report


class ScriptedTrainer:
    """Yields a fixed run; after the script, batches until Stop, then Cancelled (or Failed)."""

    def __init__(self, config, fail=None):
        self.config = config
        self.epoch = 0
        self.prepared = True
        self.fail = fail
        self.cancel_seen = threading.Event()
        self.script = [
            ev.Message(
                "info", "Learning rate: default for head: 3e-02 (a new head alone takes a high rate)."
            ),
            ev.RunStarted(("a", "b"), 8, 2, "cpu", 10, 100, 3, 0, 2),
            ev.BatchEnded(1, 1, 2, 1, 0.9, 0.03, 120.0, 5.0),
            ev.FileSkipped("a/broken.jpg", "not an image"),
            ev.BatchEnded(1, 2, 2, 2, 0.7, 0.03, 130.0, 4.0),
            ev.EpochEnded(1, 3, 0.8, 0.5, 0.6, 0.5, (0.5, 0.5), 0.03, 1.5, True),
            ev.BlocksUnfrozen(2, ("layer4",), 50),
        ]

    def run(self, cancel):
        yield from self.script
        if self.fail:
            yield ev.Failed(self.fail, 1)
            return
        step = 2
        while not cancel.cancelled:
            step += 1
            yield ev.BatchEnded(2, 1, 2, step, 0.6, 0.03, 125.0, 3.0)
            cancel._event.wait(0.01)
        self.cancel_seen.set()
        yield ev.Cancelled(1)


def _start_scripted(qtbot, window, image_folder, drop, **kw):
    with qtbot.waitSignal(window.data_panel.verified, timeout=30_000):
        assert drop(qtbot, window, image_folder)
    window.model_panel.set_weights("none")  # Start waits while the default weights are out of reach
    scripted = ScriptedTrainer(window.build_config(), **kw)
    window.session.new_trainer = lambda config: scripted  # the one seam: which trainer runs
    qtbot.mouseClick(window.train_panel.start_button, Qt.MouseButton.LeftButton)
    assert window.training and window.busy
    return scripted


def test_each_event_is_rendered_and_stop_ends_the_run(qtbot, window, image_folder, drop):
    scripted = _start_scripted(qtbot, window, image_folder, drop)
    qtbot.waitUntil(lambda: window.plot.point_count >= 2 + 1 + 3, timeout=10_000)
    log = window.log.toPlainText()
    lines = [report.describe(e) for e in scripted.script if not isinstance(e, ev.BatchEnded)]
    for _level, text in lines:
        assert text in log, text
    assert "⚠ Skipped a/broken.jpg: not an image" in log
    assert (
        window.train_panel.lr_note.text()
        == "This run: default for head: 3e-02 (a new head alone takes a high rate)"
    )
    assert window.speed_label.text() == "125 images/s · loss 0.6000 · lr 0.03"
    assert not window.model_panel.isEnabled() and not window.export_action.isEnabled()
    assert window.train_panel.stop_button.isEnabled() and not window.train_panel.start_button.isEnabled()

    qtbot.mouseClick(window.train_panel.stop_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: not window.busy, timeout=10_000)
    assert scripted.cancel_seen.is_set()
    assert "Stopped after 1 complete epoch(s)" in window.log.toPlainText()
    assert window.train_panel.progress.format() == "Stopped · 1 epoch(s) done"
    assert window.train_panel.start_button.isEnabled() and window.model_panel.isEnabled()
    assert window.speed_label.text() == ""
    assert window.last_error_box is None


def test_a_failed_run_shows_its_first_paragraph_and_logs_all(qtbot, window, image_folder, drop):
    _start_scripted(qtbot, window, image_folder, drop, fail="Out of memory during training.\n\nDetails here")
    qtbot.waitUntil(lambda: not window.busy, timeout=10_000)
    assert (
        window.last_error_box is not None and window.last_error_box.text() == "Out of memory during training."
    )
    assert "Details here" in window.log.toPlainText()
    assert window.train_panel.progress.format() == "Failed"
    assert window.train_panel.start_button.isEnabled()


def test_the_cache_fill_is_its_own_step_on_the_progress_bar(qtbot, window, image_folder, drop):
    with qtbot.waitSignal(window.data_panel.verified, timeout=30_000):
        assert drop(qtbot, window, image_folder)
    window.model_panel.set_weights("none")
    filled = threading.Event()

    class Filling(ScriptedTrainer):
        def run(self, cancel):
            yield ev.Preparing("caching", 5, 10)
            filled.wait(10)
            yield from super().run(cancel)

    filling = Filling(window.build_config())
    filling.script = []
    window.session.new_trainer = lambda config: filling
    qtbot.mouseClick(window.train_panel.start_button, Qt.MouseButton.LeftButton)
    panel = window.train_panel
    qtbot.waitUntil(lambda: panel.progress.format().startswith("Caching"), timeout=10_000)
    assert panel.progress.format() == "Caching frozen layers 5/10 · %p%"
    assert panel.progress.value() == 5 and panel.progress.maximum() == 10
    assert panel.eta.text() == "ETA once the first batches have run"
    filled.set()
    qtbot.waitUntil(lambda: panel.progress.format().startswith("Epoch 2/"), timeout=10_000)
    assert panel.eta.text() == "ETA 0:03"
    qtbot.mouseClick(panel.stop_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: not window.busy, timeout=10_000)
