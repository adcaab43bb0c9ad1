"""The Compare tab, driven as a user would: tick, Start, watch, pick, use, stop."""

from PySide6.QtCore import Qt

from ftgui.core.runs import list_runs


def _ready(qtbot, window, image_folder, drop):
    with qtbot.waitSignal(window.data_panel.scanned, timeout=30_000):
        assert drop(qtbot, window, image_folder)
    window.model_panel.set_weights("none")
    window.train_panel.epochs.setValue(2)
    window.train_panel.batch_size.setValue(32)
    window.train_panel.image_size.setValue(32)
    panel = window.compare_panel
    window.tabs.setCurrentWidget(panel)
    for key, box in panel.boxes.items():
        box.setChecked(key in ("head", "full"))
    return panel


def test_compare_two_layouts_then_use_one(qtbot, window, image_folder, drop):
    panel = _ready(qtbot, window, image_folder, drop)
    qtbot.mouseClick(panel.start_button, Qt.MouseButton.LeftButton)
    assert window.busy and not panel.start_button.isEnabled() and panel.stop_button.isEnabled()
    qtbot.waitUntil(lambda: not window.busy, timeout=120_000)
    assert list(panel.curves) == ["head", "full"]
    assert all(len(xs) == 2 for xs, _, _ in panel.points.values())  # a point per epoch per candidate
    assert panel.table.rowCount() == 2
    names = {panel.table.item(r, 0).data(Qt.ItemDataRole.UserRole) for r in range(2)}
    assert names == {"head", "full"}
    assert panel.recommended in names and panel.selected() == panel.recommended
    assert panel.use_button.isEnabled()  # the recommended candidate, ready to use
    assert panel.recommendation.text().startswith("<b>Recommended:</b> " + panel.recommended)
    row = next(
        r for r in range(2) if panel.table.item(r, 0).data(Qt.ItemDataRole.UserRole) == panel.recommended
    )
    assert panel.table.item(row, 0).font().bold()
    assert "[head] Epoch 2/2" in window.log.toPlainText() and "Comparison: " in window.log.toPlainText()
    assert {r.candidate for r in list_runs(image_folder)} == {"head", "full"}

    # Use the other one: Try, Evaluate and Export now work on it.
    other = next(n for n in names if n != panel.recommended)
    panel.select(other)
    assert panel.use_button.isEnabled()
    qtbot.mouseClick(panel.use_button, Qt.MouseButton.LeftButton)
    assert window.trainer is window.comparison.trainers[other]
    assert window.trainer.config.strategy == other
    qtbot.waitUntil(lambda: not window.busy and window.eval_panel.evaluation is not None, timeout=60_000)
    assert "just trained" in window.try_panel.model_label.text() and window.export_action.isEnabled()


def test_stop_ends_a_comparison(qtbot, window, image_folder, drop):
    panel = _ready(qtbot, window, image_folder, drop)
    window.train_panel.epochs.setValue(50)
    qtbot.mouseClick(panel.start_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: "head" in panel.points, timeout=60_000)  # an epoch of the first candidate
    qtbot.mouseClick(panel.stop_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: not window.busy, timeout=60_000)
    status = {s.name: s.status for s in panel.summaries.values()}
    assert status["head"] == "stopped" and status.get("full", "not run") == "not run"
    assert panel.start_button.isEnabled() and not panel.stop_button.isEnabled()
