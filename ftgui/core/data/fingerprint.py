"""The data a run used, as a fingerprint: every file's path, size and SHA-256, and one digest of
them all. The hashes are taken from the bytes the decoder reads anyway (``load_rgb``'s
``remember``); only files a run never read from disk (their pixels or features came from an
earlier run's cache, or a DataLoader worker process decoded them) are read once more at the end.
A process-wide memo keyed by the file's identity (device, inode, size, modification time)
keeps later runs on the same files (the candidates of a comparison, its folds) from hashing
them again.
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from ftgui.core.base.files import open_regular
from ftgui.core.data.samples import Sample

MEMO_LIMIT = 200_000  # files whose hash is remembered (about 40 MB)
_CHUNK = 1 << 20

_memo: OrderedDict[tuple[int, int, int, int], str] = OrderedDict()
_lock = threading.Lock()


def _identity(st: os.stat_result) -> tuple[int, int, int, int]:
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


def _remember(key: tuple[int, int, int, int], digest: str) -> None:
    with _lock:
        _memo[key] = digest
        _memo.move_to_end(key)
        while len(_memo) > MEMO_LIMIT:
            _memo.popitem(last=False)


def remember_bytes(fileno: int, data: bytes) -> None:
    """The hash of a file's content just read whole through ``fileno`` (what ``load_rgb`` does)."""
    _remember(_identity(os.fstat(fileno)), hashlib.sha256(data).hexdigest())


def file_hash(path: str) -> tuple[int, str]:
    """A file's size and SHA-256: from the memo when this file, unchanged, was read before."""
    st = os.stat(path)
    with _lock:
        known = _memo.get(_identity(st))
    if known is not None:
        return st.st_size, known
    digest = hashlib.sha256()
    with open_regular(path) as fh:
        opened = os.fstat(fh.fileno())
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
    _remember(_identity(opened), digest.hexdigest())
    return opened.st_size, digest.hexdigest()


@dataclass(frozen=True)
class DataFingerprint:
    """The files of a split: ``files`` is sorted [path, size, sha256] (size -1 and hash "" for a
    file that could not be read); ``digest`` is the SHA-256 of that list."""

    files: tuple[tuple[str, int, str], ...]

    @property
    def digest(self) -> str:
        h = hashlib.sha256()
        for path, size, sha in self.files:
            h.update(f"{path}\0{size}\0{sha}\n".encode("utf-8", "surrogateescape"))
        return h.hexdigest()

    @property
    def total_bytes(self) -> int:
        return sum(max(0, size) for _, size, _ in self.files)

    def summary(self) -> dict[str, Any]:
        """model.json's part: counts and the digest (the list itself is in split.json.gz)."""
        return {"files": len(self.files), "bytes": self.total_bytes, "sha256": self.digest}

    def listing(self) -> list[list[Any]]:
        return [[p, s, h] for p, s, h in self.files]

    @classmethod
    def from_listing(cls, listing: Iterable[Sequence[Any]]) -> DataFingerprint:
        return cls(tuple(sorted((str(p), int(s), str(h)) for p, s, h in listing)))


def fingerprint(root: str, samples: Iterable[Sample]) -> DataFingerprint:
    """The fingerprint of ``samples`` under ``root`` as the files are now (hashes from the memo
    for files read during training)."""
    rows = []
    for rel in sorted({s.path for s in samples}):
        try:
            size, sha = file_hash(os.path.join(root, rel))
        except OSError:
            size, sha = -1, ""
        rows.append((rel, size, sha))
    return DataFingerprint(tuple(rows))


def differences(recorded: DataFingerprint, now: DataFingerprint, shown: int = 5) -> list[str]:
    """What differs between a recorded fingerprint and the files now, in words ([] if nothing)."""
    before = {p: (s, h) for p, s, h in recorded.files}
    after = {p: (s, h) for p, s, h in now.files}
    missing = [p for p in before if p not in after or after[p][0] < 0 <= before[p][0]]
    resized = [p for p in before if p in after and 0 <= after[p][0] != before[p][0] >= 0]
    changed = [
        p for p in before if p in after and after[p][0] == before[p][0] >= 0 and after[p][1] != before[p][1]
    ]
    out = []
    for what, paths in (
        ("missing or unreadable", missing),
        ("with a different size", resized),
        ("with changed content", changed),
    ):
        if paths:
            listed = ", ".join(paths[:shown]) + (
                f" and {len(paths) - shown} more" if len(paths) > shown else ""
            )
            out.append(f"{len(paths)} file{'s' if len(paths) != 1 else ''} {what}: {listed}")
    return out
