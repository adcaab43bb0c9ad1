"""The window's data-quality tools, driven as a user would: Check data finds images put in the
wrong class folder, Move to the model's class fixes them (asked once), Edit → Undo puts them
back byte for byte; heat-map toggles in Try and the worst mistakes; Classify a folder."""

from __future__ import annotations

import csv
import hashlib
import random
import shutil

import pytest
from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication, QMessageBox

from ftgui.core.data.example import EXAMPLE_CLASSES, make_example_dataset
from ftgui.gui.widgets.rows_model import cell_text

pytest.importorskip("cleanlab")
pytest.importorskip("captum")


def _answer_yes():
    def answer():
        box = QApplication.activeModalWidget()
        if isinstance(box, QMessageBox):
            box.button(QMessageBox.StandardButton.Yes).click()
        else:
            QTimer.singleShot(50, answer)

    QTimer.singleShot(50, answer)


def _snapshot(root):
    return {
        p.relative_to(root).as_posix(): (hashlib.sha256(p.read_bytes()).hexdigest(), p.stat().st_mtime_ns)
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def _counts(window):
    table = window.data_panel.table
    return {cell_text(table, r, 0): int(cell_text(table, r, 1)) for r in range(table.model().rowCount())}


def _open(qtbot, window, folder, drop, size=64):
    with qtbot.waitSignal(window.data_panel.verified, timeout=30_000):
        assert drop(qtbot, window, folder)
    window.model_panel.set_weights("none")
    window.train_panel.image_size.setValue(size)


def _train(qtbot, window, epochs=2):
    window.model_panel.set_strategy("full")
    window.train_panel.epochs.setValue(epochs)
    window.train_panel.batch_size.setValue(16)
    window.start_training()
    qtbot.waitUntil(lambda: window.trainer is not None and window.trainer.epoch >= epochs, timeout=120_000)
    qtbot.waitUntil(lambda: not window.busy and window.eval_panel.evaluation is not None, timeout=120_000)


@pytest.mark.slow
def test_check_data_finds_misfiled_images_and_move_and_undo_round_trip(qtbot, window, tmp_path, drop):
    data = make_example_dataset(tmp_path / "shapes", per_class=60, size=64, seed=2)
    rng = random.Random(0)
    misfiled = {}
    for cls in EXAMPLE_CLASSES:
        name = f"{cls}_{rng.randrange(60):04d}.jpg"
        wrong = EXAMPLE_CLASSES[(EXAMPLE_CLASSES.index(cls) + 1) % 4]
        (data / cls / name).rename(data / wrong / name)
        misfiled[f"{wrong}/{name}"] = cls
    _open(qtbot, window, data, drop)
    before = _snapshot(data)
    assert window.check_action.isEnabled() and not window.undo_action.isEnabled()

    dialog = window.open_check_data()  # checks the open dataset at once
    qtbot.waitUntil(lambda: dialog.report is not None and not window.busy, timeout=120_000)
    labels = {f.path: f for f in dialog.report.of_kind("label")}
    found = set(labels) & set(misfiled)
    assert len(found) >= 3, f"found {sorted(found)} of {sorted(misfiled)}"
    assert dialog.table.rowCount() == len(dialog.report.findings) > 0
    assert dialog.table.item(0, 0).icon().isNull() is False  # a thumbnail

    dialog.kind.setCurrentIndex(dialog.kind.findData("label"))
    assert {f.kind for f in dialog.rows} == {"label"}
    target = sorted(found)[0]
    row = [f.path for f in dialog.rows].index(target)
    dialog.table.selectRow(row)
    assert labels[target].suggested == misfiled[target]
    assert dialog.move_suggested_button.text() == f"Move to {misfiled[target]}"
    was = _counts(window)
    _answer_yes()  # the first move asks once
    with qtbot.waitSignal(window.data_panel.verified, timeout=30_000):  # the class table updates
        dialog.move_suggested_button.click()
    name = target.split("/")[1]
    assert (data / misfiled[target] / name).is_file() and not (data / target).exists()
    assert target not in {f.path for f in dialog.rows}
    now, right, wrong = _counts(window), misfiled[target], target.split("/")[0]
    assert (now[right], now[wrong]) == (was[right] + 1, was[wrong] - 1)
    assert (
        window.undo_action.isEnabled()
        and window.undo_action.text() == f"&Undo Move 1 image to {misfiled[target]}"
    )

    after_move = _snapshot(data)
    dialog.table.selectRow(0)
    excluded = dialog.selected()[0].path
    with qtbot.waitSignal(window.data_panel.verified, timeout=30_000):
        _answer_yes()
        dialog.exclude_button.click()
    assert excluded not in {s.path for s in window.data_panel.scan.samples}
    assert _snapshot(data) == after_move  # an exclusion changes no file

    for _ in range(2):
        with qtbot.waitSignal(window.data_panel.verified, timeout=30_000):
            window.undo_action.trigger()
    assert _snapshot(data) == before  # byte-identical, names and times too
    assert excluded in {s.path for s in window.data_panel.scan.samples}
    assert not window.undo_action.isEnabled()


def test_undo_survives_a_restart_of_the_window(qtbot, settings, tmp_path, drop):
    from ftgui.core.data.fixes import Fixes
    from ftgui.gui.main_window import MainWindow

    data = make_example_dataset(tmp_path / "shapes", per_class=4, size=24, seed=1)
    before = _snapshot(data)
    Fixes().move(data, ["circle/circle_0001.jpg"], "square")  # an earlier session's change
    w = MainWindow(settings=settings)
    w.show()
    w.start_background_init()
    qtbot.waitUntil(lambda: w.ready, timeout=60_000)
    assert w.undo_action.isEnabled() and w.undo_action.text() == "&Undo Move 1 image to square"
    w.undo_action.trigger()
    assert _snapshot(data) == before
    assert not w.undo_action.isEnabled()
    w.close()
    w.deleteLater()


@pytest.mark.slow
def test_heat_maps_in_try_and_the_worst_mistakes(qtbot, window, tmp_path, drop):
    data = make_example_dataset(tmp_path / "shapes", per_class=16, size=64, seed=4)
    _open(qtbot, window, data, drop)
    _train(qtbot, window, epochs=1)
    try_panel = window.try_panel
    images = [str(p) for p in sorted((data / "circle").glob("*.jpg"))[:2]]
    assert try_panel.try_images(images)
    qtbot.waitUntil(lambda: len(try_panel.rows) == 2 and not window.busy, timeout=60_000)
    assert not any(r.heat_shown for r in try_panel.rows)
    try_panel.heat_toggle.setChecked(True)  # the same images again, with heat maps
    qtbot.waitUntil(lambda: len(try_panel.rows) == 2 and try_panel.rows[0].heat_shown, timeout=60_000)
    qtbot.waitUntil(lambda: not window.busy, timeout=60_000)

    panel = window.eval_panel
    window.tabs.setCurrentWidget(panel)
    assert panel.gallery.count() > 0
    panel.heat_toggle.setChecked(True)
    assert window.busy and panel.progress.isVisible()  # its own progress: N of M mistakes
    assert panel.progress.format().startswith("Heat maps of the mistakes: %v of %m")
    qtbot.waitUntil(lambda: bool(panel._heat) and not window.busy, timeout=60_000)
    assert not panel.progress.isVisible()
    assert panel.gallery.iconSize().width() == 196  # predicted | true class side by side
    assert not panel.gallery.item(0).icon().isNull()
    assert "left: evidence for" in panel.gallery.item(0).toolTip()
    panel.heat_toggle.setChecked(False)
    assert panel.gallery.iconSize().width() == 96
    panel._heat = {}  # made again: unticking while they are made stops them
    panel.heat_toggle.setChecked(True)
    assert window.busy
    panel.heat_toggle.setChecked(False)
    qtbot.waitUntil(lambda: not window.busy, timeout=10_000)

    # Another model opened: Try asks it about the same images (no drop needed again).
    from ftgui.core.bundle.export import export_bundle

    export_bundle(window.trainer.trained(), tmp_path / "m")
    first = try_panel.rows[0]
    assert window.open_bundle(str(tmp_path / "m"))
    qtbot.waitUntil(lambda: len(try_panel.rows) == 2 and try_panel.rows[0] is not first and not window.busy,
                    timeout=60_000)  # fmt: skip
    assert try_panel.predictor is window.bundle and "from " in try_panel.model_label.text()


@pytest.mark.slow
def test_classify_a_folder_filters_exports_and_copies(qtbot, window, tmp_path, drop, image_folder):
    from ftgui.core.bundle.export import export_bundle
    from ftgui.core.training.engine import Trainer, run_to_end

    _open(qtbot, window, image_folder, drop, size=32)
    cfg = window.build_config()
    cfg.epochs = 1
    run_to_end(trainer := Trainer(cfg))
    export_bundle(trainer.trained(), tmp_path / "m")
    window.open_bundle(str(tmp_path / "m"))
    qtbot.waitUntil(lambda: window.try_panel.predictor is not None and not window.busy, timeout=30_000)

    photos = tmp_path / "photos"
    shutil.copytree(image_folder / "circle", photos / "a")
    shutil.copytree(image_folder / "square", photos / "b" / "deeper")
    (photos / "broken.jpg").write_bytes(b"not a picture")
    originals = _snapshot(photos)
    dialog = window.open_classify_folder()
    assert dialog.predictor is not None
    assert dialog.classify(str(photos))
    qtbot.waitUntil(lambda: not window.busy and not dialog.stop_button.isEnabled(), timeout=60_000)
    assert len(dialog.predictions) == 41 and dialog.table.rowCount() == 41
    assert "40 images classified, 1 could not be read" in dialog.status.text()
    broken = [p for p in dialog.predictions if p.error]
    assert len(broken) == 1 and broken[0].path.endswith("broken.jpg")
    row = next(r for r in range(41) if dialog.table.item(r, 1).text() == "broken.jpg")
    cell = dialog.table.item(row, 2)
    assert cell.text() == "⚠ not read" and cell.toolTip() == broken[0].error  # the reason, not a wide column
    dialog.resize(1280, 760)
    qtbot.wait(50)
    assert dialog.table.columnWidth(2) <= 200 and dialog.table.columnWidth(1) >= 400  # names readable
    combo = dialog.class_filter
    assert combo.currentText() == "All classes"
    assert combo.width() >= combo.fontMetrics().horizontalAdvance("All classes") + 20  # not cut

    top = next(p for p in dialog.predictions if p.top).top[0][0]
    dialog.class_filter.setCurrentIndex(dialog.class_filter.findData(top))
    assert 0 < dialog.table.rowCount() < 41
    assert all(dialog.table.item(r, 2).text() == top for r in range(dialog.table.rowCount()))
    dialog.min_confidence.setValue(100)
    assert dialog.table.rowCount() <= sum(1 for p in dialog.predictions if p.top and p.top[0][1] >= 1.0)

    dialog.export_csv(str(tmp_path / "out.csv"))
    rows = list(csv.DictReader((tmp_path / "out.csv").open()))
    assert len(rows) == 41 and sum(1 for r in rows if r["error"]) == 1
    weights = (tmp_path / "m" / "model.safetensors").read_bytes()
    assert not dialog.export_csv(str(tmp_path / "m" / "model.safetensors"))  # into the model: never
    assert "an ftgui model folder" in dialog.status.text()
    assert dialog.status.minimumSizeHint().width() <= dialog.width()  # a long message wraps, never widens it
    assert (tmp_path / "m" / "model.safetensors").read_bytes() == weights
    assert not dialog.export_csv(str(image_folder / "circle" / "x.csv"))  # into its dataset's classes
    assert "class folder of the dataset" in dialog.status.text()
    assert not (image_folder / "circle" / "x.csv").exists()

    dialog.unsure_below.setValue(60)
    assert not dialog.copy_into(str(photos / "inside"))  # never into the folder being sorted
    for inside in (tmp_path / "m" / "sorted", image_folder / "more"):  # nor a model or its dataset
        assert dialog.copy_into(str(inside))
        qtbot.waitUntil(lambda: not window.busy, timeout=30_000)
        assert "Cannot copy into" in dialog.status.text() and not inside.exists()
    assert dialog.copy_into(str(tmp_path / "sorted"))
    qtbot.waitUntil(lambda: not window.busy, timeout=30_000)
    copied = [p for p in (tmp_path / "sorted").rglob("*.jpg")]
    assert len(copied) == 40 and "Copied 40 images" in dialog.status.text()
    unsure = sum(1 for p in dialog.predictions if p.top and p.top[0][1] < 0.6)
    assert len(list((tmp_path / "sorted" / "unsure").glob("*.jpg")) if unsure else []) == unsure
    assert _snapshot(photos) == originals  # copies only: the photos are untouched


@pytest.mark.slow
def test_check_data_says_when_its_features_are_random_and_uses_the_model_just_trained(
    qtbot, window, tmp_path, drop
):
    data = make_example_dataset(tmp_path / "shapes", per_class=30, size=64, seed=3)
    _open(qtbot, window, data, drop, size=32)
    dialog = window.open_check_data()  # nothing trained yet: a random backbone's features
    qtbot.waitUntil(lambda: dialog.report is not None and not window.busy, timeout=120_000)
    assert dialog.report.random_features and dialog.report.features_from.startswith("resnet18 without")
    assert dialog.random_warning.isVisible() and "random weights" in dialog.random_warning.text()
    assert not dialog.use_trained_button.isVisible()  # nothing to offer yet

    _train(qtbot, window, epochs=1)
    from ftgui.core.models.layers import trainable_names

    weights = {k: v.clone() for k, v in window.trainer.model.state_dict().items()}
    trainable = trainable_names(window.trainer.model)
    assert dialog.start()  # weights "none": the model just trained makes the features
    qtbot.waitUntil(lambda: not window.busy, timeout=120_000)
    report = dialog.report
    assert report.features_from == "the model just trained (resnet18, 1 epoch)"
    assert not report.random_features and not dialog.random_warning.isVisible()

    assert dialog.start(use_trained=False)  # asked for the backbone: said, and the other offered
    qtbot.waitUntil(lambda: not window.busy and dialog.report is not report, timeout=120_000)
    assert dialog.report.random_features and dialog.use_trained_button.isVisible()
    dialog.use_trained_button.click()
    qtbot.waitUntil(lambda: not window.busy and not dialog.report.random_features, timeout=120_000)
    assert dialog.report.features_from.startswith("the model just trained")
    model = window.trainer.model  # the checks used a copy: the window's model is as it was
    assert trainable_names(model) == trainable
    assert all(v.equal(weights[k]) for k, v in model.state_dict().items())
