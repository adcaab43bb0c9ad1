"""What a scanned folder holds: samples, classes and the train/validation split."""

from __future__ import annotations

import operator
import os
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Any, NamedTuple

from ftgui.core.base.errors import DataError
from ftgui.core.data.headers import HeaderCache, Stamp


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
    excluded: list[str] = field(default_factory=list)  # left out by the user (core/data/fixes.py)
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
    seen: dict[str, str] = {}
    for part in ("train", "val"):
        for rel, _ in split[part]:
            key = os.path.normpath(rel)
            if key in seen:
                where = (
                    f"twice in 'split.{part}'"
                    if seen[key] == part
                    else "in both 'split.train' and 'split.val'"
                )
                return f"'split' lists {rel} {where} (an image is trained or validated on once)"
            seen[key] = part
    return None if split["train"] else "'split.train' is empty"


def _stays_inside(rel: str) -> bool:
    parts = PurePosixPath(rel).parts
    return bool(parts) and not rel.startswith(("/", "\\")) and ".." not in parts


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
