"""``ftgui --self-check``: what the installed bundle's check runs through the window."""

from __future__ import annotations

import io
import json
import sys

import pytest
from PySide6.QtCore import QCoreApplication, QEvent

from ftgui.gui.main_window import MainWindow
from ftgui.gui.self_check import SelfCheck
from ftgui.gui.startup import show_then_start


def _run(qtbot, settings, out) -> tuple[SelfCheck, str, dict]:
    window = MainWindow(settings=settings)
    stream = io.StringIO()
    check = SelfCheck(window, out, stream, quit_app=False)
    show_then_start(window, window.start_background_init)
    qtbot.waitUntil(lambda: check.done, timeout=180_000)
    # As the window fixture does: its jobs ended, then deleted here, in this thread. Left to
    # Python's collector, a window can be collected in a worker thread, and its deletion queued
    # for this one deadlocked a later test on a Qt mutex.
    seen = {"ready": window.ready, "model box": window.model_panel.arch_combo.itemText(0)}
    window.jobs.shutdown()
    window.deleteLater()
    QCoreApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete)
    return check, stream.getvalue(), seen


@pytest.mark.slow
def test_the_self_check_trains_and_exports_the_example_through_the_window(qtbot, settings, tmp_path):
    out = tmp_path / "export"
    check, said, _ = _run(qtbot, settings, str(out))
    assert check.failed is None, said
    lines = said.splitlines()
    assert lines[0].startswith("self-check: window visible") and lines[-1] == "self-check: passed"
    assert any("trained a head for one epoch" in line for line in lines)
    meta = json.loads((out / "model.json").read_text())
    assert meta["epochs_completed"] == 1 and meta["training"]["strategy"] == "head"
    assert "torchscript" in check.formats and (out / "model.torchscript.pt").is_file()
    assert not [f for f, c in meta["exports"]["formats"].items() if c["error"]]


def test_without_a_folder_it_only_measures_the_start(qtbot, settings):
    check, said, _ = _run(qtbot, settings, None)
    assert check.failed is None
    seconds = float(said.split("window visible ")[1].split(" s")[0])
    assert 0 < seconds < 600
    assert said.splitlines()[-1] == "self-check: passed"


def test_a_broken_pytorch_is_said_in_the_window_and_fails_the_check(qtbot, settings, monkeypatch):
    """torchvision that will not load (a bundle missing its operators did this) left the window
    waiting for PyTorch forever; it says so, and the self-check fails with the reason."""
    monkeypatch.setitem(sys.modules, "torchvision", None)  # import torchvision raises ImportError
    check, said, seen = _run(qtbot, settings, "unused")
    assert check.failed is not None and "PyTorch would not load" in check.failed, said
    assert "torchvision" in check.failed and "reinstall ftgui" in check.failed
    assert said.splitlines()[-1].startswith("self-check: FAILED")
    assert seen == {"ready": False, "model box": "PyTorch would not load"}  # not "Loading PyTorch…"
