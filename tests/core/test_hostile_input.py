"""Hostile cases end with a message, never a traceback, and never change the task."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

from ftgui.cli import predict_main, train_main
from ftgui.core.base import events as ev
from ftgui.core.base.text import display_path
from ftgui.core.bundle.export import export_bundle
from ftgui.core.bundle.format import read_metadata, read_split
from ftgui.core.data.scan import scan_folder
from ftgui.core.evaluation.metrics import Evaluation, format_report, headline, summarise
from ftgui.core.models.freeze import FreezePlan
from ftgui.core.training.engine import Trainer, run_to_end


def _image(path: Path, color=(200, 30, 30), size=32) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (size, size), color).save(path)


# ---------------------------------------------------------------- folder rules


def test_train_val_with_an_extra_folder_keeps_the_split_and_warns(tmp_path):
    for split in ("train", "val"):
        for cls, color in (("cat", (200, 0, 0)), ("dog", (0, 0, 200))):
            for i in range(3):
                _image(tmp_path / split / cls / f"{i}.png", color)
    _image(tmp_path / "out" / "x.png")  # e.g. an output folder placed inside the dataset
    scan = scan_folder(tmp_path)
    assert scan.classes == ["cat", "dog"] and scan.presplit is not None
    assert len(scan.presplit["train"]) == 6 and len(scan.presplit["val"]) == 6
    assert any("other folders beside them were ignored: out/" in w for w in scan.warnings)


def test_a_folder_holding_an_ftgui_bundle_is_never_a_class(tmp_path, trained_bundle):
    data = tmp_path / "data"
    for cls in ("a", "b"):
        for i in range(2):
            _image(data / cls / f"{i}.png")
    shutil.copytree(trained_bundle, data / "my-model")
    _image(data / "my-model" / "preview.png")
    scan = scan_folder(data)
    assert scan.classes == ["a", "b"]
    assert any("my-model/ holds an ftgui model" in w for w in scan.warnings)


@pytest.fixture(scope="module")
def trained_bundle(module_tmp, image_folder):
    from ftgui.core.training.config import TrainConfig

    out = module_tmp / "m"
    cfg = TrainConfig(data_dir=str(image_folder), weights="none", image_size=32, epochs=1, device="cpu")
    trainer = Trainer(cfg)
    run_to_end(trainer)
    export_bundle(trainer.trained(), out)
    return out


# ---------------------------------------------------------------- any file name


@pytest.mark.skipif(sys.platform != "linux", reason="only Linux allows any bytes in file names")
def test_file_and_class_names_that_are_not_utf8_survive_scan_training_export_and_predict(tmp_path, capsys):
    root = tmp_path / "data"
    bad_class = os.fsdecode(b"caf\xe9")  # Latin-1 bytes, as old cameras and archives write them
    bad_file = os.fsdecode(b"photo-\xff\xfe.png")
    for cls, color in ((bad_class, (220, 20, 20)), ("plain", (20, 20, 220))):
        for i in range(6):
            _image(root / cls / (bad_file if i == 0 else f"{i}.png"), color)
    scan = scan_folder(root)
    assert scan.classes == ["caf\udce9", "plain"]
    assert f"caf\udce9/{bad_file}" in [s.path for s in scan.samples]

    out = tmp_path / "out"
    args = [str(root), "--out", str(out), "--weights", "none", "--image-size", "32", "--epochs", "1"]
    assert train_main([*args, "--val-fraction", "0.5"]) == 0
    err = capsys.readouterr().err
    assert "caf\\xe9" in err  # shown readably on the terminal
    text = (out / "model.json").read_bytes().decode("utf-8")  # still valid UTF-8 JSON
    meta = json.loads(text)
    assert meta["classes"][0] == bad_class and os.fsencode(meta["classes"][0]) == b"caf\xe9"
    split = read_split(out, meta)
    paths = [p for p, _ in split["train"] + split["val"]]
    assert f"caf\udce9/{bad_file}" in paths  # reversible: the exact bytes come back
    assert read_metadata(out)["classes"] == [bad_class, "plain"]

    image = root / bad_class / bad_file
    assert predict_main([str(out), str(image), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert os.fsencode(result[0]["path"]) == os.fsencode(str(image))
    assert predict_main([str(out), str(image)]) == 0
    shown = capsys.readouterr().out
    assert "caf\\xe9" in shown and "photo-\\xff\\xfe.png" in shown
    assert display_path(bad_class) == "caf\\xe9"


# ---------------------------------------------------------------- BatchNorm and a batch of one


def test_a_last_batch_of_one_image_joins_the_previous_batch_while_batchnorm_trains(tiny_config):
    tiny_config.freeze, tiny_config.batch_size, tiny_config.val_fraction = FreezePlan.parse("full"), 7, 0.0
    scan = scan_folder(tiny_config.data_dir)
    keep = {s.path for s in scan.samples[:15]}
    scan.samples = [s for s in scan.samples if s.path in keep]
    trainer = Trainer(tiny_config)
    trainer.prepare(scan=scan)
    assert len(trainer.split.train) == 15  # 7 + 7 + 1 at 32 px: layer4's BatchNorm sees 1 value
    sizes = []
    final = run_to_end(trainer, on_event=lambda e: isinstance(e, ev.BatchEnded) and sizes.append(e.batch))
    assert isinstance(final, ev.Finished), final
    assert sizes == [1, 2]  # the lone image joined the second batch (8 images)
    # Frozen BatchNorm (head only, linear head) keeps plain batches: the last one may hold one
    # image. The concat head's own BatchNorm trains: its lone image joins the batch before.
    tiny_config.freeze = FreezePlan.parse("head")
    for head, batches in (("linear", [7, 7, 1]), ("concat", [7, 8])):
        tiny_config.head = head
        trainer = Trainer(tiny_config)
        trainer.prepare(scan=scan)
        trainer.set_train_mode()
        assert [len(b.labels) for b in trainer.batches(train=True)] == batches, head


# ---------------------------------------------------------------- non-finite runs


def test_a_diverging_run_fails_clearly_and_keeps_the_last_finite_best(tiny_config, tmp_path):
    tiny_config.freeze, tiny_config.epochs = FreezePlan.parse("head"), 3
    trainer = Trainer(tiny_config)
    events = []
    for e in trainer.run():
        events.append(e)
        if isinstance(e, ev.EpochEnded) and e.epoch == 1:
            trainer.config.lr = 1e30  # the run diverges in epoch 2
            for group in trainer.optimizer.param_groups:
                group["base_lr"] = group["lr"] = 1e30
    final = events[-1]
    assert isinstance(final, ev.Failed)
    assert "lower learning rate" in final.message and "epoch 1" in final.message
    assert trainer.epoch == 1 and trainer.best_epoch == 1
    out = export_bundle(trainer.trained(), tmp_path / "m")
    weights = load_file(str(out / "model.safetensors"))
    assert all(bool(torch.isfinite(t).all()) for t in weights.values() if t.is_floating_point())


def test_cli_lr_that_diverges_at_once_exits_1_and_writes_nothing(
    image_folder, tmp_path, capsys, ftgui_train_args
):
    out = tmp_path / "out"
    assert train_main(ftgui_train_args(image_folder, out, "--strategy", "full", "--lr", "1e30")) == 1
    err = capsys.readouterr().err
    assert "error: The loss became nan" in err and "lower learning rate" in err
    assert not out.exists()


def test_a_bundle_with_nan_weights_is_refused_and_json_output_stays_valid(trained_bundle, tmp_path, capsys):
    from safetensors.torch import save_file

    bad = tmp_path / "bad"
    shutil.copytree(trained_bundle, bad)
    state = load_file(str(bad / "model.safetensors"))
    state["fc.1.weight"][0, 0] = float("nan")  # the concat head's linear layer
    save_file(state, str(bad / "model.safetensors"))
    meta = json.loads((bad / "model.json").read_text())
    import hashlib

    meta["weights_sha256"] = hashlib.sha256((bad / "model.safetensors").read_bytes()).hexdigest()
    (bad / "model.json").write_text(json.dumps(meta))
    image = next(Path(meta["split"]["root"]).rglob("*.jpg"))
    assert predict_main([str(bad), str(image), "--json"]) == 2
    assert "not finite numbers" in capsys.readouterr().err
    assert predict_main([str(trained_bundle), str(image), str(tmp_path), "--json"]) == 1
    result = json.loads(capsys.readouterr().out)  # valid JSON, even with an error entry
    assert result[1]["error"] == "this folder holds no image files"


# ---------------------------------------------------------------- numbers, checked before the scan


@pytest.mark.parametrize(
    "option, message",
    [
        (["--lr", "inf"], "--lr (learning rate) must be a finite number above 0, or auto (got inf)"),
        (["--lr", "nan"], "--lr (learning rate) must be a finite number above 0, or auto (got nan)"),
        (["--lr", "0"], "--lr (learning rate) must be a finite number above 0"),
        (["--seed", "-1"], "--seed must be a whole number from 0 to 2^63-1"),
        (["--image-size", "4"], "--image-size must be from 8 to 4096 pixels (got 4)"),
        (["--image-size", "100000"], "--image-size must be from 8 to 4096 pixels"),
        (
            ["--model", "inception_v3", "--image-size", "139"],
            "the smallest size it works at is 299 px.",
        ),
        (["--val-fraction", "1"], "--val-fraction must be a number from 0 to below 1"),
        (["--val-fraction", "-0.1"], "--val-fraction must be"),
        (["--early-stopping", "-1"], "--early-stopping must be a whole number of epochs, 0 or more"),
        (["--lr-decay", "0"], "--lr-decay must be a number above 0 and at most 1"),
        (["--lr-decay", "2"], "--lr-decay must be"),
        (["--weight-decay", "inf"], "--weight-decay must be"),
        (["--checkpoint-every", "-1"], "--checkpoint-every must be 0 (never) or more"),
    ],
)
def test_every_number_is_checked_before_the_scan(option, message, tmp_path, capsys):
    # The folder does not exist: the option's message proves the check came first.
    rc = train_main([str(tmp_path / "no-such-folder"), "--out", str(tmp_path / "o"), *option])
    err = capsys.readouterr().err
    assert rc == 2 and message in err and err.count("\n") == 1, err
    assert not (tmp_path / "o").exists()


def test_optional_onnx_packages_are_checked_before_training(tmp_path, capsys, monkeypatch, image_folder):
    monkeypatch.setitem(sys.modules, "onnxscript", None)  # as if it were not installed
    rc = train_main(
        [str(image_folder), "--out", str(tmp_path / "o"), "--weights", "none", "--export", "onnx"]
    )
    err = capsys.readouterr().err
    assert rc == 2 and "onnxscript" in err and "not installed" in err and "pip install 'ftgui[onnx]'" in err
    assert "epoch" not in err and not (tmp_path / "o").exists()


# ---------------------------------------------------------------- SIGTERM


@pytest.mark.slow
def test_sigterm_finishes_the_batch_writes_bundle_and_checkpoint_and_exits_143(
    image_folder, tmp_path, ftgui_train
):
    out = tmp_path / "out"
    cmd = ftgui_train(image_folder, out, "--epochs", "200", "--batch-size", "8")
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True)
    lines = []
    for line in proc.stderr:
        lines.append(line)
        if line.startswith("Epoch 1/"):
            break
    proc.send_signal(signal.SIGTERM)
    rest = proc.stderr.read()
    proc.wait(timeout=60)
    assert proc.returncode == 143, "".join(lines) + rest
    assert "SIGTERM: stopping after this batch" in rest and "Traceback" not in rest
    assert (out / "model.safetensors").is_file() and (out / "checkpoint.pt").is_file()
    meta = read_metadata(out)
    assert 1 <= meta["epochs_completed"] <= 2 and "Epoch 3/200" not in rest


# ---------------------------------------------------------------- honest reports


def _evaluation(k: int, n: int, split: str = "validation") -> Evaluation:
    from ftgui.core.data.samples import Sample

    classes = [f"class{i:02d}" for i in range(k)]
    samples = [Sample(f"{classes[i % k]}/{i}.png", i % k) for i in range(n)]
    logits = torch.zeros(n, k)
    for i in range(n):
        logits[i, (i + (i % 3 == 0)) % k] = 5.0  # every third image taken for the next class
    result = summarise(classes, "/data", samples, logits)
    result.split = split
    result.requested = n
    return result


def test_reports_say_what_was_evaluated():
    many = format_report(_evaluation(30, 300))
    assert "top confusions (30 classes" in many and "confusion matrix" not in many
    assert len(many.splitlines()) < 30 + 40
    assert "class00 taken for class01" in many
    few = format_report(_evaluation(4, 40))
    assert "confusion matrix (rows: true class" in few and few.startswith("validation: 40 images")
    train_only = headline(_evaluation(4, 40, split="training"))
    assert train_only.startswith("training images (no validation images")
    none_read = _evaluation(4, 0)
    none_read.requested = 12
    assert none_read.accuracy is None
    assert (
        format_report(none_read) == "validation: none of the 12 images could be read, so there is no accuracy"
    )


def test_no_validation_images_is_said_plainly(image_folder, tmp_path, capsys, ftgui_train_args):
    out = tmp_path / "o"
    assert train_main(ftgui_train_args(image_folder, out, "--val-fraction", "0", "--epochs", "1")) == 0
    err = capsys.readouterr().err
    assert "0 val images" in err and "validation: " not in err
    assert "training images (no validation images" in err
    assert "done: 1 epochs, best epoch 1, no validation images (validation fraction 0)" in err


@pytest.mark.parametrize(
    "command, option, message",
    [
        (
            "train",
            ["--max-accuracy-drop", "nan"],
            "--max-accuracy-drop: must be a number of points from 0 to 100",
        ),
        (
            "train",
            ["--max-accuracy-drop", "inf"],
            "--max-accuracy-drop: must be a number of points from 0 to 100",
        ),
        (
            "train",
            ["--max-accuracy-drop", "-1"],
            "--max-accuracy-drop: must be a number of points from 0 to 100",
        ),
        (
            "export",
            ["--format", "onnx", "--max-accuracy-drop", "nan"],
            "--max-accuracy-drop: must be a number",
        ),
        ("compare", ["--folds", "0"], "--folds: must be a whole number from 2 to 50 (got 0)"),
        ("compare", ["--folds", "1"], "--folds: must be a whole number from 2 to 50 (got 1)"),
        ("compare", ["--folds", "-3"], "--folds: must be a whole number from 2 to 50 (got -3)"),
        ("check", ["--folds", "1"], "--folds: must be a whole number from 2 to 50 (got 1)"),
        ("check", ["--limit", "-1"], "--limit: must be a whole number from 0 up (got -1)"),
        ("compare", ["--backbones", ""], "--backbones needs at least one model name"),
        ("compare", ["--backbones", " , "], "--backbones needs at least one model name"),
        ("compare", ["--candidates", "head,head,HEAD"], "--candidates names head twice"),
        ("compare", ["--candidates", "full,last-1,full"], "--candidates names full twice"),
    ],
)
def test_numbers_and_lists_of_every_command_are_checked_before_any_work(
    command, option, message, tmp_path, capsys
):
    from ftgui.cli.check import check_main
    from ftgui.cli.compare import compare_main
    from ftgui.cli.export import export_main

    missing = str(tmp_path / "no-such-folder")  # its message would come later: the option's is first
    argv = {
        "train": [missing, "--out", str(tmp_path / "o"), *option],
        "export": [missing, *option],
        "compare": [missing, "--out", str(tmp_path / "o"), *option],
        "check": [missing, *option],
    }[command]
    main = {"train": train_main, "export": export_main, "compare": compare_main, "check": check_main}[command]
    try:
        rc = main(argv)
    except SystemExit as stop:  # argparse's refusal
        rc = stop.code
    err = capsys.readouterr().err
    assert rc == 2 and message in err and "Traceback" not in err, err
    assert not (tmp_path / "o").exists()
