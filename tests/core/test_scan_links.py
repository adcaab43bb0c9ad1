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
