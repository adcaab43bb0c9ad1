"""A run's frozen-prefix cache: when the frozen layers' output is worth keeping, and reusing it.

``cache.py`` has the mechanics (where to cut the model, the feature store); this module decides
per freeze state whether to build the cache, fills it from the batch source, finds a matching
one on disk, and serves cached batches in the same order as the image batches.
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ftgui.core.base import events as ev
from ftgui.core.base.errors import FtguiError
from ftgui.core.compute.precision import FP32, Precision
from ftgui.core.data.images import Batch
from ftgui.core.data.samples import Sample
from ftgui.core.data.stores import RowStore, cache_key, choose_storage, files_digest, folder
from ftgui.core.models import BuiltModel, aux_modules
from ftgui.core.models.layers import trainable_names
from ftgui.core.training.batches import BatchSource
from ftgui.core.training.cache import CachePlan, capture, plan_cache

# Reports the files of a batch that could not be read (the trainer's FileSkipped events).
ReportFailures = Callable[[Batch, Sequence[Sample]], Iterator[ev.Event]]


@dataclass
class _Active:
    plan: CachePlan
    train: RowStore
    val: RowStore
    signature: tuple[str, ...]
    frozen: list[float]  # frozen_fingerprint when the features were made


def frozen_fingerprint(model: nn.Module) -> list[float]:
    """Cheap summary of the frozen weights: a changed prefix never reuses old features."""
    training = {n.rsplit(".", 1)[0] for n, p in model.named_parameters() if p.requires_grad}
    with torch.no_grad():
        return [
            round(float(t.double().sum()), 6)
            for n, t in model.state_dict().items()
            if n.rsplit(".", 1)[0] not in training and t.is_floating_point()
        ][:2000]


class FrozenPrefix:
    """The cache of one run; inactive until :meth:`ensure` finds it worth building."""

    def __init__(
        self,
        source: BatchSource,
        built: BuiltModel,
        device: torch.device,
        shared: dict[str, RowStore] | None = None,
    ) -> None:
        self.source = source
        self.built = built
        self.device = device
        self._active: _Active | None = None
        self._decided: tuple[str, ...] | None = None  # the freeze state ensure() last judged
        # The frozen layers run under precision.infer; their output is stored in fp32 (bf16
        # values widened exactly), and the trainable layers take it under precision.train.
        self.precision: Precision = FP32
        # Finished stores by cache key, shared between runs of one process (a comparison's
        # candidates with the same frozen prefix); the key covers everything the features
        # depend on, so a store is only ever reused for identical features.
        self.shared: dict[str, RowStore] = shared if shared is not None else {}

    @property
    def active(self) -> bool:
        return self._active is not None

    def matches_model(self) -> bool:
        """Whether the cache holds what the model's frozen layers compute now (after training
        they still do, unless the layers were unfrozen or other weights loaded since)."""
        return self._active is not None and frozen_fingerprint(self.built.model) == self._active.frozen

    @property
    def feature_shape(self) -> tuple[int, ...]:
        """The shape of one cached activation (what the trainable layers take)."""
        assert self._active is not None
        return self._active.train.shape

    def ensure(self, cancel: ev.CancelToken, report: ReportFailures) -> Iterator[ev.Event]:
        """Build (or reuse) the cache for the model's current freeze state, if it helps."""
        model = self.built.model
        cfg = self.source.config
        signature = tuple(trainable_names(model))
        if signature == self._decided:
            return  # the same freeze state as at the last epoch: nothing to build or check
        self._decided = signature
        self._active = None
        if cfg.cache == "off" or cfg.augment or aux_modules(model):
            return
        if all(p.requires_grad for p in model.parameters()):
            return  # nothing frozen: no prefix to cache (and no example images to decode)
        split = self.source.split
        example = self._example_batch()
        if example is None:
            return
        plan = plan_cache(model, example.to(self.device))
        if plan is None:
            return
        shape = tuple(capture(model, plan, example[:1].to(self.device)).shape[1:])
        n_train, n_val = len(split.train), len(split.val)
        per_image = int(torch.Size(shape).numel()) * 4
        world = self.source.world
        # Every rank stores the same cache: they agree on where (the most cautious choice).
        kinds = ("ram", "disk", "none")
        where = kinds[
            world.largest(kinds.index(choose_storage((n_train + n_val) * per_image, self.source.budget())))
        ]
        if where == "none":
            yield ev.Message("info", "Frozen-layer cache skipped: not enough memory or disk for it.")
            return
        root = self.source.root
        frozen = frozen_fingerprint(model)
        key = cache_key(
            {
                "arch": self.built.arch,
                "weights": self.built.weights_source,
                "capture": plan.capture_at,
                "frozen": frozen,
                "preprocess": self.source.preprocess.to_dict(),
                "train": files_digest(root, split.train),
                "val": files_digest(root, split.val),
                "kwargs": self.built.model_kwargs,
                "torch": torch.__version__,
                "device": self.device.type,
                "precision": str(self.precision.infer or "fp32"),
            }
        )
        # One file per machine under torchrun (a shared cache folder must not get two writers).
        node = f"-node{world.node}" if world.active else ""
        stores = []
        reused = True
        filled = [0, n_train + n_val]  # images done, of all to compute (for the progress)
        for part, samples in (("train", split.train), ("val", split.val)):
            path = folder("features") / f"{key}-{part}{node}.npy"
            store = self.shared.get(f"{key}-{part}")
            if store is None and where == "disk":
                store = RowStore.reopen(path, len(samples), shape)
            if world.any(store is None):  # rebuilt together unless every rank has it
                reused = False
                store = yield from self._fill(samples, plan, shape, where, path, cancel, report, filled)
                if store is None:
                    self._decided = None  # stopped half-way: build it when training goes on
                    return
            assert store is not None
            self.shared[f"{key}-{part}"] = store
            stores.append(store)
        self._active = _Active(plan, stores[0], stores[1], signature, frozen)
        size = (n_train + n_val) * per_image / 2**20
        place = "in RAM" if where == "ram" else f"on disk in {folder('features')}"
        verb = "Reused the cached" if reused else "Cached the"
        yield ev.Message(
            "info",
            f"{verb} frozen layers' output ({plan.description}, {size:.1f} MB {place}); "
            "epochs now run only the trainable layers.",
        )

    def _fill(
        self,
        samples: Sequence[Sample],
        plan: CachePlan,
        shape: tuple[int, ...],
        where: str,
        path: Path,
        cancel: ev.CancelToken,
        report: ReportFailures,
        filled: list[int],
    ) -> Generator[ev.Event, None, RowStore | None]:
        """Compute the frozen layers' output for ``samples`` (None if cancelled).

        Under torchrun each rank computes its shard of every batch and the shards are summed
        into the whole batch on every rank; on disk, the first rank of each machine writes the
        file and the others open it once it is complete."""
        world = self.source.world
        model = self.built.model
        disk = where == "disk"
        writer = not disk or world.local_rank == 0
        store = RowStore(len(samples), shape, where, path if disk else None) if writer else None
        whole = self.source.order(False, 0, n=len(samples), shard=False)
        for idx, batch in zip(
            whole, self.source.images(train=False, samples=samples, shard=True, keep_pixels=False)
        ):
            if cancel.cancelled:
                return None
            yield from report(batch, samples)
            values = None
            if batch.images.numel():
                with self.precision.autocast("infer"):
                    values = capture(model, plan, batch.images.to(self.device))  # fp32 (widened)
            rows, got = batch.indices.tolist(), values
            if world.active:
                where_in = {i: p for p, i in enumerate(idx)}
                full = torch.zeros((len(idx), *shape))
                ok = torch.zeros(len(idx))
                if values is not None:
                    local = [where_in[i] for i in rows]
                    full[local] = values.float().cpu()
                    ok[local] = 1.0
                ok = world.sum(ok)
                keep = [p for p in range(len(idx)) if ok[p] > 0]
                rows, got = [idx[p] for p in keep], world.sum(full)[keep]
            if store is not None and got is not None and rows:
                store.put(rows, got)
            filled[0] += len(idx)
            yield ev.Preparing("caching", min(filled[0], filled[1]), filled[1])
        if store is not None:
            store.finish()
        world.barrier()  # the machine's file is complete before anyone opens it
        if store is None:
            store = RowStore.reopen(path, len(samples), shape)
            if store is None:
                raise FtguiError(
                    f"The frozen-layer cache file {path} could not be read after it was written."
                )
        return store

    def _example_batch(self) -> torch.Tensor | None:
        for batch in self.source.images(train=False, samples=self.source.split.train[:4]):
            if batch.images.numel():
                return batch.images[:2]
        return None

    def batches(self, train: bool, epoch: int, merge_single: bool) -> Iterator[Batch]:
        """Cached activations in the image batches' order (the same sampler, the same seed)."""
        assert self._active is not None
        samples = self.source.split.train if train else self.source.split.val
        store = self._active.train if train else self._active.val
        for idx in self.source.order(train, epoch, merge_single):
            keep = [i for i in idx if store.valid[i]]
            if not keep:
                yield Batch(
                    torch.empty(0), torch.empty(0, dtype=torch.long), torch.empty(0, dtype=torch.long), []
                )
                continue
            labels = torch.tensor([samples[i].label for i in keep], dtype=torch.long)
            yield Batch(store.get(keep), labels, torch.tensor(keep), [])

    def forward(self, x: torch.Tensor) -> Any:
        assert self._active is not None
        return self._active.plan.forward(x)

    def train_mode(self) -> None:
        assert self._active is not None
        self._active.plan.train_mode()

    def eval_mode(self) -> None:
        assert self._active is not None
        self._active.plan.eval_mode()
