"""Where ftgui keeps its own files, per platform (platformdirs): data and caches.

Linux: ``~/.local/share/ftgui`` and ``~/.cache/ftgui`` (honouring ``XDG_DATA_HOME`` and
``XDG_CACHE_HOME``); macOS: ``~/Library/Application Support/ftgui`` and ``~/Library/Caches/ftgui``;
Windows: ``%LOCALAPPDATA%\\ftgui``. No torch here: the window uses it before torch is loaded.
"""

from __future__ import annotations

from pathlib import Path

import platformdirs

APP = "ftgui"


def data_dir() -> Path:
    """Checkpoints the window saves, the example dataset."""
    return Path(platformdirs.user_data_dir(APP, appauthor=False))


def cache_dir() -> Path:
    """Frozen-prefix feature caches: safe to delete, rebuilt when needed."""
    return Path(platformdirs.user_cache_dir(APP, appauthor=False))


def available_memory() -> int:
    """Bytes of RAM available now, on any system (psutil)."""
    import psutil

    return int(psutil.virtual_memory().available)
