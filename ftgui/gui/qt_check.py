"""Start-up check for Qt bindings that corrupt Python's reference count of ``None``.

PySide6 6.12.0 on Python < 3.12 drops one reference to ``None`` on every call of a Qt method
that returns nothing (``setText``, ``setValue``, ...). A window that refreshes its widgets
while training reaches a count of zero within a minute and the interpreter aborts with
``Fatal Python error: none_dealloc``. Python 3.12 made ``None`` immortal, so there the count
never moves. The check measures the drift directly instead of trusting version numbers, so it
also catches any other build with the same fault.
"""

from __future__ import annotations

import ctypes
import sys

PROBE_CALLS = 64


def none_refcount_drift(calls: int = PROBE_CALLS) -> int:
    """How ``sys.getrefcount(None)`` changed over ``calls`` void Qt calls (0 when healthy)."""
    from PySide6.QtCore import QObject

    probe = QObject()
    name = "ftgui-probe"
    before = sys.getrefcount(None)
    for _ in range(calls):
        probe.setObjectName(name)
    return sys.getrefcount(None) - before


def repair_none_references(lost: int) -> None:
    """Give back references a faulty binding took, so that a refusing process can exit cleanly."""
    incref = ctypes.pythonapi.Py_IncRef
    incref.argtypes = [ctypes.py_object]
    incref.restype = None
    for _ in range(max(0, lost)):
        incref(None)


def broken_binding_message(calls: int = PROBE_CALLS) -> str | None:
    """A sentence for the user when this Qt binding loses ``None`` references, else None."""
    drift = none_refcount_drift(calls)
    if drift > -calls // 2:
        return None
    repair_none_references(-drift)
    import PySide6

    python = ".".join(map(str, sys.version_info[:3]))
    return (
        f"ftgui cannot run with PySide6 {PySide6.__version__} on Python {python}: this combination "
        f"loses a reference to None on every Qt call ({-drift} in {calls} calls) and the window would "
        "abort during training ('Fatal Python error: none_dealloc'). Install a PySide6 without the "
        "fault, for example: pip install 'PySide6-Essentials>=6.5,!=6.12.0' — or run ftgui on "
        "Python 3.12 or newer."
    )
