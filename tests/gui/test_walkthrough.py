"""What a new user met in a full walk-through of the window at 1280x800, each case as they met
it: stale labels and states after an action, wording that said the wrong thing."""

from __future__ import annotations

from PySide6.QtTest import QTest

from ftgui.core.base import events as ev
from ftgui.core.base import report


def test_the_finished_line_names_the_epoch_kept_and_why():
    """'Finished · best val acc 84.4 %' after an epoch at 93.8 %: the accuracy is the kept
    epoch's (lowest validation loss), which the words must say."""
    done = ev.Finished(5, 2, 0.41, 0.844, False)
    assert report.short_status(done) == "Finished · kept epoch 2 (lowest validation loss): 84.4%"
    assert report.describe(done) == (
        "info",
        "Finished 5 epochs; kept epoch 2 (lowest validation loss): 84.4%",
    )
    assert report.short_status(ev.Finished(3, None, None, None, False)) == "Finished"


def test_the_model_box_never_keeps_text_that_is_not_the_model(qtbot, window):
    combo = window.model_panel.arch_combo
    line = combo.lineEdit()
    assert window.model_panel.arch == "resnet18"
    combo.setFocus()
    line.selectAll()
    QTest.keyClicks(line, "mobilenet")  # matches several models: none is chosen
    line.editingFinished.emit()
    assert window.model_panel.arch == "resnet18"
    assert combo.currentText() == combo.itemText(combo.currentIndex())
    assert combo.currentText().startswith("resnet18")
    line.selectAll()
    QTest.keyClicks(line, "mobilenet_v3_small")  # one model's name: it is chosen
    line.editingFinished.emit()
    assert window.model_panel.arch == "mobilenet_v3_small"
    assert combo.currentText().startswith("mobilenet_v3_small")


def test_a_refused_weights_file_leaves_a_usable_panel(qtbot, window, tmp_path):
    bad = tmp_path / "weights.pth"
    bad.write_bytes(b"not a checkpoint")
    panel = window.model_panel
    assert panel.use_weights_file(str(bad))
    qtbot.waitUntil(lambda: window.last_error_box is not None, timeout=30_000)
    qtbot.waitUntil(lambda: not window.busy, timeout=10_000)
    assert window.last_error_box.windowTitle() == "Unusable weights file"
    window.last_error_box.close()
    assert panel.isEnabled() and panel.tree.isEnabled()
    assert panel.weights == panel.weights_combo.currentData()  # the combo shows what is used
    assert panel.skeleton is not None and panel.tree.item_for("fc") is not None


def test_the_examples_fallback_does_not_follow_the_user_to_the_next_folder(qtbot, window, image_folder):
    panel, train = window.model_panel, window.train_panel
    panel.set_strategy("head")
    train.image_size.setValue(0)
    before = (panel.weights, panel.strategy_key, train.image_size.value())
    with qtbot.waitSignal(window.data_panel.verified, timeout=60_000):
        window.open_example()
    if before[0] == "none" or panel.weights_state in ("cached", "download"):
        return  # weights available: no fallback was needed
    assert (panel.weights, panel.strategy_key, train.image_size.value()) == ("none", "full", 64)
    with qtbot.waitSignal(window.data_panel.verified, timeout=60_000):
        window.data_panel.load_folder(str(image_folder))
    assert (panel.weights, panel.strategy_key, train.image_size.value()) == before
    assert "settings from before the example dataset" in window.log.toPlainText()


def test_try_forgets_the_old_models_results_when_another_model_opens(
    qtbot, window, image_folder, tmp_path, train_tiny
):
    from ftgui.core.bundle.predict import Predictor

    train_tiny(qtbot, window, image_folder)
    assert window.export_to(str(tmp_path / "m"))
    qtbot.waitUntil(lambda: not window.busy, timeout=60_000)
    window.export_box.close()
    images = [str(p) for p in sorted((image_folder / "circle").iterdir())[:2]]
    assert window.try_panel.try_images(images)
    qtbot.waitUntil(lambda: len(window.try_panel.rows) == 2 and not window.busy, timeout=30_000)
    assert window.open_bundle(str(tmp_path / "m"))
    qtbot.waitUntil(lambda: not window.busy, timeout=30_000)
    assert isinstance(window.try_panel.predictor, Predictor)
    assert "from " in window.try_panel.model_label.text()
    assert window.try_panel.rows == []  # the results were the other model's
    assert "drop images again" in window.try_panel.drop_label.text()


def test_keyboard_start_stop_and_tab_order(qtbot, window, image_folder):
    train = window.train_panel
    assert not train.start_button.isEnabled()  # no dataset yet: nothing to start
    assert train.start_button.shortcut().toString() == "Ctrl+Return"
    assert train.stop_button.shortcut().toString() == "Ctrl+."
    with qtbot.waitSignal(window.data_panel.verified, timeout=60_000):
        window.data_panel.load_folder(str(image_folder))
    window.model_panel.set_weights("none")  # the default weights are out of reach in tests
    assert train.start_button.isEnabled()
    table = window.data_panel.classes.view
    assert not table.tabKeyNavigation()  # Tab leaves the table: one stop, not one per cell


def test_file_dialogs_open_beside_the_open_dataset(qtbot, window, image_folder, tmp_path, monkeypatch):
    from PySide6.QtWidgets import QFileDialog

    from ftgui.gui.settings import dialog_folder

    assert dialog_folder(None, tmp_path / "missing", tmp_path) == str(tmp_path)
    with qtbot.waitSignal(window.data_panel.verified, timeout=60_000):
        window.data_panel.load_folder(str(image_folder))
    seen = []
    monkeypatch.setattr(QFileDialog, "getExistingDirectory", lambda *a: seen.append(a[2]) or "")
    monkeypatch.setattr(QFileDialog, "getOpenFileNames", lambda *a: seen.append(a[2]) or ([], ""))
    window._on_open_bundle_triggered()
    window.try_panel._on_choose_clicked()
    window.open_classify_folder()._on_choose_clicked()
    window.classify_dialog.close()
    assert seen == [str(image_folder.parent), str(image_folder), str(image_folder.parent)]


def test_runs_mark_a_run_that_was_stopped(qtbot, window, image_folder, tmp_path, monkeypatch):
    from ftgui.core.workflows.runs import list_runs

    with qtbot.waitSignal(window.data_panel.verified, timeout=60_000):
        window.data_panel.load_folder(str(image_folder))
    window.model_panel.set_weights("none")
    window.train_panel.epochs.setValue(30)
    window.train_panel.batch_size.setValue(16)
    window.train_panel.image_size.setValue(32)
    window.start_training()
    qtbot.waitUntil(lambda: "Epoch 1/30" in window.log.toPlainText(), timeout=60_000)
    window.stop_training()
    qtbot.waitUntil(lambda: not window.busy, timeout=60_000)
    (run,) = list_runs(image_folder)
    assert run.ended == "stopped"
    table = window.runs_panel.table
    epochs = table.item(0, 3)
    assert epochs.text() == f"{run.epochs}/30 · stopped"
    assert "stopped" in epochs.toolTip()


def test_message_boxes_do_not_pile_up_over_hours(qtbot, window):
    """Each error (and each export's confirmation) made a box owned by the window that was never
    deleted: hundreds over a long session. One is kept."""
    from PySide6.QtCore import QCoreApplication, QEvent
    from PySide6.QtWidgets import QMessageBox

    for i in range(5):
        window.show_error("Trouble", f"number {i}")
        window.last_error_box.close()
    QCoreApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete)
    assert len(window.findChildren(QMessageBox)) == 1
    assert window.last_error_box.text() == "number 4"
