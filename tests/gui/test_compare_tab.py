"""The Compare tab, driven as a user would: tick, Start, watch, pick, use, stop."""

import pytest
from PySide6.QtCore import Qt

from ftgui.core.workflows.runs import list_runs


def _ready(qtbot, window, image_folder, drop):
    with qtbot.waitSignal(window.data_panel.verified, timeout=30_000):
        assert drop(qtbot, window, image_folder)
    window.model_panel.set_weights("none")
    window.train_panel.epochs.setValue(2)
    window.train_panel.batch_size.setValue(32)
    window.train_panel.image_size.setValue(32)
    panel = window.compare_panel
    assert panel.repeats.value() == 5  # a small folder: five folds by default
    panel.repeats.setValue(1)  # one split here, as before folds (the fold test below sets 2)
    window.tabs.setCurrentWidget(panel)
    for key, box in panel.boxes.items():
        box.setChecked(key in ("head", "full"))
    return panel


@pytest.mark.slow
def test_a_comparison_over_folds_gives_means_intervals_and_a_verdict(qtbot, window, image_folder, drop):
    panel = _ready(qtbot, window, image_folder, drop)
    window.train_panel.epochs.setValue(1)
    panel.repeats.setValue(2)
    assert panel.repeats_note.text() == "2× the time of one"
    qtbot.mouseClick(panel.start_button, Qt.MouseButton.LeftButton)
    assert not panel.repeats.isEnabled()
    qtbot.waitUntil(lambda: not window.busy, timeout=180_000)
    text = panel.recommendation.text()
    assert text.startswith("<b>Over 2 folds</b>") and "<b>Recommended:</b> " in text
    assert "best" in text and ("≈ not real" in text or " real" in text)
    assert panel.recommended in ("head", "full") and panel.selected() == panel.recommended
    log = window.log.toPlainText()
    assert "Fold 1 of 2 took" in log and "Over the folds: " in log
    assert len(panel.points["head"][0]) == 1  # the curves are the first fold's
    assert {r.candidate for r in list_runs(image_folder)} == {"head", "full"}  # the first fold's runs


@pytest.mark.slow
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
    assert window.try_panel.predictor.model is window.comparison.trainers[other].model  # Try uses it


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


@pytest.mark.slow
def test_runs_tab_lists_overlays_reopens_and_deletes(qtbot, window, image_folder, drop, tmp_path):
    from ftgui.cli import train_main

    args = [str(image_folder), "--weights", "none", "--image-size", "32", "--epochs", "2", "--no-evaluate"]
    assert train_main([*args, "--out", str(tmp_path / "exported"), "--strategy", "head"]) == 0
    panel = _ready(qtbot, window, image_folder, drop)
    qtbot.mouseClick(panel.start_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: not window.busy, timeout=120_000)
    runs = window.runs_panel
    window.tabs.setCurrentWidget(runs)
    assert runs.table.rowCount() == 3 and "3 run(s)" in runs.title.text()
    sources = {runs.table.item(r, 6).text() for r in range(3)}
    assert sources == {"ftgui-train", "window compare"}

    runs.table.selectAll()  # overlay all three
    assert len(runs.loss_plot.listDataItems()) == 3 and not runs.reopen_button.isEnabled()

    row = next(r for r in range(3) if runs.table.item(r, 6).text() == "ftgui-train")
    runs.table.clearSelection()
    runs.table.selectRow(row)
    qtbot.mouseClick(runs.reopen_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: not window.busy, timeout=60_000)
    assert window.tabs.currentIndex() == 0 and len(window.plot.epoch_x) == 2
    assert "from " + str(tmp_path / "exported") in window.try_panel.model_label.text()

    window.tabs.setCurrentWidget(runs)
    runs.table.selectRow(row)
    qtbot.mouseClick(runs.delete_button, Qt.MouseButton.LeftButton)
    assert runs.table.rowCount() == 2 and len(list_runs(image_folder)) == 2
    assert (tmp_path / "exported" / "model.json").is_file()  # the model stays


@pytest.mark.slow
def test_tensorboard_checkbox_logs_runs_and_candidates(qtbot, window, image_folder, drop):
    import pytest

    pytest.importorskip("tensorboard", reason="the tensorboard extra is not installed")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from ftgui.core.base.paths import data_dir

    panel = _ready(qtbot, window, image_folder, drop)
    assert window.train_panel.tensorboard.isEnabled()
    window.train_panel.tensorboard.setChecked(True)
    qtbot.mouseClick(window.train_panel.start_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: window.session.trained and not window.busy, timeout=120_000)
    qtbot.mouseClick(panel.start_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: not window.busy and bool(panel.summaries), timeout=120_000)
    folders = sorted((data_dir() / "tensorboard").iterdir())
    assert len(folders) == 2 and all(f.name.startswith(image_folder.name + "-") for f in folders)
    single = next(f for f in folders if "-compare-" not in f.name)
    compared = next(f for f in folders if "-compare-" in f.name)
    acc = EventAccumulator(str(single))
    acc.Reload()
    assert len(acc.Scalars("loss/val")) == 2  # two epochs
    assert sorted(p.name for p in compared.iterdir()) == ["full", "head"]
    assert f"TensorBoard log: {single}" in window.log.toPlainText()


@pytest.mark.slow
def test_rank_backbones_then_use_the_pick(qtbot, window, image_folder, drop):
    pytest.importorskip("timm")
    pytest.importorskip("cleanlab")
    panel = _ready(qtbot, window, image_folder, drop)
    panel.backbones.setText("resnet18, timm:test_vit.r160_in1k, timm:no_such.x")
    qtbot.mouseClick(panel.rank_button, Qt.MouseButton.LeftButton)
    assert window.busy and not panel.rank_button.isEnabled()
    qtbot.waitUntil(lambda: not window.busy and panel.backbone_table.rowCount() == 3, timeout=120_000)
    table = panel.backbone_table
    archs = [table.item(r, 0).data(Qt.ItemDataRole.UserRole) for r in range(3)]
    assert archs[-1] == "timm:no_such.x" and table.item(2, 1).text() == "failed"
    assert set(archs[:2]) == {"resnet18", "timm:test_vit.r160_in1k"}
    assert table.item(0, 0).font().bold() and panel.backbone_pick.text().startswith(
        f"<b>Backbones:</b> Use {archs[0]} (random weights)"
    )
    assert table.item(0, 0).text() == f"{archs[0]} (random weights)"
    assert "These are random weights" in panel.backbone_pick.text()
    window.resize(1280, 800)
    qtbot.wait(50)
    assert table.viewport().height() >= 3 * table.verticalHeader().defaultSectionSize()  # every row shows
    log = window.log.toPlainText()
    assert "[timm:test_vit.r160_in1k] linear probe" in log and "[timm:no_such.x] Unknown timm model" in log
    table.selectRow(1)
    qtbot.mouseClick(panel.use_backbone_button, Qt.MouseButton.LeftButton)
    assert window.model_panel.arch == archs[1] and panel.rank_button.isEnabled()
    assert window.model_panel.weights == "none"  # as ranked: not pretrained weights out of reach


@pytest.mark.slow
def test_the_folds_box_says_how_long_before_it_starts(qtbot, window, image_folder, drop):
    """With no earlier run to time it by, relative; after one comparison, in minutes and
    seconds from this dataset's runs, for the ticked layouts, the epochs and the folds set."""
    panel = _ready(qtbot, window, image_folder, drop)
    window.train_panel.epochs.setValue(1)
    assert panel.repeats_note.text() == "one split"
    panel.repeats.setValue(3)
    assert panel.repeats_note.text() == "3× the time of one"
    panel.repeats.setValue(1)
    qtbot.mouseClick(panel.start_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: not window.busy, timeout=120_000)
    first = window.comparison_estimate(["head", "full"], 1)
    runs = {r.strategy: r for r in list_runs(image_folder)}
    assert first == pytest.approx(runs["head"].seconds + runs["full"].seconds)
    assert panel.repeats_note.text().startswith("about ") and panel.repeats_note.text().endswith(" in all")
    window.train_panel.epochs.setValue(4)  # four times the epochs, five folds: twenty times as long
    panel.repeats.setValue(5)
    assert window.comparison_estimate(["head", "full"], 5) == pytest.approx(20 * first)
    panel.boxes["last-1"].setChecked(True)  # never run here: no estimate in seconds
    assert panel.repeats_note.text() == "5× the time of one"
    panel.boxes["last-1"].setChecked(False)
    window.train_panel.epochs.setValue(1)
    panel.repeats.setValue(3)
    shown = window.comparison_estimate(["head", "full"], 3)
    assert shown is not None and panel.repeats_note.text().startswith("about ")
    qtbot.mouseClick(panel.start_button, Qt.MouseButton.LeftButton)  # accepts the estimate shown
    qtbot.waitUntil(lambda: not window.busy, timeout=120_000)
    from ftgui.core.base.report import duration

    assert f"3 folds, at most the {duration(shown)} estimated" in window.log.toPlainText()
    assert panel.recommendation.text().startswith("<b>Over ")  # however many folds fitted
