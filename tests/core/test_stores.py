"""Row stores beyond the memory budget: on disk, read into fresh buffers, reused, trimmed."""

import os
import time

import numpy as np
import psutil
import pytest
import torch

from ftgui.core.base import events as ev
from ftgui.core.data import images as data_module
from ftgui.core.data import stores
from ftgui.core.data.stores import RowStore, choose_storage, trim
from ftgui.core.models.freeze import FreezePlan
from ftgui.core.training.engine import Trainer


def _rows(n, shape, seed=0):
    return torch.from_numpy(np.random.default_rng(seed).standard_normal((n, *shape)).astype(np.float32))


def test_a_disk_store_reads_back_what_was_written_in_any_order(tmp_path):
    values = _rows(300, (5, 3))
    ram = RowStore(300, (5, 3), "ram")
    disk = RowStore(300, (5, 3), "disk", tmp_path / "f.npy")
    order = np.random.default_rng(1).permutation(300).tolist()
    for start in range(0, 300, 37):  # shuffled batches, as training writes them
        idx = order[start : start + 37]
        ram.put(idx, values[idx])
        disk.put(idx, values[idx])
    probe = [299, 0, 5, 6, 7, 7, 150, 1, 2]  # runs, repeats, both ends
    assert torch.equal(disk.get(probe), values[probe])
    assert torch.equal(ram.get(probe), values[probe])
    assert len(disk) == 300 and disk.get_one(42) is not None
    assert np.array_equal(np.load(tmp_path / "f.npy", mmap_mode="r")[10], values[10].numpy())  # plain .npy


def test_a_finished_store_is_reopened_with_its_rows_and_refused_when_it_does_not_match(tmp_path):
    path = tmp_path / "p.npy"
    store = RowStore(10, (3, 4, 4), "disk", path, np.uint8)
    pixels = torch.randint(0, 255, (4, 3, 4, 4), dtype=torch.uint8)
    store.put([1, 2, 3, 8], pixels)
    store.finish()
    again = RowStore.reopen(path, 10, (3, 4, 4), np.uint8)
    assert again is not None and again.valid.nonzero()[0].tolist() == [1, 2, 3, 8]
    assert torch.equal(again.get([1, 2, 3, 8]), pixels) and again.get_one(0) is None
    assert RowStore.reopen(path, 11, (3, 4, 4), np.uint8) is None  # other file list
    assert RowStore.reopen(path, 10, (3, 5, 5), np.uint8) is None  # other image size
    assert RowStore.reopen(path, 10, (3, 4, 4), np.float32) is None
    with open(path, "r+b") as f:  # cut short (a full disk, a crash)
        f.truncate(os.path.getsize(path) - 1)
    assert RowStore.reopen(path, 10, (3, 4, 4), np.uint8) is None
    path.with_suffix(".json").write_text("{not json")
    assert RowStore.reopen(path, 10, (3, 4, 4), np.uint8) is None


def test_reading_a_big_disk_store_leaves_resident_memory_flat(tmp_path):
    """The store is read through the page cache into fresh buffers: resident memory grows by
    a batch, not by the file (a memory-mapped file made RSS grow by every page read)."""
    n, shape = 2400, (64, 16, 16)  # 64 KiB rows, 150 MiB in all
    store = RowStore(n, shape, "disk", tmp_path / "big.npy")
    chunk = _rows(100, shape)
    for start in range(0, n, 100):
        store.put(range(start, start + 100), chunk)
    store.finish()
    process = psutil.Process()
    before = process.memory_info().rss
    peak = before
    order = np.random.default_rng(0).permutation(n).tolist()
    for _ in range(2):
        for start in range(0, n, 128):
            batch = store.get(order[start : start + 128])
            peak = max(peak, process.memory_info().rss)
    assert torch.equal(batch[0], chunk[order[start] % 100])
    assert peak - before < 40 << 20, f"RSS grew {(peak - before) >> 20} MiB reading a 150 MiB store"


def _decodes(monkeypatch):
    calls = []
    real = data_module.load_rgb

    def counting(path, target=None, remember=False):
        calls.append(path)
        return real(path, target, remember)

    monkeypatch.setattr(data_module, "load_rgb", counting)
    return calls


def _train(config):
    trainer = Trainer(config)
    events = list(trainer.run())
    assert isinstance(events[-1], ev.Finished), events[-1]
    return trainer, [e.loss for e in events if isinstance(e, ev.BatchEnded)]


@pytest.mark.slow
def test_pixels_beyond_the_budget_are_decoded_once_kept_on_disk_and_reused(tiny_config, monkeypatch):
    tiny_config.freeze, tiny_config.epochs = FreezePlan.parse("full"), 2
    tiny_config.cache = "off"
    _, plain = _train(tiny_config)
    tiny_config.cache, tiny_config.cache_memory_mb = "auto", 0  # no RAM for pixels at all
    calls = _decodes(monkeypatch)
    trainer, losses = _train(tiny_config)
    assert losses == pytest.approx(plain, rel=1e-5)
    assert {s.where for s in trainer.source.memo.values()} == {"disk"}
    assert len(calls) == 80  # 60 train + 20 val, the first epoch only
    assert len(list(stores.folder("pixels").glob("*.npy"))) == 2
    calls.clear()
    _, again = _train(tiny_config)  # a later run on the same files decodes nothing
    assert calls == [] and again == pytest.approx(plain, rel=1e-5)
    tiny_config.image_size = 48  # other preprocessing: other pixels
    _train(tiny_config)
    assert len(calls) == 80


def test_the_cache_folder_is_trimmed_least_recently_used_first(tmp_path):
    old = RowStore(100, (256,), "disk", stores.folder("features") / "old.npy")
    mid = RowStore(100, (256,), "disk", stores.folder("pixels") / "mid.npy", np.uint8)
    new = RowStore(100, (256,), "disk", stores.folder("features") / "new.npy")
    for store, age in ((old, 300), (mid, 200), (new, 100)):
        store.put(range(100), torch.ones(100, 256))
        store.finish()
        os.utime(store.path, (time.time() - age, time.time() - age))
    old_path = old.path
    old.close()
    del old
    trim(room=100 * 1024, limit=250 * 1024)  # room for a new store: the oldest that is not open goes
    assert not old_path.exists() and not old_path.with_suffix(".json").exists()
    assert mid.path.exists() and new.path.exists()
    trim(room=10 << 20, limit=1 << 20)  # the stores this process has open stay, whatever the limit
    assert mid.path.exists() and new.path.exists()
    assert choose_storage(10 << 20, budget=1 << 20, disk_limit=1 << 20) == "none"


@pytest.mark.skipif(not hasattr(psutil.Process(), "num_fds"), reason="file descriptors are Unix's")
def test_a_dropped_store_closes_its_file(tmp_path):
    """A window trains for hours: every run's disk stores must let their files go with the run."""
    import gc

    process = psutil.Process()
    before = process.num_fds()
    for i in range(50):
        store = RowStore(10, (4,), "disk", tmp_path / f"s{i}.npy")
        store.put(range(10), torch.zeros(10, 4))
        store.finish()
    del store
    gc.collect()
    assert process.num_fds() <= before + 1


def test_two_writers_of_one_store_share_its_file(tmp_path):
    """Two runs on the same files (the window and ftgui-train, or two ranks) open one file and
    never replace it under each other: each one's rows are there for both."""
    path = tmp_path / "shared.npy"
    first = RowStore(10, (2,), "disk", path)
    second = RowStore(10, (2,), "disk", path)  # found, matching: written in place
    first.put(range(5), torch.ones(5, 2))
    second.put(range(5, 10), torch.full((5, 2), 2.0))
    assert torch.equal(first.get(range(5, 10)), torch.full((5, 2), 2.0))
    second.finish()
    again = RowStore.reopen(path, 10, (2,))
    assert again.valid.nonzero()[0].tolist() == [5, 6, 7, 8, 9]
    assert torch.equal(again.get([0, 9]), torch.tensor([[1.0, 1.0], [2.0, 2.0]]))
    assert not list(tmp_path.glob(".*.tmp"))


def test_every_damaged_or_foreign_store_file_is_rebuilt_never_used(tmp_path):
    """A fuzz of a finished store's two files: each damaged form is refused (None: the run
    rebuilds the cache), never a traceback and never rows that do not match."""
    import json

    path = tmp_path / "p.npy"
    store = RowStore(6, (2, 2), "disk", path, np.float32)
    store.put([0, 1, 2, 3, 4, 5], _rows(6, (2, 2)))
    store.finish()
    store.close()
    meta_path, good_meta, good_npy = (
        path.with_suffix(".json"),
        path.with_suffix(".json").read_text(),
        path.read_bytes(),
    )
    meta = json.loads(good_meta)
    metas = [
        "null", "[]", "5", '"text"', "{}", good_meta[: len(good_meta) // 2], "\x00" * 10,
        json.dumps({**meta, "count": "6"}), json.dumps({**meta, "count": None}),
        json.dumps({**meta, "shape": "2,2"}), json.dumps({**meta, "shape": None}),
        json.dumps({**meta, "dtype": 4}), json.dumps({**meta, "valid": 7}), json.dumps({**meta, "valid": "!!!"}),
        json.dumps({**meta, "valid": ""}), json.dumps({k: v for k, v in meta.items() if k != "valid"}),
    ]  # fmt: skip
    for text in metas:
        meta_path.write_text(text)
        assert RowStore.reopen(path, 6, (2, 2), np.float32) is None, text
    meta_path.write_text(good_meta)
    rng = np.random.default_rng(0)
    npys = [
        b"", good_npy[:5], good_npy[:-4], good_npy + b"\x00" * 16, b"\x93NUMPY" + bytes(rng.integers(0, 256, 200, dtype=np.uint8)),
        np.lib.format.magic(1, 0) + good_npy[8:].replace(b"<f4", b"<f8", 1),
        np.lib.format.magic(1, 0) + good_npy[8:].replace(b"(6, 2, 2)", b"(6, 4, 1)", 1),
        good_npy.replace(b"False", b"True ", 1),
    ]  # fmt: skip
    for data in npys:
        path.write_bytes(data)
        assert RowStore.reopen(path, 6, (2, 2), np.float32) is None, data[:60]
    path.write_bytes(good_npy)
    assert RowStore.reopen(path, 6, (2, 2), np.float32) is not None  # the intact pair still opens


def test_a_store_file_of_the_right_shape_from_other_images_is_never_reused(tmp_path):
    """The .npy of another store (other images, another model: other rows) copied over this one,
    with or without its record: the shape fits, the rows do not, so it is rebuilt."""
    import shutil

    mine, theirs = tmp_path / "mine.npy", tmp_path / "theirs.npy"
    for path, seed in ((mine, 1), (theirs, 2)):
        store = RowStore(6, (2, 2), "disk", path, np.float32)
        torch.manual_seed(seed)
        store.put(list(range(6)), torch.randn(6, 2, 2))
        store.finish()
        store.close()
    assert RowStore.reopen(mine, 6, (2, 2), np.float32) is not None
    kept = mine.read_bytes()
    shutil.copyfile(theirs, mine)  # into the same inode, as cp does
    assert RowStore.reopen(mine, 6, (2, 2), np.float32) is None
    shutil.copyfile(theirs.with_suffix(".json"), mine.with_suffix(".json"))  # and its record
    assert RowStore.reopen(mine, 6, (2, 2), np.float32) is None
    mine.write_bytes(kept)
    assert RowStore.reopen(mine, 6, (2, 2), np.float32) is None  # the other store's record
