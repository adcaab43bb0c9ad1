"""A timm ViT that resamples its position table for any input size exports to every format:
the exported copy uses the table it was built with (the same numbers, no bicubic op), and
LiteRT runs a graph whose reshapes are fixed to one batch size a slice at a time."""

from __future__ import annotations

import pytest
import torch

from ftgui.core.deploy.registry import missing_packages
from ftgui.core.deploy.source import plain_eval_copy

timm = pytest.importorskip("timm")
VIT = "test_vit.r160_in1k"


def test_the_exported_copy_of_a_vit_has_no_resampling_and_the_same_answers():
    model = timm.create_model(VIT, pretrained=False, img_size=64, num_classes=4).eval()
    assert model.dynamic_img_size  # timm's config: any size, resampled at every call
    copy = plain_eval_copy(model)
    x = torch.randn(3, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(model(x), copy(x))
    assert model.dynamic_img_size and not copy.dynamic_img_size  # the trained model is untouched
    graph = torch.export.export(copy, (x[:1],)).graph
    assert not [n for n in graph.nodes if "upsample" in str(n.target)]


@pytest.mark.slow
def test_a_vit_bundle_exports_to_litert_and_core_ml(image_folder, tmp_path, capfd, caplog):
    from ftgui.core.deploy.export import export_all
    from ftgui.core.models.freeze import FreezePlan
    from ftgui.core.training.config import TrainConfig
    from ftgui.core.training.engine import Trainer, run_to_end

    wanted = [f for f in ("tflite", "coreml") if not missing_packages(f)]
    if not wanted:
        pytest.skip("neither ai-edge-litert nor coremltools is installed")
    cfg = TrainConfig(
        data_dir=str(image_folder), arch=f"timm:{VIT}", weights="none", freeze=FreezePlan.parse("head"),
        epochs=1, image_size=32, device="cpu",
    )  # fmt: skip
    trainer = Trainer(cfg)
    run_to_end(trainer)
    checks = export_all(trainer.trained(), tmp_path / "m", ("safetensors", *wanted), max_accuracy_drop=100.0)
    for c in checks:
        assert not c.error, f"{c.format}: {c.error}"
        if c.format == "tflite":  # LiteRT ran every validation image (80 x 0.2), batch after batch
            assert c.images == 16 and c.agreement == 1.0 and c.max_difference <= 1e-3

    if not missing_packages("onnx-int8"):  # onnxruntime logs a warning per LayerNorm: not shown
        from ftgui.cli.export import export_main

        capfd.readouterr()
        caplog.clear()
        export_main([str(tmp_path / "m"), "--format", "onnx-int8", "--max-accuracy-drop", "100"])
        err = capfd.readouterr().err
        assert "Exporting onnx-int8" in err and "WARNING" not in err, err
        assert not [r.getMessage() for r in caplog.records if r.levelno >= 30], caplog.records
