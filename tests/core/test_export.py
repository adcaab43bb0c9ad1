import json
import os
import signal
import subprocess
import sys
import time

import pytest

from ftgui.core.base.errors import CheckpointError
from ftgui.core.base.files import atomic_write
from ftgui.core.bundle.format import read_metadata

WRITER = r"""
import sys, time
from ftgui.core.base.files import atomic_write
def slow(fh):
    for i in range(10_000):
        fh.write(b"new" * 1000)
        fh.flush()
        if i == 5:
            print("writing", flush=True)
        time.sleep(0.01)
atomic_write(sys.argv[1], slow)
"""


@pytest.mark.slow
def test_killed_writer_leaves_previous_file_intact(tmp_path):
    target = tmp_path / "model.safetensors"
    target.write_bytes(b"previous good file")
    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(target)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "writing"
    time.sleep(0.1)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert target.read_bytes() == b"previous good file"


def test_failed_write_leaves_no_partial_file(tmp_path):
    target = tmp_path / "model.json"
    target.write_text("old")

    def boom(fh):
        fh.write(b"half")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        atomic_write(target, boom)
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["model.json"]


def test_metadata_is_validated(tmp_path):
    good = {
        "format": "ftgui-model",
        "version": 1,
        "arch": "resnet18",
        "classes": ["a", "b"],
        "num_classes": 2,
        "input_size": 224,
        "resize_size": 256,
        "mean": [0.5, 0.5, 0.5],
        "std": [0.2, 0.2, 0.2],
        "interpolation": "bilinear",
        "model_kwargs": {},
    }
    (tmp_path / "model.json").write_text(json.dumps(good))
    assert read_metadata(tmp_path)["classes"] == ["a", "b"]
    for change, message in [
        ({"num_classes": 3}, "differs from the 2 class names"),
        ({"classes": "ab"}, "'classes'"),
        ({"std": [0, 1, 1]}, "positive"),
        ({"format": "other"}, "format"),
    ]:
        (tmp_path / "model.json").write_text(json.dumps({**good, **change}))
        with pytest.raises(CheckpointError, match=message):
            read_metadata(tmp_path)
    (tmp_path / "model.json").write_text("{not json")
    with pytest.raises(CheckpointError, match="not valid JSON"):
        read_metadata(tmp_path)


@pytest.mark.slow
def test_model_json_stays_small_with_a_thousand_classes(tmp_path, capsys):
    """1,000 classes: model.json stays under 100 KB, the split's lists and the whole confusion
    matrix go to split.json.gz and evaluation.json, and evaluation reads the split back."""
    import random

    from PIL import Image

    from ftgui.cli import train_main
    from ftgui.core.bundle.evaluate import evaluate_bundle
    from ftgui.core.bundle.format import EVALUATION_FILE, SPLIT_FILE
    from ftgui.core.bundle.predict import Predictor

    rng = random.Random(0)
    data = tmp_path / "data"
    for c in range(1000):
        folder = data / f"class_{c:04d}"
        folder.mkdir(parents=True)
        for i in range(2):
            colour = tuple(rng.randrange(256) for _ in range(3))
            Image.new("RGB", (8, 8), colour).save(folder / f"{i}.png")
    out = tmp_path / "out"
    args = [str(data), "--out", str(out), "--weights", "none", "--image-size", "32", "--strategy", "head"]
    assert train_main([*args, "--epochs", "1"]) == 0
    report = capsys.readouterr()
    assert "top confusions (1000 classes" in report.out + report.err
    assert "confusion matrix (rows" not in report.out + report.err

    size = (out / "model.json").stat().st_size
    assert size < 100_000, f"model.json is {size} bytes"
    meta = json.loads((out / "model.json").read_text())
    assert meta["split"]["file"] == SPLIT_FILE and "train" not in meta["split"]
    assert meta["split"]["counts"]["train"] + meta["split"]["counts"]["val"] == 2000
    assert len(meta["evaluation"]["top_confusions"]) <= 20 and "confusion" not in meta["evaluation"]
    full = json.loads((out / EVALUATION_FILE).read_text())
    assert len(full["confusion"]) == 1000 and all(len(row) == 1000 for row in full["confusion"])

    predictor = Predictor.load(out)
    split = predictor.split()
    assert split is not None and len(split["train"]) + len(split["val"]) == 2000
    ev = evaluate_bundle(predictor)
    assert ev is not None and ev.count == meta["split"]["counts"]["val"] == full["count"]


@pytest.mark.slow
def test_split_file_read_back_old_bundles_and_damage(tmp_path, image_folder):
    """Bundles of earlier versions kept the split in model.json and still evaluate; a damaged
    split.json.gz is refused with a message naming it."""
    import gzip

    from ftgui.cli import train_main
    from ftgui.core.bundle.evaluate import evaluate_bundle
    from ftgui.core.bundle.format import SPLIT_FILE
    from ftgui.core.bundle.predict import Predictor

    out = tmp_path / "out"
    args = [str(image_folder), "--out", str(out), "--weights", "none", "--image-size", "32"]
    assert train_main([*args, "--epochs", "1", "--strategy", "head", "--no-evaluate"]) == 0
    meta = json.loads((out / "model.json").read_text())
    record = json.loads(gzip.decompress((out / SPLIT_FILE).read_bytes()))
    new = evaluate_bundle(Predictor.load(out))
    assert new is not None and new.count == len(record["val"]) == meta["split"]["counts"]["val"]

    old = tmp_path / "old"
    old.mkdir()
    for f in ("model.safetensors",):
        (old / f).write_bytes((out / f).read_bytes())
    meta_old = {**meta, "split": {"root": record["root"], "train": record["train"], "val": record["val"]}}
    (old / "model.json").write_text(json.dumps(meta_old))
    ev_old = evaluate_bundle(Predictor.load(old))
    assert ev_old is not None and ev_old.confusion == new.confusion

    (out / SPLIT_FILE).write_bytes(b"\x1f\x8b not gzip at all")
    with pytest.raises(CheckpointError, match=SPLIT_FILE):
        Predictor.load(out).split()
    (out / SPLIT_FILE).write_bytes(gzip.compress(json.dumps({"root": "", "train": [["a.png", 7]]}).encode()))
    with pytest.raises(CheckpointError, match="class index"):
        Predictor.load(out).split()


def test_the_same_weights_give_the_same_bytes_in_every_process(tmp_path):
    """safetensors writes its metadata from a hash map whose order changes per process."""
    code = (
        "import hashlib, sys, torch; from pathlib import Path; from torch import nn; "
        "from ftgui.core.bundle.export import write_weights; from safetensors.torch import load; "
        "torch.manual_seed(0); m = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4)); "
        "f = Path(sys.argv[1]) / 'model.safetensors'; write_weights(m, 'resnet18', f); b = f.read_bytes(); "
        "assert all(torch.equal(t, m.state_dict()[k]) for k, t in load(b).items()); "
        "print(hashlib.sha256(b).hexdigest())"
    )
    digests = {
        subprocess.run(
            [sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True, check=True
        ).stdout
        for _ in range(8)  # with two metadata keys, 8 processes all agreeing by chance: 1 in 128
    }
    assert len(digests) == 1


def test_weights_get_the_permissions_of_any_other_file_of_the_bundle(tmp_path):
    """safetensors creates its file 0600: a bundle shared with the user's group (or served) had
    every file readable but the weights."""
    from torch import nn

    from ftgui.core.base.files import normal_file_mode
    from ftgui.core.bundle.export import write_weights

    old = os.umask(0o022)
    try:
        write_weights(nn.Linear(3, 4), "resnet18", tmp_path / "model.safetensors")
        (tmp_path / "other").write_bytes(b"x")
        assert normal_file_mode() == 0o644
    finally:
        os.umask(old)
    assert (
        (tmp_path / "model.safetensors").stat().st_mode & 0o777
        == (tmp_path / "other").stat().st_mode & 0o777
        == 0o644
    )
