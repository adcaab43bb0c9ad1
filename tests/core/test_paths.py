"""ftgui's own folders come from platformdirs, free memory from psutil: portable facts."""

from __future__ import annotations

import sys

import psutil
import pytest

from ftgui.core.base import paths
from ftgui.core.data import stores


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="XDG variables are Linux's")
def test_folders_follow_the_platforms_rules(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    assert paths.data_dir() == tmp_path / "data" / "ftgui"
    assert stores.folder("features") == tmp_path / "cache" / "ftgui" / "features"


def test_free_memory_and_the_cache_budget_come_from_the_system():
    available = paths.available_memory()
    assert 0 < available <= psutil.virtual_memory().total
    assert 0 < stores.default_budget() <= 8 << 30


def test_the_cache_budget_can_be_set_for_the_window(monkeypatch):
    monkeypatch.setenv("FTGUI_CACHE_MEMORY_MB", "64")
    assert stores.default_budget() == 64 << 20
    monkeypatch.setenv("FTGUI_CACHE_MEMORY_MB", "lots")  # not a number: the default
    assert 0 < stores.default_budget() <= 8 << 30
