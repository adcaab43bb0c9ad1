"""Heat maps (Grad-CAM with Captum): the layer explained for every convolutional family, a
clear refusal for transformers, maps in [0, 1], and ftgui-predict --cam."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torchvision
from PIL import Image

pytest.importorskip("captum")

from ftgui.cli import predict_main  # noqa: E402
from ftgui.core.cam import CamUnavailable, cam_layer, grad_cam  # noqa: E402
from ftgui.core.engine import Trainer, run_to_end  # noqa: E402
from ftgui.core.export import export_bundle  # noqa: E402
from ftgui.core.freeze import FreezePlan  # noqa: E402

# The last convolutional stage of each family, as the model structure gives it.
LAST_STAGE = {
    "resnet18": "layer4",
    "resnext50_32x4d": "layer4",
    "densenet121": "features",
    "mobilenet_v2": "features",
    "mobilenet_v3_small": "features",
    "efficientnet_b0": "features",
    "convnext_tiny": "features",
    "vgg11": "features",
    "alexnet": "features",
    "squeezenet1_1": "features",
    "googlenet": "inception5b",
    "regnet_y_400mf": "trunk_output",
    "shufflenet_v2_x0_5": "conv5",
    "mnasnet0_5": "layers",
}


@pytest.mark.slow
@pytest.mark.parametrize("arch", sorted(LAST_STAGE))
def test_the_last_convolutional_stage_of_every_family(arch):
    extra = {"aux_logits": False, "init_weights": False} if arch == "googlenet" else {}
    model = torchvision.models.get_model(arch, weights=None, num_classes=3, **extra)
    assert cam_layer(model, arch, 224) == LAST_STAGE[arch]
    maps = grad_cam(model, arch, torch.randn(2, 3, 224, 224), targets=[0, 2])
    assert maps.maps.shape == (2, 224, 224) and maps.targets == (0, 2)
    assert float(maps.maps.min()) >= 0 and float(maps.maps.max()) <= 1


@pytest.mark.parametrize("arch", ["vit_b_16", "swin_t", "maxvit_t"])
def test_transformers_get_no_heat_map_rather_than_a_wrong_one(arch):
    with pytest.raises(CamUnavailable, match=f"not available for {arch}: a transformer"):
        cam_layer(torch.nn.Identity(), arch, 224)


def test_predicted_class_is_explained_and_written_as_png(tiny_config, tmp_path, capsys):
    tiny_config.freeze, tiny_config.image_size, tiny_config.epochs = FreezePlan.parse("full"), 64, 1
    run_to_end(trainer := Trainer(tiny_config))
    export_bundle(trainer, tmp_path / "m")
    image = sorted(Path(tiny_config.data_dir).glob("circle/*.jpg"))[0]
    out = tmp_path / "heat.png"
    assert predict_main([str(tmp_path / "m"), str(image), "--cam", str(out)]) == 0
    err = capsys.readouterr().err
    assert "(Grad-CAM on layer4)" in err and f"wrote {out}: where the evidence for " in err
    with Image.open(out) as im:
        assert im.size == (64, 64) and im.mode == "RGB"
    assert predict_main([str(tmp_path / "m"), str(image), str(image), "--cam", str(out)]) == 2
    assert "--cam draws the heat map of one image; 2 were given" in capsys.readouterr().err
