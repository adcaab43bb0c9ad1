"""The concat head (average and max pooling side by side, BatchNorm, one linear layer): which
models take it, and a trained one read back from its bundle and its checkpoint."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from ftgui.core.base.errors import CheckpointError, ModelError
from ftgui.core.bundle.format import validate_metadata
from ftgui.core.models import build_model, build_skeleton, find_head
from ftgui.core.models.heads import ConcatPool2d, NormLinear, set_head_form


def test_concat_pooling_puts_max_and_average_side_by_side():
    x = torch.arange(2 * 3 * 4 * 4, dtype=torch.float32).reshape(2, 3, 4, 4)
    out = ConcatPool2d()(x)
    assert out.shape == (2, 6, 1, 1)
    assert torch.equal(out[:, :3, 0, 0], x.amax((2, 3))) and torch.allclose(out[:, 3:, 0, 0], x.mean((2, 3)))


@pytest.mark.parametrize(("arch", "head"), [("resnet18", "fc"), ("efficientnet_b0", "classifier.1")])
def test_models_that_pool_into_one_linear_layer_take_the_concat_head(arch, head):
    built = build_model(arch, 5, weights="none", head_form="concat")
    model = built.model.eval()
    assert built.head == [head] and find_head(model) == head
    assert isinstance(model.avgpool, ConcatPool2d) and isinstance(model.get_submodule(head), NormLinear)
    assert built.model_kwargs["head"] == "concat"
    assert model(torch.rand(2, 3, 64, 64)).shape == (2, 5)
    skeleton = build_skeleton(arch, 5, **built.model_kwargs)  # what a bundle is read into
    assert {k: v.shape for k, v in skeleton.state_dict().items()} == {
        k: v.shape for k, v in model.state_dict().items()
    }


@pytest.mark.parametrize("arch", ["mobilenet_v3_small", "convnext_tiny", "vgg11"])
def test_models_with_layers_between_pooling_and_classifier_are_refused(arch):
    model = build_skeleton(arch, 3)
    with pytest.raises(ModelError, match="average-pools straight into one linear classifier"):
        set_head_form(model, "concat", 3)


def test_timm_models_and_unknown_forms_are_refused_before_building():
    with pytest.raises(ModelError, match="takes --head linear"):
        build_model("timm:test_vit.r160_in1k", 3, weights="none", head_form="concat")
    with pytest.raises(ModelError, match="Unknown head 'mlp'"):
        build_model("resnet18", 3, weights="none", head_form="mlp")


@pytest.mark.slow
def test_a_concat_head_trains_exports_and_reads_back(tmp_path, image_folder, ftgui_train_args):
    from ftgui.cli.train import train_main
    from ftgui.core.bundle.predict import Predictor
    from ftgui.core.training.engine import Trainer

    out = tmp_path / "run"
    args = ftgui_train_args(image_folder, out, "--head", "concat", "--epochs", "1", "--quiet")
    assert train_main([*args, "--checkpoint-every", "1"]) == 0
    meta = json.loads((out / "model.json").read_text())
    assert meta["model_kwargs"] == {"head": "concat"} and meta["head"] == ["fc"]
    assert meta["trainable_parameter_names"] == ["fc.0.weight", "fc.0.bias", "fc.1.weight", "fc.1.bias"]
    predictor = Predictor.load(out)
    assert isinstance(predictor.model.avgpool, ConcatPool2d)
    images = sorted(image_folder.rglob("*.jpg"))[:6]
    assert all(p.error is None for p in predictor.predict([str(p) for p in images]))

    resumed = Trainer.from_checkpoint(out / "checkpoint.pt", epochs=2)
    assert isinstance(resumed.model.fc, NormLinear)
    x = torch.rand(4, 3, 32, 32)
    with torch.no_grad():  # the bundle and the checkpoint hold the same trained head
        assert torch.allclose(predictor.model.eval()(x), resumed.model.eval()(x))
    events = list(resumed.run())
    assert type(events[-1]).__name__ == "Finished" and resumed.epoch == 2

    # The README's plain-torchvision loading code, as it stands, on this bundle.
    readme = (Path(__file__).parents[2] / "README.md").read_text(encoding="utf-8")
    code = readme.split("The model loads in plain torchvision:\n\n```python\n", 1)[1].split("```", 1)[0]
    scope: dict = {}
    exec(code.replace('"out/', f'"{out}/'), scope)  # noqa: S102 - the README's own example
    plain = scope["model"].eval()
    with torch.no_grad():
        # (rounding only: summation order differs with the thread count; logits reach ~6)
        assert torch.allclose(plain(x), predictor.model(x), rtol=1e-4, atol=1e-4)

    meta["model_kwargs"]["head"] = "mlp"
    with pytest.raises(CheckpointError, match="'model_kwargs.head' must be linear or concat"):
        validate_metadata(meta)


@pytest.mark.parametrize(
    ("arch", "form"),
    [
        ("resnet18", "concat"),
        ("mobilenet_v3_small", "linear"),
        ("convnext_tiny", "linear"),
        ("timm:test_vit.r160_in1k", "linear"),
    ],
)
def test_auto_takes_the_concat_head_where_the_model_takes_it(arch, form):
    built = build_model(arch, 3, weights="none", meta=True, head_form="auto")
    assert built.model_kwargs.get("head", "linear") == form
    assert isinstance(built.model.get_submodule(built.head[0]), NormLinear) == (form == "concat")
