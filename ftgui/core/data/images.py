"""Decoding images and turning them into tensors: transforms, datasets, threaded batches."""

from __future__ import annotations

import contextlib
import io
import os
import warnings
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import IO, Any

import numpy as np
import torch
from PIL import Image, ImageOps

from ftgui.core.base.files import NotARegularFile, open_regular
from ftgui.core.data.fingerprint import remember_bytes
from ftgui.core.data.samples import Sample
from ftgui.core.data.shapes import shape_problem
from ftgui.core.data.stores import RowStore
from ftgui.core.models import Preprocess

# ---------------------------------------------------------------- decoding


def _value_scale(mode: str, arr: np.ndarray) -> float:
    """What maps a high-bit-depth image's values to 0-255, from the range its values use: 16-bit
    files by their 16-bit range; 32-bit integers holding 8-bit (or 16-bit) values as such, never
    stretched by their own maximum (a dark 8-bit picture stays dark); floats in 0-1 as fractions."""
    hi = float(arr.max()) if arr.size else 0.0
    if mode.startswith("I;16"):
        return 255.0 / 65535.0
    if mode == "F" and hi <= 1.0:
        return 255.0
    if hi <= 255:
        return 1.0
    if hi <= 65535:
        return 255.0 / 65535.0
    return 255.0 / hi


def _to_rgb(im: Image.Image) -> Image.Image:
    if im.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        arr = np.asarray(im, dtype=np.float64)
        im = Image.fromarray(np.clip(np.rint(arr * _value_scale(im.mode, arr)), 0, 255).astype(np.uint8), "L")
    if im.mode == "P" and "transparency" in im.info:
        im = im.convert("RGBA")
    if im.mode in ("RGBA", "LA", "PA"):
        # Transparent areas become white, as most viewers show them.
        background = Image.new("RGB", im.size, (255, 255, 255))
        background.paste(im.convert("RGBA"), mask=im.convert("RGBA").getchannel("A"))
        return background
    return im.convert("RGB") if im.mode != "RGB" else im


class ImageShapeError(ValueError):
    """An image whose shape makes resizing it unsafe (see ``headers.shape_problem``)."""


REMEMBERED_BYTES = 256 << 20  # larger files are streamed to the decoder, and hashed apart


def load_rgb(path: str | os.PathLike[str], target: int | None = None, remember: bool = False) -> Image.Image:
    """Decode an image as RGB, EXIF orientation applied, first frame of animations.

    ``target``: the smallest side needed; JPEGs are decoded at reduced size when much larger.
    ``remember``: hash the bytes read for the run's data fingerprint (``fingerprint.py``).
    """
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        with open_regular(path) as fh, Image.open(_whole(fh) if remember else fh) as im:
            problem = shape_problem(im.width, im.height, target)  # before any pixel is decoded
            if problem:
                raise ImageShapeError(problem)
            if target and im.format == "JPEG":
                # draft() picks a DCT scale that keeps both sides >= the requested size.
                im.draft("RGB", (target, target))
            im.seek(0)
            im.load()
            im = ImageOps.exif_transpose(im)
            return _to_rgb(im)


def _whole(fh: IO[bytes]) -> IO[bytes]:
    """The file read whole (and its hash remembered), for the decoder to read from memory."""
    if os.fstat(fh.fileno()).st_size > REMEMBERED_BYTES:
        return fh
    data = fh.read()
    remember_bytes(fh.fileno(), data)
    return io.BytesIO(data)


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
        memory_per_file: bool = False,
        remember: bool = False,
    ) -> None:
        self.root = root
        self.samples = list(samples)
        self.pixels = build_pixel_transform(pre, augment)
        self.normalize = Normalize(pre)
        self.decode_size = pre.resize_size
        self.memo = memo
        self.memory_per_file = memory_per_file  # MemoryError is that image's failure, not the run's
        self.remember = remember  # hash the files read, for the run's data fingerprint

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> tuple[torch.Tensor | None, int, int, str | None]:
        s = self.samples[index]
        cached = self.memo.get_one(index) if self.memo is not None else None
        if cached is not None:
            return self.normalize(cached), s.label, index, None
        try:
            cached = self.pixels(load_rgb(os.path.join(self.root, s.path), self.decode_size, self.remember))
        except (ImageShapeError, NotARegularFile) as exc:
            return None, s.label, index, str(exc)
        except Exception as exc:  # one bad file must never end a run (MemoryError is an Exception)
            if isinstance(exc, MemoryError) or "allocate memory" in str(exc).lower():
                if not self.memory_per_file:
                    raise  # not the file's fault: the engine reports it as out of memory
                return None, s.label, index, "not enough memory to decode this image"  # the others go on
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
