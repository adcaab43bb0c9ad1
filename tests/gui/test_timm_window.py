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
    assert window.trainer.built.arch == VIT
