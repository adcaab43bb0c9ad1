"""Image folders: scanning (ImageFolder semantics), splitting, decoding and transforms.

The user's files are only ever opened for reading.
"""

from __future__ import annotations

import contextlib
import dataclasses
import gc
import operator
import os
import random
import warnings
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, NamedTuple

import numpy as np
import torch
from PIL import Image, ImageOps

from .errors import DataError
from .headers import HeaderCache, Stamp, verify_files
from .models import Preprocess
from .stores import RowStore
from .text import display_path

# torchvision.datasets.folder's list and case-insensitive check, plus GIF (first frame).
IMG_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp", ".gif")
# Folders that file managers and tools leave behind; never classes, never images.
IGNORED_DIRS = {"__MACOSX", "__pycache__"}
SPLIT_DIRS = ("train", "val")


class Sample(NamedTuple):
    """One image (a named tuple: a third smaller and twice as quick to make as a dataclass,
    which counts with 100k of them)."""

    path: str  # relative to the dataset root, with forward slashes
    label: int


@dataclass
class ScanResult:
    """What a folder holds: classes in ImageFolder order, readable samples, skipped files."""

    root: str
    classes: list[str]
    samples: list[Sample]
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (relative path, reason)
    warnings: list[str] = field(default_factory=list)
    presplit: dict[str, list[Sample]] | None = None  # {"train": [...], "val": [...]}
    excluded: list[str] = field(default_factory=list)  # left out by the user (core/fixes.py)
    # Listed but not yet checked (scan_folder(verify=False)): relative path -> size and mtime.
    # Training may use them; one that fails to decode is skipped then, with its reason.
    pending: dict[str, Stamp] = field(default_factory=dict)
    checked: int = 0  # headers checked by this scan (the rest came from the cache)
    cache: HeaderCache | None = field(default=None, repr=False, compare=False)

    @property
    def class_to_idx(self) -> dict[str, int]:
        return {c: i for i, c in enumerate(self.classes)}

    def counts(self, samples: Sequence[Sample] | None = None) -> list[int]:
        out = [0] * len(self.classes)
        for s in self.samples if samples is None else samples:
            out[s.label] += 1
        return out


@dataclass
class Split:
    """The train/validation file lists of a run, recorded so the run can be reproduced."""

    train: list[Sample]
    val: list[Sample]

    def to_dict(self) -> dict[str, list[list[Any]]]:
        return {
            "train": [[s.path, s.label] for s in self.train],
            "val": [[s.path, s.label] for s in self.val],
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Split:
        return cls(
            train=[Sample(str(p), int(lbl)) for p, lbl in d["train"]],
            val=[Sample(str(p), int(lbl)) for p, lbl in d["val"]],
        )


def split_record_problem(split: Any, num_classes: int, inside_only: bool = False) -> str | None:
    """What is wrong with a recorded split (checkpoints, jobs), or None.

    ``inside_only``: every path must be relative and stay inside the dataset (a job's paths
    come from another machine)."""
    if not isinstance(split, dict):
        return "'split' must be an object"
    for part in ("train", "val"):
        items = split.get(part)
        if not isinstance(items, list) or not all(
            isinstance(it, (list, tuple))
            and len(it) == 2
            and isinstance(it[0], str)
            and (not inside_only or _stays_inside(it[0]))
            and isinstance(it[1], int)
            and not isinstance(it[1], bool)
            and 0 <= it[1] < num_classes
            for it in items
        ):
            where = "relative path inside the dataset" if inside_only else "file"
            return f"'split.{part}' must list [{where}, class index] pairs"
    return None if split["train"] else "'split.train' is empty"


def _stays_inside(rel: str) -> bool:
    parts = PurePosixPath(rel).parts
    return bool(parts) and not rel.startswith(("/", "\\")) and ".." not in parts


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
    return parts[0] if len(parts) > 1 and (root / parts[0]).is_dir() else None


def _walk(top: Path) -> list[tuple[str, list[str]]]:
    """os.walk following symlinks once (loops cut), hidden folders pruned, in ImageFolder order."""
    seen: set[str] = set()
    found = []
    for dirpath, dirnames, filenames in os.walk(top, followlinks=True):
        real = os.path.realpath(dirpath)
        if real in seen:
            dirnames[:] = []
            continue
        seen.add(real)
        dirnames[:] = [d for d in dirnames if not _hidden(d)]
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
    for label, cls in enumerate(classes):
        class_dir = root / cls
        if not class_dir.is_dir():
            continue
        for dirpath, filenames in _walk(class_dir):
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
    from .fixes import Fixes

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


def split_samples(scan: ScanResult, val_fraction: float = 0.2, seed: int = 0) -> Split:
    """Use ``train/``+``val/`` when present, else a stratified, seeded split per class."""
    if scan.presplit is not None:
        return Split(list(scan.presplit["train"]), list(scan.presplit["val"]))
    if not 0.0 <= val_fraction < 1.0:
        raise DataError(f"Validation fraction must be between 0 and 1 (got {val_fraction}).")
    rng = random.Random(seed)
    train: list[Sample] = []
    val: list[Sample] = []
    by_label: list[list[Sample]] = [[] for _ in scan.classes]
    for s in scan.samples:  # one pass, in the folder's order (1,000 classes cost no more)
        by_label[s.label].append(s)
    by_path = operator.attrgetter("path")
    for items in by_label:
        rng.shuffle(items)
        n_val = int(round(len(items) * val_fraction))
        if val_fraction > 0 and len(items) >= 2:
            n_val = min(max(n_val, 1), len(items) - 1)
        # Sorted class by class, the final sorts only merge sorted runs: one sort of 100k
        # shuffled paths would hold Python's lock for 50 ms (the window waits that long).
        val.extend(sorted(items[:n_val], key=by_path))
        train.extend(sorted(items[n_val:], key=by_path))
    train.sort(key=by_path)
    val.sort(key=by_path)
    return Split(train, val)


# ---------------------------------------------------------------- decoding


def _to_rgb(im: Image.Image) -> Image.Image:
    if im.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        arr = np.asarray(im, dtype=np.float64)
        hi = arr.max() if arr.size else 0.0
        scale = 255.0 / (65535.0 if im.mode.startswith("I;16") or hi > 255 else max(hi, 1.0))
        im = Image.fromarray(np.clip(arr * scale, 0, 255).astype(np.uint8), "L")
    if im.mode == "P" and "transparency" in im.info:
        im = im.convert("RGBA")
    if im.mode in ("RGBA", "LA", "PA"):
        # Transparent areas become white, as most viewers show them.
        background = Image.new("RGB", im.size, (255, 255, 255))
        background.paste(im.convert("RGBA"), mask=im.convert("RGBA").getchannel("A"))
        return background
    return im.convert("RGB") if im.mode != "RGB" else im


def load_rgb(path: str | os.PathLike[str], target: int | None = None) -> Image.Image:
    """Decode an image as RGB, EXIF orientation applied, first frame of animations.

    ``target``: the smallest side needed; JPEGs are decoded at reduced size when much larger.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        with Image.open(path) as im:
            if target and im.format == "JPEG":
                # draft() picks a DCT scale that keeps both sides >= the requested size.
                im.draft("RGB", (target, target))
            im.seek(0)
            im.load()
            im = ImageOps.exif_transpose(im)
            return _to_rgb(im)


def build_pixel_transform(pre: Preprocess, augment: bool = False) -> Callable[[Image.Image], torch.Tensor]:
    """PIL image -> uint8 CHW tensor at the model's input size (random crops/flips if augmenting)."""
    from torchvision import transforms as T

    interp = T.InterpolationMode(pre.interpolation)
    if augment:
        steps: list[Any] = [
            T.RandomResizedCrop(pre.crop_size, interpolation=interp, antialias=True),
            T.RandomHorizontalFlip(),
        ]
    else:
        steps = [T.Resize(pre.resize_size, interpolation=interp, antialias=True), T.CenterCrop(pre.crop_size)]
    return T.Compose([*steps, T.PILToTensor()])


class Normalize:
    """uint8 CHW -> float, scaled to [0, 1] as ToTensor does, then mean/std normalised."""

    def __init__(self, pre: Preprocess) -> None:
        self.mean = torch.tensor(pre.mean).view(-1, 1, 1)
        self.std = torch.tensor(pre.std).view(-1, 1, 1)

    def __call__(self, pixels: torch.Tensor) -> torch.Tensor:
        return (pixels.float().div(255) - self.mean) / self.std


def build_transform(pre: Preprocess, augment: bool = False) -> Callable[[Image.Image], torch.Tensor]:
    """torchvision transforms matching the weights' preprocessing (plus training augmentation)."""
    pixels, normalize = build_pixel_transform(pre, augment), Normalize(pre)
    return lambda img: normalize(pixels(img))


class ImageListDataset(torch.utils.data.Dataset):
    """Samples of a split; a file that fails to decode yields an error instead of a crash.

    With ``memo`` (a row store shared across epochs, augmentation off, no worker processes)
    each image is decoded and resized once; later epochs reuse its uint8 pixels.
    """

    def __init__(
        self,
        root: str,
        samples: Sequence[Sample],
        pre: Preprocess,
        augment: bool = False,
        memo: RowStore | None = None,
    ) -> None:
        self.root = root
        self.samples = list(samples)
        self.pixels = build_pixel_transform(pre, augment)
        self.normalize = Normalize(pre)
        self.decode_size = pre.resize_size
        self.memo = memo

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> tuple[torch.Tensor | None, int, int, str | None]:
        s = self.samples[index]
        cached = self.memo.get_one(index) if self.memo is not None else None
        if cached is not None:
            return self.normalize(cached), s.label, index, None
        try:
            cached = self.pixels(load_rgb(os.path.join(self.root, s.path), self.decode_size))
        except MemoryError:
            raise  # not the file's fault: the engine reports it as out of memory
        except Exception as exc:  # one bad file must never end a run
            if "allocate memory" in str(exc).lower():
                raise
            return None, s.label, index, f"{type(exc).__name__}: {exc}"
        if self.memo is not None:
            with contextlib.suppress(OSError):  # a full disk costs the memo, never the run
                self.memo.put_one(index, cached)
        return self.normalize(cached), s.label, index, None


def decode_threads() -> int:
    """Threads for decoding images: one per core, at most 8."""
    return max(1, min(8, os.cpu_count() or 1))


def threaded_batches(
    dataset: ImageListDataset, index_batches: Iterable[Sequence[int]], threads: int, prefetch: int = 2
) -> Iterator[Batch]:
    """Batches in the given order, images decoded by a pool of threads.

    Pillow releases the GIL while decoding and resizing, so threads use every core without the
    start-up cost of worker processes. Only for deterministic transforms (no augmentation):
    random transforms in threads would draw from the shared RNG in no fixed order.
    """
    if threads <= 1:
        for idx in index_batches:
            yield collate([dataset[i] for i in idx])
        return
    pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="ftgui-decode")
    pending: deque[list[Future[Any]]] = deque()
    it = iter(index_batches)
    try:
        for idx in it:
            pending.append([pool.submit(dataset.__getitem__, i) for i in idx])
            if len(pending) > prefetch:
                yield collate([f.result() for f in pending.popleft()])
        while pending:
            yield collate([f.result() for f in pending.popleft()])
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


@dataclass
class Batch:
    images: torch.Tensor
    labels: torch.Tensor
    indices: torch.Tensor
    failed: list[tuple[int, str]]


def collate(items: list[tuple[torch.Tensor | None, int, int, str | None]]) -> Batch:
    good = [it for it in items if it[0] is not None]
    failed = [(it[2], it[3] or "unreadable") for it in items if it[0] is None]
    if not good:
        return Batch(
            torch.empty(0), torch.empty(0, dtype=torch.long), torch.empty(0, dtype=torch.long), failed
        )
    return Batch(
        torch.stack([it[0] for it in good]),  # type: ignore[misc]
        torch.tensor([it[1] for it in good], dtype=torch.long),
        torch.tensor([it[2] for it in good], dtype=torch.long),
        failed,
    )
