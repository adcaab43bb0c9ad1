"""Small PNG thumbnails of image files, made off the GUI thread (decoded at reduced size)."""

from __future__ import annotations

import io
import os
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..core.data import ScanResult


def thumbnail_png(path: str, size: int = 48) -> bytes | None:
    """A small PNG of an image file (decoded at reduced size), or None if it cannot be read."""
    from ..core.data import load_rgb

    try:
        img = load_rgb(path, target=size)
        img.thumbnail((size, size))
        buf = io.BytesIO()
        img.save(buf, "PNG")
        return buf.getvalue()
    except Exception:
        return None


def class_thumbnails(scan: ScanResult, size: int = 48) -> dict[int, bytes]:
    thumbs: dict[int, bytes] = {}
    for sample in scan.samples:
        if sample.label not in thumbs:
            png = thumbnail_png(os.path.join(scan.root, sample.path), size)
            if png:
                thumbs[sample.label] = png
    return thumbs
