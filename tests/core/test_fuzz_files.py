"""Malformed model.json and checkpoint files: exit code 2 and one line, never a traceback.

A valid bundle and a valid checkpoint are mutated a few hundred ways (missing keys, wrong
types, out-of-range values, NaN, deep nesting, huge lists, truncated and corrupted bytes) and
handed to ftgui-predict and ftgui-train --resume.
"""

from __future__ import annotations

import copy
import json
import random
import shutil
from pathlib import Path

import pytest
import torch

from ftgui.cli import predict_main, train_main
from ftgui.core.bundle.export import export_bundle
from ftgui.core.training.config import TrainConfig
from ftgui.core.training.engine import Trainer, run_to_end

NAN = float("nan")


@pytest.fixture(scope="module")
def valid(module_tmp, image_folder):
    """A bundle and a checkpoint of a small model (mobilenet_v3_small, head only, 32 px)."""
    base = module_tmp
    cfg = TrainConfig(
        data_dir=str(image_folder),
        arch="mobilenet_v3_small",
        weights="none",
        image_size=32,
        epochs=1,
        device="cpu",
    )
    trainer = Trainer(cfg)
    run_to_end(trainer)
    export_bundle(trainer.trained(), base / "bundle")
    trainer.save_checkpoint(base / "checkpoint.pt")
    return base


def _meta_mutations(meta: dict) -> list[tuple[str, object]]:
    """(description, new model.json content: a dict, or raw text)."""
    bad_values = {
        "format": [None, "ftgui-checkpoint", 1],
        "version": [None, 0, 3, "2", True, 2.5, NAN],
        "arch": [None, "", "resnet9000", 18, ["resnet18"]],
        "classes": [
            None,
            [],
            "ab",
            [1, 2, 3, 4],
            [None] * 4,
            {"a": 1},
            [f"c{i}" for i in range(1_000_000)],
            ["../x", "b", "c", "d"],
            ["/tmp/x", "b", "c", "d"],
            ["..", "b", "c", "d"],
            ["a", "a", "c", "d"],
        ],
        "num_classes": [None, 3, "4", 4.0, -4, True, NAN],
        "input_size": [None, 0, 7, 5000, 10**12, "224", 22.5, True, NAN, [224]],
        "resize_size": [None, -1, 10**9, "256", NAN],
        "mean": [None, [0.5, 0.5], [0.5, 0.5, "x"], [NAN, 0, 0], [float("inf"), 0, 0], "0.5", [[0.5]] * 3],
        "std": [None, [0, 1, 1], [-1, 1, 1], [NAN, 1, 1], [1, 1], "1"],
        "interpolation": [None, "magic", 3, ["bilinear"]],
        "model_kwargs": [
            None,
            [],
            "x",
            {"evil": 1},
            {"aux_logits": "yes"},
            {"image_size": 10**9},
            {"image_size": 1.5},
        ],
        "weights_sha256": [None, "", "xyz", "0" * 63, "G" * 64, 12, ["a" * 64]],
        "split": [
            "x",
            [],
            {"root": 5},
            {"root": "/", "val": [["a.png", 99]]},
            {"root": "/", "val": [["a.png"]]},
        ],
    }
    out: list[tuple[str, object]] = []
    for key, values in bad_values.items():
        if key in meta and key != "split":
            out.append((f"without {key}", {k: v for k, v in meta.items() if k != key}))
        for value in values:
            out.append((f"{key}={str(value)[:40]}", {**meta, key: value}))
    deep: object = []
    for _ in range(400):
        deep = [deep]
    out += [
        ("a list", [meta]),
        ("a string", "just text"),
        ("null", None),
        ("deeply nested classes", {**meta, "classes": deep}),
        ("nested too deeply to parse", "[" * 200_000 + "]" * 200_000),
        ("not JSON", "{not json"),
        ("empty", ""),
        ("NaN everywhere", json.dumps(meta).replace("224", "NaN")),
    ]
    text = json.dumps(meta)
    rng = random.Random(0)
    for cut in sorted(rng.sample(range(1, len(text)), 20)):
        out.append((f"truncated at {cut}", text[:cut]))
    return out


def _expect_one_line_error(rc: int, err: str, what: str) -> None:
    assert rc == 2, f"{what}: exit {rc}\n{err}"
    assert err.count("\n") == 1 and err.startswith(("ftgui-predict: error: ", "ftgui-train: error: ")), what
    assert "Traceback" not in err, what


@pytest.mark.slow
def test_mutated_model_json_gives_exit_2_and_one_line(valid, tmp_path, capsys, image_folder):
    meta = json.loads((valid / "bundle" / "model.json").read_text())
    image = str(next(Path(image_folder).rglob("*.jpg")))
    bundle = tmp_path / "b"
    shutil.copytree(valid / "bundle", bundle)
    assert predict_main([str(bundle), image]) == 0
    capsys.readouterr()
    mutations = _meta_mutations(meta)
    assert len(mutations) >= 120
    for what, content in mutations:
        text = content if isinstance(content, str) else json.dumps(content)
        (bundle / "model.json").write_text(text)
        rc = predict_main([str(bundle), image])
        _expect_one_line_error(rc, capsys.readouterr().err, what)


def _checkpoint_mutations(state: dict) -> list[tuple[str, dict | bytes | list]]:
    cfg = state["config"]
    pre = state["preprocess"]
    model = state["model"]
    nan_model = {k: v.clone().contiguous() for k, v in model.items()}
    first_float = next(k for k, v in nan_model.items() if v.is_floating_point())
    nan_model[first_float].view(-1)[0] = NAN
    wrong_shape = dict(model)
    wrong_shape[first_float] = torch.zeros(3)
    bad_values: dict[str, list[object]] = {
        "format": [None, "ftgui-model"],
        "version": [None, "1", 3, True],
        "config": [
            None,
            "x",
            [],
            {**cfg, "lr": "fast"},
            {**cfg, "lr": NAN},
            {**cfg, "lr": -1.0},
            {**cfg, "epochs": -1},
            {**cfg, "batch_size": 0},
            {**cfg, "seed": 2**70},
            {**cfg, "arch": 5},
            {**cfg, "image_size": 10**6},
            {**cfg, "val_fraction": 2.0},
            {**cfg, "strategy": 7},
            {**cfg, "trainable": "fc"},
            {**cfg, "freeze": "head"},
            {**cfg, "freeze": {"strategy": "sideways"}},
            {**cfg, "freeze": {"overrides": [["fc", "yes"]]}},
            {**cfg, "augment": "no"},
            {**cfg, "optimizer": "magic"},
        ],
        "classes": [
            None,
            [],
            ["only"],
            [1, 2],
            "ab",
            [f"c{i}" for i in range(1_000_000)],
            ["../x", "square", "stripes", "triangle"],
            ["/etc", "square", "stripes", "triangle"],
        ],
        "root": [None, 5],
        "split": [
            None,
            {},
            {"train": [], "val": []},
            {"train": [["a.jpg", 99]], "val": []},
            {"train": [["a.jpg"]], "val": []},
            {"train": "x", "val": []},
            {"train": [["a.jpg", -1]], "val": []},
        ],
        "skipped": [None, "x", [[1, 2]]],
        "epoch": [None, -1, "1", 10**9, 1.5],
        "step": [None, -5, "x"],
        "unfrozen_blocks": [None, -1, "x"],
        "arch": [None, "resnet9000", 5],
        "head": [None, [], "fc", [1]],
        "model_kwargs": [None, [], {"evil": 1}, {"aux_logits": "yes"}, {"image_size": 10**9}],
        "preprocess": [
            None,
            {},
            {**pre, "crop_size": 0},
            {**pre, "crop_size": 10**9},
            {**pre, "mean": [NAN, 0, 0]},
            {**pre, "std": [0, 1, 1]},
            {**pre, "interpolation": "magic"},
        ],
        "weights_source": [None, 5],
        "trainable_parameter_names": [None, "classifier.3.weight", [1]],
        "group_names": [None, "x", [*state["group_names"], ["extra"]]],
        "model": [None, {}, {"a": "x"}, nan_model, wrong_shape, {k: v for k, v in list(model.items())[1:]}],
        "optimizer": [None, {}, {"state": {}, "param_groups": []}, {"state": [], "param_groups": "x"}],
        "history": [None, "x", [1, 2]],
        "best_epoch": [-1, 0, "1", 10**6],
        "best_val_loss": ["x", NAN, float("inf")],
        "best_state": ["x", {}],
        "rng_state": ["x", torch.zeros(3)],
    }
    out: list[tuple[str, dict | bytes | list]] = []
    for key, values in bad_values.items():
        if key not in ("best_epoch", "best_val_loss", "best_state", "rng_state"):
            out.append((f"without {key}", {k: v for k, v in state.items() if k != key}))
        for value in values:
            out.append((f"{key}={str(value)[:40]}", {**state, key: value}))
    deep: object = []
    for _ in range(300):
        deep = [deep]
    out += [("a list", [state]), ("deeply nested history", {**state, "history": deep})]
    return out


@pytest.mark.slow
def test_mutated_checkpoint_gives_exit_2_and_one_line(valid, tmp_path, capsys, image_folder):
    state = torch.load(valid / "checkpoint.pt", weights_only=True)
    raw = (valid / "checkpoint.pt").read_bytes()
    path = tmp_path / "checkpoint.pt"
    args = [str(image_folder), "--out", str(tmp_path / "out"), "--resume", str(path), "--epochs", "1"]
    mutations = _checkpoint_mutations(state)
    rng = random.Random(1)
    for cut in sorted(rng.sample(range(100, len(raw)), 12)):
        mutations.append((f"truncated at {cut}", raw[:cut]))
    for i in range(8):
        corrupt = bytearray(raw)
        for pos in rng.sample(range(len(raw)), 64):
            corrupt[pos] ^= 0xFF
        mutations.append((f"64 flipped bytes #{i}", bytes(corrupt)))
    assert len(mutations) >= 120
    for what, content in mutations:
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            torch.save(copy.copy(content), path)
        rc = train_main(args)
        _expect_one_line_error(rc, capsys.readouterr().err, what)
    assert not (tmp_path / "out").exists()


def test_every_damaged_job_json_is_one_line_never_a_traceback(image_folder, tmp_path, capsys):
    """job.json (the window's Export training job) with each field of the wrong type or range,
    damaged JSON and deep nesting: ftgui-train --config refuses each with one line (exit 2)."""
    from ftgui.cli import train_main
    from ftgui.core.data.samples import split_samples
    from ftgui.core.data.scan import scan_folder
    from ftgui.core.training.config import TrainConfig
    from ftgui.core.workflows.job import write_job

    scan = scan_folder(image_folder)
    config = TrainConfig(data_dir=str(image_folder), weights="none", image_size=32, epochs=1)
    write_job(tmp_path / "job", config, scan.classes, split_samples(scan, 0.25, 0))
    record = json.loads((tmp_path / "job" / "job.json").read_text())
    first = record["split"]["train"][0]
    bad_values = {
        "format": [None, "ftgui-model", 3],
        "version": [None, 0, 99, "1", True],
        "training": [None, [], "x", {"epochs": "many"}, {**record["training"], "lr": "fast"},
                     {**record["training"], "batch_size": -1}, {**record["training"], "arch": 5}],
        "classes": [None, [], ["only"], [1, 2], ["a", "a"], ["../x", "b"], "ab"],
        "split": [None, [], "x", {"train": None, "val": []}, {"train": [[1, 0]], "val": []},
                  {"train": [first, first], "val": []}, {"train": [first], "val": [first]},
                  {"train": [["../../etc/passwd", 0]], "val": []}, {"train": [], "val": []}],
        "dataset": [5, None, ["x"]],
    }  # fmt: skip
    cases: list[tuple[str, object]] = []
    for key, values in bad_values.items():
        cases.append((f"without {key}", {k: v for k, v in record.items() if k != key}))
        cases += [(f"{key}={str(v)[:40]}", {**record, key: v}) for v in values]
    text = json.dumps(record)
    cases += [("null", None), ("a list", [record]), ("not JSON", "{nope"), ("empty", ""),
              ("deep", "[" * 100_000 + "]" * 100_000)]  # fmt: skip
    cases += [(f"truncated at {cut}", text[:cut]) for cut in range(7, len(text), max(1, len(text) // 15))]
    refused = 0
    for what, content in cases:
        job = tmp_path / "bad.json"
        job.write_text(content if isinstance(content, str) else json.dumps(content))
        out = tmp_path / "o"
        rc = train_main(
            ["--config", str(job), "--data", str(image_folder), "--out", str(out), "--epochs", "1"]
        )
        err = capsys.readouterr().err
        if rc == 0:  # a value ftgui accepts (the dataset's path is informational)
            assert what.startswith(("dataset", "without dataset")), what
            shutil.rmtree(out)
            continue
        refused += 1
        assert rc == 2 and err.count("\n") == 1 and "Traceback" not in err, f"{what}: exit {rc}\n{err}"
        assert not out.exists(), what
    assert refused >= len(cases) - 4
