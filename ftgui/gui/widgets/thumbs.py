"""Small PNG thumbnails of image files, made off the GUI thread (decoded at reduced size)."""

from __future__ import annotations

import io
import os
import threading
from collections import deque
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QObject, Signal

if TYPE_CHECKING:
    from ftgui.core.data.samples import ScanResult


def thumbnail_png(path: str, size: int = 48) -> bytes | None:
    """A small PNG of an image file (decoded at reduced size), or None if it cannot be read."""
    from ftgui.core.data.images import load_rgb

    try:
        img = load_rgb(path, target=size)
        img.thumbnail((size, size))
        buf = io.BytesIO()
        img.save(buf, "PNG")
        return buf.getvalue()
    except Exception:
        return None


class ClassThumbnails(QObject):
    """One picture per class (its first images that decode), made on request in one
    background thread, the latest requests first: a view asks only for the rows it shows, so
    1,000 classes cost the 15 rows on screen, and a scroll brings the new ones first."""

    ready = Signal(int, int, bytes)  # generation, class index, PNG (empty: none decodes)

    TRIES = 3  # images tried per class before it goes without a picture

    def __init__(self, size: int = 48, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.size = size
        self.generation = 0
        self._lock = threading.Lock()
        self._wanted: deque[int] = deque()
        self._asked: set[int] = set()
        self._scan: ScanResult | None = None
        self._firsts: dict[int, list[str]] | None = None
        self._thread: threading.Thread | None = None

    def reset(self, scan: ScanResult | None) -> None:
        """A new folder: what was asked for the last one is dropped (and ignored if it comes)."""
        with self._lock:
            self.generation += 1
            self._scan, self._firsts = scan, None
            self._wanted.clear()
            self._asked.clear()

    @property
    def requested(self) -> frozenset[int]:
        """The classes asked for since the folder was opened."""
        with self._lock:
            return frozenset(self._asked)

    def request(self, label: int) -> None:
        with self._lock:
            if self._scan is None or label in self._asked:
                return
            self._asked.add(label)
            self._wanted.append(label)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="ftgui-thumbnails", daemon=True)
                self._thread.start()

    def _next(self) -> tuple[int, int, list[str], str] | None:
        with self._lock:
            if not self._wanted or self._scan is None:
                self._thread = None
                return None
            label = self._wanted.pop()
            scan, generation, firsts = self._scan, self.generation, self._firsts
        if firsts is None:  # outside the lock: the GUI thread asks for rows meanwhile
            firsts = {}
            for s in scan.samples:  # one pass (100k samples: 20 ms), then each class at once
                paths = firsts.setdefault(s.label, [])
                if len(paths) < self.TRIES:
                    paths.append(s.path)
            with self._lock:
                if generation == self.generation:
                    self._firsts = firsts
        return generation, label, firsts.get(label, []), scan.root

    def _run(self) -> None:
        while (job := self._next()) is not None:
            generation, label, paths, root = job
            png = b""
            for path in paths:
                png = thumbnail_png(os.path.join(root, path), self.size) or b""
                if png:
                    break
            self.ready.emit(generation, label, png)  # queued to the GUI thread


def heat_map_pictures(
    predictor: Any, root: str, mistakes: Sequence[Any], cancel: Any, progress: Any
) -> tuple[dict[str, bytes], str]:
    """For each mistake, its picture with the heat map of the predicted class beside the one of
    the true class (96 px each), as PNG; or, if the model has no heat maps, why."""
    from PIL import Image

    from ftgui.core.insight.cam import CamUnavailable, class_heat_maps

    out: dict[str, bytes] = {}
    for n, mk in enumerate(mistakes):
        if cancel.cancelled:
            break
        try:
            pictures, _ = class_heat_maps(
                predictor, os.path.join(root, mk.path), [mk.predicted, mk.true_label]
            )
        except CamUnavailable as exc:
            return {}, str(exc)
        except OSError:
            continue  # the file went away since the evaluation
        pair = Image.new("RGB", (196, 96), "white")  # a white gap between the two
        for i, pic in enumerate(pictures):
            pair.paste(pic.resize((96, 96)), (100 * i, 0))
        buf = io.BytesIO()
        pair.save(buf, "PNG")
        out[mk.path] = buf.getvalue()
        progress(n + 1, len(mistakes))
    return out, ""
