"""A timm model in the window: found by search, its licence and default size shown, weights
out of reach offline said plainly, trained head only, evaluated."""

from __future__ import annotations

import pytest
from PySide6.QtCore import Qt

pytest.importorskip("timm")

VIT = "timm:test_vit.r160_in1k"


@pytest.fixture
def offline_hub(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


@pytest.mark.slow
def test_a_timm_model_is_picked_trained_head_only_and_evaluated(qtbot, window, image_folder, offline_hub):
    panel = window.model_panel
    combo = panel.arch_combo
    assert combo.findData("timm:vit_small_patch14_dinov2.lvd142m") >= 0
    panel.set_arch("timm:vit_small_patch14_dinov2.lvd142m")
    assert panel.model_note.isVisible() or not window.isVisible()
    note = panel.model_note.text()
    assert "licence apache-2.0" in note and "224 px by default" in note and "518" in note
    qtbot.waitUntil(lambda: panel.weights_state == "offline", timeout=10_000)
    assert "models--timm--vit_small_patch14_dinov2.lvd142m" in panel.weights_status.text()

    panel.set_arch(VIT)
    panel.set_weights("none")
    panel.set_strategy("head")
    window.train_panel.image_size.setValue(32)
    window.train_panel.epochs.setValue(1)
    with qtbot.waitSignal(window.data_panel.verified, timeout=30_000):
        window.data_panel.load_folder(str(image_folder))
    assert panel.summary.text().startswith("Trainable: 260 of")  # the head alone: 64 x 4 + 4
    qtbot.mouseClick(window.train_panel.start_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: not window.busy and window.eval_panel.evaluation is not None, timeout=120_000)
    log = window.log.toPlainText()
    assert "Finished 1 epochs" in log and "Cached the frozen layers' output" in log
    # The tree counts the model that trains: at 32 px the ViT's position table is smaller.
    total = panel.summary.text().split(" of ")[1].split(" ")[0]
    assert f"260 of {total} parameters trainable" in log, (total, log)
    assert window.trainer.built.arch == VIT


def test_start_waits_for_weights_that_can_be_had_and_each_model_keeps_its_choice(
    qtbot, settings, image_folder, offline_hub
):
    from ftgui.gui.controllers.training_controls import WEIGHTS_UNREACHABLE
    from ftgui.gui.main_window import MainWindow

    first = MainWindow(settings=settings)
    qtbot.addWidget(first)
    first.show()
    first.start_background_init()
    qtbot.waitUntil(lambda: first.ready, timeout=60_000)
    with qtbot.waitSignal(first.data_panel.verified, timeout=30_000):
        first.data_panel.load_folder(str(image_folder))
    panel, start = first.model_panel, first.train_panel.start_button
    panel.set_arch(VIT)  # its pretrained weights: not cached, and the hub is off
    qtbot.waitUntil(lambda: panel.weights_state == "offline", timeout=10_000)
    assert not start.isEnabled() and start.toolTip() == WEIGHTS_UNREACHABLE
    assert first.train_panel.progress.format() == "Start waits for weights that can be had (see Weights)"
    assert not first.compare_panel.start_button.isEnabled()
    panel.set_weights("none")
    assert panel.weights_state == "none" and start.isEnabled()
    assert first.train_panel.progress.format() == "Idle"
    panel.set_arch("resnet18")
    panel.set_arch(VIT)  # back to the ViT: still "none", not its unreachable default
    assert panel.weights == "none" and start.isEnabled() and start.toolTip() == "Start training (Ctrl+Enter)"
    assert first.close()

    second = MainWindow(settings=settings)  # and after a restart
    qtbot.addWidget(second)
    second.show()
    second.start_background_init()
    qtbot.waitUntil(lambda: second.ready, timeout=60_000)
    assert second.model_panel.arch == VIT and second.model_panel.weights == "none"
    assert second.close()


def test_the_window_speaks_of_its_controls_not_of_command_line_options():
    from ftgui.core.base.errors import WeightsError
    from ftgui.core.models import resolve_weights
    from ftgui.core.models.weights import load_pretrained
    from ftgui.gui.settings import window_words

    with pytest.raises(WeightsError) as caught:  # the hub cache is empty in tests
        load_pretrained("resnet18", resolve_weights("resnet18", "default"), allow_download=False)
    engine = str(caught.value)
    assert "(--weights none)" in engine
    said = window_words(engine)
    assert "--" not in said and "(Weights: From file…)" in said and "(Weights: none)" in said
