"""Every torchvision architecture through a real cycle at its smallest input size: one epoch of
training (last block + head, so BatchNorm trains), the best weights restored, the bundle
exported and loaded back, a prediction. TorchScript on one architecture of each family.
`make test` runs those representatives; `make test-archs` (and CI) every architecture.

The smallest size comes from running the model on the meta device (models.sizes)."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
import torch
from PIL import Image

from ftgui.core.base import events as ev
from ftgui.core.bundle.predict import Predictor
from ftgui.core.deploy.export import export_all
from ftgui.core.models import arch_info, list_architectures, model_source, preprocess_for, quirks
from ftgui.core.models.freeze import FreezePlan
from ftgui.core.models.sizes import smallest_size
from ftgui.core.training.config import TrainConfig
from ftgui.core.training.engine import Trainer

ARCHS = list_architectures()
# One of each family (and the two whose scripted forms return tuples) also goes to TorchScript.
TORCHSCRIPT = {
    "alexnet",
    "convnext_tiny",
    "densenet121",
    "efficientnet_b0",
    "efficientnet_v2_s",
    "googlenet",
    "inception_v3",
    "maxvit_t",
    "mnasnet0_5",
    "mobilenet_v2",
    "mobilenet_v3_small",
    "regnet_x_400mf",
    "regnet_y_400mf",
    "resnet18",
    "resnext50_32x4d",
    "shufflenet_v2_x0_5",
    "squeezenet1_0",
    "swin_t",
    "swin_v2_t",
    "vgg11",
    "vit_b_16",
    "wide_resnet50_2",
}


@pytest.fixture(scope="module")
def two_classes(module_tmp) -> Path:
    root = module_tmp
    for name, colour in (("red", (200, 30, 30)), ("blue", (30, 30, 200))):
        (root / name).mkdir()
        for i in range(4):
            Image.new("RGB", (40, 40), tuple(min(255, c + 9 * i) for c in colour)).save(
                root / name / f"{i}.png"
            )
    return root


def smallest(arch: str) -> int:
    if quirks(arch).sized:  # a ViT without weights is built for the size it is given
        patch = int(arch.rsplit("_", 1)[1])
        return 2 * patch
    found = smallest_size(arch, model_source(arch, "none", None).kwargs, arch_info(arch).min_size)
    return found if found is not None else preprocess_for(arch).crop_size  # the meta device cannot tell


def test_every_family_has_a_torchscript_representative():
    assert TORCHSCRIPT <= set(ARCHS)

    def family(name: str) -> str:
        return re.match(r"[a-z]+", name).group()  # type: ignore[union-attr]

    assert {family(a) for a in ARCHS} == {family(a) for a in TORCHSCRIPT}


@pytest.mark.slow
@pytest.mark.parametrize(
    "arch",
    # The rest of each family (the same code at other widths) runs in `make test-archs` (CI).
    [a if a in TORCHSCRIPT else pytest.param(a, marks=pytest.mark.archs) for a in ARCHS],
)
def test_train_restore_export_predict(arch, two_classes, tmp_path):
    size = smallest(arch)
    torch.manual_seed(0)
    cfg = TrainConfig(
        data_dir=str(two_classes),
        arch=arch,
        weights="none",
        freeze=FreezePlan.parse("last-1"),
        epochs=1,
        batch_size=4,
        image_size=size,
        val_fraction=0.5,
        seed=0,
        device="cpu",
    )
    trainer = Trainer(cfg)
    events = list(trainer.run())
    assert isinstance(events[-1], ev.Finished), events[-1]
    formats = ("safetensors", "torchscript") if arch in TORCHSCRIPT else ("safetensors",)
    checks = export_all(trainer.trained(), tmp_path / "m", formats)
    assert [c.error for c in checks] == [""] * len(checks)
    predictor = Predictor.load(tmp_path / "m")
    [prediction] = predictor.predict([two_classes / "red" / "0.png"])
    assert prediction.error is None and prediction.top[0][0] in ("red", "blue")
    if arch in TORCHSCRIPT:
        scripted = torch.jit.load(str(tmp_path / "m" / "model.torchscript.pt"))
        out = scripted(predictor.load_images([two_classes / "red" / "0.png"]))
        assert isinstance(out, torch.Tensor) and out.shape == (1, 2)
    shutil.rmtree(tmp_path)  # up to 2.5 GB per model: pytest would keep every one until the end
