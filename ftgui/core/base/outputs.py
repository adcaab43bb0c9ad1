"""Output files a command writes (a CSV, a heat-map picture, a report): the promise not to destroy.

An output replaces an existing file only when ftgui wrote that file (each kind of output knows
its own signature) or the user asked for it in so many words (``--overwrite``); and never, even
then, a file inside an ftgui model folder or a dataset being used: those hold weights, records and
photos that a mistyped path must not turn into a CSV.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable
from pathlib import Path

from ftgui.core.base.files import DestinationError, check_destination

Signature = Callable[[Path], bool]

# Files whose presence makes a folder ftgui's own (a bundle, a training run, a cluster job).
_MODEL_FOLDER_FILES = (("model.json", "model.safetensors"), ("checkpoint.pt",), ("job.json", "run.sh"))


def _head(path: Path, size: int = 4096) -> bytes:
    try:
        with open(path, "rb") as fh:
            return fh.read(size)
    except OSError:
        return b""


def first_line(prefix: str) -> Signature:
    """A text output whose first line starts with ``prefix`` (a CSV's header)."""
    want = prefix.encode("utf-8")
    return lambda path: _head(path).lstrip(b"\xef\xbb\xbf").startswith(want)


def contains(marker: str) -> Signature:
    """A text output whose first 8 KB hold ``marker`` (a script's comment line)."""
    want = marker.encode("utf-8")
    return lambda path: want in _head(path, 8192)


def json_with_keys(*keys: str) -> Signature:
    """A JSON object holding all of ``keys`` (a report ftgui wrote)."""

    def signed(path: Path) -> bool:
        try:
            if path.stat().st_size > 512 << 20:
                return False
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError, UnicodeDecodeError, RecursionError):
            return False
        return isinstance(data, dict) and all(k in data for k in keys)

    return signed


PNG_SOFTWARE = "ftgui"  # the PNG text chunk "Software" of every picture ftgui writes


def png_by_ftgui(path: Path) -> bool:
    """A PNG whose "Software" text names ftgui (a heat map written earlier)."""
    if not _head(path, 8).startswith(b"\x89PNG\r\n\x1a\n"):
        return False
    try:
        from PIL import Image

        with Image.open(path) as im:
            return str(getattr(im, "text", {}).get("Software", "")).startswith(PNG_SOFTWARE)
    except Exception:  # a damaged PNG is not one ftgui wrote
        return False


def model_folder_of(path: Path) -> Path | None:
    """The ftgui model, run or job folder that is ``path`` or holds it (at any depth), if any."""
    for folder in (path, *path.parents):
        for files in _MODEL_FOLDER_FILES:
            if all((folder / f).is_file() for f in files):
                return folder
    return None


def check_output_file(
    target: str | os.PathLike[str],
    what: str,
    signature: Signature,
    overwrite: bool = False,
    datasets: Iterable[str | os.PathLike[str]] = (),
) -> Path:
    """Refuse ``target`` (named ``what`` in messages, such as ``--csv``) before any work when
    writing it could destroy something: a file inside a model folder or a dataset, anything but a
    regular file, or an existing file that ftgui did not write (unless ``overwrite``). ``datasets``:
    image folders whose class folders an output may not enter."""
    # The folders that must not be touched first: the writability check leaves a probe's trace
    # (the folder's modification time) where it looks.
    path = Path(target).expanduser().absolute()
    real = path.resolve()
    holder = model_folder_of(real)
    if holder is not None:
        raise DestinationError(
            f"{what} {target} is inside {holder}, an ftgui model folder; ftgui never writes other files "
            "there. Choose a file elsewhere."
        )
    for data in datasets:
        root = Path(data).expanduser().resolve()
        if real.is_relative_to(root) and real.parent != root:  # in a class folder (the top is no class)
            raise DestinationError(
                f"{what} {target} is inside a class folder of the dataset {root}; writing there would "
                "add to (or replace) its images. Choose a file elsewhere."
            )
    check_destination(path, what, kind="file")
    if os.path.lexists(path):
        if path.is_symlink() or not path.is_file():
            raise DestinationError(f"{what} {target} exists and is not a regular file; choose another name.")
        if not overwrite and not signature(path):
            raise DestinationError(
                f"{what} {target} already exists and ftgui did not write it; ftgui never replaces such a "
                "file. Choose another name, or add --overwrite to replace it."
            )
    return path
