"""Optional packages (the extras in pyproject.toml): whether one is there, without importing it."""

from __future__ import annotations

import importlib.util
import sys


def importable(name: str) -> bool:
    """True if ``import name`` would find the package (a module set to None counts as missing)."""
    if name in sys.modules:
        return sys.modules[name] is not None
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False
