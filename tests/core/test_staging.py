"""Staging folders: concurrent exports beside each other, kills mid-swap, other file systems."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from ftgui.core.base.staging import remove_stale_stages, staged_folder, write_synced

FILES = ("model.json", "model.safetensors")


def _bundle(out: Path, tag: bytes) -> None:
    with staged_folder(out, FILES) as stage:
        for name in FILES:
            write_synced(stage / name, tag + name.encode())


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.rglob("*ftgui-stage-*"))


# A writer in another process: it opens a stage for OUT, writes one file, says so and waits for
# a line on stdin (or is killed there); KILL_AFTER_EXCHANGE kills it right after the folder swap.
WRITER = textwrap.dedent(
    """
    import os, signal, sys
    from pathlib import Path
    from ftgui.core.base import staging
    out, mode = Path(sys.argv[1]), sys.argv[2]
    if mode == "kill-after-exchange":
        real = staging._exchange
        def exchange(a, b):
            done = real(a, b)
            os.kill(os.getpid(), signal.SIGKILL)  # before the user's folders are moved back
        staging._exchange = exchange
    with staging.staged_folder(out, ("model.json", "model.safetensors")) as stage:
        for name in ("model.json", "model.safetensors"):
            staging.write_synced(stage / name, b"theirs " + name.encode())
        print("STAGED", flush=True)
        if mode == "wait":
            sys.stdin.readline()
    print("DONE", flush=True)
    """
)


def _writer(out: Path, mode: str) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(out), mode],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "STAGED"
    return proc


def test_exports_of_a_folder_and_its_dotted_sibling_do_not_erase_each_other(tmp_path):
    pc = tmp_path / "pc"
    sibling = _writer(pc / "model.v2", "wait")  # busy exporting model.v2
    same = _writer(pc / "model", "wait")  # busy exporting model itself
    _bundle(pc / "model", b"ours ")  # another export of model, at the same time
    remove_stale_stages(pc / "model")
    for proc in (sibling, same):
        out, _ = proc.communicate("go\n", timeout=60)
        assert proc.returncode == 0 and "DONE" in out
    assert {p.name: p.read_bytes() for p in (pc / "model.v2").iterdir()} == {
        name: b"theirs " + name.encode() for name in FILES
    }
    assert sorted(p.name for p in (pc / "model").iterdir()) == sorted(FILES)
    assert _leftovers(tmp_path) == []


def test_a_kill_right_after_the_swap_loses_no_folder_of_the_users(tmp_path):
    out = tmp_path / "out"
    _bundle(out, b"first ")
    (out / "notes").mkdir()
    (out / "notes" / "ideas.txt").write_text("my notes")
    (out / "mine.txt").write_text("my file")
    proc = _writer(out, "kill-after-exchange")
    proc.wait(timeout=60)
    assert proc.returncode == -9
    assert not (out / "notes").exists()  # it sits in the killed writer's stage for now
    _bundle(out, b"second ")  # the next export puts it back before anything is cleaned up
    assert (out / "notes" / "ideas.txt").read_text() == "my notes"
    assert (out / "mine.txt").read_text() == "my file"
    assert (out / "model.json").read_bytes() == b"second model.json"
    assert _leftovers(tmp_path) == []


def test_a_stage_that_still_holds_a_users_folder_is_never_deleted(tmp_path):
    out = tmp_path / "out"
    _bundle(out, b"first ")
    stage = tmp_path / ".out.ftgui-stage-abc123.partial"  # a killed writer's, no lock left
    (stage / "notes").mkdir(parents=True)
    (stage / "notes" / "a.txt").write_text("mine")
    (out / "notes").mkdir()  # the name is taken again: the folder cannot go back
    remove_stale_stages(out)
    assert (stage / "notes" / "a.txt").read_text() == "mine"


def test_out_on_another_file_system_a_symlink_to_one_or_holding_a_mount_point(tmp_path, tmpfs):
    # OUT is itself a mount point.
    out = tmpfs(tmp_path / "mounted")
    (out / "mine.txt").write_text("my file")
    _bundle(out, b"first ")
    _bundle(out, b"second ")
    assert (out / "model.json").read_bytes() == b"second model.json"
    assert (out / "mine.txt").read_text() == "my file"
    # OUT is a symlink to a folder on another disk: the link stays, the folder gets the bundle.
    disk = tmpfs(tmp_path / "disk")
    (disk / "models").mkdir()
    link = tmp_path / "link"
    link.symlink_to(disk / "models")
    _bundle(link, b"first ")
    _bundle(link, b"second ")
    assert link.is_symlink() and (disk / "models" / "model.json").read_bytes() == b"second model.json"
    # A folder inside OUT is a mount point (with the user's files in it).
    plain = tmp_path / "plain"
    _bundle(plain, b"first ")
    inner = tmpfs(plain / "photos")
    (inner / "a.jpg").write_bytes(b"jpeg")
    _bundle(plain, b"second ")
    assert (plain / "model.json").read_bytes() == b"second model.json"
    assert (plain / "photos" / "a.jpg").read_bytes() == b"jpeg" and os.path.ismount(plain / "photos")
    assert _leftovers(tmp_path) == []


@pytest.mark.slow
def test_an_extra_format_that_fails_costs_only_its_own_file(tmp_path, tiny_config):
    """The disk fills while model.onnx is written: the bundle is still exported, whole."""
    from ftgui.core.bundle.predict import Predictor
    from ftgui.core.deploy.export import export_all
    from ftgui.core.training.engine import Trainer

    trainer = Trainer(tiny_config)
    for _ in trainer.run():
        pass
    export_all(trainer.trained(), tmp_path / "sized")
    bundle = sum(p.stat().st_size for p in (tmp_path / "sized").iterdir())
    out = tmp_path / "small disk"
    out.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={bundle + (2 << 20)}", "tmpfs", str(out)], capture_output=True
    )
    if done.returncode != 0:
        pytest.skip("mounting a tmpfs needs root")
    try:
        checks = export_all(trainer.trained(), out, ("safetensors", "onnx"))
        [onnx] = checks
        assert "No space left on device" in onnx.error and not (out / "model.onnx").exists()
        assert Predictor.load(out).classes == trainer.classes
        assert "`model.onnx`: not kept (onnx export failed: " in (out / "MODEL_CARD.md").read_text()
        assert _leftovers(out) == []
    finally:
        subprocess.run(["umount", str(out)], check=False)
