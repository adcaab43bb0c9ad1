"""Small PNG thumbnails of image files, made off the GUI thread (decoded at reduced size)."""

from __future__ import annotations

import io
import os
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

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


def class_thumbnails(
    scan: ScanResult, size: int = 48, stop: Callable[[], bool] | None = None
) -> dict[int, bytes]:
    """One picture per class (its first image that decodes), until ``stop()``."""
    thumbs: dict[int, bytes] = {}
    for sample in scan.samples:
        if stop is not None and stop():
            break
        if sample.label not in thumbs:
            png = thumbnail_png(os.path.join(scan.root, sample.path), size)
            if png:
                thumbs[sample.label] = png
    return thumbs


def heat_map_pictures(
    predictor: Any, root: str, mistakes: Sequence[Any], cancel: Any, progress: Any
) -> tuple[dict[str, bytes], str]:
    """For each mistake, its picture with the heat map of the predicted class beside the one of
    the true class (96 px each), as PNG; or, if the model has no heat maps, why."""
    from PIL import Image

    from ..core.cam import CamUnavailable, class_heat_maps

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
