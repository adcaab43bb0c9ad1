"""Before an export replaces a folder's bundle: is it this model's earlier export, or another
model's (another architecture, other classes, another training run) that the user would lose?"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from ftgui.core.bundle.format import (
    BUNDLE_FILES,
    BUNDLE_FORMAT,
    CARD_FILE,
    EVALUATION_FILE,
    META_FILE,
    SPLIT_FILE,
    WEIGHTS_FILE,
)
from ftgui.core.bundle.trained import TrainedModel

CORE_FILES = (WEIGHTS_FILE, META_FILE, SPLIT_FILE, EVALUATION_FILE, CARD_FILE)  # every export writes them


@dataclass(frozen=True)
class OtherBundle:
    """Another model's bundle in an export folder: what it is and why it is not this one."""

    folder: Path
    arch: str
    classes: list[str]
    created: str
    files: list[str]  # the bundle's files there, which an export would replace or remove
    why: str  # "another architecture", "other classes" or "another training run"

    def describe(self) -> str:
        shown = ", ".join(self.classes[:4]) + (", …" if len(self.classes) > 4 else "")
        when = f", exported {self.created.replace('T', ' ')[:16]}" if self.created else ""
        formats = [f for f in self.files if f not in CORE_FILES]
        also = f", and {', '.join(formats)}" if formats else ""
        return (
            f"{self.folder} holds another model ({self.why}): {self.arch}, {len(self.classes)} classes "
            f"({shown}){when}: its weights and description{also}."
        )


def other_bundle(folder: str | os.PathLike[str], trained: TrainedModel) -> OtherBundle | None:
    """The bundle in ``folder`` when it belongs to another model than ``trained``; None when the
    folder holds none (or a description ftgui cannot read: the export's own checks speak of
    that) or this run's own earlier export (replacing it is what re-exporting means)."""
    out = Path(folder).expanduser()
    try:
        meta = json.loads((out / META_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError, UnicodeDecodeError, RecursionError):
        return None
    if not isinstance(meta, dict) or meta.get("format") != BUNDLE_FORMAT:
        return None
    arch, classes = str(meta.get("arch", "?")), meta.get("classes")
    classes = [str(c) for c in classes] if isinstance(classes, list) else []
    if arch != trained.built.arch:
        why = "another architecture"
    elif classes != trained.classes:
        why = "other classes"
    elif meta.get("run_id") != trained.run_id or not trained.run_id:
        why = "another training run"
    else:
        return None
    files = [name for name in BUNDLE_FILES if (out / name).is_file()]
    return OtherBundle(out, arch, classes, str(meta.get("created", "")), files, why)


def free_folder(folder: str | os.PathLike[str]) -> Path:
    """``folder`` when nothing is there yet, else the first of ``folder-2``, ``folder-3``, …
    that does not exist (a new run's export never lands on an older one by default)."""
    base = Path(folder).expanduser()
    if not base.exists() or (base.is_dir() and not any(base.iterdir())):
        return base
    n = 2
    while (candidate := base.with_name(f"{base.name}-{n}")).exists():
        n += 1
    return candidate
