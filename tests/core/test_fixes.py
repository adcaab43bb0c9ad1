"""Move to class, Exclude and Undo: the only changes ftgui makes to a user's images. Undo leaves
the folder byte-identical, also after a restart or a crash half-way through a change."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from ftgui.core.data.example import make_example_dataset
from ftgui.core.data.fixes import JOURNAL, FixError, Fixes, fixes_dir
from ftgui.core.data.scan import scan_folder


def snapshot(root: Path) -> dict[str, tuple[str, int]]:
    """Every file and folder under ``root``: its bytes' hash and modification time."""
    out: dict[str, tuple[str, int]] = {}
    for p in sorted(root.rglob("*")):
        rel = p.relative_to(root).as_posix()
        out[rel] = (
            (hashlib.sha256(p.read_bytes()).hexdigest(), p.stat().st_mtime_ns) if p.is_file() else ("dir", 0)
        )
    return out


@pytest.fixture
def data(tmp_path: Path) -> Path:
    return make_example_dataset(tmp_path / "shapes", per_class=6, size=24, seed=3)


def test_move_then_undo_leaves_the_folder_byte_identical(data):
    before = snapshot(data)
    fixes = Fixes()
    change = fixes.move(data, ["circle/circle_0000.jpg", "circle/circle_0001.jpg"], "square")
    after = snapshot(data)
    assert "circle/circle_0000.jpg" not in after and "square/circle_0000.jpg" in after
    assert after["square/circle_0000.jpg"] == before["circle/circle_0000.jpg"]  # same bytes, same mtime
    assert change.describe() == "Move 2 images to square"
    scan = scan_folder(data)
    assert scan.counts()[scan.classes.index("square")] == 8
    assert fixes.undo() == change
    assert snapshot(data) == before
    assert fixes.undo() is None  # nothing left to undo


def test_a_name_clash_gets_a_new_name_and_nothing_is_overwritten(data):
    (data / "square" / "circle_0000.jpg").write_bytes(b"the user's own file")
    before = snapshot(data)
    change = Fixes().move(data, ["circle/circle_0000.jpg"], "square")
    assert change.files == (("circle/circle_0000.jpg", "square/circle_0000-1.jpg"),)
    assert (data / "square" / "circle_0000.jpg").read_bytes() == b"the user's own file"
    Fixes().undo()
    assert snapshot(data) == before


def test_undo_works_after_a_restart(data):
    before = snapshot(data)
    code = (
        "import sys; from ftgui.core.data.fixes import Fixes; "
        "Fixes().move(sys.argv[1], ['triangle/triangle_0002.jpg'], 'circle'); "
        "Fixes().exclude(sys.argv[1], ['square/square_0001.jpg'])"
    )
    subprocess.run([sys.executable, "-c", code, str(data)], check=True, env=os.environ.copy())
    scan = scan_folder(data)
    assert scan.excluded == ["square/square_0001.jpg"]
    assert "square/square_0001.jpg" not in {s.path for s in scan.samples}
    assert any("1 image excluded in ftgui is left out" in w for w in scan.warnings)
    fixes = Fixes()  # a new process's view: only the journal on disk
    assert [c.describe() for c in fixes.history()] == ["Move 1 image to circle", "Exclude 1 image"]
    assert fixes.undo().action == "exclude"
    assert "square/square_0001.jpg" in {s.path for s in scan_folder(data).samples}
    assert fixes.undo().action == "move"
    assert snapshot(data) == before


def test_exclusions_live_in_ftguis_data_folder_never_in_the_users(data):
    before = snapshot(data)
    Fixes().exclude(data, ["circle/circle_0003.jpg"])
    assert snapshot(data) == before
    stored = json.loads((fixes_dir() / "excluded.json").read_text())
    assert stored == {str(data.resolve()): ["circle/circle_0003.jpg"]}
    assert scan_folder(data, exclusions=False).counts() == [6, 6, 6, 6]
    with pytest.raises(FixError, match="excluded already"):
        Fixes().exclude(data, ["circle/circle_0003.jpg"])


def test_a_refused_change_changes_nothing(data):
    before = snapshot(data)
    with pytest.raises(FixError, match="is not in .* any more; nothing was moved"):
        Fixes().move(data, ["circle/circle_0000.jpg", "circle/missing.png"], "square")
    with pytest.raises(FixError, match="'nope' is not a class folder"):
        Fixes().move(data, ["circle/circle_0000.jpg"], "nope")
    with pytest.raises(FixError, match="'../x' is not a class folder"):
        Fixes().move(data, ["circle/circle_0000.jpg"], "../x")
    assert snapshot(data) == before
    assert Fixes().history() == []


def test_undo_is_refused_when_the_old_place_is_taken(data):
    Fixes().move(data, ["circle/circle_0000.jpg"], "square")
    (data / "circle" / "circle_0000.jpg").write_bytes(b"new")
    with pytest.raises(FixError, match="circle/circle_0000.jpg is taken by another file now"):
        Fixes().undo()
    assert (data / "square" / "circle_0000.jpg").is_file()  # left as it was
    (data / "circle" / "circle_0000.jpg").unlink()
    Fixes().undo()
    assert (data / "circle" / "circle_0000.jpg").is_file()


def test_a_crash_half_way_through_a_move_is_settled_from_the_disk(data):
    before = snapshot(data)
    fixes = Fixes()
    pairs = [
        ("circle/circle_0000.jpg", "square/circle_0000.jpg"),
        ("circle/circle_0001.jpg", "square/circle_0001.jpg"),
    ]
    change = fixes._begin("move", str(data.resolve()), pairs)  # the journal is written first...
    os.rename(data / "circle/circle_0000.jpg", data / "square/circle_0000.jpg")  # ...then one file moved
    assert [c.id for c in Fixes().history()] == [change.id]
    assert Fixes().last().files == (pairs[0],)  # only what really moved
    Fixes().undo()
    assert snapshot(data) == before
    lines = (fixes_dir() / JOURNAL).read_text().splitlines()
    assert json.loads(lines[-1]) == {"id": change.id, "state": "undone"}


def test_presplit_folders_move_within_their_part(tmp_path):
    for part in ("train", "val"):
        make_example_dataset(tmp_path / "d" / part, per_class=3, size=16, seed=1)
    change = Fixes().move(tmp_path / "d", ["val/circle/circle_0000.jpg"], "square")
    assert change.files == (("val/circle/circle_0000.jpg", "val/square/circle_0000.jpg"),)


def test_a_journal_pointing_outside_the_dataset_is_never_undone(data, tmp_path):
    """A journal edited by hand (or by anyone who can write ftgui's data folder) could make undo
    move files from anywhere: '../', absolute paths and links out of the dataset are refused."""
    outside = tmp_path / "precious.txt"
    outside.write_text("not an image")
    (data / "square" / "link.jpg").symlink_to(outside)
    journal = fixes_dir() / JOURNAL
    journal.parent.mkdir(parents=True, exist_ok=True)
    records = [
        {"id": "a", "action": "move", "root": str(data), "files": [["../precious.txt", "square/x.jpg"]]},
        {"id": "b", "action": "move", "root": str(data), "files": [[str(outside), "square/y.jpg"]]},
        {"id": "c", "action": "move", "root": str(data), "files": [[1, 2]]},
        {"id": "d", "action": "move", "root": None, "files": []},
        {"id": "e", "action": "move", "root": str(data), "files": [["circle/gone.jpg", "square/link.jpg"]]},
    ]
    journal.write_text("".join(json.dumps({**r, "state": "done"}) + "\n" for r in records))
    before, fixes = snapshot(data), Fixes()
    assert [c.id for c in fixes.history()] == ["e"]  # the only one of a shape ftgui writes
    assert len(fixes.refused) == 4 and "a: its files are not paths inside the dataset" in fixes.refused
    with pytest.raises(FixError, match="square/link.jpg is a link or lies outside"):
        fixes.undo()
    assert outside.read_text() == "not an image" and snapshot(data) == before


def test_undo_moves_nothing_when_a_moved_file_was_changed_by_hand(data):
    fixes = Fixes()
    fixes.move(data, ["circle/circle_0000.jpg", "circle/circle_0001.jpg"], "square")
    edited = data / "square" / "circle_0001.jpg"
    edited.write_bytes(edited.read_bytes() + b"edited")
    before = snapshot(data)
    with pytest.raises(FixError, match=r"nothing was moved: square/circle_0001.jpg was changed or replaced"):
        fixes.undo()
    assert snapshot(data) == before


@pytest.mark.slow
def test_a_dataset_on_a_read_only_mount_trains_exports_and_refuses_a_move_plainly(tmp_path, tmpfs, capsys):
    """A dataset on another file system, seen read-only through a bind mount (as a shared or
    network folder often is): training reads it, the bundle goes elsewhere, a move says why not."""
    from ftgui.cli import train_main
    from ftgui.core.bundle.predict import Predictor

    make_example_dataset(tmpfs(tmp_path / "disk") / "shapes", per_class=8, size=32, seed=2)
    ro = tmp_path / "ro"
    ro.mkdir()
    for options in (["--bind"], ["-o", "remount,bind,ro"]):
        done = subprocess.run(
            ["mount", *options, str(tmp_path / "disk" / "shapes"), str(ro)], capture_output=True
        )
        if done.returncode != 0:
            pytest.skip(f"bind mounts need root: {done.stderr.decode().strip()}")
    try:
        before = snapshot(ro)
        out = tmp_path / "out"
        args = [str(ro), "--out", str(out), "--weights", "none", "--image-size", "32", "--epochs", "1"]
        assert train_main(args) == 0, capsys.readouterr().err
        assert Predictor.load(out).classes == ["circle", "square", "stripes", "triangle"]
        with pytest.raises(FixError, match=r"is on a read-only file system; nothing was moved"):
            Fixes().move(ro, ["circle/circle_0000.jpg"], "square")
        Fixes().exclude(ro, ["circle/circle_0000.jpg"])  # in ftgui's data folder: works
        assert snapshot(ro) == before
    finally:
        subprocess.run(["umount", str(ro)], check=False)
