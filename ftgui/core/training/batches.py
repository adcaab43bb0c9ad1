"""The batch source: a split's images as batches, in a seeded order that depends only on the epoch.

Decoding runs in threads (or in ``num_workers`` spawned DataLoader processes); the order comes
from torch's ``RandomSampler`` + ``BatchSampler``, seeded per epoch, so a resumed run and a
cached run see the same batches as an uninterrupted one. Under torchrun every rank draws the
same global batches and takes its shard of each (``World.shard``): together the ranks see
exactly the batches of one process.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING

import numpy as np
import PIL
import torch
from torch.utils.data import BatchSampler, DataLoader, RandomSampler, SequentialSampler

from ftgui.core.compute.distributed import SINGLE, World
from ftgui.core.data.images import Batch, ImageListDataset, collate, decode_threads, threaded_batches
from ftgui.core.data.samples import Sample, Split
from ftgui.core.data.stores import RowStore, cache_key, choose_storage, default_budget, files_digest, folder
from ftgui.core.models import Preprocess

if TYPE_CHECKING:
    from ftgui.core.training.config import TrainConfig


def epoch_generator(seed: int, epoch: int) -> torch.Generator:
    """The shuffle's generator for an epoch. One draw is taken first, as a DataLoader takes its
    base seed from the generator before sampling: runs keep the order earlier ftgui versions
    gave them (checkpoints resume onto the same batches, benchmarks stay comparable)."""
    g = torch.Generator().manual_seed(seed + epoch)
    torch.empty((), dtype=torch.int64).random_(generator=g)
    return g


def index_batches(n: int, batch_size: int, shuffle_epoch: int | None, seed: int) -> list[list[int]]:
    """Sample indices per batch; shuffled (for ``shuffle_epoch``) or in order (None)."""
    sampler: torch.utils.data.Sampler[int] = (
        SequentialSampler(range(n))
        if shuffle_epoch is None
        else RandomSampler(range(n), generator=epoch_generator(seed, shuffle_epoch))
    )
    return [list(b) for b in BatchSampler(sampler, batch_size, drop_last=False)]


class BatchSource:
    """Batches of one dataset split for one configuration, and the decoded-pixel memo: each
    image's resized uint8 pixels, kept after the first epoch in RAM when the whole split fits the
    budget, else in a file in the cache folder (also reused by later runs on the same files)."""

    def __init__(
        self,
        root: str,
        split: Split,
        preprocess: Preprocess,
        config: TrainConfig,
        pin_memory: bool = False,
        world: World = SINGLE,
    ) -> None:
        self.root = root
        self.world = world
        self.split = split
        self.preprocess = preprocess
        self.config = config
        self.pin_memory = pin_memory
        self.memo: dict[str, RowStore] = {}

    def budget(self) -> int:
        """Bytes the caches may use in RAM (shared by the ranks on one machine)."""
        mb = self.config.cache_memory_mb
        total = int(mb) << 20 if mb is not None else default_budget()
        return total // self.world.local_size

    def pixel_store(self, part: str) -> RowStore | None:
        """The decoded-pixel memo of the split's ``part`` ("train" or "val"), made on first use:
        in RAM when both parts fit the budget, else on disk; None when neither has room."""
        if part in self.memo:
            return self.memo[part]
        size = self.preprocess.crop_size
        shape = (3, size, size)
        both = (len(self.split.train) + len(self.split.val)) * 3 * size * size
        where = choose_storage(both, self.budget())
        samples = self.split.train if part == "train" else self.split.val
        if where == "ram":
            store = RowStore(len(samples), shape, "ram", dtype=np.uint8)
        elif where == "disk":
            # The pixels depend on the files, the preprocessing and the decoders' versions.
            key = cache_key(
                {
                    "files": files_digest(self.root, samples),
                    "preprocess": self.preprocess.to_dict(),
                    "versions": [torch.__version__, PIL.__version__],
                }
            )
            node = f"-node{self.world.node}" if self.world.active else ""
            path = folder("pixels") / f"{key}{node}.npy"
            earlier = RowStore.reopen(path, len(samples), shape, np.uint8)
            store = earlier if earlier is not None else RowStore(len(samples), shape, "disk", path, np.uint8)
        else:
            return None
        self.memo[part] = store
        return store

    def order(
        self,
        train: bool,
        epoch: int,
        merge_single: bool = False,
        n: int | None = None,
        shard: bool = True,
    ) -> list[list[int]]:
        """The epoch's batches as indices into the split's train (shuffled) or val list; with
        ``shard`` (under torchrun) this rank's part of each global batch.

        BatchNorm cannot train on a single sample: with ``merge_single`` a last batch too small
        to give every rank two images (one process: a batch of one) joins the batch before it
        (the shuffle puts other images there next epoch).
        """
        size = n if n is not None else len(self.split.train if train else self.split.val)
        batches = index_batches(size, self.config.batch_size, epoch if train else None, self.config.seed)
        if train and merge_single and len(batches) >= 2 and len(batches[-1]) < 2 * self.world.size:
            batches[-2].extend(batches.pop())
        return [self.world.shard(b) for b in batches] if shard else batches

    def images(
        self,
        train: bool,
        epoch: int = 0,
        samples: Sequence[Sample] | None = None,
        merge_single: bool = False,
        shard: bool | None = None,
        keep_pixels: bool = True,
    ) -> Iterator[Batch]:
        """Image batches of a split (or of ``samples``, in order), shuffled per epoch when training.

        ``keep_pixels=False``: decode without keeping the pixels for later epochs (the frozen-
        layer cache reads each image once; keeping 100k images' pixels would cost gigabytes).

        Under torchrun a split's own batches are this rank's shards (``shard`` defaults to
        True for them, False for other ``samples``); ``Batch.indices`` stay positions in the list.
        """
        cfg = self.config
        augment = train and cfg.augment
        if shard is None:
            shard = samples is None
        if samples is None:
            samples = self.split.train if train else self.split.val
        part = {id(self.split.train): "train", id(self.split.val): "val"}.get(id(samples))
        memo = None
        if part and keep_pixels and not augment and cfg.num_workers == 0 and cfg.cache != "off":
            memo = self.pixel_store(part)
        elif part and not augment:
            memo = self.memo.get(part)  # pixels kept earlier are still used
        ds = ImageListDataset(
            self.root, list(samples), self.preprocess, augment=augment, memo=memo, remember=part is not None
        )
        order = self.order(train, epoch, merge_single, n=len(samples), shard=shard)
        if cfg.num_workers > 0:
            # Explicit spawn: forking a process that runs Qt or CUDA is unsafe.
            yield from DataLoader(
                ds,
                batch_sampler=order,
                collate_fn=collate,
                pin_memory=self.pin_memory,
                num_workers=cfg.num_workers,
                multiprocessing_context="spawn",
            )
            return
        # Augmentation draws from the global RNG: keep it in this thread, in order.
        threads = 1 if augment else decode_threads()
        yield from threaded_batches(ds, iter(order), threads)
        if memo is not None:
            memo.finish()  # a whole pass: what was decoded is there for the next run too
