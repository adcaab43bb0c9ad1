"""ftgui's own files beside the code: the icon and the desktop entry."""

from __future__ import annotations

import sys
from pathlib import Path

from PySide6.QtGui import QIcon


def _resources() -> Path:
    """resources/ of a source checkout, or the copy a wheel installs under <prefix>/share/ftgui."""
    for folder in (Path(__file__).resolve().parents[2] / "resources", Path(sys.prefix) / "share" / "ftgui"):
        if (folder / "ftgui.desktop").is_file():
            return folder
    return Path(__file__).resolve().parents[2] / "resources"


RESOURCES = _resources()


def app_icon() -> QIcon:
    for name in ("ftgui.svg", "ftgui.png"):
        path = RESOURCES / name
        if path.is_file():
            return QIcon(str(path))
    return QIcon()
