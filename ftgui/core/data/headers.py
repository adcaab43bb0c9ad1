"""Image header checks for a whole folder: on all cores, remembered by path, size and mtime.

Listing a folder is fast (100k files in well under a second); checking each image's header
is not (a few thousand files a second per core). So :func:`ftgui.core.data.scan_folder` can
list only, leaving the files not yet checked as ``ScanResult.pending``, and
:func:`verify_files` checks them later, in worker processes, reporting each bad file as it
is found. Results are kept in
the app's cache folder (one small gzip file per dataset folder), so re-opening an unchanged
folder checks nothing and a changed one checks only the files whose size or mtime changed.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import json
import os
import queue
import subprocess
import sys
import threading
import warnings
import zlib
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import BrokenExecutor, Executor, Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

from PIL import Image

from ftgui.core.base import paths
from ftgui.core.base.files import atomic_write, open_regular
from ftgui.core.data.shapes import shape_problem
from ftgui.frozen import worker_command

CACHE_VERSION = 3  # 2: JSON lines of LINE_FILES files each; 3: extreme aspect ratios refused
LINE_FILES = 4096
CHUNK = 64  # files per task: small enough for live progress, large enough to be cheap


TRUNCATED = "truncated image file (it ends before the image data does)"


def _jpeg_complete(path: str | os.PathLike[str]) -> bool:
    """A complete JPEG ends with the EOI marker (allowing a little padding after it)."""
    with open_regular(path) as fh:
        fh.seek(0, os.SEEK_END)
        size = fh.tell()
        fh.seek(max(0, size - 64))
        return b"\xff\xd9" in fh.read()


def _starts_with(path: str | os.PathLike[str], magic: bytes) -> bool:
    with open_regular(path) as fh:
        return fh.read(len(magic)) == magic


def check_image(path: str | os.PathLike[str]) -> str | None:
    """Why this file cannot be used as an image, or None if it looks fine (cheap: header only)."""
    try:
        if os.path.getsize(path) == 0:
            return "empty file (0 bytes)"
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with open_regular(path) as fh, Image.open(fh) as im:
                fmt = im.format
                size = im.size
                im.verify()
        shape = shape_problem(size[0], size[1])
        if shape:
            return shape
        if fmt == "JPEG" and not _jpeg_complete(path):
            return TRUNCATED
    except Image.DecompressionBombError as exc:
        return f"image too large to decode safely ({exc})"
    except Image.DecompressionBombWarning as exc:
        return f"image too large to decode safely ({exc})"
    except Image.UnidentifiedImageError:
        # Some Pillow versions cannot even identify a JPEG cut short; its signature still can.
        if _starts_with(path, b"\xff\xd8\xff") and not _jpeg_complete(path):
            return TRUNCATED
        return "not an image Pillow can read (wrong or unknown format)"
    except (OSError, SyntaxError, ValueError) as exc:
        return TRUNCATED if "truncat" in str(exc).lower() else f"unreadable image ({exc})"
    return None


class Stamp(NamedTuple):
    """What a file was when it was checked: changed size or mtime means check it again."""

    size: int
    mtime_ns: int


def _cache_path(root: str) -> Path:
    key = hashlib.sha256(os.path.realpath(root).encode("utf-8", "surrogateescape")).hexdigest()[:32]
    return paths.cache_dir() / "headers" / f"{key}.json.gz"


class HeaderCache:
    """The header checks of one dataset folder: for each relative path, the size and mtime it
    had when checked and the reason it is unusable (None for a good image).

    Stored as parallel lists in lines of LINE_FILES files (100k files read back in about 0.1 s).
    Saving keeps only the files looked up or recorded since loading, so entries of removed
    files go with it.
    """

    def __init__(self, root: str, enabled: bool = True) -> None:
        self.root = root
        self.enabled = enabled
        self.path = _cache_path(root)
        self._entries: dict[str, tuple[int, int, str | None]] = {}
        self._seen: set[str] = set()
        self._lock = threading.Lock()
        self.loaded = 0
        if enabled:
            self._load()

    def _load(self) -> None:
        # JSON lines, each a parse of a few milliseconds: a thread that lists a folder never
        # holds Python's lock long (the window's event loop keeps running beside it).
        entries: dict[str, tuple[int, int, str | None]] = {}
        try:
            with gzip.open(self.path, "rt", encoding="utf-8", errors="surrogateescape") as fh:
                head = json.loads(fh.readline())
                if head.get("version") != CACHE_VERSION or head.get("root") != os.path.realpath(self.root):
                    return
                for line in fh:
                    record = json.loads(line)
                    if "bad" in record:
                        for name, reason in record["bad"].items():
                            if name in entries and isinstance(reason, str):
                                entries[name] = (entries[name][0], entries[name][1], reason)
                        continue
                    names, sizes, mtimes = record["paths"], record["sizes"], record["mtimes"]
                    if not len(names) == len(sizes) == len(mtimes):
                        return
                    entries.update((n, (a, b, None)) for n, a, b in zip(names, sizes, mtimes))
        except (OSError, EOFError, zlib.error, ValueError, KeyError, TypeError, AttributeError):
            return  # no cache yet, or a damaged one: check everything again
        self._entries = entries
        self.loaded = len(entries)

    def lookup(self, rel: str, stamp: Stamp) -> tuple[bool, str | None]:
        """(known, reason): whether ``rel`` was checked as it is now, and what was found."""
        self._seen.add(rel)
        entry = self._entries.get(rel)
        if entry is not None and entry[0] == stamp.size and entry[1] == stamp.mtime_ns:
            return True, entry[2]
        return False, None

    def record(self, rel: str, stamp: Stamp, reason: str | None) -> None:
        with self._lock:
            self._seen.add(rel)
            self._entries[rel] = (stamp.size, stamp.mtime_ns, reason)

    def save(self) -> None:
        """Write the cache atomically (never fails a scan: a cache is only a shortcut)."""
        if not self.enabled:
            return
        with self._lock:
            kept = [(rel, e) for rel, e in self._entries.items() if rel in self._seen]
        lines = [json.dumps({"version": CACHE_VERSION, "root": os.path.realpath(self.root)})]
        for i in range(0, len(kept), LINE_FILES):
            part = kept[i : i + LINE_FILES]
            lines.append(
                json.dumps(
                    {
                        "paths": [r for r, _ in part],
                        "sizes": [e[0] for _, e in part],
                        "mtimes": [e[1] for _, e in part],
                    },
                    separators=(",", ":"),
                )
            )
        lines.append(json.dumps({"bad": {rel: e[2] for rel, e in kept if e[2]}}, separators=(",", ":")))
        data = gzip.compress("\n".join(lines).encode("utf-8", "surrogateescape"), compresslevel=1, mtime=0)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write(self.path, lambda fh: fh.write(data))
        except OSError:
            pass


@dataclass
class Verification:
    """What one :func:`verify_files` call did."""

    checked: int = 0
    bad: list[tuple[str, str]] = field(default_factory=list)
    cancelled: bool = False


def _check_paths(root: str, rels: Sequence[str]) -> list[str | None]:
    return [check_image(os.path.join(root, rel)) for rel in rels]


def _chunks(items: list[tuple[str, Stamp]], size: int) -> Iterator[list[tuple[str, Stamp]]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


PROCESS_MIN = 4_000  # fewer files are checked in the calling thread: starting processes costs more


class _Workers(Executor):
    """Worker processes running ``python -m ftgui.core.data.headers --worker`` (in the installed
    bundle, its own executable with ``--ftgui-worker headers``): they import only this
    module (not the program that called ftgui, as multiprocessing's spawn would), and read
    chunks of paths as JSON lines, answering each with its list of reasons. Header parsing
    holds Python's GIL, so threads would not use more cores (measured: slower than one)."""

    def __init__(self, workers: int) -> None:
        self._jobs: queue.Queue[tuple[Future[Any], str, list[str]] | None] = queue.Queue()
        # Where this ftgui is, and nothing of the caller's: a script's folder (or the current
        # one) holding a types.py or json.py would otherwise be imported in the stdlib's place.
        home = str(Path(__file__).resolve().parents[2])
        path = os.pathsep.join(p for p in (home, os.environ.get("PYTHONPATH")) if p)
        self._procs = [
            subprocess.Popen(
                worker_command("headers"),
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                cwd=home,
                env={**os.environ, "PYTHONPATH": path},
            )
            for _ in range(workers)
        ]
        self._threads = [threading.Thread(target=self._serve, args=(p,), daemon=True) for p in self._procs]
        for t in self._threads:
            t.start()

    def _serve(self, proc: subprocess.Popen[bytes]) -> None:
        assert proc.stdin is not None and proc.stdout is not None
        while True:
            job = self._jobs.get()
            if job is None:
                return
            future, root, rels = job
            if not future.set_running_or_notify_cancel():
                continue
            try:
                proc.stdin.write((json.dumps([root, rels]) + "\n").encode("ascii"))
                proc.stdin.flush()
                line = proc.stdout.readline()
                if not line:
                    raise BrokenExecutor("a header-check process ended")
                future.set_result(json.loads(line))
            except (OSError, ValueError, BrokenExecutor) as exc:
                future.set_exception(BrokenExecutor(str(exc)))

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        """``fn`` is :func:`_check_paths`, run by a worker process on ``(root, rels)``."""
        future: Future[Any] = Future()
        root, rels = args
        self._jobs.put((future, os.path.abspath(root), rels))  # the workers run elsewhere
        return future

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        if cancel_futures:
            while True:
                try:
                    job = self._jobs.get_nowait()
                except queue.Empty:
                    break
                if job is not None:
                    job[0].cancel()
        for _ in self._threads:
            self._jobs.put(None)
        for t in self._threads:
            t.join()
        for proc in self._procs:
            try:
                assert proc.stdin is not None and proc.stdout is not None
                proc.stdin.close()
                proc.wait(timeout=10)
            except (OSError, subprocess.TimeoutExpired):
                proc.kill()
                proc.wait()
            finally:
                if proc.stdout is not None:
                    proc.stdout.close()  # no pipe left open per opened folder


def serve_worker() -> None:
    """The worker side of :class:`_Workers`: one JSON line in, one out, until stdin closes.
    At a lower priority: the window (and a training) come first on a busy machine."""
    if hasattr(os, "nice"):
        with contextlib.suppress(OSError):
            os.nice(10)
    for line in sys.stdin.buffer:
        sys.stdout.write(json.dumps(_check_paths(*json.loads(line))) + "\n")
        sys.stdout.flush()


def _start_workers(workers: int) -> Executor:
    try:
        return _Workers(workers)
    except OSError:
        return _Inline()  # no processes to be had here: one core still works


class _Inline(Executor):
    """Runs each task at submit: one core, no start-up cost."""

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        future: Future[Any] = Future()
        try:
            future.set_result(fn(*args, **kwargs))
        except BaseException as exc:
            future.set_exception(exc)
        return future


def verify_files(
    root: str,
    pending: dict[str, Stamp],
    cache: HeaderCache,
    progress: Callable[[int, int], None] | None = None,
    found_bad: Callable[[str, str], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    workers: int | None = None,
) -> Verification:
    """Check the headers of ``pending`` files (relative to ``root``), on all cores.

    ``progress(done, total)`` follows each chunk; ``found_bad(rel, reason)`` each bad file, as
    it is found. ``should_stop()`` returning True ends the checks early: what was checked is
    recorded and saved, the rest stays in ``pending``. Checked files leave ``pending``.
    ``workers``: processes (default: one per core, at most 16; 1 checks in this thread).
    """
    items = sorted(pending.items())
    total = len(items)
    result = Verification()
    if not items:
        return result
    if workers is None:
        workers = max(1, min(16, os.cpu_count() or 1)) if total >= PROCESS_MIN else 1
    pools: list[Executor] = [_start_workers(workers) if workers > 1 else _Inline()]
    done = 0

    def collect() -> None:
        nonlocal done
        chunk, future = inflight.popleft()
        try:
            reasons = future.result()
        except BrokenExecutor:  # a worker could not start (an unusual __main__) or died
            pools.append(_Inline())
            reasons = _check_paths(root, [rel for rel, _ in chunk])
        done = _collect(chunk, reasons, pending, cache, result, found_bad, done)
        if progress:
            progress(done, total)

    # A bounded window of chunks in flight: cancelling stays immediate on huge folders.
    window = max(2, workers * 4)
    inflight: deque[tuple[list[tuple[str, Stamp]], Future[list[str | None]]]] = deque()
    try:
        for chunk in _chunks(items, CHUNK):
            inflight.append((chunk, pools[-1].submit(_check_paths, root, [rel for rel, _ in chunk])))
            while len(inflight) >= window or (inflight and inflight[0][1].done()):
                collect()
            if should_stop and should_stop():
                result.cancelled = True
                break
        while inflight and not result.cancelled:
            collect()
            if should_stop and should_stop() and inflight:
                result.cancelled = True
    finally:
        for pool in pools:
            pool.shutdown(wait=True, cancel_futures=True)
        cache.save()
    return result


def _collect(
    chunk: list[tuple[str, Stamp]],
    reasons: list[str | None],
    pending: dict[str, Stamp],
    cache: HeaderCache,
    result: Verification,
    found_bad: Callable[[str, str], None] | None,
    done: int,
) -> int:
    for (rel, stamp), reason in zip(chunk, reasons):
        cache.record(rel, stamp, reason)
        pending.pop(rel, None)
        result.checked += 1
        if reason:
            result.bad.append((rel, reason))
            if found_bad:
                found_bad(rel, reason)
    return done + len(chunk)


if __name__ == "__main__" and sys.argv[1:] == ["--worker"]:
    serve_worker()
