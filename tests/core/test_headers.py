"""Header checks: listed first, checked in the background, remembered by path, size and mtime."""

from __future__ import annotations

import os
import shutil
import threading

import pytest
from PIL import Image

from ftgui.core.base import events as ev
from ftgui.core.base.errors import DataError
from ftgui.core.data import headers
from ftgui.core.data.scan import scan_folder, verify_scan
from ftgui.core.training.engine import Trainer


@pytest.fixture
def folder(tmp_path, image_folder):
    data = tmp_path / "copy"
    shutil.copytree(image_folder, data)
    return data


def _touch_later(path, seconds=5):
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + seconds * 1_000_000_000))


def test_reopening_checks_only_what_changed(folder):
    first = scan_folder(folder)
    n = len(first.samples)
    assert first.checked == n == 80 and not first.pending
    again = scan_folder(folder)
    assert again.checked == 0 and again.samples == first.samples and again.skipped == first.skipped

    changed = folder / first.samples[0].path
    Image.new("RGB", (32, 32), (1, 2, 3)).save(changed, "JPEG")  # other content, other size
    _touch_later(changed)
    touched = folder / first.samples[1].path
    _touch_later(touched)  # same bytes, newer mtime: checked again too
    added = folder / "circle" / "added.png"
    Image.new("RGB", (32, 32), (9, 9, 9)).save(added)
    removed = folder / first.samples[-1].path
    removed.unlink()
    third = scan_folder(folder)
    assert third.checked == 3
    assert len(third.samples) == n  # one added, one removed
    assert "circle/added.png" in {s.path for s in third.samples}

    # A file broken since it was checked is found broken: its size changed.
    broken = folder / first.samples[2].path
    broken.write_bytes(broken.read_bytes()[:40])
    fourth = scan_folder(folder)
    assert fourth.checked == 1
    assert [p for p, _ in fourth.skipped] == [first.samples[2].path]
    assert "truncated" in fourth.skipped[0][1]
    # ... and stays known as broken, without a new check.
    fifth = scan_folder(folder)
    assert fifth.checked == 0 and fifth.skipped == fourth.skipped

    # The removed file's entry went with the save after it was gone.
    cache = headers.HeaderCache(str(folder))
    assert cache.loaded == n + 1 - 1  # 80 images + added - removed, with the broken one
    assert cache.lookup(first.samples[-1].path, headers.Stamp(0, 0)) == (False, None)


def test_a_damaged_or_foreign_cache_means_checking_again(folder):
    scan_folder(folder)
    cache_file = headers.HeaderCache(str(folder)).path
    cache_file.write_bytes(b"\x1f\x8b not really gzip")
    assert scan_folder(folder).checked == 80
    assert scan_folder(folder).checked == 0
    assert scan_folder(folder, cache=False).checked == 80


def test_listing_leaves_checks_for_later_and_verify_finds_bad_files(folder):
    bad = folder / "square" / "zz-not-really.jpg"
    bad.write_text("<html>not an image</html>")
    listed = scan_folder(folder, verify=False)
    assert listed.checked == 0 and len(listed.pending) == 81
    assert "square/zz-not-really.jpg" in {s.path for s in listed.samples}  # usable until checked

    found, steps = [], []
    done = verify_scan(
        listed, progress=lambda d, t: steps.append((d, t)), found_bad=lambda p, r: found.append(p)
    )
    assert found == ["square/zz-not-really.jpg"]
    assert steps[-1] == (81, 81)
    assert done.checked == 81 and not done.pending and len(done.samples) == 80
    assert [p for p, _ in done.skipped] == ["square/zz-not-really.jpg"]
    # The listing handed to a training is left as it was.
    assert len(listed.samples) == 81 and len(listed.pending) == 81


def test_cancelled_checks_keep_what_was_checked(folder):
    listed = scan_folder(folder, verify=False)
    calls = []

    def stop() -> bool:
        calls.append(1)
        return len(calls) >= 1

    part = verify_scan(listed, should_stop=stop, workers=1)
    assert 0 < part.checked < 80 and len(part.pending) == 80 - part.checked
    again = scan_folder(folder, verify=False)
    assert len(again.pending) == 80 - part.checked  # the checked ones are remembered


def test_verification_that_leaves_one_class_is_a_clear_error(tmp_path):
    for cls in ("a", "b"):
        (tmp_path / cls).mkdir()
    Image.new("RGB", (8, 8)).save(tmp_path / "a" / "1.png")
    (tmp_path / "b" / "1.png").write_bytes(b"garbage")
    listed = scan_folder(tmp_path, verify=False)
    assert listed.classes == ["a", "b"]
    with pytest.raises(DataError, match="at least 2 class folders"):
        verify_scan(listed)


def test_worker_processes_check_like_one_thread(tmp_path):
    """Above PROCESS_MIN files the checks run in worker processes: the same findings."""
    for cls in ("a", "b"):
        (tmp_path / cls).mkdir()
    img = Image.new("RGB", (4, 4), (200, 10, 10))
    for i in range(300):
        img.save(tmp_path / ("a" if i % 2 else "b") / f"{i:04d}.png")
    (tmp_path / "a" / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    listed = scan_folder(tmp_path, verify=False, cache=False)
    one = verify_scan(listed, workers=1)
    two = verify_scan(listed, workers=2)
    assert one.samples == two.samples and one.skipped == two.skipped
    assert [p for p, _ in two.skipped] == ["a/bad.png"] and two.checked == 301


def test_worker_processes_import_nothing_of_the_callers_folder(tmp_path, monkeypatch):
    """A script run from a folder with its own json.py (or types.py) still gets checked
    headers, not a broken pool: the workers see only ftgui and the standard library."""
    from ftgui.core.data.headers import _Workers

    data = tmp_path / "data"
    for cls in ("a", "b"):
        (data / cls).mkdir(parents=True)
        Image.new("RGB", (4, 4)).save(data / cls / "0.png")
    (data / "a" / "bad.png").write_bytes(b"broken")
    mine = tmp_path / "project"
    mine.mkdir()
    for name in ("json", "types"):
        (mine / f"{name}.py").write_text("raise SystemExit('the wrong module')\n")
    monkeypatch.chdir(mine)
    monkeypatch.syspath_prepend(str(mine))
    pool = _Workers(1)
    try:
        # A relative root, from the caller's folder: the workers run elsewhere.
        rels = ["a/0.png", "a/bad.png", "b/0.png"]
        found = pool.submit(None, os.path.relpath(data), rels).result(timeout=60)
    finally:
        pool.shutdown()
    assert found[0] is None and found[2] is None and found[1]


def test_worker_processes_leave_nothing_behind(tmp_path):
    """Each opening of a big folder starts and ends its workers: no process, pipe or thread stays."""
    import psutil

    for cls in ("a", "b"):
        (tmp_path / cls).mkdir()
        for i in range(40):
            Image.new("RGB", (4, 4), (i, 0, 0)).save(tmp_path / cls / f"{i}.png")
    me = psutil.Process()
    verify_scan(scan_folder(tmp_path, verify=False, cache=False), workers=2)  # warm-up
    fds, threads = me.num_fds(), threading.active_count()
    for _ in range(5):
        assert verify_scan(scan_folder(tmp_path, verify=False, cache=False), workers=2).checked == 80
    assert me.num_fds() == fds and threading.active_count() == threads
    assert not [p for p in me.children() if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]


def test_training_starts_before_checks_end_and_skips_a_bad_file(folder, tiny_config, tiny_model):
    """A run started on the listing alone: a file found bad while it trains is skipped with its
    reason, and the checks running beside it find the same file."""
    victim = folder / "circle" / "zz-broken.jpg"
    victim.write_bytes((folder / "circle" / os.listdir(folder / "circle")[0]).read_bytes()[:100])
    listed = scan_folder(folder, verify=False)
    tiny_config.data_dir = str(folder)
    tiny_config.val_fraction = 0.0
    trainer = Trainer(tiny_config)
    trainer.prepare(scan=listed, built=tiny_model())
    assert "circle/zz-broken.jpg" in {s.path for s in trainer.split.train}

    release = threading.Event()
    result: dict[str, object] = {}

    def checks() -> None:
        release.wait(30)
        result["scan"] = verify_scan(listed)

    thread = threading.Thread(target=checks)
    thread.start()
    events = []
    for e in trainer.run():
        events.append(e)
        if isinstance(e, ev.BatchEnded):
            release.set()  # the checks run while training does
    thread.join(30)
    skipped = [e for e in events if isinstance(e, ev.FileSkipped)]
    assert [e.path for e in skipped] == ["circle/zz-broken.jpg"]
    assert isinstance(events[-1], ev.Finished)
    checked = result["scan"]
    assert [p for p, _ in checked.skipped] == ["circle/zz-broken.jpg"]  # type: ignore[attr-defined]
