"""Typed reading of the window's QSettings: a stored value of the default's type, or the default."""

from __future__ import annotations

from pathlib import Path
from typing import TypeVar

from PySide6.QtCore import QSettings

T = TypeVar("T", str, int, float, bool)


def dialog_folder(*candidates: str | Path | None) -> str:
    """Where a file dialog opens: the first candidate that is a folder (the open dataset, the
    last export, ...), else the home folder; never the working directory the app started in."""
    for c in candidates:
        if c and Path(c).is_dir():
            return str(c)
    return str(Path.home())


def setting(settings: QSettings, key: str, default: T) -> T:
    """``settings.value(key, type=...)`` with the default's type; the default when unreadable.

    QSettings converts stored text (ini files keep everything as text) to the type itself.
    """
    kind = type(default)
    try:
        value = settings.value(key, default, type=kind)
    except (TypeError, ValueError):
        return default
    return value if isinstance(value, kind) else default
