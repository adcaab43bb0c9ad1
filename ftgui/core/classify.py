"""Classify whole folders with an exported model: images found recursively and predicted in
batches (``Predictor.predict_batches``); an unreadable file is listed with its reason."""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Sequence
from pathlib import Path

from .data import is_image_name
from .predict import Prediction
from .text import display_path


def find_images(paths: Sequence[str | os.PathLike[str]]) -> list[str]:
    """Image files among ``paths``: files as given, folders searched recursively (hidden
    files and folders skipped), each in name order."""
    found: list[str] = []
    for p in paths:
        path = Path(p).expanduser()
        if not path.is_dir():
            found.append(str(p))  # a file, or a missing path: its prediction says what is wrong
            continue
        inside: list[str] = []
        for top, dirs, files in os.walk(path):
            dirs[:] = sorted(d for d in dirs if not d.startswith("."))
            inside.extend(
                os.path.join(top, f) for f in sorted(files) if not f.startswith(".") and is_image_name(f)
            )
        found.extend(inside or [str(p)])  # a folder without images is listed as such
    return found


def predictions_csv(predictions: Sequence[Prediction], topk: int) -> str:
    """One row per image: path, the top-k classes with probabilities, and the error if any."""
    out = io.StringIO()
    writer = csv.writer(out)
    header = ["path"]
    for n in range(1, topk + 1):
        header += [f"class_{n}", f"probability_{n}"]
    writer.writerow([*header, "error"])
    for p in predictions:
        cells = [display_path(p.path)]
        for n in range(topk):
            if n < len(p.top):
                cells += [display_path(p.top[n][0]), f"{p.top[n][1]:.6f}"]
            else:
                cells += ["", ""]
        writer.writerow([*cells, p.error or ""])
    return out.getvalue()
