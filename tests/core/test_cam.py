"""Heat maps (Grad-CAM with Captum): the layer explained for every convolutional family, a
clear refusal for transformers, maps in [0, 1], and ftgui-predict --cam."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision
from PIL import Image, ImageDraw

pytest.importorskip("captum")

from ftgui.cli import predict_main  # noqa: E402
from ftgui.core.bundle.export import export_bundle
from ftgui.core.bundle.predict import Predictor
from ftgui.core.insight.cam import CamUnavailable, cam_layer, grad_cam, image_heat_map
from ftgui.core.models.freeze import FreezePlan
from ftgui.core.training.config import TrainConfig
from ftgui.core.training.engine import Trainer, run_to_end

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


@pytest.mark.parametrize("arch", ["swin_t", "maxvit_t"])
def test_transformers_get_no_heat_map_rather_than_a_wrong_one(arch):
    with pytest.raises(CamUnavailable, match=f"not available for {arch}: a transformer"):
        cam_layer(torch.nn.Identity(), arch, 224)


@pytest.mark.slow
def test_predicted_class_is_explained_and_written_as_png(tiny_config, tmp_path, capsys):
    tiny_config.freeze, tiny_config.image_size, tiny_config.epochs = FreezePlan.parse("full"), 64, 1
    run_to_end(trainer := Trainer(tiny_config))
    export_bundle(trainer.trained(), tmp_path / "m")
    image = sorted(Path(tiny_config.data_dir).glob("circle/*.jpg"))[0]
    out = tmp_path / "heat.png"
    assert predict_main([str(tmp_path / "m"), str(image), "--cam", str(out)]) == 0
    err = capsys.readouterr().err
    assert "(Grad-CAM on layer4)" in err and f"wrote {out}: where the evidence for " in err
    with Image.open(out) as im:
        assert im.size == (64, 64) and im.mode == "RGB"
    assert predict_main([str(tmp_path / "m"), str(image), str(image), "--cam", str(out)]) == 2
    assert "--cam draws the heat map of one image; 2 were given" in capsys.readouterr().err


COLOURS = {"red": (220, 40, 40), "green": (40, 200, 60), "blue": (50, 70, 230)}


def quadrant_set(root: Path, per_class: int, size: int, seed: int) -> dict[str, int]:
    """Noise pictures with the class's evidence, a coloured disc, in one random quadrant, and a
    "none" class without a disc (so no colour class can be learnt as "the others are absent",
    which has no place in the picture to point at). Discs stay clear of the centre crop's edge.
    Returns each disc picture's quadrant: 0 top left, 1 top right, 2 bottom left, 3 bottom right."""
    import random

    rng, noise = random.Random(seed), np.random.default_rng(seed)
    half, r, edge = size // 2, size // 9, size // 8
    where = {}
    for cls, colour in [*COLOURS.items(), ("none", None)]:
        (root / cls).mkdir(parents=True)
        for i in range(per_class):
            im = Image.fromarray(noise.integers(90, 166, (size, size, 3), dtype=np.uint8))
            q = rng.randrange(4)
            x = (
                rng.randint(r + edge, half - r - 2)
                if q % 2 == 0
                else half + rng.randint(r + 2, half - r - edge)
            )
            y = rng.randint(r + edge, half - r - 2) if q < 2 else half + rng.randint(r + 2, half - r - edge)
            if colour:
                ImageDraw.Draw(im).ellipse([x - r, y - r, x + r, y + r], fill=colour)
                where[f"{cls}/{i:03d}.png"] = q
            im.save(root / cls / f"{i:03d}.png")
    return where


def quadrant_hits(config: TrainConfig, tmp_path: Path, where: dict[str, int]) -> tuple[int, int, str]:
    """Train, export, and count the validation pictures whose heat map peaks in the disc's
    quadrant: (hits, pictures with a disc, the layer explained)."""
    run_to_end(trainer := Trainer(config))
    export_bundle(trainer.trained(), tmp_path / "m")
    predictor = Predictor.load(tmp_path / "m")
    val = [s.path for s in trainer.split.val if s.path in where]
    hits, layer = 0, ""
    for rel in val:
        _, heat = image_heat_map(predictor, tmp_path / "data" / rel)
        h, w = heat.maps[0].shape
        y, x = divmod(int(heat.maps[0].argmax()), w)
        hits += (x >= w // 2) + 2 * (y >= h // 2) == where[rel]
        layer = heat.layer
    return hits, len(val), layer


@pytest.mark.slow
@pytest.mark.parametrize("seed", [1, 4])
def test_heat_map_peaks_in_the_quadrant_that_holds_the_evidence(tmp_path, seed):
    where = quadrant_set(tmp_path / "data", per_class=40, size=128, seed=seed)
    config = TrainConfig(
        data_dir=str(tmp_path / "data"), arch="resnet18", weights="none", freeze=FreezePlan.parse("full"),
        epochs=5, batch_size=16, lr=1e-3, image_size=128, val_fraction=0.25, seed=seed, device="cpu",
    )  # fmt: skip
    hits, total, _ = quadrant_hits(config, tmp_path, where)
    assert total >= 25
    assert hits >= 0.9 * total, f"the heat map's peak is in the disc's quadrant for {hits}/{total}"


def test_a_vit_is_explained_on_its_patch_tokens():
    model = torchvision.models.get_model("vit_b_16", weights=None, num_classes=3)
    torch.nn.init.normal_(model.heads.head.weight)  # torchvision starts it at zero: no evidence at all
    assert cam_layer(model, "vit_b_16", 224) == "encoder.layers.encoder_layer_11.ln_1"
    maps = grad_cam(model, "vit_b_16", torch.randn(2, 3, 224, 224), targets=[0, 2])
    assert maps.maps.shape == (2, 224, 224) and maps.targets == (0, 2)
    assert float(maps.maps.min()) >= 0 and float(maps.maps.max()) == 1


@pytest.mark.slow
@pytest.mark.parametrize("seed", [1, 7])
def test_a_vits_heat_map_peaks_in_the_quadrant_that_holds_the_evidence(tmp_path, seed):
    pytest.importorskip("timm")
    where = quadrant_set(tmp_path / "data", per_class=40, size=128, seed=seed)
    config = TrainConfig(
        data_dir=str(tmp_path / "data"), arch="timm:test_vit.r160_in1k", weights="none",
        freeze=FreezePlan.parse("full"), epochs=15, batch_size=16, lr=1e-3, image_size=128,
        val_fraction=0.25, seed=seed, device="cpu",
    )  # fmt: skip
    hits, total, layer = quadrant_hits(config, tmp_path, where)
    assert layer == "blocks.5.norm1" and total >= 25
    assert hits >= 0.9 * total, f"the heat map's peak is in the disc's quadrant for {hits}/{total}"
