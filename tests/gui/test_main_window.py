import json
import os
import shutil

import pytest
import torch
import torchvision.models as tvm
from PySide6.QtCore import Qt, QTimer
from PySide6.QtWidgets import QApplication, QMessageBox
from safetensors.torch import load_file

from ftgui.gui.main_window import MainWindow
from ftgui.gui.widgets.rows_model import cell_text


def _load(qtbot, window, folder, drop):
    with qtbot.waitSignal(window.data_panel.verified, timeout=30_000):
        assert drop(qtbot, window, folder)


def _quick_settings(window, epochs=1, batch=16):
    window.model_panel.set_weights("none")
    window.train_panel.epochs.setValue(epochs)
    window.train_panel.batch_size.setValue(batch)
    window.train_panel.image_size.setValue(32)


def test_window_starts_with_title_and_model_list(window):
    assert window.windowTitle() == "ftgui"
    combo = window.model_panel.arch_combo
    names = [combo.itemData(i) for i in range(combo.count())]
    assert len([n for n in names if not n.startswith("timm:")]) == 80  # torchvision's, then timm's
    assert window.model_panel.arch == "resnet18"
    label = window.model_panel.arch_combo.currentText()
    assert "11.7M params" in label and "69.8% ImageNet" in label
    assert not window.export_action.isEnabled()
    assert window.quit_action.shortcut().toString() == "Ctrl+Q"
    assert "torchvision 0." in window.about_text() and "Qt 6." in window.about_text()


@pytest.mark.slow
def test_drop_train_export_and_reload(qtbot, window, image_folder, tmp_path, drop):
    _load(qtbot, window, image_folder, drop)
    assert window.windowTitle() == "ftgui — shapes"
    table = window.data_panel.table
    assert table.model().rowCount() == 4 and cell_text(table, 0, 0) == "circle"
    assert cell_text(table, 0, 1) == "20"
    qtbot.waitUntil(lambda: table.model().index(0, 0).data(Qt.ItemDataRole.DecorationRole) is not None)
    # Sorted by a header click: the class names in reverse order.
    table.horizontalHeader().setSortIndicator(0, Qt.SortOrder.DescendingOrder)
    assert [cell_text(table, r, 0) for r in range(4)] == ["triangle", "stripes", "square", "circle"]
    table.horizontalHeader().setSortIndicator(0, Qt.SortOrder.AscendingOrder)

    panel = window.model_panel
    panel.set_strategy("last", blocks=1)
    # layer4 and the concat head (BatchNorm 1,024 x 2, linear 1,024 x 4 + 4)
    assert panel.summary.text() == "Trainable: 8,399,876 of 11,182,660 parameters (75.12%)"
    layer3 = panel.item_for("layer3")
    assert layer3.checkState() == Qt.CheckState.Unchecked
    assert layer3.foreground().color().red() == 150  # frozen rows are dimmed
    layer3.setCheckState(Qt.CheckState.Checked)  # as a click on the checkbox does
    assert panel.strategy_key == "custom"
    assert panel.item_for("layer3.0.conv1").checkState() == Qt.CheckState.Checked
    panel.item_for("layer2.1").setCheckState(Qt.CheckState.Checked)
    assert panel.item_for("layer2").checkState() == Qt.CheckState.PartiallyChecked

    _quick_settings(window)
    qtbot.mouseClick(window.train_panel.start_button, Qt.MouseButton.LeftButton)
    assert window.training and not window.train_panel.start_button.isEnabled()
    qtbot.waitUntil(lambda: not window.busy, timeout=120_000)
    assert "Finished 1 epochs" in window.log.toPlainText()
    assert window.plot.point_count >= 4 + 1
    assert window.export_action.isEnabled()
    from ftgui.core.workflows.runs import list_runs

    (run,) = list_runs(image_folder)  # every run is kept
    assert run.source == "window" and run.strategy == "custom" and run.epochs == 1
    assert run.freeze["overrides"] == [["layer3", True], ["layer2.1", True]]
    assert f"Recorded as run {run.id}." in window.log.toPlainText()

    assert "not yet exported" in window.try_panel.model_label.text()
    out = tmp_path / "exported"
    assert window.export_to(str(out))
    qtbot.waitUntil(lambda: not window.busy, timeout=60_000)
    box = window.export_box  # a confirmation, not only the status bar
    assert box is not None and box.isVisible() and box.windowTitle() == "Model exported"
    assert str(out) in box.text() and "model.safetensors" in box.text()
    assert [b.text() for b in box.buttons() if b.text() == "Open folder"]
    assert f"exported to {out}" in window.try_panel.model_label.text()
    assert f"exported to {out}" in window.open_classify_folder().model_label.text()
    window.classify_dialog.close()
    box.close()
    meta = json.loads((out / "model.json").read_text())
    assert meta["classes"] == ["circle", "square", "stripes", "triangle"]
    assert meta["training"]["strategy"] == "custom"
    assert meta["training"]["freeze"] == {
        "strategy": "last",
        "blocks": 1,
        "unfreeze_every": 1,
        "train_bn": False,
        "freeze_bn": False,
        "overrides": [["layer3", True], ["layer2.1", True]],
    }
    trained = set(meta["trainable_parameter_names"])
    assert "layer3.0.conv1.weight" in trained and "layer2.1.conv1.weight" in trained
    assert "layer2.0.conv1.weight" not in trained and "layer1.0.conv1.weight" not in trained
    # torchvision's resnet18 with the head model.json records (the concat head, by default)
    from ftgui.core.models import rebuild_for_inference

    plain = rebuild_for_inference("resnet18", 4, meta["model_kwargs"])
    assert meta["model_kwargs"] == {"head": "concat"}
    plain.load_state_dict(load_file(str(out / "model.safetensors")), strict=True)
    plain.eval()
    window.trainer.model.eval()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        # (rounding only: the layouts differ, channels-last in the window, and logits reach ~40)
        assert torch.allclose(plain(x), window.trainer.model(x.contiguous()), rtol=1e-4, atol=1e-3)


def test_drop_of_a_file_is_refused(qtbot, window, image_folder, drop):
    assert not drop(qtbot, window, image_folder / "circle" / "circle_0000.jpg")
    assert window.data_panel.scan is None


@pytest.mark.slow
def test_stop_mid_epoch_returns_to_idle(qtbot, window, image_folder, drop):
    _load(qtbot, window, image_folder, drop)
    _quick_settings(window, epochs=50, batch=2)
    # Full fine-tuning: an epoch of a cached head (32 batches of 2) can end before the window has
    # drawn three of its points, and then the Stop comes after a complete epoch.
    window.model_panel.set_strategy("full")
    window.start_training()
    qtbot.waitUntil(lambda: window.plot.point_count >= 3, timeout=60_000)
    qtbot.mouseClick(window.train_panel.stop_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: not window.busy, timeout=5_000)
    assert "Stopped after 0 complete epoch(s)" in window.log.toPlainText()
    assert window.train_panel.start_button.isEnabled() and not window.train_panel.stop_button.isEnabled()
    assert not window.export_action.isEnabled()  # no complete epoch yet


@pytest.mark.slow
def test_export_enabled_after_stop_once_an_epoch_completed(qtbot, window, image_folder, tmp_path, drop):
    _load(qtbot, window, image_folder, drop)
    _quick_settings(window, epochs=50, batch=16)
    window.start_training()
    qtbot.waitUntil(lambda: "Epoch 1/50" in window.log.toPlainText(), timeout=60_000)
    window.stop_training()
    qtbot.waitUntil(lambda: not window.busy, timeout=5_000)
    assert window.export_action.isEnabled()
    assert window.export_to(str(tmp_path / "m"))
    qtbot.waitUntil(lambda: not window.busy, timeout=60_000)
    assert (tmp_path / "m" / "model.safetensors").is_file()
    assert window.save_checkpoint_to(str(tmp_path / "ckpt.pt"))
    qtbot.waitUntil(lambda: not window.busy, timeout=60_000)
    assert window.load_checkpoint_from(str(tmp_path / "ckpt.pt"))
    qtbot.waitUntil(lambda: not window.busy, timeout=60_000)
    assert window.session.resuming and window.trainer.epoch >= 1


def _answer_question(button):
    def answer():
        box = QApplication.activeModalWidget()
        if isinstance(box, QMessageBox):
            box.button(button).click()
        else:
            QTimer.singleShot(50, answer)

    QTimer.singleShot(50, answer)


@pytest.mark.slow
def test_close_during_training_asks_and_exits_cleanly(qtbot, settings, image_folder, drop):
    w = MainWindow(settings=settings)
    w.show()
    w.start_background_init()
    qtbot.waitUntil(lambda: w.ready, timeout=60_000)
    _load(qtbot, w, image_folder, drop)
    _quick_settings(w, epochs=50, batch=2)
    w.start_training()
    qtbot.waitUntil(lambda: w.plot.point_count >= 2, timeout=60_000)
    _answer_question(QMessageBox.StandardButton.No)
    assert not w.close()
    assert w.training and w.isVisible()
    thread = w.thread
    _answer_question(QMessageBox.StandardButton.Yes)
    assert w.close()
    assert not w.training and thread is not None
    w.deleteLater()


def test_unreadable_weights_file_shows_an_error(qtbot, window, tmp_path):
    bad = tmp_path / "weights.pth"
    bad.write_bytes(b"\x00not a checkpoint")
    assert window.model_panel.use_weights_file(str(bad))  # read off the GUI thread
    qtbot.waitUntil(lambda: not window.busy, timeout=60_000)
    assert window.model_panel.weights != str(bad)
    assert window.last_error_box is not None and window.last_error_box.isVisible()
    assert "Could not read weights file weights.pth" in window.last_error_box.text()
    assert "weights.pth" in window.log.toPlainText()


def test_error_in_worker_shows_a_message_and_window_stays_usable(qtbot, window, image_folder, tmp_path, drop):
    good = tmp_path / "good.pth"
    torch.save(tvm.get_model("resnet18", num_classes=4).state_dict(), good)
    _load(qtbot, window, image_folder, drop)
    _quick_settings(window)
    assert window.model_panel.use_weights_file(str(good))
    qtbot.waitUntil(lambda: not window.busy, timeout=60_000)
    good.write_bytes(b"changed after choosing it")
    window.start_training()
    qtbot.waitUntil(lambda: not window.busy, timeout=60_000)
    assert window.last_error_box is not None and "good.pth" in window.last_error_box.text()
    assert window.train_panel.start_button.isEnabled() and window.model_panel.isEnabled()


def test_settings_persist_between_runs(qtbot, settings, image_folder):
    first = MainWindow(settings=settings)
    first.show()
    first.start_background_init()
    qtbot.waitUntil(lambda: first.ready, timeout=60_000)
    with qtbot.waitSignal(first.data_panel.verified, timeout=30_000):
        first.data_panel.load_folder(str(image_folder))
    first.train_panel.epochs.setValue(7)
    first.train_panel.precision.setCurrentIndex(first.train_panel.precision.findData("fp32"))
    first.train_panel.set_lr_mode("set", 0.0005)
    first.train_panel.head.setCurrentIndex(first.train_panel.head.findData("linear"))
    first.model_panel.set_arch("mobilenet_v3_small")
    assert first.model_panel.config_fields()["bn_stats"] == "auto"  # the default
    first.model_panel.batchnorm.setCurrentIndex(first.model_panel.batchnorm.findData("adapt"))
    first.resize(1100, 650)
    assert first.close()
    second = MainWindow(settings=settings)
    qtbot.addWidget(second)
    second.show()
    with qtbot.waitSignal(second.data_panel.verified, timeout=30_000):
        second.start_background_init()  # reopens the folder that was open at the last close
    assert second.data_panel.scan.root == str(image_folder)
    qtbot.waitUntil(lambda: second.ready, timeout=60_000)
    assert second.train_panel.epochs.value() == 7
    assert second.train_panel.config_fields()["precision"] == "fp32"  # what a run gets
    assert second.train_panel.lr_mode_key == "set" and second.train_panel.lr.isEnabled()
    assert second.train_panel.lr.value() == pytest.approx(0.0005)
    assert second.train_panel.config_fields()["head"] == "linear"
    assert second.model_panel.arch == "mobilenet_v3_small"
    assert second.model_panel.config_fields()["bn_stats"] == "adapt"  # kept between runs
    second.model_panel.batchnorm.setCurrentIndex(second.model_panel.batchnorm.findData("train"))
    assert second.model_panel.plan.train_bn and second.model_panel.config_fields()["bn_stats"] == "auto"
    assert second.size().height() == 650  # offscreen screens are narrow; height is kept
    first.deleteLater()


def test_install_desktop_entry(tmp_path, monkeypatch):
    from ftgui.gui.desktop import install_desktop_entry

    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "share"))
    (tmp_path / "Desktop").mkdir()
    written = install_desktop_entry(home=tmp_path)
    entry = (tmp_path / "share" / "applications" / "ftgui.desktop").read_text()
    assert "Exec=" in entry and "ftgui" in entry.split("Exec=")[1]
    icon = entry.split("Icon=")[1].splitlines()[0]
    assert os.path.isfile(icon) and icon.endswith("ftgui.png")
    assert (tmp_path / "Desktop" / "ftgui.desktop") in written


@pytest.mark.slow
def test_example_dataset_trains_out_of_the_box(qtbot, window, tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    qtbot.waitUntil(lambda: window.model_panel.weights_state != "", timeout=10_000)
    with qtbot.waitSignal(window.data_panel.verified, timeout=30_000):
        qtbot.mouseClick(window.data_panel.example_button, Qt.MouseButton.LeftButton)
    scan = window.data_panel.scan
    assert scan.classes == ["circle", "square", "stripes", "triangle"] and len(scan.samples) == 160
    assert str(tmp_path / "data") in scan.root
    if window.model_panel.weights_state == "offline":
        assert window.model_panel.weights == "none" and window.model_panel.strategy_key == "full"
    window.train_panel.image_size.setValue(32)  # keep the test fast
    window.train_panel.epochs.setValue(2)
    window.start_training()
    qtbot.waitUntil(lambda: not window.busy, timeout=120_000)
    assert "Finished 2 epochs" in window.log.toPlainText(), window.log.toPlainText()


def test_plot_smoothing_follows_the_loss(qtbot):
    from ftgui.gui.widgets.plot import TrainingPlot

    plot = TrainingPlot()
    qtbot.addWidget(plot)
    plot.show()
    for b in range(1, 101):
        plot.add_batch(1, b, 100, 2.0 if b <= 50 else 1.0)
    assert plot.batch_smooth[0] == 2.0  # debiased: no ramp up from zero
    assert 1.0 < plot.batch_smooth[60] < 2.0 and plot.batch_smooth[-1] == pytest.approx(1.0, abs=0.2)
    plot.add_epoch(1, 0.8, 0.75)
    qtbot.waitUntil(
        lambda: len(plot.acc_curve.getData()[1] if plot.acc_curve.getData()[1] is not None else []) == 1
    )
    assert list(plot.acc_curve.getData()[1]) == [75.0] and not plot.hint.isVisible()
    for b in range(1, 101):
        plot.add_batch(3, b, 100, 0.5)
    plot.add_epoch(3, 0.4, 0.9)
    # The view follows the data: epoch 3's points are inside the visible x range.
    qtbot.waitUntil(
        lambda: plot.loss_plot.viewRange()[0][1] >= 3.0 and plot.acc_plot.viewRange()[0][1] >= 3.0
    )


@pytest.mark.slow
def test_checkpoint_every_epoch_and_resume_from_the_window(
    qtbot, window, image_folder, tmp_path, monkeypatch, drop
):
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    _load(qtbot, window, image_folder, drop)
    _quick_settings(window, epochs=2)
    window.train_panel.checkpoint_every_epoch.setChecked(True)
    window.start_training()
    qtbot.waitUntil(lambda: not window.busy, timeout=120_000)
    saved = list((tmp_path / "data").rglob("checkpoints/shapes-resnet18.pt"))
    assert len(saved) == 1, window.log.toPlainText()
    assert "Saved checkpoint after epoch 2" in window.log.toPlainText()
    assert window.load_checkpoint_from(str(saved[0]))
    qtbot.waitUntil(lambda: not window.busy, timeout=60_000)
    assert window.plot.point_count == 2  # the history is back on the plot
    window.train_panel.epochs.setValue(3)
    window.start_training()
    qtbot.waitUntil(lambda: not window.busy, timeout=120_000)
    log = window.log.toPlainText()
    assert "Resuming after epoch 2 to 3 epochs" in log and "Epoch 3/3" in log and "Finished 3 epochs" in log


def test_skipped_files_are_listed_with_reasons(qtbot, window, image_folder, tmp_path, drop):
    data = tmp_path / "data"
    shutil.copytree(image_folder, data)
    (data / "circle" / "broken.jpg").write_text("<html>")
    (data / "circle" / "empty.png").write_bytes(b"")
    _load(qtbot, window, data, drop)
    items = [window.data_panel.skipped.item(i).text() for i in range(window.data_panel.skipped.count())]
    assert "circle/broken.jpg: not an image Pillow can read (wrong or unknown format)" in items
    assert "circle/empty.png: empty file (0 bytes)" in items
    assert window.data_panel.skipped.isVisible()
    assert "Skipped circle/empty.png" in window.log.toPlainText()


@pytest.mark.slow
def test_evaluation_view_and_try_tab_after_training(qtbot, window, image_folder, tmp_path, drop):  # noqa: PLR0915
    pytest.importorskip("onnxscript", reason="the onnx extra is not installed")
    pytest.importorskip("onnxruntime", reason="the onnx extra is not installed")
    from ftgui.core.bundle.predict import Predictor

    _load(qtbot, window, image_folder, drop)
    _quick_settings(window, epochs=2)
    window.data_panel.val_fraction.setValue(0.25)
    window.model_panel.set_strategy("full")
    window.start_training()
    qtbot.waitUntil(lambda: window.eval_panel.evaluation is not None and not window.busy, timeout=120_000)
    panel = window.eval_panel
    ev = panel.evaluation
    assert panel.confusion.rowCount() == 4 and panel.confusion.columnCount() == 4
    assert panel.confusion.horizontalHeaderItem(0).text() == "circle"
    cells = [[int(panel.confusion.item(i, j).text()) for j in range(4)] for i in range(4)]
    assert cells == ev.confusion and sum(map(sum, cells)) == 20
    assert panel.metrics.model().rowCount() == 4 and cell_text(panel.metrics, 0, 1) == "5"
    assert f"Validation accuracy {100 * ev.accuracy:.1f}%" in panel.summary.text()
    assert panel.gallery.count() == 20 and not panel.gallery.item(0).icon().isNull()
    # Click the diagonal cell of "square": its images are listed.
    window.tabs.setCurrentWidget(panel)
    qtbot.waitUntil(lambda: panel.confusion.isVisible() and panel.confusion.viewport().height() > 20)
    rect = panel.confusion.visualItemRect(panel.confusion.item(1, 1))
    qtbot.mouseClick(panel.confusion.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
    assert panel.cell_images.count() == ev.confusion[1][1]
    assert all(
        panel.cell_images.item(i).text().startswith("square/") for i in range(panel.cell_images.count())
    )

    out = tmp_path / "exported"
    assert window.export_to(str(out), ("safetensors", "onnx", "torchscript"))
    qtbot.waitUntil(lambda: not window.busy, timeout=60_000)
    assert (out / "model.onnx").is_file() and (out / "model.torchscript.pt").is_file()
    assert (out / "MODEL_CARD.md").is_file() and "largest logit difference" in window.log.toPlainText()
    assert json.loads((out / "evaluation.json").read_text())["confusion"] == ev.confusion

    # Try: drop two images onto the tab; the bars match the exported bundle's own predictions.
    images = [image_folder / "circle" / "circle_0001.jpg", image_folder / "stripes" / "stripes_0002.jpg"]
    window.tabs.setCurrentWidget(window.try_panel)
    assert drop(qtbot, window.try_panel, images)
    qtbot.waitUntil(lambda: not window.busy, timeout=60_000)
    rows = window.try_panel.rows
    assert len(rows) == 2 and all(len(r.bars) == 4 for r in rows), (
        window.try_panel.predictor,
        window.try_panel.drop_label.text(),
    )
    expected = Predictor.load(out).predict([str(p) for p in images], topk=5)
    for row, pred in zip(rows, expected):
        shown = [b.value() for b in row.bars]
        assert shown == [int(round(p * 1000)) for _, p in pred.top]
        assert row.bars[0].format() == f"{100 * pred.top[0][1]:.1f}%"


@pytest.mark.slow
def test_open_exported_model_for_try_and_evaluate(qtbot, window, tiny_config, tmp_path):
    from ftgui.core.bundle.export import export_bundle
    from ftgui.core.training.engine import Trainer, run_to_end

    trainer = Trainer(tiny_config)
    run_to_end(trainer)
    export_bundle(trainer.trained(), tmp_path / "bundle")
    assert window.open_bundle(str(tmp_path / "bundle"))
    qtbot.waitUntil(lambda: not window.busy, timeout=60_000)
    assert "resnet18 from" in window.try_panel.model_label.text()
    assert window.try_panel.try_images([tiny_config.data_dir + "/triangle"])
    qtbot.waitUntil(lambda: not window.busy, timeout=60_000)
    assert len(window.try_panel.rows) == 20
    assert all(
        row.prediction.top[0][0] in window.try_panel.predictor.classes for row in window.try_panel.rows
    )
    window.run_evaluation()
    qtbot.waitUntil(lambda: window.eval_panel.evaluation is not None and not window.busy, timeout=60_000)
    assert window.eval_panel.evaluation.count == 20
    window.last_error_box = None
    assert window.open_bundle(str(tmp_path))  # not a bundle: a message, not a crash
    qtbot.waitUntil(lambda: window.last_error_box is not None, timeout=60_000)
    assert "No model.json" in window.last_error_box.text()
    assert "resnet18 from" in window.try_panel.model_label.text()  # the open model stays


def test_learning_rate_finder_dialog(qtbot, window, image_folder, drop):
    _load(qtbot, window, image_folder, drop)
    _quick_settings(window)
    window.model_panel.set_strategy("head")
    qtbot.mouseClick(window.train_panel.find_lr_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: window.lr_dialog is not None and window.lr_dialog.isVisible(), timeout=120_000)
    result = window.lr_dialog.finder_result
    assert len(result.lrs) >= 10 and result.lrs[0] < result.lrs[-1]
    items = window.lr_dialog.plot.getPlotItem().listDataItems()
    assert len(items[0].getData()[0]) == len(result.lrs)
    chosen = window.lr_dialog.chosen_lr
    assert window.lr_dialog.use_button.isEnabled() == (chosen is not None)
    if chosen is not None:
        assert 3e-3 <= chosen <= 3e-1  # within 10x of head's default, as --lr auto keeps
        qtbot.mouseClick(window.lr_dialog.use_button, Qt.MouseButton.LeftButton)
        assert window.train_panel.lr.value() == pytest.approx(float(f"{chosen:.1e}"), rel=1e-3)
        assert window.train_panel.lr.text() == f"{chosen:.1e}".replace(".0e", "e")
    qtbot.waitUntil(lambda: not window.busy, timeout=10_000)


def test_ftgui_folder_opens_with_that_dataset(qtbot, settings, image_folder):
    w = MainWindow(settings=settings, initial_folder=str(image_folder))
    qtbot.addWidget(w)
    w.show()
    with qtbot.waitSignal(w.data_panel.verified, timeout=30_000):
        w.start_background_init()
    qtbot.waitUntil(lambda: w.ready, timeout=60_000)
    assert w.windowTitle() == "ftgui — shapes"
    assert w.model_panel.summary.text().startswith("Trainable: 6,148 of 11,182,660")  # concat head, 4 classes


@pytest.mark.slow
def test_googlenet_weights_file_without_aux_heads_tree_matches_training(
    qtbot, window, image_folder, drop, tmp_path
):
    """The tree is the model that trains: a GoogLeNet file without auxiliary classifiers gives a
    tree without them, the same trainable count as the engine, and edits that Start accepts."""
    from safetensors.torch import save_file

    model = tvm.get_model("googlenet", weights=None, aux_logits=False, init_weights=False)
    path = tmp_path / "googlenet-noaux.safetensors"
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path))
    _load(qtbot, window, image_folder, drop)
    panel = window.model_panel
    panel.set_arch("googlenet")
    panel.set_weights("none")
    assert panel.item_for("aux1") is not None  # torchvision's plain constructor has them
    assert panel.use_weights_file(str(path))
    qtbot.waitUntil(lambda: not window.busy, timeout=60_000)
    assert panel.item_for("aux1") is None and panel.item_for("aux2") is None
    panel.set_strategy("head")
    assert panel.summary.text().startswith("Trainable: 12,292 of ")  # BatchNorm 2048 x 2, 2048 x 4 + 4
    panel.item_for("inception5b").setCheckState(Qt.CheckState.Checked)
    window.train_panel.epochs.setValue(1)
    window.train_panel.batch_size.setValue(16)
    window.train_panel.image_size.setValue(64)
    assert window.model_panel.weights == str(path)
    qtbot.mouseClick(window.train_panel.start_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: window.session.trained and not window.busy, timeout=120_000)
    log = window.log.toPlainText()
    assert "Finished 1 epochs" in log and "No layer named" not in log
    trainable = sum(p.numel() for p in window.trainer.model.parameters() if p.requires_grad)
    assert panel.summary.text().startswith(f"Trainable: {trainable:,} of ")


@pytest.mark.parametrize("mode", ["fresh", "folder given", "folder remembered"])
def test_the_window_paints_before_its_background_work_starts(qtbot, settings, image_folder, mode):
    """The window as ftgui starts it (show_then_start, as launch does): the first paint comes
    within a second of show() in every start mode, and torch's import and the folder's listing
    start only after it."""
    import time

    from ftgui.gui.startup import show_then_start

    if mode == "folder remembered":
        settings.setValue("data/last_folder", str(image_folder))
    w = MainWindow(settings=settings, initial_folder=str(image_folder) if mode == "folder given" else None)
    qtbot.addWidget(w)
    started: list[float] = []
    original = w.start_background_init

    def start() -> None:
        started.append(time.monotonic())
        original()

    starter = show_then_start(w, start)
    qtbot.waitUntil(lambda: starter.painted_at is not None and bool(started), timeout=5_000)
    assert starter.painted_at - starter.shown_at <= 1.0
    assert started[0] >= starter.painted_at
    if mode != "fresh":
        qtbot.waitUntil(lambda: w.data_panel.scan is not None, timeout=30_000)
    qtbot.waitUntil(lambda: w.ready, timeout=60_000)
    w.jobs.shutdown()


def test_small_losses_keep_their_own_numbers_and_few_batches_are_still_smoothed(qtbot):
    from ftgui.gui.widgets.plot import TrainingPlot, ValidationCurves, smoothing_for

    plot = TrainingPlot()
    qtbot.addWidget(plot)
    for b in range(1, 9):
        plot.add_batch(1 + (b - 1) // 4, (b - 1) % 4 + 1, 4, 0.0004 if b % 2 else 0.0008)
    plot.add_epoch(1, 0.0005, 0.9)
    plot._redraw()
    for axes in (plot.loss_plot, ValidationCurves().loss_plot):
        left = axes.getAxis("left")
        assert not left.autoSIPrefix and left.labelText in ("loss", "validation loss")  # no "(x0.001)"
    assert smoothing_for(4) == 0.6 and smoothing_for(1000) == 0.95
    assert plot.batch_smooth != plot.batch_loss  # 4 batches an epoch: a smoothed line of its own
    assert max(plot.batch_smooth[2:]) < 0.0008 and min(plot.batch_smooth[2:]) > 0.0004


def test_the_model_search_shows_whole_entries(qtbot, window):
    combo = window.model_panel.arch_combo
    widest = max(combo.fontMetrics().horizontalAdvance(combo.itemText(i)) for i in range(combo.count()))
    assert combo.completer().popup().minimumWidth() >= widest and combo.view().minimumWidth() >= widest
    assert widest + 40 <= 1280  # and still on the screen
