import io
import pickle
from pathlib import Path

import pytest
import torch
import torchvision.models as tvm
from safetensors.torch import save_file

from ftgui.core.base.errors import ModelError, WeightsError
from ftgui.core.models import (
    arch_info,
    build_model,
    build_skeleton,
    list_architectures,
    preprocess_for,
    resolve_weights,
    weights_cache_path,
)

ARCHS = list_architectures()


def test_architectures_come_from_torchvision_registry():
    assert ARCHS == sorted(tvm.list_models(module=tvm))
    for name in (
        "resnet18",
        "vgg16",
        "densenet121",
        "squeezenet1_0",
        "googlenet",
        "inception_v3",
        "shufflenet_v2_x1_0",
        "regnet_y_400mf",
        "vit_b_16",
        "swin_t",
        "maxvit_t",
        "convnext_tiny",
    ):
        assert name in ARCHS
    assert not any(a.startswith(("fasterrcnn", "deeplab", "raft", "r3d")) for a in ARCHS)


@pytest.mark.slow
@pytest.mark.parametrize("arch", ARCHS)
def test_new_head_outputs_k_logits_for_every_architecture(arch):
    kwargs = {"image_size": 224} if arch.startswith("vit_") else {}
    model = build_skeleton(arch, 7, **kwargs).eval()
    size = getattr(model, "image_size", None) or preprocess_for(arch).crop_size
    out = model(torch.zeros(2, 3, size, size, device="meta"))
    assert tuple(out.shape) == (2, 7)


@pytest.mark.parametrize("arch", ["resnet18", "mobilenet_v3_small", "squeezenet1_1", "googlenet"])
def test_real_model_at_small_size_outputs_k_logits(arch):
    built = build_model(arch, 3, weights="none", image_size=64)
    built.model.eval()
    with torch.no_grad():
        out = built.model(torch.randn(2, 3, 64, 64))
    assert out.shape == (2, 3)
    assert built.preprocess.crop_size == 64


def test_arch_info_reports_params_and_accuracy():
    info = arch_info("resnet18")
    assert info.num_params == 11689512
    assert info.imagenet_acc1 == pytest.approx(69.758)
    assert "IMAGENET1K_V1" in info.weights and info.default_weights == "IMAGENET1K_V1"


def test_unknown_architecture_is_a_clear_error():
    with pytest.raises(ModelError, match="Unknown model 'resnet19'"):
        build_model("resnet19", 3, weights="none")


def test_preprocessing_comes_from_weights_with_size_override():
    pre = preprocess_for("resnet18")
    assert (pre.crop_size, pre.resize_size) == (224, 256)
    assert pre.mean == pytest.approx((0.485, 0.456, 0.406))
    small = preprocess_for("resnet18", image_size=64)
    assert (small.crop_size, small.resize_size) == (64, 73)
    w = resolve_weights("vit_b_16", "IMAGENET1K_SWAG_E2E_V1")
    vit = preprocess_for("vit_b_16", w)
    assert (vit.crop_size, vit.resize_size, vit.interpolation) == (384, 384, "bicubic")


def _fake_imagenet_file(arch: str) -> tuple[Path, dict[str, torch.Tensor]]:
    """Put a 1000-class state dict where torch's hub cache looks for the default weights."""
    weights = resolve_weights(arch, "default")
    torch.manual_seed(123)
    state = tvm.get_model(arch, weights=None).state_dict()
    path = weights_cache_path(weights)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(state, path)
    return path, state


def test_pretrained_weights_load_from_the_hub_cache():
    path, state = _fake_imagenet_file("resnet18")
    assert path.name == "resnet18-f37072fd.pth"
    built = build_model("resnet18", 5, weights="default", allow_download=False)
    assert torch.equal(built.model.conv1.weight, state["conv1.weight"])
    assert torch.equal(built.model.layer4[1].bn2.running_var, state["layer4.1.bn2.running_var"])
    assert built.model.fc.out_features == 5
    assert built.weights_source == "ResNet18_Weights.IMAGENET1K_V1"


def test_missing_weights_offline_names_the_expected_file():
    with pytest.raises(WeightsError) as info:
        build_model("resnet18", 5, weights="default", allow_download=False)
    msg = str(info.value)
    assert (
        "resnet18-f37072fd.pth" in msg
        and str(weights_cache_path(resolve_weights("resnet18", "default"))) in msg
    )
    assert "--weights none" in msg and "local weights file" in msg


def test_pretrained_googlenet_records_its_constructor_arguments():
    _fake_imagenet_file("googlenet")
    built = build_model("googlenet", 3, weights="default", allow_download=False)
    assert built.model_kwargs == {"aux_logits": False, "transform_input": True}
    assert built.model.transform_input and built.model.aux1 is None


@pytest.mark.parametrize("suffix", [".pth", ".safetensors"])
def test_local_weights_files(tmp_path, suffix):
    torch.manual_seed(5)
    state = tvm.get_model("resnet18", weights=None).state_dict()
    path = tmp_path / f"my weights{suffix}"
    if suffix == ".safetensors":
        save_file({k: v.contiguous() for k, v in state.items()}, str(path))
    else:
        torch.save({"state_dict": {f"module.{k}": v for k, v in state.items()}}, path)
    built = build_model("resnet18", 2, weights=str(path))
    assert torch.equal(built.model.layer1[0].conv1.weight, state["layer1.0.conv1.weight"])
    assert built.model.fc.out_features == 2
    assert built.weights_source == str(path)


def test_pickle_with_code_is_refused_and_never_runs(tmp_path, code_payload):
    marker = tmp_path / "pwned.txt"
    buf = io.BytesIO()
    torch.save({"fc.weight": code_payload(str(marker))}, buf)
    bad = tmp_path / "evil.pth"
    bad.write_bytes(buf.getvalue())
    with pytest.raises(WeightsError, match="Refused to load evil.pth"):
        build_model("resnet18", 2, weights=str(bad))
    assert not marker.exists()
    raw = tmp_path / "raw.pt"
    raw.write_bytes(pickle.dumps(code_payload(str(marker))))
    with pytest.raises(WeightsError):
        build_model("resnet18", 2, weights=str(raw))
    assert not marker.exists()


def test_weights_of_another_architecture_name_the_mismatch(tmp_path):
    path = tmp_path / "resnet34.pth"
    torch.save(tvm.get_model("resnet34", weights=None).state_dict(), path)
    with pytest.raises(WeightsError) as info:
        build_model("resnet18", 2, weights=str(path))
    msg = str(info.value)
    assert "does not fit resnet18" in msg and "unexpected keys" in msg and "layer1.2.conv1.weight" in msg


def test_unreadable_weights_file(tmp_path):
    path = tmp_path / "broken.pth"
    path.write_bytes(b"this is not a checkpoint")
    with pytest.raises(WeightsError, match="Could not read weights file broken.pth"):
        build_model("resnet18", 2, weights=str(path))


@pytest.mark.slow
def test_pretrained_vit_refuses_other_sizes():
    with pytest.raises(ModelError, match="only at 224 px"):
        _fake = resolve_weights("vit_b_16", "IMAGENET1K_V1")
        path = weights_cache_path(_fake)
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.save(tvm.get_model("vit_b_16", weights=None).state_dict(), path)
        build_model("vit_b_16", 2, weights="IMAGENET1K_V1", image_size=384, allow_download=False)
