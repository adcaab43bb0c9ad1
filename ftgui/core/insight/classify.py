"""Classify whole folders with an exported model: images found recursively and predicted in
batches (``Predictor.predict_batches``); an unreadable file is listed with its reason."""

from __future__ import annotations

import csv
import io
import os
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ftgui.core.base.errors import FtguiError
from ftgui.core.base.outputs import first_line
from ftgui.core.base.text import display_path
from ftgui.core.bundle.predict import Prediction
from ftgui.core.data.scan import is_image_name


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


PREDICTIONS_CSV = first_line("path,class_1,probability_1")  # a file predictions_csv wrote


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


@dataclass
class CopyReport:
    folder: str
    copied: dict[str, int] = field(default_factory=dict)  # per class folder (and the unsure one)
    unreadable: int = 0  # images with an error: not copied

    @property
    def total(self) -> int:
        return sum(self.copied.values())


def copy_into_class_folders(
    predictions: Sequence[Prediction],
    out: str | os.PathLike[str],
    unsure_below: float = 0.0,
    unsure: str = "unsure",
    cancel: Callable[[], bool] | None = None,
    datasets: Sequence[str | os.PathLike[str]] = (),
) -> CopyReport:
    """Copy (never move) each image into ``out/<predicted class>/``, or ``out/unsure/`` when the
    model's probability is below ``unsure_below``. Nothing is overwritten: a name already taken
    gets a new one; the originals are only read. Never into a model folder or one of
    ``datasets`` (the model's training images would change)."""
    from ftgui.core.base.outputs import model_folder_of
    from ftgui.core.base.text import class_name_problem
    from ftgui.core.data.fixes import free_name

    root = Path(out).expanduser()
    real = root.resolve()
    holder = model_folder_of(real)
    inside = [d for d in datasets if real.is_relative_to(Path(d).expanduser().resolve())]
    if holder is not None or inside:
        where = f"the ftgui model folder {holder}" if holder is not None else f"the dataset {inside[0]}"
        raise FtguiError(f"Cannot copy into {root}: it is inside {where}. Choose a folder elsewhere.")
    classes = {p.top[0][0] for p in predictions if p.top}
    for name in sorted(classes):  # a model's class names become folder names: never a path
        problem = class_name_problem(name)
        if problem:
            raise FtguiError(f"Cannot copy into class folders: {problem} (from the model's model.json).")
    while unsure in classes:
        unsure += "_"
    report = CopyReport(str(root))
    for p in predictions:
        if cancel is not None and cancel():
            break
        if p.error or not p.top:
            report.unreadable += 1
            continue
        cls, prob = p.top[0]
        folder = root / (unsure if prob < unsure_below else cls)
        folder.mkdir(parents=True, exist_ok=True)
        src = Path(p.path)
        while True:
            dst = folder / free_name(folder, src.name, set())
            try:
                with open(src, "rb") as fin, open(dst, "xb") as fout:  # "x": never over a file
                    shutil.copyfileobj(fin, fout)
                break
            except FileExistsError:
                continue  # taken between the check and the open: the next free name
        shutil.copystat(src, dst)
        report.copied[folder.name] = report.copied.get(folder.name, 0) + 1
    return report
