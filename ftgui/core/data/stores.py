"""Row stores: one fixed-size row per sample (cached features, decoded pixels), in RAM or on disk.

A store that does not fit the memory budget lives in a file under ftgui's cache folder and is
read and written with ``pread``/``pwrite`` into fresh buffers, never memory-mapped: pages of a
mapped file that were read count in the process's resident memory until the kernel takes them
back, so a mapped 100k-image cache made the window's RSS grow by the whole file. Read through
the page cache instead, a store costs RAM only for the batch being read.

The file is a plain ``.npy`` array (``numpy.load(path, mmap_mode="r")`` opens it for a look);
a JSON file beside it says which rows hold values. A row's content is a pure function of the
store's key, so two processes that share a file write the same bytes to a row.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
import shutil
import threading
import weakref
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from ftgui.core.base import paths
from ftgui.core.base.files import atomic_write, locked_partial, remove_stale_partials

if TYPE_CHECKING:
    from ftgui.core.data.samples import Sample

# Most buffers one preadv/pwritev call takes (Linux's IOV_MAX).
_IOV_MAX = 1024
# What the cache folder may hold at most (features and pixels together), before free space.
DISK_LIMIT = 50 << 30
_KINDS = ("features", "pixels")
_open_paths: weakref.WeakValueDictionary[str, RowStore] = weakref.WeakValueDictionary()


def folder(kind: str) -> Path:
    """Where stores of one kind live: ``features`` (frozen layers' output) or ``pixels``."""
    return paths.cache_dir() / kind


def cache_key(parts: dict[str, Any]) -> str:
    """A file name for what a store's rows depend on (every input that changes them)."""
    text = json.dumps(parts, sort_keys=True, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:24]


def files_digest(root: str, samples: Iterable[Sample]) -> str:
    """A digest of each file's path, size and mtime (and label), so a changed or replaced image
    never reuses a row. Hashed as it goes: 100k files never become 100k lists in memory."""
    digest = hashlib.sha256()
    for s in samples:
        try:
            st = os.stat(os.path.join(root, s.path))
            size, mtime = st.st_size, st.st_mtime_ns
        except OSError:
            size, mtime = -1, -1
        digest.update(f"{s.path}\0{size}\0{mtime}\0{s.label}\n".encode("utf-8", "surrogateescape"))
    return digest.hexdigest()


def default_budget() -> int:
    """``FTGUI_CACHE_MEMORY_MB`` if set (the window has no ``--cache-memory``), else a quarter
    of the RAM available now, at most 8 GiB."""
    mb = os.environ.get("FTGUI_CACHE_MEMORY_MB", "").strip()
    if mb.isdigit():
        return int(mb) << 20
    return min(paths.available_memory() // 4, 8 << 30)


class RowStore:
    """``count`` rows of ``shape`` and ``dtype``, with a flag per row saying it holds a value.

    ``where`` is ``"ram"`` (one array) or ``"disk"`` (the file ``path``; its flags are saved
    to ``path.with_suffix('.json')`` by :meth:`finish`). ``put`` and ``get`` may be called from
    several threads at once for different rows.
    """

    def __init__(
        self,
        count: int,
        shape: tuple[int, ...],
        where: str,
        path: Path | None = None,
        dtype: Any = np.float32,
    ) -> None:
        self.count = count
        self.shape = tuple(int(s) for s in shape)
        self.dtype = np.dtype(dtype)
        self.where = where
        self.path = path
        self.valid = np.zeros(count, dtype=bool)
        self.row_bytes = int(np.prod(self.shape, dtype=np.int64)) * self.dtype.itemsize
        self._dirty = False
        if where == "ram":
            # numpy, not torch: a tensor made under inference mode (a validation pass) refuses
            # writes from the decoding threads. Pages are committed as rows are written.
            self.data = np.empty((count, *self.shape), self.dtype)
            return
        assert path is not None
        self.offset = _open_file(path, count, self.shape, self.dtype)
        self._fd = os.open(path, os.O_RDWR | getattr(os, "O_BINARY", 0))
        self._lock = threading.Lock()  # for systems without pread/pwrite (Windows)
        self._closer = weakref.finalize(self, os.close, self._fd)
        _open_paths[str(path)] = self
        os.utime(path)  # least recently used goes first when the folder is trimmed

    @property
    def meta_path(self) -> Path | None:
        return self.path.with_suffix(".json") if self.path is not None else None

    def __len__(self) -> int:
        """How many rows hold a value."""
        return int(self.valid.sum())

    def put(self, indices: Sequence[int], values: torch.Tensor) -> None:
        idx = [int(i) for i in indices]
        rows = np.ascontiguousarray(values.detach().cpu().numpy(), dtype=self.dtype)
        if self.where == "ram":
            self.data[idx] = rows
        else:
            self._transfer(idx, rows.reshape(len(idx), -1).view(np.uint8), write=True)
            self._dirty = True
        self.valid[idx] = True

    def get(self, indices: Sequence[int]) -> torch.Tensor:
        idx = [int(i) for i in indices]
        if self.where == "ram":
            return torch.from_numpy(self.data[idx])
        out = np.empty((len(idx), *self.shape), self.dtype)
        self._transfer(idx, out.reshape(len(idx), -1).view(np.uint8), write=False)
        return torch.from_numpy(out)

    def get_one(self, index: int) -> torch.Tensor | None:
        """Row ``index``, or None if it holds no value yet."""
        if not self.valid[index]:
            return None
        return torch.from_numpy(self.data[index]) if self.where == "ram" else self.get([index])[0]

    def put_one(self, index: int, value: torch.Tensor) -> None:
        self.put([index], value.unsqueeze(0))

    def _transfer(self, idx: list[int], rows: np.ndarray, write: bool) -> None:
        """Read or write ``rows[j]`` at file row ``idx[j]``: one system call per run of
        consecutive rows (a sequential pass is one call per batch)."""
        for run in _runs(idx):
            buffers = [rows[j] for j in run]
            offset = self.offset + idx[run[0]] * self.row_bytes
            want = len(run) * self.row_bytes
            if hasattr(os, "preadv"):
                done = (
                    os.pwritev(self._fd, buffers, offset) if write else os.preadv(self._fd, buffers, offset)
                )
            else:
                done = self._seek_transfer(buffers, offset, write)
            if done != want:
                raise OSError(f"The cache file {self.path} is shorter than it should be (read or written "
                              f"{done} of {want} bytes); delete it and ftgui rebuilds it.")  # fmt: skip

    def _seek_transfer(self, buffers: list[np.ndarray], offset: int, write: bool) -> int:
        done = 0
        with self._lock:
            os.lseek(self._fd, offset, os.SEEK_SET)
            for b in buffers:
                if write:
                    done += os.write(self._fd, b.tobytes())
                else:
                    data = os.read(self._fd, b.nbytes)
                    b[: len(data)] = np.frombuffer(data, np.uint8)
                    done += len(data)
        return done

    def finish(self) -> None:
        """On disk: make the written rows durable, then record which rows hold values."""
        if self.where != "disk" or not self._dirty:
            return
        assert self.meta_path is not None
        os.fsync(self._fd)
        bits = base64.b64encode(np.packbits(self.valid).tobytes()).decode("ascii")
        meta = {
            "count": self.count,
            "shape": list(self.shape),
            "dtype": self.dtype.str,
            "valid": bits,
            "name": self.path.name if self.path is not None else "",
            "rows_sha256": self.fingerprint(),
        }
        text = json.dumps(meta).encode("ascii")
        atomic_write(self.meta_path, lambda fh: fh.write(text))  # a killed writer's file is removed next time
        self._dirty = False

    def fingerprint(self) -> str:
        """A digest of up to 64 valid rows, spread over the store: rows are a pure function of the
        store's key (its files and model), so a file of the right shape holding other images'
        rows (copied or restored over this one) gives another digest and is never reused."""
        rows = np.flatnonzero(self.valid)
        if len(rows) > 64:
            rows = rows[np.linspace(0, len(rows) - 1, 64).astype(np.int64)]
        digest = hashlib.sha256(np.asarray(rows, np.int64).tobytes())
        if len(rows):
            digest.update(np.ascontiguousarray(self.get(rows.tolist()).numpy()).tobytes())
        return digest.hexdigest()

    def close(self) -> None:
        if self.where == "disk":
            self._closer()

    @classmethod
    def reopen(
        cls, path: Path, count: int, shape: tuple[int, ...], dtype: Any = np.float32
    ) -> RowStore | None:
        """The store a finished earlier run left at ``path``, or None if it is missing or does
        not match (another shape, a damaged file)."""
        try:
            meta = json.loads(path.with_suffix(".json").read_text())
            dt = np.dtype(dtype)
            if (
                not isinstance(meta, dict)
                or not isinstance(meta.get("valid"), str)
                or not isinstance(meta.get("shape"), list)
                or meta.get("count") != count
                or tuple(meta.get("shape", ())) != tuple(shape)
                or meta.get("dtype") != dt.str
            ):
                return None
            valid = np.unpackbits(np.frombuffer(base64.b64decode(meta["valid"]), np.uint8))[:count]
            found = _header(path)
            if len(valid) != count or found is None or found[1:] != ((count, *shape), dt):
                return None
            if meta.get("name") != path.name or not isinstance(meta.get("rows_sha256"), str):
                return None  # another store's record, or one without the rows' digest
            store = cls(count, shape, "disk", path, dt)
            store.valid = valid.astype(bool)
            if store.fingerprint() != meta["rows_sha256"]:
                store.close()
                return None  # rows of other images or another model: rebuilt, never used
            return store
        except (OSError, ValueError, KeyError, TypeError, binascii.Error):
            return None


def _runs(idx: list[int]) -> Iterator[list[int]]:
    """Positions of ``idx`` grouped into runs of consecutive row numbers (sorted by row)."""
    order = sorted(range(len(idx)), key=idx.__getitem__)
    run: list[int] = []
    for j in order:
        if run and (idx[j] != idx[run[-1]] + 1 or len(run) == _IOV_MAX):
            yield run
            run = []
        run.append(j)
    if run:
        yield run


def _header(path: Path) -> tuple[int, tuple[int, ...], np.dtype[Any]] | None:
    """(data offset, shape, dtype) of an .npy file whose size matches its header, else None."""
    fmt = np.lib.format
    try:
        with open(path, "rb") as f:
            version = fmt.read_magic(f)
            read = fmt.read_array_header_1_0 if version == (1, 0) else fmt.read_array_header_2_0
            shape, fortran, dtype = read(f)
            offset = f.tell()
            size = os.fstat(f.fileno()).st_size
    except (OSError, ValueError):
        return None
    if fortran or not shape or size != offset + int(np.prod(shape, dtype=np.int64)) * dtype.itemsize:
        return None
    return offset, tuple(int(s) for s in shape), dtype


def _open_file(path: Path, count: int, shape: tuple[int, ...], dtype: np.dtype[Any]) -> int:
    """The data offset of ``path``, made (sparse, full size) unless a matching one is there.

    A matching file is written over in place, never truncated: another process may be reading
    it, and the rows it trusts are rewritten with the same bytes. A new file is linked into
    place, which fails if another process made one meanwhile: then both use that one (a file
    replaced under a writer would leave its rows in a file nobody reads)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_partials(path)  # a killed writer's full-size (sparse) file, or its link to ``path``
    for _ in range(3):
        found = _header(path)
        if found is not None and found[1:] == ((count, *shape), dtype):
            return found[0]
        f, name = locked_partial(path, "wb")
        tmp = Path(name)
        with f:
            header = {
                "descr": np.lib.format.dtype_to_descr(dtype),
                "fortran_order": False,
                "shape": (count, *shape),
            }
            np.lib.format.write_array_header_1_0(f, header)
            offset = f.tell()
            f.truncate(offset + count * int(np.prod(shape, dtype=np.int64)) * dtype.itemsize)
        try:
            if found is None and not path.exists():
                try:
                    os.link(tmp, path)
                except FileExistsError:
                    continue  # another process made it first: use theirs
                except OSError:  # a file system without hard links
                    os.replace(tmp, path)
            else:
                os.replace(tmp, path)  # a damaged or different file: nobody can use it as it is
            return offset
        finally:
            tmp.unlink(missing_ok=True)
    raise OSError(f"The cache file {path} keeps changing under ftgui; is another program writing it?")


# ---------------------------------------------------------------- the cache folder


def cached_files() -> list[Path]:
    """The stores' data files in the cache folder."""
    return [p for kind in _KINDS if folder(kind).is_dir() for p in folder(kind).glob("*.npy")]


def trim(room: int, limit: int = DISK_LIMIT) -> None:
    """Delete the least recently used stores (none that this process has open) until the
    cache folder holds at most ``limit - room`` bytes."""
    files = []
    for p in cached_files():
        try:
            st = p.stat()
        except OSError:
            continue
        files.append((st.st_mtime, st.st_blocks * 512 if hasattr(st, "st_blocks") else st.st_size, p))
    total = sum(size for _, size, _ in files)
    for _, size, p in sorted(files):
        if total + room <= limit:
            break
        if str(p) in _open_paths:
            continue
        for f in (p, p.with_suffix(".json")):
            try:
                f.unlink()
            except OSError:
                pass
        total -= size


def choose_storage(nbytes: int, budget: int, disk_limit: int | None = None) -> str:
    """'ram' within the memory budget, else 'disk' when the cache folder can make room (older
    stores are deleted, least recently used first), else 'none'."""
    if nbytes <= budget:
        return "ram"
    limit = disk_limit if disk_limit is not None else DISK_LIMIT
    if nbytes > limit:
        return "none"
    root = paths.cache_dir()
    root.mkdir(parents=True, exist_ok=True)
    trim(nbytes, limit)
    return "disk" if nbytes <= shutil.disk_usage(root).free // 2 else "none"
