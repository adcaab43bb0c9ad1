"""Links, special files and unreadable folders in a dataset: each named, none counted wrongly."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from ftgui.core.data.scan import scan_folder


@pytest.fixture
def linked(image_folder, tmp_path) -> Path:
    data = tmp_path / "data"
    shutil.copytree(image_folder, data)
    (data / "kitty").symlink_to("circle")  # a class that is another class
    (data / "square" / "up").symlink_to("..")  # back up the tree: every class again, as squares
    (data / "triangle" / "more").symlink_to("../stripes")  # another class's images, as triangles
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    shutil.copy(next((data / "circle").iterdir()), outside / "extra.jpg")
    (data / "circle" / "stored").symlink_to(outside)  # images kept elsewhere: followed
    os.mkfifo(data / "circle" / "pipe.jpg")
    return data


def test_links_are_followed_only_where_no_image_counts_twice(linked, image_folder):
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(linked / "square" / "sock.png"))
    try:
        result = scan_folder(linked)
    finally:
        sock.close()
    plain = scan_folder(image_folder)
    assert result.classes == plain.classes  # kitty is left out
    assert len(result.samples) == len(plain.samples) + 1  # + circle/stored/extra.jpg, nothing else
    assert "circle/stored/extra.jpg" in {s.path for s in result.samples}
    text = "\n".join(result.warnings)
    assert "Class folder kitty is a link to the class folder circle" in text
    assert "square/up is a link to a folder above it (the dataset folder); not followed" in text
    assert "triangle/more is a link to another folder of the dataset (stripes/); not followed" in text
    skipped = dict(result.skipped)
    assert skipped["circle/pipe.jpg"] == "not a regular file (a FIFO), never opened"
    assert skipped["square/sock.png"] == "not a regular file (a socket), never opened"


def test_an_unreadable_folder_is_named(image_folder, tmp_path):
    base = tmp_path / "shared"
    base.mkdir()
    data = base / "data"
    shutil.copytree(image_folder, data)
    locked = data / "circle" / "locked"
    locked.mkdir()
    shutil.copy(next((data / "circle").glob("*.jpg")), locked / "a.jpg")
    locked.chmod(0)
    code = (
        "import json, sys; from ftgui.core.data.scan import scan_folder; r = scan_folder(sys.argv[1]); "
        "print(json.dumps([len(r.samples), r.warnings]))"
    )

    command = [sys.executable, "-c", code, str(data)]
    if os.geteuid() == 0:  # root reads any folder: run the scan without that privilege
        setpriv = shutil.which("setpriv")
        if setpriv is None:
            pytest.skip("needs setpriv (util-linux) to drop root's right to read any folder")
        command = [setpriv, "--bounding-set=-dac_override,-dac_read_search", *command]
    done = subprocess.run(
        command,
        capture_output=True,
        text=True,
        env={**os.environ, "XDG_CACHE_HOME": str(base / "cache")},
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    count, warnings = json.loads(done.stdout)
    assert count == len(scan_folder(image_folder).samples)
    assert "Could not read folder circle/locked/ (Permission denied); its images are left out." in warnings


def test_an_image_replaced_by_a_fifo_during_a_run_is_skipped_not_a_hang(image_folder, tmp_path):
    """The scan saw a JPEG; by the first epoch it is a FIFO: opened without blocking, refused
    because it is not a regular file, and the run ends (a blocking open() hung past SIGTERM)."""
    import threading

    from ftgui.core.base import events as ev
    from ftgui.core.models.freeze import FreezePlan
    from ftgui.core.training.config import TrainConfig
    from ftgui.core.training.engine import Trainer

    data = tmp_path / "data"
    shutil.copytree(image_folder, data)
    config = TrainConfig(
        data_dir=str(data), weights="none", image_size=32, epochs=1, freeze=FreezePlan.parse("full")
    )
    trainer = Trainer(config)
    trainer.prepare()  # the scan: every file a JPEG
    events: list[ev.Event] = []
    rel = trainer.scan.samples[0].path
    victim = data / rel
    victim.unlink()
    os.mkfifo(victim)
    done = threading.Thread(target=lambda: events.extend(trainer.run()), daemon=True)
    done.start()
    done.join(120)
    if done.is_alive():  # release the reader so the thread ends, then fail
        fd = os.open(victim, os.O_WRONLY | os.O_NONBLOCK)
        os.close(fd)
        pytest.fail("the run hung opening a FIFO")
    assert isinstance(events[-1], ev.Finished), events[-1]
    skipped = {e.path: e.reason for e in events if isinstance(e, ev.FileSkipped)}
    assert skipped == {rel: "not a regular file (a FIFO), never read"}, skipped
