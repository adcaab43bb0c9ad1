"""The window's one way to run long work off the GUI thread: superqt workers (as napari uses them).

A job is a function, or a generator whose values arrive on the GUI thread as ``on_yield`` calls
(training events). One job at a time (the session refuses a second); Stop sets the session's
cancel token, which the engine checks before every batch. Errors arrive as a message: an
``FtguiError``'s text, or the traceback of anything else, never an exception in Qt's loop.
"""

from __future__ import annotations

import inspect
import traceback
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QObject, QThreadPool, Signal
from superqt.utils import WorkerBase, create_worker

from ftgui.core.base.errors import FtguiError
from ftgui.core.workflows.session import Job, Session

# Called as progress(done, total, *details): the learning-rate finder adds its rate and loss.
Progress = Callable[..., None]


def start_worker(fn: Callable[[], Any]) -> WorkerBase[Any]:
    """A superqt worker (not started) that runs ``fn`` once and then lets go of it.

    PySide sometimes keeps a finished worker's Python object alive from Qt's side; with
    ``fn`` dropped, what ``fn`` refers to (a listing of 100k files, a training) goes anyway.
    Errors go to ``errored``; superqt would otherwise re-raise them in the GUI thread."""
    held = [fn]

    def once() -> Any:
        return held.pop()()

    def once_generator() -> Any:  # superqt sees a generator function: a GeneratorWorker
        return (yield from held.pop()())

    run = once_generator if inspect.isgeneratorfunction(fn) else once
    return create_worker(run, _start_thread=False, _ignore_errors=True)


def error_text(exc: BaseException) -> str:
    if isinstance(exc, FtguiError):
        return str(exc)
    detail = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__, limit=4))
    return f"{exc or type(exc).__name__}\n\n{detail}"


class JobRunner(QObject):
    """Starts the session's jobs in Qt's thread pool and reports back on the GUI thread."""

    busy_changed = Signal(bool)
    progressed = Signal(int, int)  # done, total (for jobs that report progress)
    _progress = Signal(int, int)  # emitted from the worker thread; queued to the GUI thread

    def __init__(self, session: Session, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.session = session
        self.worker: WorkerBase[Any] | None = None
        self._progress.connect(self.progressed)

    @property
    def busy(self) -> bool:
        return self.session.busy

    def start(
        self,
        name: str,
        work: Callable[[Job, Progress], Any],
        *,
        on_error: Callable[[str], None],
        on_result: Callable[[Any], None] | None = None,
        on_yield: Callable[[Any], None] | None = None,
        on_done: Callable[[], None] | None = None,
    ) -> bool:
        """Run ``work(job, progress)`` off the GUI thread; False (and nothing runs) while busy.

        ``work`` may return a generator: its values go to ``on_yield`` one by one. ``on_done``
        runs last, when the session is free again (a follow-up job may start there).
        """
        if self.session.busy:
            return False
        job = self.session.begin(name)

        def progress(done: int, total: int, *_: object) -> None:
            self._progress.emit(int(done), int(total))

        def run() -> Any:
            result = work(job, progress)
            if on_yield is not None and result is not None and hasattr(result, "__next__"):
                yield from result
                return None
            yield  # a plain function: one step, then its return value
            return result

        worker = start_worker(run)
        if on_yield is not None:
            worker.yielded.connect(lambda value: value is not None and on_yield(value))
        if on_result is not None:
            worker.returned.connect(on_result)
        worker.errored.connect(lambda exc: on_error(error_text(exc)))
        worker.finished.connect(lambda *_: self._on_finished(on_done))
        self.worker = worker
        self.busy_changed.emit(True)
        worker.start()
        return True

    def stop(self) -> None:
        """Stop the running job at its next check (training: after the current batch)."""
        self.session.stop()

    def _on_finished(self, on_done: Callable[[], None] | None = None) -> None:
        self.worker = None
        self.session.end()
        self.busy_changed.emit(False)
        if on_done is not None:
            on_done()

    def shutdown(self, msecs: int = 60_000) -> None:
        """Cancel the job and wait for its thread (the window is closing)."""
        self.session.stop()
        QThreadPool.globalInstance().waitForDone(msecs)
        if self.worker is not None:
            self.worker = None
            self.session.end()
