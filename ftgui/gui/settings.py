"""Typed reading of the window's QSettings: a stored value of the default's type, or the default."""

from __future__ import annotations

from pathlib import Path
from typing import TypeVar

from PySide6.QtCore import QSettings, QSize

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


def remembered_weights(saved: str) -> dict[str, str]:
    """The weights chosen last for each model (``model/weights``, JSON), {} when unreadable."""
    import json

    try:
        value = json.loads(saved) if saved else {}
    except ValueError:
        return {}
    if not isinstance(value, dict):
        return {}
    return {str(k): str(v) for k, v in value.items() if isinstance(k, str) and isinstance(v, str)}


DEFAULT_WINDOW = QSize(1280, 800)


def window_size(saved: object, saved_screen: object, screen: QSize) -> QSize | None:
    """The size a restored window should take, or None to keep what Qt restored.

    No saved size: the default (fitted to the screen). A window bigger than this screen (saved
    on a bigger one): as much of this screen as it had. A window that filled a smaller screen
    than this one: the default size (Qt otherwise brings back, say, 1200 x 573 from an
    800 x 600 screen onto 1280 x 800, with names cut)."""
    fit = QSize(min(DEFAULT_WINDOW.width(), screen.width()), min(DEFAULT_WINDOW.height(), screen.height()))
    if not isinstance(saved, QSize) or not saved.isValid():
        return fit
    if saved.width() > screen.width() or saved.height() > screen.height():
        return QSize(min(saved.width(), screen.width()), min(saved.height(), screen.height()))
    if isinstance(saved_screen, QSize) and saved_screen.isValid():
        smaller = saved_screen.width() < screen.width() or saved_screen.height() < screen.height()
        filled = saved.width() >= saved_screen.width() - 120 or saved.height() >= saved_screen.height() - 120
        if smaller and filled and (saved.width() < fit.width() or saved.height() < fit.height()):
            return QSize(max(saved.width(), fit.width()), max(saved.height(), fit.height()))
    return None


# The engine's messages name ftgui-train's options; the window names its own controls instead.
WINDOW_WORDS = (
    ("(--weights PATH)", "(Weights: From file…)"),
    ("(--weights none)", "(Weights: none)"),
    ("use --weights none or a file", "choose Weights: none or From file…"),
    ("use --weights default, none or a file", "choose its default weights, none or From file…"),
    ("use --weights none", "choose Weights: none"),
    ("use --device cpu or auto", "choose Device: cpu or auto"),
)


def window_words(text: str) -> str:
    """``text`` with the command line's option names replaced by the window's controls."""
    for cli, window in WINDOW_WORDS:
        text = text.replace(cli, window)
    return text
