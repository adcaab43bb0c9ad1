"""A run recorded and repeated: the data fingerprint, the record in model.json, and
ftgui-train --reproduce (bit-identical, within the interval, refused on changed files or versions)."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest

from ftgui.cli.train import train_main
from ftgui.core.base.errors import FtguiError
from ftgui.core.data import fingerprint as fp
from ftgui.core.data.example import make_example_dataset
from ftgui.core.data.images import load_rgb
from ftgui.core.data.samples import Sample
from ftgui.core.workflows import reproduce


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_the_fingerprint_lists_every_file_with_its_size_and_hash(tmp_path):
    data = make_example_dataset(tmp_path / "d", per_class=3, size=24, seed=3)
    samples = [Sample(str(p.relative_to(data)), 0) for p in sorted(data.rglob("*.*"))]
    print_ = fp.fingerprint(str(data), samples)
    assert [f[0] for f in print_.files] == sorted(s.path for s in samples)
    for rel, size, sha in print_.files:
        assert size == (data / rel).stat().st_size and sha == _sha(data / rel)
    assert print_.total_bytes == sum((data / s.path).stat().st_size for s in samples)
    again = fp.DataFingerprint.from_listing(print_.listing())
    assert again == print_ and again.digest == print_.digest


def test_a_file_decoded_for_training_is_hashed_from_the_bytes_read(tmp_path):
    data = make_example_dataset(tmp_path / "d", per_class=1, size=24, seed=4)
    path = next(data.rglob("*.*"))
    st = path.stat()
    key = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)
    fp._memo.pop(key, None)
    load_rgb(path, 24)  # a decode that is not for training remembers nothing
    assert key not in fp._memo
    load_rgb(path, 24, remember=True)
    assert fp._memo[key] == _sha(path)


def test_the_differences_name_missing_resized_and_changed_files():
    before = fp.DataFingerprint.from_listing(
        [["a.png", 10, "x"], ["b.png", 20, "y"], ["c.png", 30, "z"], ["d.png", 5, "w"]]
    )
    after = fp.DataFingerprint.from_listing([["a.png", 10, "x"], ["b.png", 21, "y"], ["c.png", 30, "q"]])
    assert fp.differences(before, after) == [
        "1 file missing or unreadable: d.png",
        "1 file with a different size: b.png",
        "1 file with changed content: c.png",
    ]
    assert fp.differences(before, before) == []


@pytest.mark.slow
def test_a_deterministic_run_reproduces_bit_for_bit_and_a_changed_file_is_refused(
    tmp_path, ftgui_train_args, capsys
):
    data = make_example_dataset(tmp_path / "data", per_class=8, size=32, seed=5)
    out = tmp_path / "run"
    assert train_main(ftgui_train_args(data, out, "--epochs", "2", "--deterministic", "--quiet")) == 0
    meta = json.loads((out / "model.json").read_text())
    record = meta["reproducibility"]
    assert record["deterministic"] is True and record["processes"] == 1
    assert record["seeds"]["seed"] == 0 and record["seeds"]["split"] == 0
    assert {"ftgui", "torch", "torchvision", "timm"} <= set(record["versions"])
    assert meta["data"]["files"] == 32 and len(meta["data"]["sha256"]) == 64
    capsys.readouterr()

    again = tmp_path / "again"
    assert train_main(["--reproduce", str(out), "--out", str(again), "--quiet"]) == 0
    said = capsys.readouterr()
    assert "reproduced: bit-identical weights" in said.out
    assert "expecting bit-identical weights" in said.err
    assert "every epoch's loss and accuracy identical" in said.err
    assert _sha(again / "model.safetensors") == _sha(out / "model.safetensors")

    victim = next((data / "circle").iterdir())
    victim.write_bytes(victim.read_bytes() + b"\0")
    with pytest.raises(FtguiError, match=rf"1 file with a different size: circle/{victim.name}"):
        reproduce.prepare(str(out))
    assert train_main(["--reproduce", str(out)]) == 2


@pytest.mark.slow
def test_a_run_without_deterministic_algorithms_is_judged_by_the_interval_and_versions_must_match(
    tmp_path, ftgui_train_args, capsys
):
    data = make_example_dataset(tmp_path / "data", per_class=8, size=32, seed=6)
    out = tmp_path / "run"
    assert train_main(ftgui_train_args(data, out, "--epochs", "1", "--quiet")) == 0
    rep = reproduce.prepare(str(out))
    assert not rep.expect_identical and "deterministic algorithms off" in rep.expectation
    events = list(reproduce.run(rep))
    outcome = events[-1]
    assert isinstance(outcome, reproduce.Reproduced) and outcome.matched
    assert outcome.accuracy is not None and outcome.val_images == 8

    moved = tmp_path / "moved"
    shutil.move(str(data), moved)
    with pytest.raises(FtguiError, match="give its new place with --data"):
        reproduce.prepare(str(out))
    assert reproduce.prepare(str(out), str(moved)).scan.root == str(moved)

    meta = json.loads((out / "model.json").read_text())
    meta["reproducibility"]["versions"]["torch"] = "1.0.0"
    (out / "model.json").write_text(json.dumps(meta))
    with pytest.raises(FtguiError, match=r"torch 1\.0\.0 then, .* now"):
        reproduce.prepare(str(out), str(moved))
