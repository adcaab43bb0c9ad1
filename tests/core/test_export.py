import json
import os
import signal
import subprocess
import sys
import time

import pytest

from ftgui.core.errors import CheckpointError
from ftgui.core.export import read_metadata
from ftgui.core.files import atomic_write

WRITER = r"""
import sys, time
from ftgui.core.files import atomic_write
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
