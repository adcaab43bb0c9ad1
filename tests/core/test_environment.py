"""When the machine fails (a full disk, a read-only mount, too little memory) or the user presses
Ctrl+C, each command ends in one line with a documented exit code and keeps what was there."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from PIL import Image

from ftgui.cli.export import export_main

pytestmark = pytest.mark.slow
BIN = Path(sys.executable).parent


@pytest.fixture
def mount(tmp_path):
    """A real tmpfs of the given size (another file system); skipped where mounting is not allowed."""
    mounts: list[Path] = []

    def make(size: str) -> Path:
        path = tmp_path / f"mnt{len(mounts)}"
        path.mkdir()
        done = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], capture_output=True
        )
        if done.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
        mounts.append(path)
        return path

    yield make
    for path in reversed(mounts):
        subprocess.run(["umount", "-l", str(path)], check=False)


def _bundle(image_folder: Path, out: Path, *options: str) -> None:
    cmd = [str(BIN / "ftgui-train"), str(image_folder), "--out", str(out), "--weights", "none"]
    done = subprocess.run(
        [*cmd, "--image-size", "32", "--epochs", "1", "--quiet", *options], capture_output=True
    )
    assert done.returncode == 0, done.stderr.decode()


def _files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}


def test_a_full_disk_mid_run_costs_the_checkpoint_not_the_run_and_the_export_ends_in_one_line(
    image_folder, tmp_path, mount
):
    disk = mount("160m")  # room for the model and its checkpoint, as ftgui-train checks first
    out = disk / "out"
    cmd = [str(BIN / "ftgui-train"), str(image_folder), "--out", str(out), "--weights", "none"]
    cmd += ["--model", "mobilenet_v3_small", "--image-size", "32", "--epochs", "40", "--strategy", "full"]
    cmd += ["--checkpoint-every", "1"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not (out / "checkpoint.pt").is_file() and time.monotonic() < deadline:
        time.sleep(0.05)

    def fill() -> None:  # the disk fills up while the run goes on, and stays full
        with open(disk / "filler", "wb") as fh:
            while proc.poll() is None:
                try:
                    fh.write(bytes(1 << 16))
                    fh.flush()
                except OSError:
                    time.sleep(0.002)

    import threading

    filler = threading.Thread(target=fill)
    filler.start()
    _, err = proc.communicate(timeout=300)
    filler.join()
    assert "could not save checkpoint.pt after epoch" in err and "training goes on" in err, err
    assert "Traceback" not in err and "unexpected pos" not in err, err
    last = err.strip().splitlines()[-1]
    assert proc.returncode == 3 and last.startswith("ftgui-train: error: No space left on device"), err
    assert "files that were already there are unchanged" in last
    # The checkpoint left is whole, and one that was saved: not the epoch whose save failed.
    kept = torch.load(out / "checkpoint.pt", weights_only=True)["epoch"]
    first_failed = int(err.split("could not save checkpoint.pt after epoch ")[1].split()[0])
    assert kept >= first_failed - 1 >= 1 and kept != first_failed, (kept, first_failed)
    assert sorted(p.name for p in out.iterdir()) == ["checkpoint.pt"]  # nothing half-written


def test_exporting_into_a_read_only_bundle_is_one_line(image_folder, mount, capsys):
    disk = mount("160m")
    _bundle(image_folder, disk / "model", "--model", "mobilenet_v3_small")
    before = _files(disk / "model")
    subprocess.run(["mount", "-o", "remount,ro", str(disk)], check=True)
    assert export_main([str(disk / "model"), "--format", "onnx"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "read-only file system. Nothing was changed." in err, err
    assert _files(disk / "model") == before


def test_an_image_too_big_for_the_memory_left_is_reported_and_the_others_classified(image_folder, tmp_path):
    _bundle(image_folder, tmp_path / "m")
    Image.new("RGB", (9000, 9000), (10, 200, 30)).save(tmp_path / "big.png")  # 243 MB decoded
    small = str(next((image_folder / "circle").iterdir()))
    script = (
        "import resource, sys, json, psutil; from ftgui.cli.predict import predict_main\n"
        f"predict_main([{str(tmp_path / 'm')!r}, {small!r}, {small!r}])  # threads and model warmed up\n"
        "limit = psutil.Process().memory_info().vms + 150 * 2**20\n"
        "resource.setrlimit(resource.RLIMIT_AS, (limit, resource.RLIM_INFINITY))\n"
        f"sys.exit(predict_main([{str(tmp_path / 'm')!r}, {small!r}, {str(tmp_path / 'big.png')!r}, {small!r}, '--json']))\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert done.returncode == 1, done.stderr  # answers for all, one of them an error
    import json

    answers = json.loads(done.stdout[done.stdout.index("[\n") :])
    assert [bool(a["top"]) for a in answers] == [True, False, True]
    assert "not enough memory to decode this image" in answers[1]["error"]


def _staging(folder: Path) -> bool:
    """An export's staging folder is there (not the output check's short-lived probe file)."""
    return any(".ftgui-stage-" in p.name for p in folder.iterdir())


def _interrupt_when(proc: subprocess.Popen, ready, timeout: float = 240) -> None:
    deadline = time.monotonic() + timeout
    while not ready() and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.02)
    proc.send_signal(signal.SIGINT)


def test_ctrl_c_during_ftgui_export_stops_between_formats_and_keeps_the_bundle(image_folder, tmp_path):
    pytest.importorskip("onnxruntime")
    _bundle(image_folder, tmp_path / "m")
    before = _files(tmp_path / "m")
    cmd = [str(BIN / "ftgui-export"), str(tmp_path / "m"), "--format", "onnx,onnx-int8,torchscript"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _interrupt_when(proc, lambda: _staging(tmp_path))
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 130, err
    assert "Traceback" not in err and "stopping after this format" in err, err
    assert err.strip().splitlines()[-1].endswith("is unchanged"), err
    assert _files(tmp_path / "m") == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m"]  # no stage or lock left


def _busy_for(proc: subprocess.Popen, cpu_seconds: float) -> None:
    """Wait until the process has worked ``cpu_seconds`` (its imports done, its work begun)."""
    import psutil

    watched = psutil.Process(proc.pid)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        times = watched.cpu_times()
        if times.user + times.system >= cpu_seconds:
            return
        time.sleep(0.05)


def test_ctrl_c_during_ftgui_predict_and_check_is_one_line(tmp_path):
    from ftgui.core.data.example import make_example_dataset

    data = make_example_dataset(tmp_path / "data", per_class=500, size=32, seed=3)
    _bundle(data, tmp_path / "m")
    runs = {
        "ftgui-predict": [
            str(tmp_path / "m"),
            str(data),
            "--csv",
            str(tmp_path / "out.csv"),
            "--batch-size",
            "1",  # one image per forward pass: still busy when the signal comes
        ],
        "ftgui-check": [
            str(data),
            "--weights",
            "none",
            "--image-size",
            "32",
            "--json",
            str(tmp_path / "c.json"),
        ],
    }
    for name, args in runs.items():
        proc = subprocess.Popen(
            [str(BIN / name), *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        _busy_for(proc, 6.0)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 130, (name, err)
        assert (
            "Traceback" not in err
            and err.strip().splitlines()[-1] == f"{name}: interrupted; nothing was written"
        )
    assert not (tmp_path / "out.csv").exists() and not (tmp_path / "c.json").exists()


@pytest.mark.parametrize("twice", [False, True])
def test_ctrl_c_while_ftgui_train_exports_still_writes_the_trained_model(image_folder, tmp_path, twice):
    """Once: the formats not begun are left out. Twice: the converter running is cut short. The
    trained model itself is written either way (never only the checkpoint of a finished run)."""
    pytest.importorskip("onnxruntime")
    out = tmp_path / "out"
    cmd = [str(BIN / "ftgui-train"), str(image_folder), "--out", str(out), "--weights", "none"]
    cmd += ["--image-size", "32", "--epochs", "1", "--export", "onnx,onnx-int8,torchscript"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _interrupt_when(proc, lambda: _staging(tmp_path))
    if twice:
        time.sleep(0.3)  # the first format's converter is running
        proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=300)
    assert "no more export formats after this one; the model itself is still written" in err, err
    # 130: ftgui-train's own exit. When the first Ctrl+C stopped the export before a converter
    # began, the whole run is over within the 0.3 s, and the second Ctrl+C lands while Python
    # exits: it ends by the signal (-2, which a shell shows as 130 too), with nothing lost.
    done = "done: 1 epochs" in err
    assert "Traceback" not in err and proc.returncode in ((130, -signal.SIGINT) if done else (130,)), err
    names = {p.name for p in out.iterdir()}
    assert {"model.safetensors", "model.json"} <= names, (names, err)
    assert "checkpoint.pt" not in names  # training had finished: seconds of work, no checkpoint
    assert "model.torchscript.pt" not in names  # the last format was not begun
    from ftgui.core.bundle.predict import Predictor

    assert Predictor.load(out).classes == ["circle", "square", "stripes", "triangle"]
