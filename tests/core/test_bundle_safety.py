"""A model folder is always one consistent bundle; destinations are checked before training."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from ftgui.cli import predict_main, train_main
from ftgui.core.base.errors import CheckpointError
from ftgui.core.base.files import OutputLock, check_destination
from ftgui.core.bundle.export import export_bundle
from ftgui.core.bundle.format import read_metadata
from ftgui.core.bundle.predict import Predictor
from ftgui.core.deploy import export as export_module
from ftgui.core.deploy.export import export_all


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}


def _leftovers(parent: Path) -> list[str]:
    return [p.name for p in parent.rglob("*") if p.name.endswith(".partial")]


def test_bundle_records_sha256_and_a_failed_export_leaves_the_old_bundle_untouched(
    trained, tmp_path, monkeypatch
):
    out = tmp_path / "out"
    export_all(trained.trained(), out)
    (out / "checkpoint.pt").write_bytes(b"my checkpoint")
    (out / "notes.txt").write_text("the user's own file")
    (out / "plots").mkdir()
    (out / "plots" / "a.png").write_bytes(b"png")
    before = _snapshot(out)
    meta = read_metadata(out)
    assert len(meta["weights_sha256"]) == 64 and meta["version"] == 2

    # The new weights are written, then something fails before model.json: nothing may change.
    trained.scan.classes[0] = "renamed"

    def fail(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(export_module, "model_card", fail)
    with pytest.raises(OSError, match="No space left"):
        export_all(trained.trained(), out)
    assert _snapshot(out) == before
    assert _leftovers(tmp_path) == [] and sorted(os.listdir(tmp_path)) == ["out"]

    # A successful export replaces the bundle as a whole and keeps the other files.
    monkeypatch.undo()
    export_bundle(trained.trained(), out)
    after = _snapshot(out)
    assert json.loads(after["model.json"])["classes"][0] == "renamed"
    assert after["checkpoint.pt"] == b"my checkpoint" and after["notes.txt"] == before["notes.txt"]
    assert (out / "plots" / "a.png").read_bytes() == b"png"
    assert "MODEL_CARD.md" not in after  # the earlier export's card described other weights
    assert _leftovers(tmp_path) == [] and sorted(os.listdir(tmp_path)) == ["out"]
    trained.scan.classes[0] = "circle"


def test_weights_from_another_export_are_refused(trained, tmp_path, capsys):
    export_bundle(trained.trained(), tmp_path / "a")
    trained.scan.classes.reverse()
    for p in trained.model.parameters():
        p.data.mul_(0.5)
    export_bundle(trained.trained(), tmp_path / "b")
    trained.scan.classes.reverse()
    # New weights beside an old model.json: exactly what an interrupted file-by-file write left.
    (tmp_path / "a" / "model.safetensors").write_bytes((tmp_path / "b" / "model.safetensors").read_bytes())
    with pytest.raises(CheckpointError, match="SHA-256"):
        Predictor.load(tmp_path / "a")
    image = next(Path(trained.scan.root).rglob("*.jpg"))
    assert predict_main([str(tmp_path / "a"), str(image)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "not the one its model.json describes" in err
    assert predict_main([str(tmp_path / "b"), str(image)]) == 0


KILLER = textwrap.dedent(
    """
    import sys, time
    from ftgui.core.bundle import export
    from ftgui.core.deploy.export import export_all
    from ftgui.core.training.engine import Trainer, TrainConfig
    t = Trainer(TrainConfig(data_dir=sys.argv[1], weights="none", image_size=32, epochs=1, device="cpu"))
    for _ in t.run():
        pass
    original = export.write_weights
    def slow(model, arch, path):
        digest = original(model, arch, path)
        print("WEIGHTS WRITTEN", flush=True)
        time.sleep(60)
        return digest
    export.write_weights = slow
    export_all(t.trained(), sys.argv[2])
    """
)


@pytest.mark.slow
def test_killed_export_leaves_the_previous_bundle_and_the_next_export_cleans_up(trained, tmp_path):
    out = tmp_path / "out"
    export_all(trained.trained(), out)
    before = _snapshot(out)
    proc = subprocess.Popen(
        [sys.executable, "-c", KILLER, trained.scan.root, str(out)], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout.readline().strip() == "WEIGHTS WRITTEN"
    proc.kill()
    proc.wait()
    assert _snapshot(out) == before
    assert Predictor.load(out).classes == trained.classes
    assert len(_leftovers(tmp_path)) == 1  # the killed process's staging folder...
    export_all(trained.trained(), out)
    assert _leftovers(tmp_path) == []  # ...is removed by the next export to the same folder


def test_destination_checks(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(Exception, match="is a file; give a folder"):
        check_destination(tmp_path / "file")
    with pytest.raises(Exception, match="cannot be created: .*file is a file"):
        check_destination(tmp_path / "file" / "sub")
    with pytest.raises(Exception, match="Not enough free space .* MB needed"):
        check_destination(tmp_path / "new", needed_bytes=1 << 60)
    assert check_destination(tmp_path / "a" / "b" / "c") == tmp_path / "a" / "b" / "c"
    assert not (tmp_path / "a").exists()  # checking creates nothing


@pytest.fixture
def small_mount(tmp_path):
    """A real 2 MB file system (tmpfs), read-write; skipped where mounting is not allowed."""
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mnt)], capture_output=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {r.stderr.decode().strip()}")
    yield mnt
    subprocess.run(["umount", "-l", str(mnt)], check=False)


def _no_training(out: str) -> bool:
    return "Epoch 1/" not in out and "classes (" not in out


def test_full_disk_and_read_only_mount_cost_no_training_time(
    image_folder, small_mount, capsys, ftgui_train_args
):
    rc = train_main(ftgui_train_args(image_folder, small_mount / "out"))
    err = capsys.readouterr().err
    assert rc == 2 and "Not enough free space for --out" in err and _no_training(err)
    assert err.count("\n") == 1
    subprocess.run(["mount", "-o", "remount,ro", str(small_mount)], check=True)
    rc = train_main(ftgui_train_args(image_folder, small_mount / "out"))
    err = capsys.readouterr().err
    assert rc == 2 and "is not writable" in err and "read-only file system" in err and _no_training(err)


def test_out_checks_happen_before_the_scan(image_folder, tmp_path, capsys, ftgui_train_args):
    (tmp_path / "file").write_text("x")
    cases = [
        (tmp_path / "file", "is a file; give a folder"),
        (tmp_path / "file" / "sub", "is a file, not a folder"),
        (image_folder / "circle" / "out", "inside the class folder 'circle'"),
        (image_folder / "circle", "inside the class folder 'circle'"),  # the class folder itself
    ]
    for out, message in cases:
        assert train_main(ftgui_train_args(image_folder, out)) == 2
        err = capsys.readouterr().err
        assert message in err and _no_training(err) and err.count("\n") == 1, err
    assert not (image_folder / "circle" / "out").exists()


def test_a_second_run_on_the_same_out_stops_at_once_naming_the_first(
    image_folder, tmp_path, capsys, ftgui_train_args
):
    out = tmp_path / "out"
    lock = OutputLock(out).acquire("ftgui-train data --out out (the first run)")
    try:
        assert train_main(ftgui_train_args(image_folder, out)) == 2
        err = capsys.readouterr().err
        assert f"{out} is in use by another ftgui run (pid {os.getpid()}" in err
        assert "(the first run)" in err and _no_training(err)
    finally:
        lock.release()
    assert not (tmp_path / ".out.ftgui-lock").exists()
    assert train_main(ftgui_train_args(image_folder, out, "--epochs", "1", "--quiet")) == 0
    assert sorted(os.listdir(tmp_path)) == ["out"]  # the lock went away with the run


def test_the_lock_is_released_when_its_process_dies(tmp_path):
    out = tmp_path / "out"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from ftgui.core.base.files import OutputLock; "
            "lock = OutputLock(sys.argv[1]).acquire('holder'); print('HELD', flush=True); time.sleep(60)",
            str(out),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout.readline().strip() == "HELD"
    with pytest.raises(Exception, match="in use by another ftgui run"):
        OutputLock(out).acquire()
    holder.kill()
    holder.wait()
    OutputLock(out).acquire().release()  # a killed run never blocks the next one


def test_a_killed_writers_temporary_file_is_removed_by_the_next_write(tmp_path):
    """A live writer holds a lock on its temporary file; one nobody holds was left by a kill,
    however recent (the next run may come a second later)."""
    from ftgui.core.base.files import atomic_write, try_lock

    target = tmp_path / "checkpoint.pt"
    stale = tmp_path / ".checkpoint.pt.abc12345.partial"  # what SIGKILL during a write leaves
    fresh = tmp_path / ".checkpoint.pt.def45678.partial"  # another writer, still busy
    others = [
        tmp_path / ".other.pt.abc12345.partial",  # another file's
        tmp_path / ".checkpoint.pt.bak.abc12345.partial",  # checkpoint.pt.bak's, not checkpoint.pt's
    ]
    stale.write_bytes(b"half")
    fresh.write_bytes(b"busy")
    for other in others:
        other.write_bytes(b"not ours")
    with open(fresh, "rb") as busy:
        assert try_lock(busy)
        atomic_write(target, lambda fh: fh.write(b"new"))
    assert target.read_bytes() == b"new"
    assert not stale.exists() and fresh.exists() and all(o.exists() for o in others)


def test_a_comparison_stops_at_once_when_one_of_its_candidate_folders_is_in_use(
    image_folder, tmp_path, capsys
):
    from ftgui.cli.compare import compare_main

    out = tmp_path / "cmp"
    lock = OutputLock(out / "head").acquire("ftgui-train data --out cmp/head")
    try:
        options = "--candidates head,full --weights none --image-size 32 --epochs 1".split()
        code = compare_main([str(image_folder), "--out", str(out), *options])
        err = capsys.readouterr().err
        assert code == 2 and f"{out / 'head'} is in use by another ftgui run" in err
        assert "ftgui-train data --out cmp/head" in err and not (out / "full").exists()
    finally:
        lock.release()
    assert not list(out.glob(".*ftgui-lock")) and not (tmp_path / ".cmp.ftgui-lock").exists()


def test_a_damaged_split_file_is_one_line_not_a_traceback(trained, tmp_path, capsys):
    import gzip

    from ftgui.cli.check import check_main

    out = tmp_path / "out"
    export_all(trained.trained(), out)
    good = gzip.decompress((out / "split.json.gz").read_bytes())
    damaged = bytearray(gzip.compress(good))
    damaged[20:40] = b"\xff" * 20  # the deflate data, not the header
    (out / "split.json.gz").write_bytes(bytes(damaged))
    with pytest.raises(CheckpointError, match="split.json.gz in .* is damaged and cannot be read"):
        Predictor.load(out).split()
    assert check_main([trained.scan.root, "--bundle", str(out)]) == 2
    err = capsys.readouterr().err
    assert "split.json.gz" in err and "damaged" in err and "Traceback" not in err
