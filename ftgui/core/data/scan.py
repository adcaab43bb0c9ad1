"""Scanning an image folder (ImageFolder semantics): classes, samples, skipped files."""

from __future__ import annotations

import contextlib
import dataclasses
import gc
import os
import stat
from collections.abc import Callable, Iterator
from pathlib import Path

from ftgui.core.base.errors import DataError
from ftgui.core.base.text import display_path
from ftgui.core.data.headers import HeaderCache, Stamp, verify_files
from ftgui.core.data.samples import Sample, ScanResult

# torchvision.datasets.folder's list and case-insensitive check, plus GIF (first frame).
IMG_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp", ".gif")
# Folders that file managers and tools leave behind; never classes, never images.
IGNORED_DIRS = {"__MACOSX", "__pycache__"}
SPLIT_DIRS = ("train", "val")


def _hidden(name: str) -> bool:
    return name.startswith(".") or name in IGNORED_DIRS


def is_image_name(name: str) -> bool:
    return name.lower().endswith(IMG_EXTENSIONS)


def holds_ftgui_output(folder: str | os.PathLike[str]) -> bool:
    """A folder ftgui wrote a model or checkpoint into: never a class of images."""
    if os.path.isfile(os.path.join(folder, "checkpoint.pt")):
        return True
    try:
        with open(os.path.join(folder, "model.json"), "rb") as fh:
            return b"ftgui-model" in fh.read(4096)
    except OSError:
        return False


def _class_dirs(directory: str | os.PathLike[str]) -> tuple[list[str], list[str]]:
    """(class folders, folders left out because they hold ftgui output), sorted."""
    with os.scandir(directory) as it:
        dirs = sorted(e.name for e in it if e.is_dir() and not _hidden(e.name))
    outputs = [d for d in dirs if holds_ftgui_output(os.path.join(directory, d))]
    return [d for d in dirs if d not in outputs], outputs


def find_classes(directory: str | os.PathLike[str]) -> list[str]:
    """Class folders in ImageFolder's order (sorted names), hidden folders and ftgui output left out."""
    return _class_dirs(directory)[0]


def output_inside_class_folder(data_dir: str | os.PathLike[str], out: str | os.PathLike[str]) -> str | None:
    """The class folder (e.g. 'cat' or 'train/cat') that ``out`` would sit in, or None."""
    root = Path(os.path.realpath(Path(data_dir).expanduser()))
    target = Path(os.path.realpath(Path(out).expanduser()))
    if not root.is_dir() or root not in target.parents:
        return None
    parts = target.relative_to(root).parts
    if parts[0] in SPLIT_DIRS and (root / parts[0]).is_dir():
        return "/".join(parts[:2])
    top = root / parts[0]
    if len(parts) == 1:  # the class folder itself (an earlier model's folder there is no class)
        return parts[0] if top.is_dir() and not holds_ftgui_output(top) and _holds_images(top) else None
    return parts[0] if top.is_dir() else None


def _holds_images(folder: Path) -> bool:
    try:
        with os.scandir(folder) as entries:
            return any(is_image_name(e.name) for e in entries)
    except OSError:
        return False


def _file_kind(mode: int) -> str:
    for test, name in (
        (stat.S_ISFIFO, "a FIFO"),
        (stat.S_ISSOCK, "a socket"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
    ):
        if test(mode):
            return name
    return "not a file"


def _shown(target: str, real_root: str) -> str:
    if target == real_root:
        return "the dataset folder"
    inside = target.startswith(real_root + os.sep)
    return display_path(os.path.relpath(target, real_root) + "/" if inside else target)


def _walk(top: Path, root: Path, warnings: list[str]) -> list[tuple[str, list[str]]]:
    """os.walk of a class folder, hidden folders pruned, in ImageFolder order. Links to folders
    elsewhere are followed once (loops cut); a link back up the tree or into another class of
    the dataset is not (its images would count twice, or under the wrong class), and a folder
    that cannot be read is named in ``warnings``."""
    real_top, real_root = os.path.realpath(top), os.path.realpath(root)
    seen: set[str] = set()
    found = []

    def unreadable(exc: OSError) -> None:
        where = os.path.relpath(exc.filename, root) if exc.filename else str(top)
        warnings.append(
            f"Could not read folder {display_path(where)}/ ({exc.strerror or exc}); its images are left out."
        )

    for dirpath, dirnames, filenames in os.walk(top, followlinks=True, onerror=unreadable):
        real = os.path.realpath(dirpath)
        if real in seen:
            dirnames[:] = []
            continue
        seen.add(real)
        kept = []
        for d in dirnames:
            if _hidden(d):
                continue
            link = os.path.join(dirpath, d)
            target = os.path.realpath(link)
            inside_top = target == real_top or target.startswith(real_top + os.sep)
            above = real_top == target or real_top.startswith(target + os.sep)
            in_dataset = target == real_root or target.startswith(real_root + os.sep)
            if os.path.islink(link) and (above or (in_dataset and not inside_top)):
                where = "a folder above it" if above else "another folder of the dataset"
                warnings.append(
                    f"{display_path(os.path.relpath(link, root))} is a link to {where} "
                    f"({_shown(target, real_root)}); "
                    "not followed, so no image counts twice or under the wrong class."
                )
                continue
            kept.append(d)
        dirnames[:] = kept
        found.append((dirpath, filenames))
    return sorted(found)


def _scan_classes(
    root: Path,
    classes: list[str],
    result: ScanResult,
    cache: HeaderCache,
    prefix: str = "",
    progress: Progress | None = None,
) -> list[Sample]:
    """List the classes' files; a file the cache knows as it is now is taken as checked, the
    others join ``result.pending`` (as samples until a check says otherwise)."""
    samples: list[Sample] = []
    real_root = os.path.realpath(root)
    taken: dict[str, str] = {}  # real folder -> the class that holds it
    for label, cls in enumerate(classes):
        class_dir = root / cls
        if not class_dir.is_dir():
            continue
        real = os.path.realpath(class_dir)
        if real in taken or real_root == real or real_root.startswith(real + os.sep):
            what = f"the class folder {display_path(taken[real])}" if real in taken else "a folder above it"
            result.warnings.append(
                f"Class folder {display_path(prefix + cls)} is a link to {what}; its images are not "
                "counted again under another class."
            )
            continue
        taken[real] = prefix + cls
        for dirpath, filenames in _walk(class_dir, root, result.warnings):
            # One relpath per folder, not per file: 100k files list in about a second.
            here = prefix + os.path.relpath(dirpath, root).replace(os.sep, "/") + "/"
            for fname in sorted(filenames):
                if _hidden(fname):
                    continue
                full = os.path.join(dirpath, fname)
                rel = here + fname
                if progress is not None:
                    progress(len(samples) + len(result.samples) + len(result.skipped), rel)
                if not is_image_name(fname):
                    result.skipped.append((rel, "not an image file extension"))
                    continue
                try:
                    st = os.stat(full)
                except OSError as exc:
                    result.skipped.append((rel, f"unreadable file ({exc.strerror or exc})"))
                    continue
                if not stat.S_ISREG(st.st_mode):
                    result.skipped.append(
                        (rel, f"not a regular file ({_file_kind(st.st_mode)}), never opened")
                    )
                    continue
                stamp = Stamp(st.st_size, st.st_mtime_ns)
                known, reason = cache.lookup(rel, stamp)
                if known and reason:
                    result.skipped.append((rel, reason))
                    continue
                if not known:
                    result.pending[rel] = stamp
                samples.append(Sample(rel, label))
    return samples


Progress = Callable[[int, str], None]


def scan_folder(
    root: str | os.PathLike[str],
    progress: Progress | None = None,
    exclusions: bool = True,
    verify: bool = True,
    cache: bool = True,
    checking: Callable[[int, int], None] | None = None,
) -> ScanResult:
    """Scan an image folder: one subfolder per class, or ``train/`` and ``val/`` each with them.

    ``progress(files_seen, relative_path)`` is called for every file listed. Each image's
    header is checked once and the result remembered by path, size and mtime in the app's
    cache folder (``cache=False`` neither reads nor writes it); ``checking(done, total)``
    follows those checks. With ``verify=False`` the folder is only listed: files not checked
    before are left in ``pending`` for :func:`verify_scan`. Images the user excluded in ftgui
    are left out (``exclusions=False`` keeps them).
    """
    path = Path(root).expanduser()
    if not path.exists():
        raise DataError(f"Folder not found: {path}")
    if not path.is_dir():
        raise DataError(f"Not a folder: {path}. Choose a folder with one subfolder per class.")
    with _no_gc():  # 100k files make 300k objects, none of them cyclic: the collector only costs
        result = _list_folder(path, progress, cache)
    if exclusions:
        _leave_out_excluded(result)
    if verify:
        _check_pending(result, checking)
    elif not result.pending and result.cache is not None:
        result.cache.save()  # nothing to check: the listing alone drops the entries of removed files
    _let_go_of_the_cache(result)
    _drop_empty_classes(result)
    _require_two_classes(result)
    return result


@contextlib.contextmanager
def _no_gc() -> Iterator[None]:
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


def _list_folder(path: Path, progress: Progress | None, cache: bool) -> ScanResult:
    headers = HeaderCache(str(path), enabled=cache)
    top, outputs = _class_dirs(path)
    notes = [
        f"Folder {display_path(d)}/ holds an ftgui model or checkpoint, so it is not a class."
        for d in outputs
    ]
    if all(d in top for d in SPLIT_DIRS):
        classes, train_outputs = _class_dirs(path / "train")
        notes += [
            f"Folder train/{display_path(d)}/ holds an ftgui model or checkpoint, so it is not a class."
            for d in train_outputs
        ]
        extra = [d for d in top if d not in (*SPLIT_DIRS, "test")]
        if extra:
            notes.append(
                "This folder has train/ and val/, so their subfolders are the classes; "
                f"other folders beside them were ignored: {', '.join(display_path(d) + '/' for d in extra)}"
            )
        result = ScanResult(str(path), classes, [], cache=headers)
        train = _scan_classes(path / "train", classes, result, headers, "train/", progress)
        result.samples = train
        val = _scan_classes(path / "val", classes, result, headers, "val/", progress)
        extra = sorted(set(find_classes(path / "val")) - set(classes))
        if extra:
            result.warnings.append(f"val/ has classes missing from train/, ignored: {', '.join(extra)}")
        result.samples = train + val
        result.presplit = {"train": train, "val": val}
    else:
        result = ScanResult(str(path), top, [], cache=headers)
        result.samples = _scan_classes(path, top, result, headers, "", progress)
    result.warnings[:0] = notes
    return result


def verify_scan(
    scan: ScanResult,
    progress: Callable[[int, int], None] | None = None,
    found_bad: Callable[[str, str], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    workers: int | None = None,
) -> ScanResult:
    """Check the headers of ``scan.pending`` (on all cores); a new ScanResult without the bad files.

    ``scan`` itself is left as it is (a training may be using it). ``found_bad(rel, reason)``
    is called for each bad file as it is found; ``should_stop()`` ends the checks early (what is
    left stays pending). Raises :class:`DataError` if fewer than two classes keep an image.
    """
    new = dataclasses.replace(
        scan,
        classes=list(scan.classes),
        samples=list(scan.samples),
        skipped=list(scan.skipped),
        warnings=list(scan.warnings),
        presplit={k: list(v) for k, v in scan.presplit.items()} if scan.presplit is not None else None,
        excluded=list(scan.excluded),
        pending=dict(scan.pending),
    )
    _check_pending(new, progress, found_bad, should_stop, workers)
    _let_go_of_the_cache(new)
    _drop_empty_classes(new)
    _require_two_classes(new)
    return new


def _let_go_of_the_cache(result: ScanResult) -> None:
    """Once every file is checked (and the cache saved), its entries are not needed again: 100k
    of them are 30 MB that a training would otherwise hold for hours."""
    if not result.pending:
        result.cache = None


def _check_pending(
    result: ScanResult,
    progress: Callable[[int, int], None] | None = None,
    found_bad: Callable[[str, str], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    workers: int | None = None,
) -> None:
    cache = result.cache or HeaderCache(result.root, enabled=False)
    run = verify_files(result.root, result.pending, cache, progress, found_bad, should_stop, workers)
    result.checked += run.checked
    if not run.bad:
        return
    bad = {rel for rel, _ in run.bad}
    result.samples = [s for s in result.samples if s.path not in bad]
    if result.presplit is not None:
        result.presplit = {k: [s for s in v if s.path not in bad] for k, v in result.presplit.items()}
    result.skipped.extend(run.bad)
    result.skipped.sort()


def _require_two_classes(result: ScanResult) -> None:
    if len(result.classes) < 2:
        found = f"found {len(result.classes)}" + (f" ({result.classes[0]})" if result.classes else "")
        raise DataError(
            f"{result.root} needs at least 2 class folders with images in them ({found}). "
            f"Put each class's images in its own subfolder."
        )


def _leave_out_excluded(result: ScanResult) -> None:
    from ftgui.core.data.fixes import Fixes

    out = Fixes().excluded(result.root)
    if not out:
        return
    result.excluded = sorted(s.path for s in result.samples if s.path in out)
    if not result.excluded:
        return
    result.samples = [s for s in result.samples if s.path not in out]
    if result.presplit is not None:
        result.presplit = {k: [s for s in v if s.path not in out] for k, v in result.presplit.items()}
    n = len(result.excluded)
    result.warnings.append(
        f"{n} image{'s' if n != 1 else ''} excluded in ftgui {'are' if n != 1 else 'is'} left out "
        "(Edit → Undo brings the latest exclusion back)."
    )


def _drop_empty_classes(result: ScanResult) -> None:
    counts = result.counts()
    empty = [c for c, n in zip(result.classes, counts) if n == 0]
    if not empty:
        return
    result.warnings.append(f"Class folders without usable images were left out: {', '.join(empty)}")
    keep = [c for c, n in zip(result.classes, counts) if n > 0]
    remap = {result.classes.index(c): i for i, c in enumerate(keep)}

    def fix(samples: list[Sample]) -> list[Sample]:
        return [Sample(s.path, remap[s.label]) for s in samples]

    result.classes = keep
    result.samples = fix(result.samples)
    if result.presplit:
        result.presplit = {k: fix(v) for k, v in result.presplit.items()}
