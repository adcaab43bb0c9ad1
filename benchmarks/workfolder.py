"""The one folder a benchmark or walk-through writes under, removed at its end unless --keep.

Its data, trained models, exports, caches (XDG_CACHE_HOME), run records (XDG_DATA_HOME), hub
caches and temporary files (TMPDIR) all go under it, so nothing is left in the user's caches or
the system's temporary folder, and the line printed at the end says how much it held.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

_REDIRECTED = ("XDG_CACHE_HOME", "XDG_DATA_HOME", "TORCH_HOME", "HF_HOME", "TMPDIR")


def add_keep_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--keep", action="store_true", help="keep the work folder (its path is printed at the end)"
    )


def folder_bytes(folder: Path) -> int:
    total = 0
    for root, _dirs, files in os.walk(folder):
        for name in files:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(root, name)).st_size
    return total


@contextlib.contextmanager
def work_folder(name: str, keep: bool = False, where: str | os.PathLike[str] | None = None) -> Iterator[Path]:
    """A new folder ``ftgui-NAME-XXXX`` in the temporary folder (or ``where``, always kept), with
    the caches and temporary files pointed into it; removed at the end unless ``keep``."""
    if where is not None:
        root, keep = Path(where), True
        root.mkdir(parents=True, exist_ok=True)
    else:
        root = Path(tempfile.mkdtemp(prefix=f"ftgui-{name}-"))
    saved = {key: os.environ.get(key) for key in _REDIRECTED}
    saved_tempdir = tempfile.tempdir
    for key in _REDIRECTED:
        (root / key.lower()).mkdir(exist_ok=True)
        os.environ[key] = str(root / key.lower())
    tempfile.tempdir = str(root / "tmpdir")
    try:
        yield root
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        tempfile.tempdir = saved_tempdir
        size = folder_bytes(root) / 1e6
        if keep:
            print(f"work folder kept: {root} ({size:.0f} MB)")
        else:
            shutil.rmtree(root, ignore_errors=True)
            print(f"work folder removed: {root} ({size:.0f} MB; --keep keeps it)")
