"""The training engine: one loop for the window, the command line and the tests.

``Trainer.run()`` is a generator of events (see ``events.py``); it checks a cancellation
token before every batch and never raises for problems the user can act on: it yields
``Failed`` with a readable message instead.
"""

from __future__ import annotations

import math
import os
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from . import events as ev
from .cache import (
    CachePlan,
    FeatureStore,
    cache_dir,
    cache_key,
    capture,
    choose_storage,
    default_budget,
    file_fingerprints,
    plan_cache,
)
from .checkpoint import load_checkpoint  # noqa: F401  (part of the engine's API)
from .data import (
    Batch,
    ImageListDataset,
    ScanResult,
    Split,
    collate,
    decode_threads,
    scan_folder,
    split_samples,
    threaded_batches,
)
from .errors import DataError, FtguiError, TrainingError
from .layers import (
    FreezeSpec,
    apply_freeze,
    count_params,
    head_names,
    model_blocks,
    train_mode,
    trainable_names,
)
from .models import BuiltModel, Preprocess, aux_modules, build_model
from .optim import group_parameters, lr_factor, make_optimizer, set_lr


@dataclass
class TrainConfig:
    """Everything that defines a run; saved with checkpoints and exports."""

    data_dir: str = ""
    arch: str = "resnet18"
    weights: str | None = "default"
    strategy: str = "head"  # head | last-N | full | gradual | custom
    trainable: tuple[str, ...] = ()  # for strategy "custom"
    unfreeze_every: int = 1
    train_bn: bool = False
    epochs: int = 5
    batch_size: int = 32
    # None: the strategy's default (core/recipe.py); "auto": a quick range test (head only, where
    # the frozen layers' output is cached); or a number. prepare() turns it into the number used,
    # and ``lr_note`` says why.
    lr: float | str | None = None
    lr_note: str = ""
    lr_decay: float = 1.0  # discriminative LRs: each earlier block gets lr * lr_decay**depth
    optimizer: str = "adam"
    weight_decay: float = 1e-4
    momentum: float = 0.9
    schedule: str = "cosine"
    image_size: int | None = None
    val_fraction: float = 0.2
    seed: int = 0
    device: str = "auto"
    augment: bool = False
    early_stopping: int = 0  # patience in epochs; 0 = off
    num_workers: int = 0
    amp: bool = True  # mixed precision when on CUDA
    cache: str = "auto"  # frozen-prefix and decoded-image caches: auto | off
    cache_memory_mb: int | None = None  # RAM budget for caches; None = a quarter of free RAM
    channels_last: bool | None = None  # None: on for convolutional networks

    def validate(self) -> None:
        """Refuse a number out of range before any slow work, naming the option and its range."""
        validate_config(self)

    def freeze_spec(self) -> FreezeSpec:
        if self.strategy == "custom":
            return FreezeSpec("custom", train_bn=self.train_bn, trainable=tuple(self.trainable))
        return FreezeSpec.parse(self.strategy, train_bn=self.train_bn, unfreeze_every=self.unfreeze_every)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["trainable"] = list(self.trainable)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
        known = {f.name for f in fields(cls)}
        kw = {k: v for k, v in d.items() if k in known}
        if "trainable" in kw:
            kw["trainable"] = tuple(kw["trainable"])
        return cls(**kw)


MAX_IMAGE_SIZE = 4096  # the largest input size ftgui-predict accepts in model.json


def _finite_number(v: object) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _whole(v: object) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def validate_config(cfg: TrainConfig) -> None:
    """The checks of :meth:`TrainConfig.validate` (options as ``ftgui-train`` names them)."""
    from .models import arch_info
    from .optim import OPTIMIZERS, SCHEDULES

    def need(ok: bool, option: str, rule: str, value: object) -> None:
        if not ok:
            raise FtguiError(f"{option} must be {rule} (got {value!r}).")

    need(
        cfg.lr is None or cfg.lr == "auto" or (_finite_number(cfg.lr) and cfg.lr > 0),  # type: ignore[operator]
        "--lr (learning rate)",
        "a finite number above 0, or auto",
        cfg.lr,
    )
    need(
        _finite_number(cfg.lr_decay) and 0 < cfg.lr_decay <= 1,
        "--lr-decay",
        "a number above 0 and at most 1 (1 = off)",
        cfg.lr_decay,
    )
    need(
        _finite_number(cfg.weight_decay) and 0 <= cfg.weight_decay < 1,
        "--weight-decay",
        "a number from 0 to below 1",
        cfg.weight_decay,
    )
    need(
        _finite_number(cfg.momentum) and 0 <= cfg.momentum < 1, "momentum", "from 0 to below 1", cfg.momentum
    )
    need(
        _whole(cfg.epochs) and 1 <= cfg.epochs <= 100_000,
        "--epochs",
        "a whole number from 1 to 100000",
        cfg.epochs,
    )
    need(
        _whole(cfg.batch_size) and 1 <= cfg.batch_size <= 65_536,
        "--batch-size",
        "a whole number from 1 to 65536",
        cfg.batch_size,
    )
    need(
        _whole(cfg.unfreeze_every) and cfg.unfreeze_every >= 1,
        "--unfreeze-every",
        "a whole number of at least 1",
        cfg.unfreeze_every,
    )
    need(
        _finite_number(cfg.val_fraction) and 0 <= cfg.val_fraction < 1,
        "--val-fraction",
        "a number from 0 to below 1 (0.2 keeps a fifth for validation)",
        cfg.val_fraction,
    )
    need(_whole(cfg.seed) and 0 <= cfg.seed < 2**63, "--seed", "a whole number from 0 to 2^63-1", cfg.seed)
    need(
        _whole(cfg.early_stopping) and cfg.early_stopping >= 0,
        "--early-stopping",
        "a whole number of epochs, 0 or more (0 = off)",
        cfg.early_stopping,
    )
    need(
        _whole(cfg.num_workers) and 0 <= cfg.num_workers <= 256,
        "--num-workers",
        "from 0 to 256",
        cfg.num_workers,
    )
    need(
        cfg.cache_memory_mb is None or (_whole(cfg.cache_memory_mb) and cfg.cache_memory_mb >= 0),
        "--cache-memory",
        "a whole number of MB, 0 or more",
        cfg.cache_memory_mb,
    )
    need(cfg.optimizer in OPTIMIZERS, "--optimizer", f"one of {', '.join(OPTIMIZERS)}", cfg.optimizer)
    need(cfg.schedule in SCHEDULES, "--schedule", f"one of {', '.join(SCHEDULES)}", cfg.schedule)
    need(cfg.cache in ("auto", "off"), "--cache", "auto or off", cfg.cache)
    if cfg.image_size is not None:
        need(_whole(cfg.image_size), "--image-size", "a whole number of pixels", cfg.image_size)
        info = arch_info(cfg.arch)  # also refuses an unknown architecture
        random_vit = cfg.arch.startswith("vit_") and str(cfg.weights).lower() == "none"
        low = 8 if random_vit else max(8, info.min_size)
        need(
            low <= cfg.image_size <= MAX_IMAGE_SIZE,
            "--image-size",
            f"from {low} to {MAX_IMAGE_SIZE} pixels for {cfg.arch}",
            cfg.image_size,
        )


class CancelToken:
    """Set from any thread; the engine checks it before every batch."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def cancel(self) -> None:
        self._event.set()

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()


def select_device(choice: str = "auto") -> torch.device:
    """CUDA, then Apple MPS, then CPU; or the named device when it is available."""
    choice = (choice or "auto").lower()
    mps = getattr(torch.backends, "mps", None)
    has_mps = bool(mps and mps.is_available())
    if choice == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        return torch.device("mps") if has_mps else torch.device("cpu")
    if choice.startswith("cuda") and not torch.cuda.is_available():
        raise FtguiError("CUDA was requested but no CUDA GPU is available; use --device cpu or auto.")
    if choice == "mps" and not has_mps:
        raise FtguiError("MPS was requested but is not available on this machine; use --device cpu or auto.")
    if choice not in ("cpu", "mps") and not choice.startswith("cuda"):
        raise FtguiError(f"Unknown device '{choice}': use auto, cpu, cuda or mps.")
    return torch.device(choice)


def available_devices() -> list[str]:
    out = ["cpu"]
    if torch.cuda.is_available():
        out.insert(0, "cuda")
    mps = getattr(torch.backends, "mps", None)
    if mps and mps.is_available():
        out.insert(0, "mps")
    return out


def _logits(output: Any) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """Main logits plus auxiliary logits (GoogLeNet/Inception return named tuples in training)."""
    if isinstance(output, torch.Tensor):
        return output, []
    main, *aux = tuple(output)
    return main, [a for a in aux if isinstance(a, torch.Tensor)]


@dataclass
class _ActiveCache:
    plan: CachePlan
    train: FeatureStore
    val: FeatureStore
    signature: tuple[str, ...]


def _frozen_fingerprint(model: nn.Module) -> list[float]:
    """Cheap summary of the frozen weights: a changed prefix never reuses old features."""
    training = {n.rsplit(".", 1)[0] for n, p in model.named_parameters() if p.requires_grad}
    with torch.no_grad():
        return [
            round(float(t.double().sum()), 6)
            for n, t in model.state_dict().items()
            if n.rsplit(".", 1)[0] not in training and t.is_floating_point()
        ][:2000]


def _state_copy(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


class Trainer:
    """A fine-tuning run. ``prepare()`` scans data and builds the model; ``run()`` trains."""

    def __init__(self, config: TrainConfig, allow_download: bool = True) -> None:
        self.config = config
        self.allow_download = allow_download
        self.scan: ScanResult | None = None
        self.split: Split | None = None
        self.built: BuiltModel | None = None
        self.optimizer: torch.optim.Optimizer | None = None
        self.device = torch.device("cpu")
        self.epoch = 0  # epochs completed
        self.step = 0
        self.unfrozen_blocks = 0
        self.history: list[dict[str, Any]] = []
        self.best_state: dict[str, torch.Tensor] | None = None
        self.best_epoch: int | None = None
        self.best_val_loss: float | None = None
        self.skipped: dict[str, str] = {}
        self._rng_state: torch.Tensor | None = None
        self._cache: _ActiveCache | None = None
        self._pixel_memo: dict[str, dict[int, torch.Tensor]] = {}
        self._channels_last = False
        self.evaluation: Any = None  # the latest evaluation of this model (see evaluate.py)

    # ------------------------------------------------------------ set-up

    @property
    def model(self) -> nn.Module:
        if self.built is None:
            raise FtguiError("The model is not built yet.")
        return self.built.model

    @property
    def classes(self) -> list[str]:
        return self.scan.classes if self.scan else []

    @property
    def prepared(self) -> bool:
        return self.built is not None and self.optimizer is not None

    def prepare(self, scan: ScanResult | None = None, built: BuiltModel | None = None) -> None:
        """Scan the folder, split it, build the model, freeze it, make the optimizer.

        Raises :class:`FtguiError` with a readable message on bad input.
        """
        cfg = self.config
        cfg.validate()
        spec = cfg.freeze_spec()  # validates the strategy before any slow work
        self.device = select_device(cfg.device)
        self.scan = scan or scan_folder(cfg.data_dir)
        self.split = split_samples(self.scan, cfg.val_fraction, cfg.seed)
        if not self.split.train:
            raise DataError("No training images left after the split; lower the validation fraction.")
        torch.manual_seed(cfg.seed)
        self.built = built or build_model(
            cfg.arch, len(self.scan.classes), cfg.weights, cfg.image_size, allow_download=self.allow_download
        )
        self._freeze(spec, 0)
        self.built.model.to(self.device)
        self._apply_memory_format()
        self._choose_lr()
        for rel, reason in self.scan.skipped:
            self.skipped.setdefault(rel, reason)

    def _choose_lr(self) -> None:
        """The learning rate this run uses (the strategy's default, auto, or the user's), and why."""
        from .recipe import default_lr, resolve_lr

        cfg = self.config
        requested = cfg.lr
        quick = self._range_test_is_quick()
        if requested == "auto" and quick:
            cfg.lr = default_lr(cfg.strategy).lr  # the range test needs an optimizer to start from
            self.optimizer = self._new_optimizer()
        choice = resolve_lr(self, requested, quick)
        cfg.lr, cfg.lr_note = choice.lr, choice.reason
        self.optimizer = self._new_optimizer()

    def _range_test_is_quick(self) -> bool:
        cfg = self.config
        return cfg.strategy == "head" and cfg.cache != "off" and not cfg.augment

    def _freeze(self, spec: FreezeSpec, unfrozen_blocks: int) -> None:
        assert self.built is not None
        self.unfrozen_blocks = unfrozen_blocks
        apply_freeze(self.built.model, self.built.head, spec, unfrozen_blocks)

    def _units(self) -> list[list[str]]:
        assert self.built is not None
        blocks = model_blocks(self.built.model, self.built.head)
        return [head_names(self.built.model, self.built.head), *reversed(blocks)]

    def _new_optimizer(self, only: set[str] | None = None) -> torch.optim.Optimizer:
        cfg = self.config
        groups = group_parameters(self.model, self._units(), cfg.lr, cfg.weight_decay, cfg.lr_decay, only)
        return make_optimizer(cfg.optimizer, groups, cfg.lr, cfg.momentum)

    @property
    def blocks(self) -> list[list[str]]:
        return model_blocks(self.model, self.built.head) if self.built else []

    @property
    def preprocess(self) -> Preprocess:
        assert self.built is not None
        return self.built.preprocess

    def _loader(self, train: bool, samples: list[Any] | None = None) -> Iterator[Batch]:
        """Image batches of a split (or of ``samples``), shuffled per epoch when training."""
        assert self.scan is not None and self.split is not None
        cfg = self.config
        augment = train and cfg.augment
        if samples is None:
            samples = self.split.train if train else self.split.val
        memo = None
        part = {id(self.split.train): "train", id(self.split.val): "val"}.get(id(samples))
        if part and not augment and cfg.num_workers == 0 and self._pixel_memo_fits():
            memo = self._pixel_memo.setdefault(part, {})
        ds = ImageListDataset(self.scan.root, samples, self.preprocess, augment=augment, memo=memo)
        if cfg.num_workers > 0:
            # Explicit spawn: forking a process that runs Qt or CUDA is unsafe.
            yield from torch.utils.data.DataLoader(
                ds,
                batch_size=cfg.batch_size,
                shuffle=train,
                generator=self._epoch_generator() if train else None,
                collate_fn=collate,
                pin_memory=self.device.type == "cuda",
                num_workers=cfg.num_workers,
                multiprocessing_context="spawn",
            )
            return
        # Augmentation draws from the global RNG: keep it in this thread, in order.
        threads = 1 if augment else decode_threads()
        yield from threaded_batches(ds, self._index_batches(len(samples), train), threads)

    def _index_batches(self, n: int, train: bool) -> Iterator[list[int]]:
        """Sample indices per batch: torch's sampler with the epoch's generator (as a DataLoader).

        BatchNorm cannot train on a single sample: while it trains, a last batch of one image
        joins the batch before it (the shuffle puts another image there next epoch).
        """
        order = torch.utils.data.DataLoader(
            range(n),
            batch_size=self.config.batch_size,
            shuffle=train,
            generator=self._epoch_generator() if train else None,
        )
        batches = [idx.tolist() for idx in order]
        if train and len(batches) >= 2 and len(batches[-1]) == 1 and self._batchnorm_trains():
            batches[-2].extend(batches.pop())
        yield from batches

    def _batchnorm_trains(self) -> bool:
        return any(
            isinstance(m, nn.modules.batchnorm._BatchNorm) and m.training for m in self.model.modules()
        )

    def _epoch_generator(self) -> torch.Generator:
        # Seeded per epoch, so a resumed run (and a cached one) sees the same batches.
        return torch.Generator().manual_seed(self.config.seed + self.epoch)

    def _budget(self) -> int:
        mb = self.config.cache_memory_mb
        return int(mb) << 20 if mb is not None else default_budget()

    def _pixel_memo_fits(self) -> bool:
        assert self.split is not None
        if self.config.cache == "off":
            return False
        n = len(self.split.train) + len(self.split.val)
        return n * 3 * self.preprocess.crop_size**2 <= self._budget()

    def _batches(self, train: bool) -> Iterator[Batch]:
        """Image batches, or cached activations when the frozen-prefix cache is active."""
        cache = self._cache
        if cache is None:
            yield from self._loader(train)
            return
        assert self.split is not None
        samples = self.split.train if train else self.split.val
        store = cache.train if train else cache.val
        # The same sampler and generator as the image loader: identical batches, in order.
        for idx in self._index_batches(len(samples), train):
            keep = [i for i in idx if store.valid[i]]
            if not keep:
                yield Batch(
                    torch.empty(0), torch.empty(0, dtype=torch.long), torch.empty(0, dtype=torch.long), []
                )
                continue
            labels = torch.tensor([samples[i].label for i in keep], dtype=torch.long)
            yield Batch(store.get(keep), labels, torch.tensor(keep), [])

    def _forward(self, x: torch.Tensor) -> Any:
        if self._channels_last and x.dim() == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        return self._cache.plan.forward(x) if self._cache is not None else self.model(x)

    def _apply_memory_format(self) -> None:
        """Channels-last convolutions are 20-30% faster on CPU (oneDNN) and on CUDA with AMP."""
        choice = self.config.channels_last
        arch = self.built.arch if self.built else ""
        self._channels_last = (
            choice if choice is not None else not arch.startswith(("vit_", "swin", "maxvit"))
        )
        if self._channels_last:
            self.model.to(memory_format=torch.channels_last)

    def _set_train_mode(self) -> None:
        if self._cache is not None:
            self._cache.plan.train_mode()
        else:
            train_mode(self.model)

    def _set_eval_mode(self) -> None:
        self.model.eval()
        if self._cache is not None:
            self._cache.plan.eval_mode()

    def _ensure_cache(self, cancel: CancelToken) -> Iterator[ev.Event]:
        """Build (or reuse) the frozen-prefix cache for the current freeze state, if it helps."""
        cfg = self.config
        signature = tuple(trainable_names(self.model))
        if self._cache is not None and self._cache.signature == signature:
            return
        self._cache = None
        if cfg.cache == "off" or cfg.augment or aux_modules(self.model):
            return
        assert self.split is not None and self.scan is not None and self.built is not None
        example = self._example_batch()
        if example is None:
            return
        plan = plan_cache(self.model, example.to(self.device))
        if plan is None:
            return
        shape = tuple(capture(self.model, plan, example[:1].to(self.device)).shape[1:])
        n_train, n_val = len(self.split.train), len(self.split.val)
        per_image = int(torch.Size(shape).numel()) * 4
        where = choose_storage((n_train + n_val) * per_image, self._budget())
        if where == "none":
            yield ev.Message("info", "Frozen-layer cache skipped: not enough memory or disk for it.")
            return
        key = cache_key(
            {
                "arch": self.built.arch,
                "weights": self.built.weights_source,
                "capture": plan.capture_at,
                "frozen": _frozen_fingerprint(self.model),
                "preprocess": self.preprocess.to_dict(),
                "train": file_fingerprints(self.scan.root, [x.path for x in self.split.train]),
                "val": file_fingerprints(self.scan.root, [x.path for x in self.split.val]),
                "kwargs": self.built.model_kwargs,
                "torch": torch.__version__,
                "device": self.device.type,
            }
        )
        stores = []
        reused = True
        for part, samples in (("train", self.split.train), ("val", self.split.val)):
            path = cache_dir() / f"{key}-{part}.npy"
            meta = path.with_suffix(".json")
            store = FeatureStore.reopen(path, meta, len(samples), shape) if where == "disk" else None
            if store is None:
                reused = False
                store = FeatureStore(len(samples), shape, where, path if where == "disk" else None)
                for batch in self._loader(train=False, samples=samples):
                    if cancel.cancelled:
                        return
                    yield from self._report_failures(batch, samples)
                    if batch.images.numel():
                        store.put(
                            batch.indices.tolist(), capture(self.model, plan, batch.images.to(self.device))
                        )
                store.finish(meta if where == "disk" else None)
            stores.append(store)
        self._cache = _ActiveCache(plan, stores[0], stores[1], signature)
        size = (n_train + n_val) * per_image / 2**20
        place = "in RAM" if where == "ram" else f"on disk in {cache_dir()}"
        verb = "Reused the cached" if reused else "Cached the"
        yield ev.Message(
            "info",
            f"{verb} frozen layers' output ({plan.description}, {size:.1f} MB {place}); "
            "epochs now run only the trainable layers.",
        )

    def _example_batch(self) -> torch.Tensor | None:
        assert self.split is not None
        for batch in self._loader(train=False, samples=self.split.train[:4]):
            if batch.images.numel():
                return batch.images[:2]
        return None

    # ------------------------------------------------------------ running

    def run(self, cancel: CancelToken | None = None) -> Iterator[ev.Event]:
        """Train to ``config.epochs``, yielding events. Ends with Finished, Cancelled or Failed."""
        cancel = cancel or CancelToken()
        try:
            if not self.prepared:
                self.prepare()
            yield from self._run(cancel)
        except FtguiError as exc:
            self._restore_best()
            yield ev.Failed(str(exc), self.epoch)
        except (torch.cuda.OutOfMemoryError, MemoryError) as exc:
            self._restore_best()
            yield ev.Failed(_oom_message(exc, self.config), self.epoch)
        except Exception as exc:  # a run ends with a message, whatever torch raises
            self._restore_best()
            first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            msg = (
                _oom_message(exc, self.config)
                if is_out_of_memory(exc)
                else f"Training failed: {first}\n\n{traceback.format_exc(limit=3)}"
            )
            yield ev.Failed(msg, self.epoch)

    def _run(self, cancel: CancelToken) -> Iterator[ev.Event]:
        cfg = self.config
        spec = cfg.freeze_spec()
        assert self.scan is not None and self.split is not None and self.optimizer is not None
        model = self.model
        for w in self.scan.warnings:
            yield ev.Message("warning", w)
        for rel, reason in self.scan.skipped:
            yield ev.FileSkipped(rel, reason)
        trainable, total = count_params(model)
        batches = math.ceil(len(self.split.train) / cfg.batch_size)
        if cfg.lr_note and self.epoch == 0:
            yield ev.Message("info", f"Learning rate: {cfg.lr_note}.")
        yield ev.RunStarted(
            tuple(self.scan.classes),
            len(self.split.train),
            len(self.split.val),
            str(self.device),
            trainable,
            total,
            cfg.epochs,
            self.epoch,
            batches,
        )
        if self._rng_state is not None:
            torch.set_rng_state(self._rng_state)
        else:
            torch.manual_seed(cfg.seed + 1)
        total_steps = cfg.epochs * batches
        run_start = time.perf_counter()
        steps_at_start = self.step
        use_amp = cfg.amp and self.device.type == "cuda"
        amp_dtype = torch.bfloat16 if use_amp and torch.cuda.is_bf16_supported() else torch.float16
        scaler = torch.amp.GradScaler("cuda", enabled=use_amp and amp_dtype == torch.float16)
        stale = 0
        stopped_early = False
        while self.epoch < cfg.epochs:
            if cancel.cancelled:
                break
            if spec.strategy == "gradual":
                event = self._maybe_unfreeze(spec)
                if event:
                    yield event
            epoch_start = time.perf_counter()
            # Cached pixels and features would let a run go on without its folder; stop instead.
            self._check_root()
            yield from self._ensure_cache(cancel)
            if cancel.cancelled:
                break
            self._set_train_mode()
            loss_sum, correct, seen = 0.0, 0, 0
            for b, batch in enumerate(self._batches(train=True), start=1):
                if cancel.cancelled:
                    break
                yield from self._report_failures(batch, self.split.train)
                if batch.images.numel() == 0:
                    continue
                t0 = time.perf_counter()
                lr = set_lr(self.optimizer, lr_factor(cfg.schedule, self.step, total_steps))
                x = batch.images
                if self.device.type == "cuda":
                    x = x.pin_memory()
                x = x.to(self.device, non_blocking=True)
                y = batch.labels.to(self.device, non_blocking=True)
                with torch.autocast(self.device.type, dtype=amp_dtype, enabled=use_amp):
                    main, aux = _logits(self._forward(x))
                    loss = F.cross_entropy(main, y)
                    full = loss + sum(
                        (0.3 * F.cross_entropy(a, y) for a in aux), torch.zeros((), device=x.device)
                    )
                if not torch.isfinite(full):
                    raise TrainingError(
                        f"The loss became {full.item()} at epoch {self.epoch + 1}, batch {b}. "
                        f"Try a lower learning rate (now {cfg.lr:g}). {self._kept()}"
                    )
                self.optimizer.zero_grad(set_to_none=True)
                scaler.scale(full).backward()
                scaler.step(self.optimizer)
                scaler.update()
                self.step += 1
                n = int(y.numel())
                loss_value = float(loss.detach())
                loss_sum += loss_value * n
                correct += int((main.detach().argmax(1) == y).sum())
                seen += n
                elapsed = time.perf_counter() - run_start
                done = self.step - steps_at_start
                eta = elapsed / done * max(total_steps - self.step, 0) if done else 0.0
                dt = max(time.perf_counter() - t0, 1e-9)
                yield ev.BatchEnded(self.epoch + 1, b, batches, self.step, loss_value, lr, n / dt, eta)
            if cancel.cancelled:
                break
            if seen == 0:
                self._check_root()
                raise DataError("No image of the training set could be read in this epoch.")
            val_loss, val_acc, per_class = yield from self._evaluate(cancel)
            if cancel.cancelled:
                break
            self._check_finite(val_loss)
            self.epoch += 1
            metric = val_loss if val_loss is not None else loss_sum / seen
            is_best = self.best_val_loss is None or metric < self.best_val_loss
            if is_best:
                self.best_val_loss, self.best_epoch = metric, self.epoch
                self.best_state = _state_copy(model)
                stale = 0
            else:
                stale += 1
            record = ev.EpochEnded(
                self.epoch,
                cfg.epochs,
                loss_sum / seen,
                correct / seen,
                val_loss,
                val_acc,
                tuple(per_class),
                max(g["lr"] for g in self.optimizer.param_groups),
                time.perf_counter() - epoch_start,
                is_best,
            )
            self.history.append(record.to_dict())
            self._rng_state = torch.get_rng_state()
            yield record
            if cfg.early_stopping and stale >= cfg.early_stopping and self.epoch < cfg.epochs:
                stopped_early = True
                yield ev.Message(
                    "info", f"Early stopping: validation loss has not improved for {stale} epochs."
                )
                break
        self._restore_best()
        if cancel.cancelled:
            yield ev.Cancelled(self.epoch)
            return
        best_acc = None
        if self.best_epoch is not None:
            best_acc = (
                self.history[self.best_epoch - 1].get("val_accuracy")
                if self.best_epoch <= len(self.history)
                else None
            )
        if self.best_epoch is not None and self.best_epoch != self.epoch:
            yield ev.Message("info", f"Kept the weights of {self.kept_because()}.")
        yield ev.Finished(self.epoch, self.best_epoch, self.best_val_loss, best_acc, stopped_early)

    def kept_because(self) -> str:
        """Which epoch's weights the model holds, and why (for the log and model.json)."""
        if self.best_epoch is None:
            return "no epoch finished"
        measure = "validation loss" if self.split is not None and self.split.val else "training loss"
        later = " (later epochs did not lower it)" if self.best_epoch != self.epoch else ""
        return (
            f"epoch {self.best_epoch} of {self.epoch}, the lowest {measure} ({self.best_val_loss:.4f}){later}"
        )

    def _kept(self) -> str:
        if self.best_epoch is None:
            return "No epoch finished with finite weights, so there is no model to keep."
        return f"The best model so far (epoch {self.best_epoch}) is kept."

    def _check_finite(self, val_loss: float | None) -> None:
        """An epoch that ends with NaN or infinite weights (or validation loss) ends the run."""
        bad = next(
            (n for n, p in self.model.named_parameters() if p.requires_grad and not bool(p.isfinite().all())),
            None,
        )
        if bad is None and (val_loss is None or math.isfinite(val_loss)):
            return
        what = f"the weights of {bad}" if bad else f"the validation loss ({val_loss})"
        raise TrainingError(
            f"Training diverged in epoch {self.epoch + 1}: {what} became NaN or infinite. "
            f"Try a lower learning rate (now {self.config.lr:g}). {self._kept()}"
        )

    def _maybe_unfreeze(self, spec: FreezeSpec) -> ev.BlocksUnfrozen | None:
        assert self.optimizer is not None
        blocks = self.blocks
        wanted = min(self.epoch // max(spec.unfreeze_every, 1), len(blocks))
        if wanted <= self.unfrozen_blocks:
            return None
        before = set(trainable_names(self.model))
        self._freeze(spec, wanted)
        new = [n for n in trainable_names(self.model) if n not in before]
        for group in group_parameters(
            self.model,
            self._units(),
            self.config.lr,
            self.config.weight_decay,
            self.config.lr_decay,
            only=new,
        ):
            # New groups join the optimizer; existing groups keep their state (momentum, Adam moments).
            self.optimizer.add_param_group(group)
        names = tuple(".".join(b[:1]) for b in blocks[len(blocks) - wanted :])
        return ev.BlocksUnfrozen(self.epoch + 1, names, count_params(self.model)[0])

    def _report_failures(self, batch: Any, samples: list[Any]) -> Iterator[ev.Event]:
        for index, reason in batch.failed:
            rel = samples[index].path
            if rel not in self.skipped:
                self.skipped[rel] = reason
                yield ev.FileSkipped(rel, reason)

    def _check_root(self) -> None:
        assert self.scan is not None
        if not os.path.isdir(self.scan.root):
            raise DataError(f"The dataset folder {self.scan.root} is no longer there; training stopped.")

    def _evaluate(self, cancel: CancelToken) -> Iterator[ev.Event]:
        """Validation loss, accuracy and per-class accuracy (None values without a val split)."""
        assert self.scan is not None and self.split is not None
        k = len(self.scan.classes)
        if not self.split.val:
            return None, None, [None] * k
        self._set_eval_mode()
        loss_sum, correct, seen = 0.0, 0, 0
        hits = torch.zeros(k, dtype=torch.long)
        totals = torch.zeros(k, dtype=torch.long)
        with torch.inference_mode():
            for batch in self._batches(train=False):
                if cancel.cancelled:
                    return None, None, [None] * k
                yield from self._report_failures(batch, self.split.val)
                if batch.images.numel() == 0:
                    continue
                x = batch.images.to(self.device)
                y = batch.labels.to(self.device)
                logits = self._forward(x).float()
                loss_sum += float(F.cross_entropy(logits, y, reduction="sum"))
                ok = (logits.argmax(1) == y).cpu()
                correct += int(ok.sum())
                seen += int(y.numel())
                totals += torch.bincount(y.cpu(), minlength=k)
                hits += torch.bincount(y.cpu()[ok], minlength=k)
        if seen == 0:
            self._check_root()
            return None, None, [None] * k
        per_class = [float(h) / float(t) if t else None for h, t in zip(hits.tolist(), totals.tolist())]
        return loss_sum / seen, correct / seen, per_class

    def _restore_best(self) -> None:
        if self.best_state is not None and self.built is not None:
            self.model.load_state_dict(self.best_state)

    # ------------------------------------------------------------ checkpoints (see checkpoint.py)

    def checkpoint_state(self) -> dict[str, Any]:
        """Everything needed to resume, as tensors and plain values (loads with weights_only=True)."""
        from .checkpoint import checkpoint_state

        return checkpoint_state(self)

    def save_checkpoint(self, path: str | os.PathLike[str]) -> Path:
        from .export import atomic_torch_save

        return atomic_torch_save(self.checkpoint_state(), path)

    @classmethod
    def from_checkpoint(
        cls,
        path: str | os.PathLike[str],
        data_dir: str | None = None,
        epochs: int | None = None,
        device: str | None = None,
    ) -> Trainer:
        """Resume a run: same freeze state, optimizer state, schedule position and split."""
        from .checkpoint import restore

        return restore(cls, path, data_dir, epochs, device)


def is_out_of_memory(exc: BaseException) -> bool:
    """CUDA, MPS and host allocators word it differently."""
    text = str(exc).lower()
    return isinstance(exc, (torch.cuda.OutOfMemoryError, MemoryError)) or any(
        m in text for m in ("out of memory", "can't allocate memory", "cannot allocate memory")
    )


def _oom_message(exc: BaseException, cfg: TrainConfig) -> str:
    return (
        f"Out of memory during training ({str(exc).splitlines()[0][:120]}). "
        f"Try a smaller batch size (now {cfg.batch_size}) or image size."
    )


def run_to_end(
    trainer: Trainer, cancel: CancelToken | None = None, on_event: Callable[[ev.Event], None] | None = None
) -> ev.Event:
    """Run and return the final event (Finished, Cancelled or Failed)."""
    last: ev.Event | None = None
    for event in trainer.run(cancel):
        if on_event:
            on_event(event)
        last = event
    assert last is not None
    return last
