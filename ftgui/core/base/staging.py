"""Whole folders swapped in: a bundle is written into a staging folder, then put in place at once.

A staging folder is named for its output folder and nothing else (``.OUT.ftgui-stage-XXXX.partial``,
never taken for the stage of a sibling such as ``OUT.v2``) and is held by a lock file beside it
(``….lock``) for as long as its writer lives. Only a stage whose writer is gone is ever cleaned
up, and what the user had put in OUT is moved back out of it first, never deleted.

Where OUT lies on another file system than its parent (a mount point, or a symlink to another
disk), or holds a mount point, the stage is made inside OUT and its files are renamed into place
one by one (model.json last), so nothing is ever renamed across devices. That path is journaled:
a commit record written into the complete stage first, so a kill half-way is finished by the
next export or read of the bundle (``finish_interrupted``) instead of leaving half of each.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import json
import os
import re
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path

from ftgui.core.base.errors import FtguiError
from ftgui.core.base.files import PARTIAL, DestinationError, new_locked_file, try_lock

STAGE = "ftgui-stage-"
COMMIT = "ftgui-commit.json"  # in a stage whose files are being renamed into OUT one by one
_TOKEN = re.compile(r"[A-Za-z0-9_]+")


class StagingError(FtguiError):
    """A staging folder could not be put in place or cleaned up without losing a user's file."""


def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def write_synced(path: Path, data: bytes) -> None:
    """A new file inside a staging folder (no rename needed: the folder is swapped in whole)."""
    with open(path, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())


def _exchange(a: Path, b: Path) -> bool:
    """Atomically swap two paths (Linux renameat2 RENAME_EXCHANGE); False where unsupported."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    at_fdcwd, rename_exchange = -100, 2
    if renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP, errno.EXDEV, errno.EBUSY):
        return False
    raise OSError(err, f"Could not swap {b} into place: {os.strerror(err)}")


# ---------------------------------------------------------------- where stages live, and whose they are


def _inside(out: Path) -> bool:
    """Whether a stage for ``out`` must be made inside it (it is on another device than its parent)."""
    if not out.is_dir():
        return False
    try:
        return os.path.ismount(out) or os.stat(out).st_dev != os.stat(out.parent).st_dev
    except OSError:
        return True


def _stage_prefix(out: Path, inside: bool) -> str:
    return f".{STAGE}" if inside else f".{out.name}.{STAGE}"


def _stages(out: Path) -> Iterator[Path]:
    """The staging folders of exactly ``out`` (beside it or inside it), live or not."""
    for folder, inside in ((out.parent, False), (out, True)):
        prefix = _stage_prefix(out, inside)
        with contextlib.suppress(OSError):
            for entry in folder.iterdir():
                name = entry.name
                token = name[len(prefix) : -len(PARTIAL)]
                if name.startswith(prefix) and name.endswith(PARTIAL) and _TOKEN.fullmatch(token):
                    yield entry


def _lock_path(stage: Path) -> Path:
    return stage.with_name(stage.name[: -len(PARTIAL)] + ".lock")


def _writer_gone(stage: Path) -> bool:
    lock = _lock_path(stage)
    try:
        fh = open(lock, encoding="utf-8")  # noqa: SIM115 - closed below
    except FileNotFoundError:
        return True  # written before stages had locks, or its lock was removed with it
    except OSError:
        return False
    with fh:
        return try_lock(fh)


def remove_stale_stages(out: Path) -> None:
    """Clean up the stages of ``out`` whose writer is gone; a user's folder in one goes back first,
    and a stage killed while its files were being renamed into ``out`` finishes that first."""
    stages = list(_stages(out))
    for stage in stages:
        if _writer_gone(stage):
            with contextlib.suppress(StagingError, OSError):
                _put_back_and_remove(stage, out)
                with contextlib.suppress(OSError):
                    _lock_path(stage).unlink()
    _remove_orphan_locks(out, {_lock_path(s).name for s in stages})


def _remove_orphan_locks(out: Path, paired: set[str]) -> None:
    """Lock files with no stage: a writer killed before making its stage, or after removing it.
    Each is removed while locked by this process, so a live writer never loses its own (a writer
    that finds its file gone after locking it takes another: ``new_locked_file``)."""
    for folder, inside in ((out.parent, False), (out, True)):
        prefix = _stage_prefix(out, inside)
        with contextlib.suppress(OSError):
            for entry in list(folder.iterdir()):
                name = entry.name
                token = name[len(prefix) : -len(".lock")]
                if not (name.startswith(prefix) and name.endswith(".lock") and _TOKEN.fullmatch(token)):
                    continue
                if name in paired or entry.with_name(name[: -len(".lock")] + PARTIAL).exists():
                    continue
                with contextlib.suppress(OSError), open(entry, encoding="utf-8") as fh:
                    if try_lock(fh):
                        entry.unlink()


def _put_back_and_remove(stage: Path, out: Path) -> None:
    """Remove a stage: its files only (bundle files, or links to files ``out`` still has).

    A bundle holds no folders, so a folder in a stage is the user's (moved there when the
    folders were swapped): it goes back into ``out``. A stage that still holds one is kept.
    A stage with a commit record was being renamed into ``out`` file by file: that is finished
    first (the new bundle is complete in it), so ``out`` never keeps half of each.
    """
    if (stage / COMMIT).exists():
        _finish_replacing(stage, out)
    left: list[str] = []
    for entry in list(stage.iterdir()):
        if entry.is_dir() and not entry.is_symlink():
            target = out / entry.name
            try:
                if target.exists() or target.is_symlink():
                    raise FileExistsError(target)
                os.rename(entry, target)
            except OSError:
                left.append(entry.name)
        else:
            entry.unlink()
    if left:
        raise StagingError(
            f"{stage} still holds the folder(s) {', '.join(left)} that were in {out}; "
            "move them back by hand (nothing was deleted)."
        )
    stage.rmdir()


# ---------------------------------------------------------------- the swap


def swap_in(stage: Path, out: Path, replaced: Iterable[str]) -> None:
    """Make ``out`` hold what ``stage`` holds, in one step where the system allows it.

    Files of ``out`` other than the ``replaced`` names (a checkpoint, the user's own files)
    stay: they are hard-linked into the staged folder (no copy) and sub-folders are moved across.
    Afterwards ``stage`` holds only the previous bundle's files and links to kept files.
    """
    if not out.exists():
        os.rename(stage, out)
        _fsync_dir(out.parent)
        return
    replaced = set(replaced)
    staged = {p.name for p in stage.iterdir()}
    if stage.parent == out:  # a stage inside ``out``: only renames within it
        _replace_files(stage, out, replaced)
        return
    keep = [e for e in out.iterdir() if e.name not in replaced and e.name not in staged]
    keep_dirs = [e.name for e in keep if e.is_dir() and not e.is_symlink()]
    if any(os.path.ismount(out / name) for name in keep_dirs):
        exchanged = False  # a mount point cannot be moved back out of the stage
    else:
        try:
            for entry in keep:
                if entry.name not in keep_dirs:
                    os.link(entry, stage / entry.name, follow_symlinks=False)
            exchanged = _exchange(stage, out)
        except OSError:
            exchanged = False
    if not exchanged:
        for name in {p.name for p in stage.iterdir()} - staged:
            os.unlink(stage / name)  # the links made above; the originals stay in ``out``
        _replace_files(stage, out, replaced)
        return
    # ``stage`` now holds the previous folder: move the user's folders back into ``out``. A kill
    # before this ends leaves them in the stage, and the next run moves them back.
    for name in keep_dirs:
        os.rename(stage / name, out / name)
    _fsync_dir(out.parent)


def _replace_files(stage: Path, out: Path, replaced: set[str]) -> None:
    """Fallback without an atomic folder swap: the files are renamed into ``out`` one by one.

    Journaled: a commit record written into the complete stage first names the earlier files to
    remove; a kill after it leaves the rest to whoever touches the bundle next (the next export,
    or any read of it: ``finish_interrupted``), which finishes the renames. Before the record,
    ``out`` is the previous bundle; after it, the new one."""
    staged = {p.name for p in stage.iterdir() if p.is_file() and not p.is_symlink()}
    record = {"format": 1, "remove": sorted(replaced - staged)}
    write_synced(stage / f"{COMMIT}.new", json.dumps(record).encode("utf-8"))
    os.rename(stage / f"{COMMIT}.new", stage / COMMIT)  # whole or absent: the commit point
    _fsync_dir(stage)
    _finish_replacing(stage, out)


def _finish_replacing(stage: Path, out: Path) -> None:
    """Carry out (or finish) the renames of a stage's commit record; model.json last."""
    try:
        record = json.loads((stage / COMMIT).read_text(encoding="utf-8"))
        remove = [
            n
            for n in record["remove"]
            if isinstance(n, str) and n == Path(n).name and n not in ("", ".", "..")
        ]
    except (OSError, ValueError, TypeError, KeyError) as exc:
        raise StagingError(f"The commit record in {stage} cannot be read ({exc}); it was kept.") from None
    for name in remove:
        with contextlib.suppress(FileNotFoundError):
            (out / name).unlink()
    staged = [p.name for p in stage.iterdir() if p.is_file() and not p.is_symlink() and p.name != COMMIT]
    for name in sorted(staged, key=lambda n: n == "model.json"):
        os.replace(stage / name, out / name)
    _fsync_dir(out)
    (stage / COMMIT).unlink()


def finish_interrupted(out: str | os.PathLike[str]) -> None:
    """Finish an export to ``out`` that was killed while renaming its files in (readers call it
    before reading a bundle; without permission to write it does nothing)."""
    target = Path(out).expanduser()
    with contextlib.suppress(OSError):
        for stage in list(_stages(target)):
            if (stage / COMMIT).exists() and _writer_gone(stage):
                with contextlib.suppress(StagingError, OSError):
                    _finish_replacing(stage, target)


@contextlib.contextmanager
def staged_folder(out: str | os.PathLike[str], replaced: Iterable[str]) -> Iterator[Path]:
    """A new, empty folder for ``out``; on success it replaces the ``replaced`` files of ``out``.

    On any failure the staging folder is removed and ``out`` is exactly as it was.
    """
    target = Path(out).expanduser()
    if target.is_symlink() and target.is_dir():
        target = Path(os.path.realpath(target))  # write into the folder the link names; the link stays
    if target.exists() and not target.is_dir():
        raise DestinationError(f"Cannot write to {target}: it is a file, not a folder.")
    target.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_stages(target)
    inside = _inside(target)
    folder = target if inside else target.parent
    lock, lock_name = new_locked_file(folder, _stage_prefix(target, inside), ".lock", "w")  # before the stage
    try:
        stage = Path(lock_name[: -len(".lock")] + PARTIAL)
        # A private (0700) folder at first, like mkdtemp's; then the mode of the folder it replaces.
        os.mkdir(stage, 0o700)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(stage, target.stat().st_mode & 0o7777 if target.is_dir() else 0o777 & ~umask)
        try:
            yield stage
            swap_in(stage, target, replaced)
        finally:
            # Before the swap: only new files and links. After it: the previous bundle's files and
            # links to files that are in ``target``; folders were moved back. Nothing else is lost.
            if stage.exists():
                _put_back_and_remove(stage, target)
    finally:
        with contextlib.suppress(OSError):
            os.unlink(lock_name)
        lock.close()
