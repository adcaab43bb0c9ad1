"""The only changes ftgui makes to a user's images: moving them to another class folder, and
leaving them out of training.

*Move to class* renames files inside the dataset (never over another file: a name already taken
gets a new one). *Exclude* keeps the file where it is and lists it in ftgui's data folder (never in
the user's folder); every scan then leaves it out. Each change is written to a journal (JSON lines,
synced to disk) before it is made, so :meth:`Fixes.undo` restores the exact previous state, also
after a restart or a crash half-way through a change.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import errno
import json
import os
import threading
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from ftgui.core.base.errors import FtguiError
from ftgui.core.base.paths import data_dir

JOURNAL = "journal.jsonl"
EXCLUDED = "excluded.json"


class FixError(FtguiError):
    """A move, exclusion or undo that cannot be done as asked (nothing was changed)."""


def fixes_dir() -> Path:
    return data_dir() / "fixes"


def dataset_key(root: str | os.PathLike[str]) -> str:
    """How a dataset is named in the journal and the exclusion list: its resolved path."""
    return str(Path(root).expanduser().resolve())


@dataclass(frozen=True)
class Change:
    """One user action (on one or more files), as the journal holds it."""

    id: str
    time: str
    action: str  # "move" | "exclude"
    root: str
    files: tuple[tuple[str, str], ...]  # move: (from, to), relative; exclude: (path, "")
    # move: each file's (size, mtime in ns) when it was moved, so undo can tell it was not
    # changed or replaced by hand since; empty for records written before ftgui kept them.
    stamps: tuple[tuple[int, int], ...] = ()

    def describe(self) -> str:
        n = len(self.files)
        what = f"{n} image{'s' if n != 1 else ''}"
        if self.action == "move":
            targets = sorted({to.split("/")[-2] if "/" in to else "" for _, to in self.files})
            return f"Move {what} to {', '.join(targets)}"
        return f"Exclude {what}"


def _no_overwrite_move(src: Path, dst: Path) -> None:
    """Rename ``src`` to ``dst``, failing (never replacing) if ``dst`` exists. A hard link then
    an unlink makes the check and the rename one step where the file system allows it."""
    try:
        os.link(src, dst)
    except FileExistsError:
        raise FixError(f"{dst} already exists; nothing was moved.") from None
    except OSError as exc:
        if exc.errno not in (errno.EPERM, errno.EXDEV, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EMLINK):
            raise
        if dst.exists():
            raise FixError(f"{dst} already exists; nothing was moved.") from None
        os.rename(src, dst)
        return
    os.unlink(src)


def _safe_files(value: Any) -> tuple[tuple[str, str], ...] | None:
    """A record's (from, to) pairs, or None when any is not a relative path inside the dataset."""
    if not isinstance(value, list):
        return None
    pairs = []
    for pair in value:
        if not (isinstance(pair, list) and len(pair) == 2 and all(isinstance(p, str) for p in pair)):
            return None
        for p in pair:
            if p and (p.startswith("/") or "\0" in p or any(x in ("", ".", "..") for x in p.split("/"))):
                return None
        pairs.append((pair[0], pair[1]))
    return tuple(pairs)


def _stamps(value: Any, n: int) -> tuple[tuple[int, int], ...]:
    if isinstance(value, list) and len(value) == n:
        if all(isinstance(t, list) and len(t) == 2 and all(type(x) is int for x in t) for t in value):
            return tuple((t[0], t[1]) for t in value)
    return ()


def _read_only(folder: Path) -> bool:
    try:
        return bool(os.statvfs(folder).f_flag & os.ST_RDONLY)
    except (OSError, AttributeError):  # no statvfs on Windows
        return False


def _stamp(path: Path) -> tuple[int, int]:
    st = path.stat()
    return st.st_size, st.st_mtime_ns


def _undo_problem(base: Path, now: str, before: str, stamp: tuple[int, int] | None) -> str:
    """Why the file moved to ``now`` cannot be moved back to ``before`` (empty: it can)."""
    real = base.resolve()
    for rel in (now, before):
        target = base / rel
        parent = target.parent.resolve()
        if target.is_symlink() or (parent != real and real not in parent.parents):
            return f"{rel} is a link or lies outside {base}"
    if not (base / now).is_file():
        return f"{now} is not in {base} any more"
    if (base / before).exists():
        return f"{before} is taken by another file now"
    if stamp is not None and _stamp(base / now) != stamp:
        return f"{now} was changed or replaced since it was moved (size or time differ)"
    return ""


def free_name(folder: Path, name: str, taken: set[str]) -> str:
    """``name``, or ``stem-1.ext``, ``stem-2.ext``... : the first not in ``folder`` nor ``taken``."""
    stem, dot, ext = name.rpartition(".")
    if not dot:
        stem, ext = name, ""
    candidate, n = name, 0
    while candidate in taken or (folder / candidate).exists():
        n += 1
        candidate = f"{stem}-{n}{dot}{ext}"
    return candidate


class Fixes:
    """The journal and the exclusion list in ``folder`` (default: ftgui's data folder)."""

    def __init__(self, folder: str | os.PathLike[str] | None = None) -> None:
        self.folder = Path(folder) if folder is not None else fixes_dir()
        self._lock = threading.Lock()
        self.refused: list[str] = []  # journal records that are not changes ftgui would make (_changes)

    # ------------------------------------------------------------ reading

    def _records(self) -> list[dict[str, Any]]:
        path = self.folder / JOURNAL
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except FileNotFoundError:
            return []
        out = []
        for line in lines:
            with contextlib.suppress(ValueError):  # a line cut short by a crash
                record = json.loads(line)
                if isinstance(record, dict) and isinstance(record.get("id"), str):
                    out.append(record)
        return out

    def _changes(self) -> tuple[dict[str, Change], dict[str, str]]:
        """The journal's changes and their states. A record of another shape, or one whose
        paths point outside its dataset (absolute, ``..``), is not a change: it is never undone
        (``refused`` says which and why)."""
        changes: dict[str, Change] = {}
        state: dict[str, str] = {}
        self.refused = []
        for r in self._records():
            files = _safe_files(r.get("files", []))
            if files is None:
                self.refused.append(f"{r['id']}: its files are not paths inside the dataset")
                changes.pop(r["id"], None)
                continue
            if "action" in r:
                root, action = r.get("root"), r.get("action")
                if not (isinstance(root, str) and Path(root).is_absolute() and action in ("move", "exclude")):
                    self.refused.append(f"{r['id']}: not a change ftgui records (action or dataset)")
                    continue
                stamps = _stamps(r.get("stamps"), len(files))
                changes[r["id"]] = Change(r["id"], str(r.get("time", "")), action, root, files, stamps)
            elif "files" in r and r["id"] in changes:  # what a change half-done by a crash did
                old = changes[r["id"]]
                kept = dict(zip(old.files, old.stamps)) if old.stamps else {}
                stamps = tuple(kept[f] for f in files) if kept and all(f in kept for f in files) else ()
                changes[r["id"]] = replace(old, files=files, stamps=stamps)
            state[r["id"]] = str(r.get("state", ""))
        return changes, state

    def history(self) -> list[Change]:
        """Changes in effect (made and not undone), the oldest first."""
        with self._lock:
            self._recover()
            changes, state = self._changes()
        return [c for i, c in changes.items() if state.get(i) == "done"]

    def last(self) -> Change | None:
        """What :meth:`undo` would undo."""
        done = self.history()
        return done[-1] if done else None

    def excluded(self, root: str | os.PathLike[str]) -> set[str]:
        """The dataset's excluded files (relative paths)."""
        data = self._read_excluded()
        return set(data.get(dataset_key(root), []))

    def _read_excluded(self) -> dict[str, list[str]]:
        try:
            data = json.loads((self.folder / EXCLUDED).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        if not isinstance(data, dict):
            return {}  # valid JSON of another shape (null, a list): a damaged record excludes nothing
        return {
            str(k): [str(p) for p in v if isinstance(p, str)] for k, v in data.items() if isinstance(v, list)
        }

    # ------------------------------------------------------------ writing

    def _append(self, record: dict[str, Any]) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        with open(self.folder / JOURNAL, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(record, ensure_ascii=False) + "\n")
            fh.flush()
            os.fsync(fh.fileno())

    def _write_excluded(self, data: dict[str, list[str]]) -> None:
        from ftgui.core.base.files import atomic_write

        text = json.dumps({k: sorted(v) for k, v in data.items() if v}, indent=1, ensure_ascii=False)
        atomic_write(self.folder / EXCLUDED, lambda fh: fh.write(text.encode("utf-8")))

    def _begin(
        self, action: str, root: str, files: Sequence[tuple[str, str]], stamps: Sequence[tuple[int, int]] = ()
    ) -> Change:
        change = Change(
            uuid.uuid4().hex,
            _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            action,
            root,
            tuple(files),
            tuple(stamps),
        )
        self._append(
            {"id": change.id, "time": change.time, "action": action, "root": root,
             "files": [list(f) for f in files], "stamps": [list(t) for t in stamps], "state": "pending"}
        )  # fmt: skip
        return change

    def move(self, root: str | os.PathLike[str], files: Iterable[str], to_class: str) -> Change:
        """Move each file (relative to ``root``) into the class folder ``to_class`` of the dataset.

        Checked first, all or nothing: a missing file or class folder changes nothing."""
        base = Path(dataset_key(root))
        rels = list(dict.fromkeys(files))
        if not rels:
            raise FixError("No images chosen to move.")
        if "/" in to_class or to_class in ("", ".", ".."):
            raise FixError(f"'{to_class}' is not a class folder of {base}.")
        presplit = (base / "train").is_dir() and (base / "val").is_dir()
        pairs: list[tuple[str, str]] = []
        taken: set[str] = set()
        for rel in rels:
            src = base / rel
            if not src.is_file():
                raise FixError(f"{rel} is not in {base} any more; nothing was moved.")
            parts = rel.split("/")
            prefix = parts[0] + "/" if presplit and parts[0] in ("train", "val") else ""
            folder = base / prefix / to_class
            if not folder.is_dir():
                raise FixError(f"'{to_class}' is not a class folder of {base / prefix}; nothing was moved.")
            if src.parent == folder:
                continue  # already there
            here = f"{prefix}{to_class}/"
            name = free_name(folder, src.name, {t[len(here) :] for t in taken if t.startswith(here)})
            taken.add(here + name)
            pairs.append((rel, here + name))
        if not pairs:
            raise FixError(f"The chosen images are in {to_class} already.")
        for folder in sorted({(base / p).parent for pair in pairs for p in pair}):
            if not os.access(folder, os.W_OK):
                why = "on a read-only file system" if _read_only(folder) else "not writable"
                raise FixError(f"{folder} is {why}; nothing was moved (Exclude works on any folder).")
        with self._lock:
            change = self._begin("move", str(base), pairs, [_stamp(base / a) for a, _ in pairs])
            moved = self._move_pairs(base, pairs)
            if len(moved) < len(pairs):  # a failure half-way: the moved part stays undoable
                self._append({"id": change.id, "state": "done", "files": [list(p) for p in moved]})
                raise FixError(
                    f"Could not move {pairs[len(moved)][0]}; the other images stay where they were."
                )
            self._append({"id": change.id, "state": "done"})
        return change

    @staticmethod
    def _move_pairs(base: Path, pairs: Sequence[tuple[str, str]]) -> list[tuple[str, str]]:
        moved = []
        for a, b in pairs:
            try:
                _no_overwrite_move(base / a, base / b)
            except (OSError, FixError):
                break
            moved.append((a, b))
        return moved

    def exclude(self, root: str | os.PathLike[str], files: Iterable[str]) -> Change:
        """Leave the files out of training (and of every scan) from now on."""
        key = dataset_key(root)
        with self._lock:
            data = self._read_excluded()
            have = set(data.get(key, []))
            new = [f for f in dict.fromkeys(files) if f not in have]
            if not new:
                raise FixError("The chosen images are excluded already.")
            change = self._begin("exclude", key, [(f, "") for f in new])
            data[key] = sorted(have | set(new))
            self._write_excluded(data)
            self._append({"id": change.id, "state": "done"})
        return change

    def undo(self) -> Change | None:
        """Undo the latest change in effect (None if there is none). Refused, with nothing
        changed, if a moved file is gone or its old place is taken."""
        with self._lock:
            self._recover()
            changes, state = self._changes()
            done = [c for i, c in changes.items() if state.get(i) == "done"]
            if not done:
                return None
            change = done[-1]
            base = Path(change.root)
            if change.action == "move":
                back = [(b, a) for a, b in reversed(change.files)]
                stamps = dict(zip((b for _, b in change.files), change.stamps))
                problems = [
                    p for now, before in back if (p := _undo_problem(base, now, before, stamps.get(now)))
                ]
                if problems:  # all or nothing: a file that cannot be verified is never moved
                    raise FixError("Cannot undo; nothing was moved: " + "; ".join(problems) + ".")
                self._append({"id": change.id, "state": "undoing"})
                moved = self._move_pairs(base, back)
                if len(moved) < len(back):
                    left = [p for p in change.files if (p[1], p[0]) not in set(moved)]
                    self._append({"id": change.id, "state": "done", "files": [list(p) for p in left]})
                    raise FixError(f"Could not move {back[len(moved)][0]} back.")
            else:
                data = self._read_excluded()
                data[change.root] = sorted(set(data.get(change.root, [])) - {a for a, _ in change.files})
                self._write_excluded(data)
            self._append({"id": change.id, "state": "undone"})
        return change

    def _recover(self) -> None:
        """Settle changes a crash left half-done: each file is where the disk says it is."""
        changes, state = self._changes()
        for cid, st in state.items():
            change = changes.get(cid)
            if change is None or st not in ("pending", "undoing"):
                continue
            base = Path(change.root)
            if change.action == "move":
                for a, b in change.files:  # a move killed between its link and its unlink: finish it
                    src, dst = (base / a, base / b) if st == "pending" else (base / b, base / a)
                    with contextlib.suppress(OSError):
                        if src.is_file() and dst.is_file() and os.path.samefile(src, dst):
                            src.unlink()
                moved = [(a, b) for a, b in change.files if (base / b).is_file() and not (base / a).exists()]
                self._append(
                    {"id": cid, "state": "done" if moved else "undone", "files": [list(p) for p in moved]}
                )
            else:
                have = self.excluded(base)
                on = [(a, b) for a, b in change.files if a in have]
                self._append({"id": cid, "state": "done" if on else "undone", "files": [list(p) for p in on]})
