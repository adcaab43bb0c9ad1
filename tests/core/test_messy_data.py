"""Real messy folders, interruptions and untrusted files, through the engine and ftgui-train."""

import io
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

from ftgui.cli import train_main
from ftgui.core.base import events as ev
from ftgui.core.base.errors import CheckpointError
from ftgui.core.base.events import CancelToken
from ftgui.core.bundle.export import export_bundle
from ftgui.core.bundle.predict import Predictor
from ftgui.core.compute.device import is_out_of_memory
from ftgui.core.data.example import draw_example
from ftgui.core.data.images import load_rgb
from ftgui.core.data.scan import scan_folder
from ftgui.core.training.checkpoint import load_checkpoint
from ftgui.core.training.engine import Trainer

BIN = Path(sys.executable).parent


def _jpeg(path: Path, kind: str, seed: int, **save) -> Path:
    import random

    path.parent.mkdir(parents=True, exist_ok=True)
    draw_example(kind, 40, random.Random(seed)).save(path, "JPEG", **save)
    return path


@pytest.fixture
def messy(tmp_path):
    """Two good classes with every kind of trouble a real folder has."""
    root = tmp_path / "my photos 📷"
    for i in range(8):
        _jpeg(root / "círculo rojo" / f"img {i}.jpg", "circle", i)
        _jpeg(root / "squares 🟩" / f"{i}.jpg", "square", 100 + i)
    sq = root / "squares 🟩"
    (sq / "zero.jpg").write_bytes(b"")
    full = _jpeg(sq / "full.jpg", "square", 999)
    (sq / "truncated.jpg").write_bytes(full.read_bytes()[: full.stat().st_size // 2])
    (sq / "page.jpg").write_text("<html><body>404 not found</body></html>")
    (sq / "notes.txt").write_text("not an image")
    (sq / "clip.mov").write_bytes(b"\x00\x00\x00\x18ftypqt  ")
    Image.new("I;16", (30, 30), 40000).save(sq / "sixteen.png")
    pal = Image.new("P", (30, 30), 1)
    pal.putpalette([255, 0, 0, 0, 255, 0] + [0] * 762)
    pal.save(sq / "palette.png", transparency=0)
    Image.new("CMYK", (30, 30), (0, 255, 255, 0)).save(sq / "cmyk.jpg")
    frames = [Image.new("RGB", (30, 30), c) for c in ((0, 200, 0), (200, 0, 0))]
    frames[0].save(sq / "anim.gif", save_all=True, append_images=frames[1:], duration=100, loop=0)
    rotated = Image.new("RGB", (40, 20), (0, 200, 0))
    exif = rotated.getexif()
    exif[0x0112] = 6
    rotated.save(sq / "rotated.jpg", exif=exif.tobytes())
    Image.new("1", (12000, 12000)).save(sq / "bomb.png")
    (root / ".DS_Store").write_bytes(b"\x00\x01")
    _jpeg(root / ".ipynb_checkpoints" / "x.jpg", "circle", 1)
    _jpeg(root / "__MACOSX" / "círculo rojo" / "._img.jpg", "circle", 2)
    _jpeg(sq / "nested" / "deeper" / "n.jpg", "square", 5)
    (root / "empty class").mkdir()
    (root / "broken class").mkdir()
    (root / "broken class" / "a.jpg").write_bytes(b"garbage")
    os.symlink(root / "círculo rojo", root / "círculo rojo" / "loop")
    return root


def _snapshot(root: Path) -> dict[str, tuple[int, int]]:
    return {str(p): (p.lstat().st_size, p.lstat().st_mtime_ns) for p in root.rglob("*")}


EXPECTED_SKIPS = {
    "squares 🟩/zero.jpg": "empty file",
    "squares 🟩/truncated.jpg": "truncated image file",
    "squares 🟩/page.jpg": "not an image",
    "squares 🟩/notes.txt": "not an image file extension",
    "squares 🟩/clip.mov": "not an image file extension",
    "squares 🟩/bomb.png": "too large",
}


def test_messy_folder_scan(messy):
    scan = scan_folder(messy)
    assert scan.classes == ["círculo rojo", "squares 🟩"]
    reasons = dict(scan.skipped)
    for path, reason in EXPECTED_SKIPS.items():
        assert reason in reasons[path], (path, reasons.get(path))
    names = {s.path for s in scan.samples}
    for ok in ("sixteen.png", "palette.png", "cmyk.jpg", "anim.gif", "rotated.jpg", "nested/deeper/n.jpg"):
        assert f"squares 🟩/{ok}" in names
    assert not any(".ipynb" in n or "MACOSX" in n or "DS_Store" in n for n in names | set(reasons))
    assert any("broken class" in w and "empty class" in w for w in scan.warnings)
    assert len([n for n in names if n.startswith("círculo")]) == 8  # the symlink loop is cut
    assert load_rgb(messy / "squares 🟩" / "anim.gif").getpixel((5, 5)) == (0, 200, 0)  # first frame
    assert load_rgb(messy / "squares 🟩" / "rotated.jpg").size == (20, 40)
    r, g, b = load_rgb(messy / "squares 🟩" / "palette.png").getpixel((5, 5))
    assert (r, g, b) == (0, 255, 0)


@pytest.mark.slow
def test_messy_folder_through_ftgui_train(messy, tmp_path, capsys, ftgui_train_args):
    before = _snapshot(messy)
    out = tmp_path / "out"
    code = train_main(
        ftgui_train_args(messy, out, "--epochs", "1", "--batch-size", "8", "--strategy", "full")
    )
    err = capsys.readouterr().err
    assert code == 0, err
    for path in EXPECTED_SKIPS:
        assert f"Skipped {path}:" in err
    assert "Class folders without usable images were left out: broken class, empty class" in err
    meta = json.loads((out / "model.json").read_text(encoding="utf-8"))
    recorded = dict(meta["skipped"])
    for path, reason in EXPECTED_SKIPS.items():
        assert reason in recorded[path]
    assert meta["classes"] == ["círculo rojo", "squares 🟩"]
    assert _snapshot(messy) == before  # nothing in the user's folder changed


def test_fewer_than_two_usable_classes_fails_before_training(tmp_path, capsys):
    _jpeg(tmp_path / "d" / "only" / "a.jpg", "circle", 0)
    (tmp_path / "d" / "junk").mkdir()
    (tmp_path / "d" / "junk" / "x.jpg").write_bytes(b"")
    assert train_main([str(tmp_path / "d"), "--out", str(tmp_path / "o"), "--weights", "none"]) == 2
    assert "needs at least 2 class folders with images" in capsys.readouterr().err


def test_folder_disappearing_during_training_stops_with_a_message(tiny_config, image_folder, tmp_path):
    data = tmp_path / "data"
    shutil.copytree(image_folder, data)
    tiny_config.data_dir, tiny_config.epochs = str(data), 5
    trainer = Trainer(tiny_config)
    events = []
    for e in trainer.run():
        events.append(e)
        if isinstance(e, ev.EpochEnded) and e.epoch == 1:
            shutil.move(str(data), str(tmp_path / "moved away"))
    final = events[-1]
    assert isinstance(final, ev.Failed) and "no longer there" in final.message
    assert trainer.epoch == 1
    export_bundle(trainer.trained(), tmp_path / "export")  # the model so far stays exportable
    assert Predictor.load(tmp_path / "export").classes == trainer.classes


@pytest.mark.slow
def test_ctrl_c_stops_the_cli_and_writes_completed_epochs(image_folder, tmp_path, ftgui_train):
    out = tmp_path / "out"
    proc = subprocess.Popen(
        ftgui_train(image_folder, out, "--epochs", "200", "--batch-size", "4"),
        stderr=subprocess.PIPE,
        text=True,
    )
    lines = []
    for line in proc.stderr:
        lines.append(line)
        if line.startswith("Epoch 1/200"):
            break
    proc.send_signal(signal.SIGINT)
    _, rest = proc.communicate(timeout=60)
    assert proc.returncode == 130
    assert "Epoch 3/200" not in rest  # stopped in epoch 2 at the latest
    assert "stopped after 1 epoch(s); the model of epoch 1 and checkpoint.pt written to" in rest
    meta = json.loads((out / "model.json").read_text())
    assert meta["epochs_completed"] >= 1
    assert (out / "checkpoint.pt").is_file()


def test_malicious_checkpoint_is_refused_and_never_runs(tmp_path, code_payload):
    marker = tmp_path / "pwned"
    buf = io.BytesIO()
    torch.save({"format": "ftgui-checkpoint", "model": code_payload(str(marker))}, buf)
    (tmp_path / "checkpoint.pt").write_bytes(buf.getvalue())
    with pytest.raises(CheckpointError, match="Refused to load checkpoint checkpoint.pt"):
        load_checkpoint(tmp_path / "checkpoint.pt")
    assert not marker.exists()


def test_bundle_with_weights_of_another_class_count_is_refused(tiny_config, tmp_path):
    trainer = Trainer(tiny_config)
    list(trainer.run())
    out = export_bundle(trainer.trained(), tmp_path / "m")
    meta = json.loads((out / "model.json").read_text())
    meta["classes"] = meta["classes"][:3]
    meta["num_classes"] = 3
    meta["split"] = {"root": meta["split"]["root"], "train": [], "val": []}  # as version 2 wrote it
    (out / "model.json").write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match=r"does not fit resnet18 with 3 classes.*fc\.1\.weight"):
        Predictor.load(out)


def test_out_of_memory_is_recognised():
    with pytest.raises(RuntimeError) as info:  # the host allocator's own wording
        torch.empty(1 << 60)
    assert is_out_of_memory(info.value)
    for exc in (
        torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB"),
        RuntimeError("MPS backend out of memory (MPS allocated: 1.2 GB)"),
        RuntimeError("[enforce fail at alloc_cpu.cpp:117] DefaultCPUAllocator: can't allocate memory"),
        MemoryError(),
    ):
        assert is_out_of_memory(exc), exc
    assert not is_out_of_memory(RuntimeError("shape mismatch"))
    assert not is_out_of_memory(ValueError("memory layout must be contiguous"))


def test_cancel_token_stops_at_the_next_batch(tiny_config, tiny_model):
    tiny_config.epochs, tiny_config.batch_size = 100, 2
    trainer = Trainer(tiny_config)
    trainer.prepare(built=tiny_model())
    cancel = CancelToken()
    after = []
    for e in trainer.run(cancel):
        if cancel.cancelled:
            after.append(e)
        if isinstance(e, ev.BatchEnded) and e.step == 3:
            cancel.cancel()
    assert [type(e) for e in after] == [ev.Cancelled] and trainer.state.step == 3


def test_a_batch_that_shrinks_to_one_image_still_trains_batchnorm(
    image_folder, tmp_path, capsys, ftgui_train_args
):
    """Batches of 2, one image undecodable: its batch holds one image, which BatchNorm cannot
    normalise on its own at 1x1 (resnet18's last block at 32 px)."""
    import random
    import shutil
    import struct
    import zlib

    from ftgui.core.data.example import draw_example

    data = tmp_path / "data"
    shutil.copytree(image_folder, data)
    bad = data / "circle" / "garbled.png"
    draw_example("circle", 32, random.Random(3)).save(bad)
    # Its pixel data garbled, every chunk's checksum right: the scan's check passes, decoding fails.
    raw, out, pos = bad.read_bytes(), bytearray(bad.read_bytes()[:8]), 8
    while pos < len(raw):
        n, kind = struct.unpack(">I4s", raw[pos : pos + 8])
        body = raw[pos + 8 : pos + 8 + n]
        if kind == b"IDAT":
            body = body[:2] + bytes(random.Random(4).randrange(256) for _ in range(n - 2))
        out += struct.pack(">I4s", n, kind) + body + struct.pack(">I", zlib.crc32(kind + body))
        pos += 12 + n
    bad.write_bytes(bytes(out))
    code = train_main(
        ftgui_train_args(data, tmp_path / "out", "--epochs", "1", "--batch-size", "2", "--strategy", "full")
    )
    err = capsys.readouterr().err
    assert code == 0, err
    assert "Skipped circle/garbled.png: OSError: broken data stream" in err
    assert json.loads((tmp_path / "out" / "model.json").read_text())["epochs_completed"] == 1


@pytest.mark.slow
def test_files_deleted_during_a_run_the_final_line_and_the_report_agree(
    image_folder, tmp_path, capsys, ftgui_train_args
):
    import threading
    import time

    data = tmp_path / "data"
    shutil.copytree(image_folder, data)
    out = tmp_path / "out"
    done = threading.Event()

    def delete_after_the_first_epoch() -> None:
        while not (out / "checkpoint.pt").exists() and not done.is_set():
            time.sleep(0.005)
        for folder in data.iterdir():
            for image in sorted(folder.iterdir())[::3]:
                image.unlink()

    thread = threading.Thread(target=delete_after_the_first_epoch)
    thread.start()
    try:
        args = ftgui_train_args(data, out, "--epochs", "2", "--strategy", "full", "--lr", "1e-4")
        code = train_main([*args, "--checkpoint-every", "1"])  # the checkpoint marks epoch 1's end
    finally:
        done.set()
        thread.join()
    captured = capsys.readouterr()
    assert code == 0, captured.err
    text = captured.out + captured.err
    report_line = next(line for line in text.splitlines() if line.startswith("validation:"))
    final = next(line for line in text.splitlines() if line.startswith("done:"))
    assert "could not be read" in report_line, report_line
    reported = report_line.split("accuracy ")[1].split(",")[0]
    assert (
        f"{reported} in the report, on the " in final
        and "validation images still readable at the end" in final
    )


def test_the_out_of_memory_advice_survives_an_empty_message():
    from ftgui.core.compute.device import oom_message

    assert oom_message(MemoryError(), 32) == (
        "Out of memory during training (MemoryError). Try a smaller batch size (now 32) or image size."
    )
    assert oom_message(RuntimeError("\n"), 8).startswith("Out of memory during training (RuntimeError).")


def test_damaged_state_files_of_a_dataset_are_rebuilt_not_fatal(
    image_folder, tmp_path, ftgui_train_args, capsys
):
    """A header cache whose compressed data is garbled, an exclusions record that is valid JSON
    of another shape: the next training checks again and excludes nothing, no traceback."""
    from ftgui.core.data.fixes import EXCLUDED, Fixes
    from ftgui.core.data.headers import HeaderCache

    data = tmp_path / "data"
    shutil.copytree(image_folder, data)
    assert train_main(ftgui_train_args(data, tmp_path / "o1", "--epochs", "1", "--quiet")) == 0
    cache = HeaderCache(str(data)).path
    raw = bytearray(cache.read_bytes())
    raw[12:] = b"\x00" * (len(raw) - 12)  # the gzip header kept, its data garbled
    cache.write_bytes(bytes(raw))
    fixes = Fixes()  # ftgui's own data folder (a temporary one in the tests)
    fixes.folder.mkdir(parents=True, exist_ok=True)
    for damaged in ("null", "[1, 2]", '{"circle": [1, null]}'):
        (fixes.folder / EXCLUDED).write_text(damaged)
        capsys.readouterr()
        assert train_main(ftgui_train_args(data, tmp_path / "o2", "--epochs", "1", "--quiet")) == 0
        err = capsys.readouterr().err
        assert "Traceback" not in err


def test_a_class_folder_removed_during_a_run_is_one_message_not_one_per_image(
    tiny_config, image_folder, tmp_path
):
    data = tmp_path / "data"
    shutil.copytree(image_folder, data)
    tiny_config.data_dir, tiny_config.epochs = str(data), 2
    trainer = Trainer(tiny_config)
    events = []
    for e in trainer.run():
        events.append(e)
        if isinstance(e, ev.RunStarted):
            shutil.rmtree(data / "circle")  # after the scan, before any image is read
    assert isinstance(events[-1], ev.Finished), events[-1]
    skipped = [e for e in events if isinstance(e, ev.FileSkipped)]
    said = [e.text for e in events if isinstance(e, ev.Message) and "circle" in e.text]
    assert skipped == [] and said == [
        "The folder circle/ was removed during the run: its 20 images are skipped from now on."
    ]
    assert sorted(p for p in trainer.skipped if p.startswith("circle/")) == sorted(
        s.path for s in trainer.scan.samples if s.path.startswith("circle/")
    )  # every one still listed as skipped (model.json)
