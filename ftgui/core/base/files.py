"""Safe writing: atomic files, destination checks and a run lock (whole folders: ``staging``).

Nothing here ever deletes or changes a file it did not write itself.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import errno
import glob
import json
import os
import re
import shutil
import socket
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

from ftgui.core.base.errors import FtguiError

PARTIAL = ".partial"


class DestinationError(FtguiError):
    """An output folder or file that cannot be written (checked before any work starts)."""


# ---------------------------------------------------------------- atomic files


def normal_file_mode() -> int:
    """The permissions a file created with open() would get here (0o666 less the umask)."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike[str], mode: str = "wb") -> Iterator[IO[Any]]:
    """Write to a temporary file beside ``path`` and rename it over ``path`` only when complete.

    A crash or kill half-way leaves the previous file at ``path`` untouched.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_partials(target)
    fh, tmp = locked_partial(target, mode)
    try:
        with fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


STALE_AFTER_S = 120  # a temporary file this long untouched belongs to a process that died
_MKSTEMP_TOKEN = re.compile(r"[A-Za-z0-9_]{8}")  # the random part tempfile.mkstemp chooses


def new_locked_file(folder: Path, prefix: str, suffix: str, mode: str) -> tuple[IO[Any], str]:
    """A new file (mkstemp) in ``folder``, locked by this process, so a cleaner can tell it from
    one a killed process left. Taken again if a cleaner removed it between its creation and the
    lock (the name then no longer leads to this file)."""
    while True:
        fd, name = tempfile.mkstemp(prefix=prefix, suffix=suffix, dir=folder)
        fh = os.fdopen(fd, mode, encoding=None if "b" in mode else "utf-8")
        try:
            if try_lock(fh) and os.stat(name).st_ino == os.fstat(fd).st_ino:
                return fh, name
        except FileNotFoundError:
            pass
        fh.close()


def locked_partial(target: Path, mode: str) -> tuple[IO[Any], str]:
    """A new temporary file beside ``target``, locked while this process writes it."""
    fh, tmp = new_locked_file(target.parent, f".{target.name}.", PARTIAL, mode)
    os.chmod(tmp, normal_file_mode())  # mkstemp creates 0600 files
    return fh, tmp


def remove_stale_partials(target: Path, every: str | None = None) -> None:
    """Temporary files of ``target`` that a killed writer left: unlocked ones (a live writer holds
    the lock on its own; where locks are not available, one untouched for two minutes). With
    ``every`` (a suffix such as ``.json``), those of every such file beside ``target``: records
    written once each under a new name, whose killed writer's temporary no later write clears."""
    import time

    now = time.time()
    names = f"*{glob.escape(every)}" if every else glob.escape(target.name)
    with contextlib.suppress(OSError):
        for entry in target.parent.glob(f".{names}.*{PARTIAL}"):
            name, _, token = entry.name[1 : -len(PARTIAL)].rpartition(".")
            mine = name.endswith(every) if every else name == target.name
            if not mine or not _MKSTEMP_TOKEN.fullmatch(token) or not entry.is_file():
                continue  # another file's (``model.json.bak``'s), not this one's
            with contextlib.suppress(OSError):
                if sys.platform == "win32":  # pragma: no cover - Windows
                    if now - entry.stat().st_mtime > STALE_AFTER_S:
                        entry.unlink()
                    continue
                with open(entry, "rb") as fh:
                    if try_lock(fh):  # its writer is gone
                        entry.unlink()


def atomic_write(path: str | os.PathLike[str], writer: Callable[[IO[bytes]], object]) -> Path:
    with atomic_open(path, "wb") as fh:
        writer(fh)
    return Path(path)


def atomic_torch_save(obj: object, path: str | os.PathLike[str]) -> Path:
    """``torch.save`` through :func:`atomic_open` (checkpoints). A failed write is an OSError
    (torch reports a full disk as a RuntimeError, "unexpected pos"); the previous file stays."""
    import torch

    target = Path(path)

    def save(fh: IO[bytes]) -> None:
        try:
            torch.save(obj, fh)
        except RuntimeError as exc:
            cause = exc.__cause__ or exc.__context__
            if isinstance(cause, OSError):
                raise cause from None
            with contextlib.suppress(OSError):
                if shutil.disk_usage(target.parent).free < (1 << 20):
                    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(target)) from None
            raise OSError(errno.EIO, f"could not write {target.name} ({str(exc).splitlines()[0]})") from None

    return atomic_write(target, save)


# ---------------------------------------------------------------- reading


class NotARegularFile(OSError):
    """A FIFO, device or socket where a file was expected (reading it would block or never end)."""


def open_regular(path: str | os.PathLike[str]) -> IO[bytes]:
    """``open(path, "rb")`` for a regular file only, decided on the opened file itself: a FIFO put
    where an image was (after the scan) would block ``open()`` forever, past any Stop or SIGTERM."""
    import stat

    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0)
    fd = os.open(path, flags)  # O_NONBLOCK: a FIFO without a writer opens at once instead of waiting
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            kind = "a FIFO" if stat.S_ISFIFO(mode) else "a folder" if stat.S_ISDIR(mode) else "not a file"
            raise NotARegularFile(f"not a regular file ({kind}), never read")  # as the scan says it
        if flags & getattr(os, "O_NONBLOCK", 0) and sys.platform != "win32":
            import fcntl

            fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) & ~os.O_NONBLOCK)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


# ---------------------------------------------------------------- destinations


def _nearest_existing(path: Path) -> Path:
    p = path
    while not p.exists():
        if p.parent == p:
            break
        p = p.parent
    return p


def check_destination(
    out: str | os.PathLike[str],
    what: str = "--out",
    needed_bytes: int = 0,
    kind: str = "folder",
) -> Path:
    """Refuse an output path that cannot work, before any training time is spent.

    Checks: not a file (for a folder) and no file among its parents, writable, and (with
    ``needed_bytes``) enough free space. The dataset's class folders: ``check_output_folder``.
    """
    path = Path(out).expanduser().absolute()
    if kind == "folder" and path.is_file():
        raise DestinationError(f"{what} {path} is a file; give a folder.")
    if kind == "file" and path.is_dir():
        raise DestinationError(f"{what} {path} is a folder; give a file name.")
    for parent in path.parents:
        if parent.exists() and not parent.is_dir():
            raise DestinationError(f"{what} {path} cannot be created: {parent} is a file, not a folder.")
    existing = _nearest_existing(path if kind == "folder" else path.parent)
    probe_dir = existing if existing.is_dir() else existing.parent
    try:
        fd, probe = tempfile.mkstemp(prefix=".ftgui-write-test.", suffix=PARTIAL, dir=probe_dir)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        reason = "read-only file system" if exc.errno == errno.EROFS else (exc.strerror or str(exc))
        raise DestinationError(f"{what} {path} is not writable: {probe_dir}: {reason}.") from None
    if needed_bytes:
        free = shutil.disk_usage(probe_dir).free
        if free < needed_bytes:
            raise DestinationError(
                f"Not enough free space for {what} {path}: about {needed_bytes / 2**20:,.0f} MB needed "
                f"for the model and its checkpoint, {free / 2**20:,.0f} MB free on {probe_dir}."
            )
    return path


def bundle_bytes_needed(total_params: int, trainable_params: int, checkpoint: bool = True) -> int:
    """Disk space for model.safetensors plus (optionally) checkpoint.pt, with room for a staged copy.

    The checkpoint holds the weights, the best epoch's weights and the optimizer's two moments
    per trainable parameter; a new file is written beside the old one before replacing it.
    """
    weights = 4 * total_params
    ckpt = (2 * weights + 8 * trainable_params) if checkpoint else 0
    return 2 * (weights + ckpt) + (16 << 20)


# ---------------------------------------------------------------- one run per output folder


class OutputLock:
    """An exclusive lock on an output folder, held while a run writes into it.

    The lock file sits beside the folder (``.NAME.ftgui-lock``) and is released by the system
    when the process ends, however it ends; a second run stops at once and names the first.
    """

    def __init__(self, out: str | os.PathLike[str]) -> None:
        target = Path(out).expanduser().absolute()
        self.out = target
        self.path = target.parent / f".{target.name}.ftgui-lock"
        self._fh: IO[str] | None = None

    def acquire(self, command: str = "") -> OutputLock:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            return self._acquire(command)
        except OSError as exc:
            reason = "read-only file system" if exc.errno == errno.EROFS else (exc.strerror or str(exc))
            raise DestinationError(
                f"{self.out} cannot be written: {self.path.parent}: {reason}. Nothing was changed."
            ) from None

    def _acquire(self, command: str) -> OutputLock:
        while True:
            fh = open(self.path, "a+", encoding="utf-8")  # noqa: SIM115 - held until release()
            if not try_lock(fh):
                fh.seek(0)
                holder = fh.read().strip()
                fh.close()
                raise DestinationError(
                    f"{self.out} is in use by another ftgui run"
                    + (f" ({_describe_holder(holder)})" if holder else "")
                    + ". Wait for it to finish or choose another --out."
                )
            # The file may have been removed by a run that just released it: lock the live one.
            try:
                same = os.path.samestat(os.fstat(fh.fileno()), os.stat(self.path))
            except FileNotFoundError:
                same = False
            if same:
                break
            fh.close()
        fh.seek(0)
        fh.truncate()
        info = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "started": _dt.datetime.now().isoformat(timespec="seconds"),
            "command": command,
        }
        fh.write(json.dumps(info))
        fh.flush()
        self._fh = fh
        return self

    def release(self) -> None:
        if self._fh is None:
            return
        with contextlib.suppress(OSError):
            self.path.unlink()
        self._fh.close()
        self._fh = None

    def __enter__(self) -> OutputLock:
        return self if self._fh is not None else self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


def try_lock(fh: IO[Any]) -> bool:
    try:
        if sys.platform == "win32":  # pragma: no cover - Windows
            import msvcrt

            msvcrt.locking(fh.fileno(), msvcrt.LK_NBLCK, 1)
        else:
            import fcntl

            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except OSError:
        return False


def _describe_holder(text: str) -> str:
    try:
        info = json.loads(text)
        return f"pid {info['pid']} on {info['host']}, started {info['started']}: {info['command']}".rstrip(
            ": "
        )
    except (ValueError, KeyError, TypeError):
        return text[:200]
