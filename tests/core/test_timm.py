"""timm models as a second source: names, preprocessing from pretrained_cfg, weights from the
Hugging Face cache (offline), freezing by timm's own groups, exports that load in plain timm."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

timm = pytest.importorskip("timm")

from safetensors.torch import load_file, save_file  # noqa: E402

from ftgui.core.base.errors import WeightsError  # noqa: E402
from ftgui.core.bundle.predict import Predictor  # noqa: E402
from ftgui.core.deploy.export import export_all  # noqa: E402
from ftgui.core.models import arch_info, build_model, is_known_arch, list_models  # noqa: E402
from ftgui.core.models.freeze import FreezePlan  # noqa: E402
from ftgui.core.models.layers import model_blocks  # noqa: E402
from ftgui.core.training.config import TrainConfig  # noqa: E402
from ftgui.core.training.engine import Trainer, run_to_end  # noqa: E402

VIT = "timm:test_vit.r160_in1k"  # timm's own tiny test models: 0.3M parameters
CONVNEXT = "timm:test_convnext.r160_in1k"


@pytest.fixture
def hf_home(tmp_path, monkeypatch):
    home = tmp_path / "hf"
    monkeypatch.setenv("HF_HOME", str(home))
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return home


def place_in_hub_cache(home: Path, repo: str, state: dict[str, torch.Tensor]) -> Path:
    """A weights file in the hub cache's own layout: refs/main names the snapshot."""
    folder = home / "hub" / f"models--{repo.replace('/', '--')}"
    commit = "0123456789abcdef0123456789abcdef01234567"
    (folder / "refs").mkdir(parents=True)
    (folder / "refs" / "main").write_text(commit)
    snapshot = folder / "snapshots" / commit
    snapshot.mkdir(parents=True)
    save_file({k: v.contiguous() for k, v in state.items()}, str(snapshot / "model.safetensors"))
    return snapshot / "model.safetensors"


def test_timm_models_are_listed_with_licence_and_a_cpu_sized_default():
    names = list_models()
    assert "resnet18" in names and VIT in names and "timm:vit_small_patch14_dinov2.lvd142m" in names
    assert is_known_arch(VIT) and not is_known_arch("timm:no_such_model.x")
    info = arch_info(VIT)
    assert info.source == "timm" and info.licence == "apache-2.0" and info.num_params > 100_000
    dino = arch_info("timm:vit_small_patch14_dinov2.lvd142m")
    assert dino.default_size == 224 and "518" in dino.size_note  # not its 518 px pretraining size


def test_preprocessing_comes_from_pretrained_cfg(hf_home):
    built = build_model(VIT, 3, "none", 64, meta=True)
    cfg = timm.models.get_pretrained_cfg("test_vit.r160_in1k").to_dict()
    pre = built.preprocess
    assert pre.crop_size == 64 and pre.resize_size == round(64 / cfg["crop_pct"])
    assert pre.mean == tuple(cfg["mean"]) and pre.std == tuple(cfg["std"])
    assert pre.interpolation == cfg["interpolation"]
    assert built.model_kwargs == {"img_size": 64}  # a ViT takes its input size as an argument


def test_weights_come_from_the_hub_cache_offline_and_are_adapted(hf_home):
    torch.manual_seed(3)
    pretrained = timm.create_model("test_vit.r160_in1k", pretrained=False)  # 1000 classes, 160 px
    place_in_hub_cache(hf_home, "timm/test_vit.r160_in1k", pretrained.state_dict())
    built = build_model(VIT, 4, "default", 64)
    assert built.weights_source == "timm timm/test_vit.r160_in1k (Hugging Face hub)"
    state = built.model.state_dict()
    key = "blocks.0.attn.qkv.weight"
    assert torch.equal(state[key], pretrained.state_dict()[key])
    assert state["head.weight"].shape[0] == 4  # a new head
    assert state["pos_embed"].shape != pretrained.state_dict()["pos_embed"].shape  # resampled to 64 px


def test_weights_neither_cached_nor_downloadable_say_which_file_and_where(hf_home):
    with pytest.raises(WeightsError) as err:
        build_model(VIT, 4, "default", 64)
    message = str(err.value)
    assert "\n" not in message
    assert "timm/test_vit.r160_in1k/model.safetensors" in message
    assert str(hf_home / "hub" / "models--timm--test_vit.r160_in1k") in message


def test_blocks_are_timms_own_groups():
    built = build_model(VIT, 3, "none", 64, meta=True)
    blocks = model_blocks(built.model, built.head)
    flat = [n for b in blocks for n in b]
    assert {"cls_token", "pos_embed", "patch_embed"} <= set(blocks[0])  # the stem group
    assert blocks[1] == ["blocks.0"] and "norm" in blocks[-1]  # the final norm joins the last block
    assert "head" not in flat and built.head == ["head"]
    convnext = build_model(CONVNEXT, 3, "none", 64, meta=True)
    stages = model_blocks(convnext.model, convnext.head)
    assert stages[0] == ["stem"] and [b[0] for b in stages[1:]] == [
        f"stages.{i}" for i in range(len(stages) - 1)
    ]
    assert stages[-1][-1] == "head.norm" and convnext.head == [
        "head.fc"
    ]  # the final norm joins the last stage


@pytest.mark.parametrize("strategy", ["head", "last-1"])
def test_frozen_parts_stay_bit_identical_and_exports_load_in_plain_timm(tmp_path, image_folder, strategy):
    cfg = TrainConfig(
        data_dir=str(image_folder), arch=VIT, weights="none", freeze=FreezePlan.parse(strategy),
        epochs=1, batch_size=16, lr=1e-2, image_size=32, val_fraction=0.25, seed=0, device="cpu",
    )  # fmt: skip
    trainer = Trainer(cfg)
    trainer.prepare()
    frozen = {n: p.detach().clone() for n, p in trainer.model.named_parameters() if not p.requires_grad}
    assert frozen and all(not n.startswith("head") for n in frozen)
    events = []
    final = run_to_end(trainer, on_event=events.append)
    assert type(final).__name__ == "Finished", final
    after = dict(trainer.model.named_parameters())
    assert all(torch.equal(after[n], v) for n, v in frozen.items())
    if strategy == "head":  # a cached linear probe: the frozen layers ran once
        assert any("Cached the frozen layers' output" in getattr(e, "text", "") for e in events)

    out = tmp_path / "bundle"
    export_all(trainer.trained(), out)
    meta = json.loads((out / "model.json").read_text())
    assert meta["arch"] == VIT and meta["model_kwargs"] == {"img_size": 32}
    plain = timm.create_model("test_vit.r160_in1k", pretrained=False, num_classes=4, **meta["model_kwargs"])
    plain.load_state_dict(load_file(str(out / "model.safetensors")), strict=True)
    x = torch.randn(2, 3, 32, 32)
    trainer.model.eval()
    with torch.no_grad():
        assert (plain.eval()(x) - trainer.model(x)).abs().max() <= 1e-4
    # ftgui-predict's path (the bundle's preprocessing, rebuilt in timm) agrees with the trained model
    images = sorted(Path(image_folder).glob("*/*.jpg"))[:3]
    from_bundle = Predictor.load(out).predict(images)
    from_trainer = Predictor(trainer.model, trainer.classes, trainer.preprocess, {"arch": VIT}).predict(
        images
    )
    for a, b in zip(from_bundle, from_trainer):
        assert a.error is None and a.top[0][0] == b.top[0][0] and abs(a.top[0][1] - b.top[0][1]) < 1e-4


@pytest.mark.slow
def test_pretrained_timm_model_exports_onnx_and_torchscript_with_its_licence(tmp_path, image_folder, hf_home):
    pytest.importorskip("onnxruntime")
    torch.manual_seed(5)
    place_in_hub_cache(
        hf_home, "timm/test_convnext.r160_in1k", timm.create_model("test_convnext.r160_in1k").state_dict()
    )
    cfg = TrainConfig(
        data_dir=str(image_folder), arch=CONVNEXT, weights="default", freeze=FreezePlan.parse("last-1"),
        epochs=1, batch_size=16, lr=1e-2, image_size=32, val_fraction=0.25, seed=0, device="cpu",
    )  # fmt: skip
    trainer = Trainer(cfg)
    assert type(run_to_end(trainer)).__name__ == "Finished"
    checks = export_all(trainer.trained(), tmp_path / "m", ("safetensors", "onnx", "torchscript"))
    assert {c.format for c in checks} == {"onnx", "torchscript"}
    assert all(c.max_difference <= 1e-4 for c in checks), checks
    meta = json.loads((tmp_path / "m" / "model.json").read_text())
    assert meta["model_source"] == "timm" and meta["weights_licence"] == "apache-2.0"
    card = (tmp_path / "m" / "MODEL_CARD.md").read_text()
    assert "Licence of the pretrained weights: apache-2.0" in card and "timm.create_model" in card


def test_ftgui_check_and_compare_take_a_timm_model(tmp_path, image_folder, capsys):
    from ftgui.cli.check import check_main
    from ftgui.cli.compare import compare_main

    common = ["--model", VIT, "--weights", "none", "--image-size", "32", "--epochs", "1", "--quiet"]
    assert (
        compare_main(
            [str(image_folder), *common, "--candidates", "head,last-1", "--out", str(tmp_path / "c")]
        )
        == 0
    )
    assert (tmp_path / "c" / "head" / "model.json").is_file() and (
        tmp_path / "c" / "last-1" / "model.json"
    ).is_file()
    code = check_main([str(image_folder), "--model", VIT, "--weights", "none", "--image-size", "32"])
    assert code in (0, 1), capsys.readouterr().err


@pytest.mark.slow
def test_the_model_list_is_kept_per_timm_version_and_read_without_importing_timm(tmp_path):
    import subprocess
    import sys

    env = {**__import__("os").environ, "XDG_CACHE_HOME": str(tmp_path)}
    code = (
        "import sys; from ftgui.core.models.timm_source import list_timm; names = list_timm(); "
        "print(len(names), names[0].startswith('timm:'), 'timm' in sys.modules)"
    )

    def run() -> list[str]:
        out = subprocess.run(
            [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120
        )
        assert out.returncode == 0, out.stderr
        return out.stdout.split()

    first = run()
    assert int(first[0]) > 1000 and first[1] == "True" and first[2] == "True"  # made with timm
    (kept,) = (tmp_path / "ftgui").glob("timm-models-*.json")
    assert run() == [first[0], "True", "False"]  # read back: timm not imported
    kept.write_text("{not json")
    assert run()[0] == first[0] and json.loads(kept.read_text())[0].startswith("timm:")  # made again


# ---------------------------------------------------------------- timm weights through ftgui's checks


def _damaged(kind: str, good: Path, code_payload, tmp_path: Path) -> None:
    data = good.read_bytes()
    if kind == "truncated":
        good.write_bytes(data[: len(data) // 2])
    elif kind == "empty":
        good.write_bytes(b"")
    else:  # a pickle with code, named model.safetensors
        torch.save({"x": code_payload(str(tmp_path / "pwned"))}, str(good))


@pytest.mark.parametrize("kind", ["truncated", "empty", "pickle"])
def test_a_damaged_file_in_the_hub_cache_is_one_line_naming_it_and_its_folder(
    hf_home, tmp_path, code_payload, image_folder, capsys, kind
):
    from ftgui.cli import train_main

    file = place_in_hub_cache(
        hf_home, "timm/test_vit.r160_in1k", timm.create_model("test_vit.r160_in1k").state_dict()
    )
    _damaged(kind, file, code_payload, tmp_path)
    folder = hf_home / "hub" / "models--timm--test_vit.r160_in1k"
    with pytest.raises(WeightsError, match="in the Hugging Face cache are damaged") as info:
        build_model(VIT, 4, "default", 64)
    assert str(folder) in str(info.value)
    code = train_main(
        [str(image_folder), "--out", str(tmp_path / "out"), "--model", VIT, "--image-size", "32"]
    )
    err = capsys.readouterr().err
    assert code == 2 and "in the Hugging Face cache are damaged" in err and "Traceback" not in err
    assert not (tmp_path / "pwned").exists() and not (tmp_path / "out").exists()


def test_another_models_weights_are_refused_from_the_cache_and_as_a_file(hf_home, tmp_path):
    other = timm.create_model("test_convnext.r160_in1k").state_dict()
    place_in_hub_cache(hf_home, "timm/test_vit.r160_in1k", other)  # the wrong file in the cache
    with pytest.raises(
        WeightsError, match="does not hold the weights of timm:test_vit.r160_in1k: .*missing keys"
    ):
        build_model(VIT, 4, "default", 64)
    save_file({k: v.contiguous() for k, v in other.items()}, str(tmp_path / "convnext.safetensors"))
    with pytest.raises(WeightsError, match="does not hold the weights of"):
        build_model(VIT, 4, str(tmp_path / "convnext.safetensors"), 64)
    # The right file, with another classifier: accepted (the head is replaced anyway).
    torch.manual_seed(0)
    own = timm.create_model("test_vit.r160_in1k", num_classes=7).state_dict()
    save_file({k: v.contiguous() for k, v in own.items()}, str(tmp_path / "vit.safetensors"))
    built = build_model(VIT, 4, str(tmp_path / "vit.safetensors"), 64)
    name = next(k for k in own if k.endswith("blocks.0.attn.qkv.weight"))
    assert torch.equal(built.model.state_dict()[name], own[name])


@pytest.mark.slow
@pytest.mark.parametrize("arch", ["timm:test_convnext", "timm:test_convnext.r160_in1k"])
def test_a_timm_bundle_reads_back_with_or_without_a_pretrained_tag(tmp_path, image_folder, capsys, arch):
    from ftgui.cli import predict_main, train_main

    out = tmp_path / "m"
    args = [str(image_folder), "--out", str(out), "--model", arch, "--weights", "none", "--image-size", "32"]
    assert train_main([*args, "--epochs", "1"]) == 0, capsys.readouterr().err
    image = next((image_folder / "circle").iterdir())
    assert predict_main([str(out), str(image), "--json"]) == 0, capsys.readouterr().err
    assert json.loads(capsys.readouterr().out)[0]["top"]
    assert Predictor.load(out).meta["arch"] == arch
    assert is_known_arch(arch)
