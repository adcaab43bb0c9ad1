"""Start the window's background work only once the window has painted itself.

Importing PyTorch (a thread) holds Python's lock for long stretches while its libraries load,
and reopening a folder starts a listing thread and header-check processes. Started before the
window's first paint, they could leave a black, unpainted window for seconds on a cold disk.
The window paints first; the work starts on the next turn of the event loop.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from PySide6.QtCore import QEvent, QObject, QTimer
from PySide6.QtWidgets import QWidget

# Where no paint ever comes (a window started minimised, or on another desktop) the work
# starts anyway after this long.
FALLBACK_MS = 1500


class AfterFirstPaint(QObject):
    """Calls ``work`` once, right after ``window``'s first paint (or after FALLBACK_MS)."""

    def __init__(self, window: QWidget, work: Callable[[], None]) -> None:
        super().__init__(window)
        self._window = window
        self._work: Callable[[], None] | None = work
        self.shown_at = time.monotonic()
        self.painted_at: float | None = None
        window.installEventFilter(self)
        QTimer.singleShot(FALLBACK_MS, self._start)

    def eventFilter(self, obj: QObject, event: QEvent) -> bool:  # noqa: N802 (Qt's name)
        if obj is self._window and event.type() == QEvent.Type.Paint and self.painted_at is None:
            self.painted_at = time.monotonic()
            self._window.removeEventFilter(self)
            QTimer.singleShot(0, self._start)  # after this paint has reached the screen
        return False

    def _start(self) -> None:
        work, self._work = self._work, None
        if work is not None:
            work()


def show_then_start(window: QWidget, work: Callable[[], None]) -> AfterFirstPaint:
    """Show ``window``; run ``work`` once it has painted."""
    starter = AfterFirstPaint(window, work)
    window.show()
    return starter
