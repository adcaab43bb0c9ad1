"""Deployment formats for real: each written by its converter, run in its own runtime on the
validation images of a tiny trained resnet18, INT8 formats gated by the accuracy they lose."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest
import torch

from ftgui.cli.export import export_main
from ftgui.cli.predict import predict_main
from ftgui.core.base.options import EXPORT_FORMATS, QUANTIZED_FORMATS
from ftgui.core.bundle.export import write_weights
from ftgui.core.bundle.format import read_metadata
from ftgui.core.bundle.predict import Predictor
from ftgui.core.deploy.export import export_all
from ftgui.core.deploy.registry import missing_packages, runtime_available
from ftgui.core.models.heads import NormLinear
from ftgui.core.training.engine import Trainer

pytestmark = pytest.mark.slow
RUNNABLE = [f for f in EXPORT_FORMATS if not runtime_available(f)]


def _needs(fmt: str) -> None:
    missing = missing_packages(fmt)
    if missing:
        pytest.skip(f"{fmt} needs {', '.join(missing)} (the extra is not installed)")


def _config(image_folder, epochs: int, seed: int):
    from ftgui.core.models.freeze import FreezePlan
    from ftgui.core.training.config import TrainConfig

    return TrainConfig(
        data_dir=str(image_folder), arch="resnet18", weights="none", freeze=FreezePlan.parse("full"),
        epochs=epochs, batch_size=16, lr=1e-3, image_size=32, val_fraction=0.25, seed=seed, device="cpu",
    )  # fmt: skip


@pytest.fixture(scope="module")
def trained(image_folder):
    trainer = Trainer(_config(image_folder, epochs=2, seed=0))
    for _ in trainer.run():
        pass
    return trainer


@pytest.fixture(scope="module")
def every_format(trained, module_tmp):
    """One export with every format whose packages are here (the gate opened wide: these tests
    look at the files; the gate has its own test)."""
    out = module_tmp / "model"
    formats = [f for f in EXPORT_FORMATS if not missing_packages(f)]
    checks = export_all(trained.trained(), out, ("safetensors", *formats), max_accuracy_drop=100.0)
    return out, {c.format: c for c in checks}


@pytest.mark.parametrize("fmt", list(EXPORT_FORMATS))
def test_each_format_is_measured_in_its_own_runtime(every_format, fmt):
    _needs(fmt)
    out, checks = every_format
    c = checks[fmt]
    assert not c.error, c.error
    assert (out / EXPORT_FORMATS[fmt][0]).is_file() and c.size_bytes > 0
    if fmt == "coreml" and runtime_available(fmt):
        assert c.note.startswith("not checked: ") and c.agreement is None  # no claim without a run
        return
    assert c.images == 20 and c.latency_ms > 0 and c.reference_accuracy is not None
    if fmt in QUANTIZED_FORMATS:
        # Really INT8 inside, and close to the model (a tiny model: most answers agree).
        assert c.int8_tensors > 10 and c.agreement >= 0.75
        assert c.size_bytes < 0.4 * checks["onnx"].size_bytes if "onnx" in checks else True
    else:
        assert c.max_difference <= 1e-3 and c.agreement == 1.0 and c.accuracy == c.reference_accuracy
    record = read_metadata(out)["exports"]["formats"][fmt]
    assert record["agreement"] == c.agreement and record["files"][0] == EXPORT_FORMATS[fmt][0]
    card = (out / "MODEL_CARD.md").read_text()
    assert f"| `{EXPORT_FORMATS[fmt][0]}` | {c.runtime}" in card


@pytest.mark.parametrize("fmt", [f for f in RUNNABLE if f != "torchscript"])
def test_ftgui_predict_runs_every_format_with_the_pytorch_answers(every_format, image_folder, capsys, fmt):
    _needs(fmt)
    out, _ = every_format
    images = [str(p) for p in sorted(image_folder.rglob("*.jpg"))[::10]]
    assert predict_main([str(out), *images, "--json", "--topk", "4"]) == 0
    expected = json.loads(capsys.readouterr().out)
    assert predict_main([str(out), *images, "--json", "--topk", "4", "--runtime", fmt]) == 0
    got = json.loads(capsys.readouterr().out)
    assert [g["path"] for g in got] == [e["path"] for e in expected]
    # INT8: within 0.15 (the concat head's max- and average-pooled halves share one INT8 range)
    tolerance = 0.15 if fmt in QUANTIZED_FORMATS else 1e-4
    agree = 0
    for g, e in zip(got, expected):
        probs = {t["class"]: t["probability"] for t in g["top"]}
        agree += g["top"][0]["class"] == e["top"][0]["class"]
        for t in e["top"]:
            assert abs(probs[t["class"]] - t["probability"]) <= tolerance
    assert agree == len(images) if fmt not in QUANTIZED_FORMATS else agree >= len(images) - 1


def _with_an_outlier_channel(src: Path, dst: Path) -> None:
    """The same model but for one channel of the last block: a constant of 3000 that the head
    ignores. The float model answers exactly as before; an INT8 activation range stretched to
    3000 leaves the other channels (a few units wide) no steps of their own."""
    shutil.copytree(src, dst)
    predictor = Predictor.load(dst)
    model = predictor.model
    with torch.no_grad():
        model.layer4[1].bn2.weight[0] = 0.0
        model.layer4[1].bn2.bias[0] = 3000.0
        if isinstance(model.fc, NormLinear):  # the concat head sees the channel twice: max and mean
            model.fc.linear.weight[:, [0, model.fc.in_features // 2]] = 0.0
        else:
            model.fc.weight[:, 0] = 0.0
    meta = read_metadata(dst)
    meta["weights_sha256"] = write_weights(model, meta["arch"], dst / "model.safetensors")
    meta.pop("exports", None)
    (dst / "model.json").write_text(json.dumps(meta))


def test_the_gate_refuses_an_int8_export_that_loses_accuracy_and_keeps_the_float_one(
    every_format, image_folder, tmp_path, capsys
):
    _needs("onnx-int8")
    out, checks = every_format
    bad = tmp_path / "outlier"
    _with_an_outlier_channel(out, bad)
    for name in ("model.int8.onnx", "model.onnx"):
        (bad / name).unlink()
    (bad / "notes.txt").write_text("mine")
    assert export_main([str(bad), "--format", "onnx,onnx-int8"]) == 1
    captured = capsys.readouterr()
    assert "not kept: model.int8.onnx" in captured.err
    assert "model.int8.onnx`: not kept (refused: accuracy " in (bad / "MODEL_CARD.md").read_text()
    assert "refused: accuracy" in captured.out and "more than the 1 point allowed" in captured.out
    formats = read_metadata(bad)["exports"]["formats"]
    refused, kept = formats["onnx-int8"], formats["onnx"]
    assert refused["refused"] and refused["accuracy"] < refused["reference_accuracy"] - 0.01
    assert not (bad / "model.int8.onnx").exists()  # refused: not left for anyone to deploy
    assert (bad / "model.onnx").is_file() and kept["max_difference"] <= 1e-3 and not kept["error"]
    assert (bad / "notes.txt").read_text() == "mine"
    # ftgui-predict on that runtime says why the file is not there, and how to keep it anyway.
    image = sorted(image_folder.rglob("*.jpg"))[0]
    assert predict_main([str(bad), str(image), "--runtime", "onnx-int8"]) == 2
    said = capsys.readouterr().err
    assert "model.int8.onnx was not kept when this model was exported: refused: accuracy" in said
    assert "--max-accuracy-drop POINTS" in said and "export it first" not in said
    # Allowed to lose everything, the same file is kept.
    assert export_main([str(bad), "--format", "onnx-int8", "--max-accuracy-drop", "100"]) == 0
    assert (bad / "model.int8.onnx").is_file()


def test_ftgui_export_into_an_existing_bundle_keeps_everything_else(trained, image_folder, tmp_path, capsys):
    _needs("onnx")
    out = tmp_path / "model"
    export_all(trained.trained(), out, ("safetensors", "torchscript"))
    (out / "checkpoint.pt").write_bytes(b"my checkpoint")
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    sha = read_metadata(out)["weights_sha256"]
    assert export_main([str(out), "--format", "onnx"]) == 0
    assert "model.onnx" in capsys.readouterr().out
    after = {p.name: p.read_bytes() for p in out.iterdir()}
    assert set(after) == set(before) | {"model.onnx"}
    for name in ("checkpoint.pt", "model.safetensors", "split.json.gz", "model.torchscript.pt"):
        assert after[name] == before[name], name
    meta = read_metadata(out)
    assert meta["weights_sha256"] == sha and set(meta["exports"]["formats"]) == {"onnx", "torchscript"}
    card = (out / "MODEL_CARD.md").read_text()
    assert (
        card.count("## Deployment formats") == 1
        and "`model.torchscript.pt`" in card
        and "`model.onnx`" in card
    )
    assert card.startswith(before["MODEL_CARD.md"].decode().split("## Deployment formats")[0])

    # The dataset moved: one line that says what to pass, and nothing changes.
    moved = tmp_path / "moved"
    shutil.copytree(image_folder, moved)
    meta_path = out / "model.json"
    data = json.loads(meta_path.read_text())
    record = json.loads(__import__("gzip").decompress((out / "split.json.gz").read_bytes()))
    record["root"] = str(tmp_path / "gone")
    (out / "split.json.gz").write_bytes(__import__("gzip").compress(json.dumps(record).encode()))
    data["split"]["root"] = str(tmp_path / "gone")
    meta_path.write_text(json.dumps(data))
    assert export_main([str(out), "--format", "onnx"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "pass the dataset's folder with --data FOLDER" in err
    assert export_main([str(out), "--format", "onnx", "--data", str(moved)]) == 0


def test_unknown_and_missing_formats_are_refused_before_anything_is_written(every_format, capsys, tmp_path):
    out, _ = every_format
    before = sorted(p.name for p in out.iterdir())
    assert export_main([str(out), "--format", "tensorrt"]) == 2
    assert "Unknown export format tensorrt: use onnx, onnx-int8" in capsys.readouterr().err
    assert export_main([str(tmp_path), "--format", "onnx"]) == 2
    assert "No model.json in" in capsys.readouterr().err
    assert predict_main([str(out), str(out / "model.json"), "--runtime", "tensorrt"]) == 2
    assert "--runtime tensorrt: use one of torch, onnx" in capsys.readouterr().err
    if sys.platform != "darwin":
        assert predict_main([str(out), str(out / "model.json"), "--runtime", "coreml"]) == 2
        assert (
            "--runtime coreml (the Core ML runtime runs only on macOS): use one of" in capsys.readouterr().err
        )
    assert sorted(p.name for p in out.iterdir()) == before


def test_an_exported_file_runs_only_if_it_is_the_one_this_bundle_exported(
    every_format, trained, image_folder, tmp_path, capsys
):
    """Another bundle's model.onnx copied in, an INT8 file renamed to the float one's name, a
    bundle whose model.json has no SHA-256 for the format: one line each, nothing run."""
    _needs("onnx")
    _needs("onnx-int8")
    out, _ = every_format
    image = str(next(image_folder.rglob("*.jpg")))
    other = Trainer(_config(image_folder, epochs=1, seed=7))
    for _ in other.run():
        pass
    export_all(other.trained(), tmp_path / "other", ("safetensors", "onnx"), max_accuracy_drop=100.0)
    meta = read_metadata(out)
    assert meta["exports"]["formats"]["onnx"]["sha256"]["model.onnx"]
    assert meta["exports"]["formats"]["onnx"]["input_size"] == 32

    def copy(name: str) -> Path:  # the files these cases need (not every format: 300 MB each)
        bundle = tmp_path / name
        bundle.mkdir()
        for file in ("model.json", "model.safetensors", "split.json.gz", "model.onnx", "model.int8.onnx"):
            shutil.copy(out / file, bundle / file)
        return bundle

    foreign = copy("foreign")
    shutil.copy(tmp_path / "other" / "model.onnx", foreign / "model.onnx")
    renamed = copy("renamed")
    shutil.copy(renamed / "model.int8.onnx", renamed / "model.onnx")
    unsigned = copy("unsigned")
    record = json.loads((unsigned / "model.json").read_text())
    del record["exports"]["formats"]["onnx"]["sha256"]
    (unsigned / "model.json").write_text(json.dumps(record))
    for bundle, message in (
        (foreign, "is not the file this model's onnx export wrote"),
        (renamed, "is not the file this model's onnx export wrote"),
        (unsigned, "records no SHA-256 for its onnx export"),
    ):
        assert predict_main([str(bundle), image, "--runtime", "onnx"]) == 2
        err = capsys.readouterr().err
        assert message in err and f"ftgui-export {bundle} --format onnx" in err, err
        assert err.count("\n") == 1
    # Exported again, the file runs.
    assert export_main([str(foreign), "--format", "onnx"]) == 0
    capsys.readouterr()
    assert predict_main([str(foreign), image, "--runtime", "onnx"]) == 0
