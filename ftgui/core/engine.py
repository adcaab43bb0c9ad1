"""The training engine: one loop for the window, the command line and the tests.

``Trainer.run()`` is a generator of events (see ``events.py``); it checks a cancellation
token before every batch and never raises for problems the user can act on: it yields
``Failed`` with a readable message instead. Its parts live beside it: the configuration
(``config.py``), the device and out-of-memory handling (``device.py``), the batch source
(``batches.py``), the frozen-prefix cache (``prefix_cache.py``), the training step
(``step.py``), the run's state (``state.py``) and checkpoints (``checkpoint.py``). Under
torchrun (``distributed.py``) the same loop runs on every rank, the trainable part of the
model wrapped in DistributedDataParallel, each rank on its shard of every batch.
"""

from __future__ import annotations

import math
import os
import time
import traceback
from collections.abc import Callable, Generator, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from . import events as ev
from .batches import BatchSource
from .checkpoint import checkpoint_record, read_checkpoint, requested_record
from .config import TrainConfig
from .data import Batch, Sample, ScanResult, Split, scan_folder, split_samples
from .device import is_out_of_memory, oom_message
from .distributed import SINGLE, AgreedStop, World, collective_message, is_collective_failure
from .errors import DataError, FtguiError, TrainingError
from .events import CancelToken
from .freeze import NothingTrains
from .layers import count_params, head_names, model_blocks, train_mode, trainable_names
from .models import BuiltModel, Preprocess, build_model
from .optim import group_parameters, lr_factor, make_optimizer, set_lr
from .prefix_cache import FrozenPrefix
from .recipe import choose_lr
from .state import TrainerState
from .step import Clock, DistributedStep, NonFiniteLoss, Tally, TrainStep, first_non_finite, split_logits

if TYPE_CHECKING:
    from .evaluate import Evaluation

__all__ = ["CancelToken", "TrainConfig", "Trainer", "run_to_end"]


class Trainer:
    """A fine-tuning run. ``prepare()`` scans data and builds the model; ``run()`` trains."""

    def __init__(self, config: TrainConfig, allow_download: bool = True, world: World = SINGLE) -> None:
        self.config = config
        self.allow_download = allow_download
        self.world = world  # the processes of a torchrun job; one process otherwise
        self.requested = requested_record(config)  # as asked for, before prepare() picks the rate
        self.ddp: nn.Module | None = None  # DistributedDataParallel over the trainable part
        self.scan: ScanResult | None = None
        self.split: Split | None = None
        self.built: BuiltModel | None = None
        self.optimizer: torch.optim.Optimizer | None = None
        self.device = torch.device("cpu")
        self.state = TrainerState()
        self.source: BatchSource | None = None
        self.prefix: FrozenPrefix | None = None
        self._channels_last = False
        self.evaluation: Evaluation | None = None  # the latest evaluation of this model

    # ------------------------------------------------------------ what the run holds

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

    @property
    def epoch(self) -> int:
        return self.state.epoch

    @property
    def history(self) -> list[dict[str, Any]]:
        return self.state.history

    @property
    def best_epoch(self) -> int | None:
        return self.state.best_epoch

    @property
    def skipped(self) -> dict[str, str]:
        return self.state.skipped

    @property
    def blocks(self) -> list[list[str]]:
        return model_blocks(self.model, self.built.head) if self.built else []

    @property
    def preprocess(self) -> Preprocess:
        assert self.built is not None
        return self.built.preprocess

    # ------------------------------------------------------------ set-up

    def prepare(
        self, scan: ScanResult | None = None, built: BuiltModel | None = None, split: Split | None = None
    ) -> None:
        """Scan the folder, split it (or take ``split``, a job's file lists), build the model (or
        take ``built``), freeze, make the optimizer.

        Raises :class:`FtguiError` with a readable message on bad input.
        """
        cfg = self.config
        cfg.validate()
        device = self.world.device(cfg.device)
        self.scan = scan or scan_folder(cfg.data_dir)
        self.split = split or split_samples(self.scan, cfg.val_fraction, cfg.seed)
        if not self.split.train:
            raise DataError("No training images left after the split; lower the validation fraction.")
        torch.manual_seed(cfg.seed)
        built = built or build_model(
            cfg.arch, len(self.scan.classes), cfg.weights, cfg.image_size, allow_download=self.allow_download
        )
        cfg.freeze.apply(built.model, 0)
        if not any(p.requires_grad for p in built.model.parameters()):
            raise NothingTrains()
        self._attach(built, device)
        choose_lr(self)  # the strategy's default, auto (a range test) or the user's; and why
        for rel, reason in self.scan.skipped:
            self.state.skipped.setdefault(rel, reason)

    def _attach(self, built: BuiltModel, device: torch.device) -> None:
        """Take the model onto the device and set up the batch source and the cache."""
        assert self.scan is not None and self.split is not None
        self.built, self.device = built, device
        built.model.to(device)
        arch = built.arch
        choice = self.config.channels_last
        # Channels-last convolutions are 20-30% faster on CPU (oneDNN) and on CUDA with AMP.
        self._channels_last = (
            choice if choice is not None else not arch.startswith(("vit_", "swin", "maxvit"))
        )
        if self._channels_last:
            built.model.to(memory_format=torch.channels_last)
        self.source = BatchSource(
            self.scan.root, self.split, built.preprocess, self.config, device.type == "cuda", self.world
        )
        self.prefix = FrozenPrefix(self.source, built, device)
        self._prepare_world()
        self._wrap()

    def _prepare_world(self) -> None:
        """Refuse what several processes cannot do, before any slow work; SyncBatchNorm."""
        world, cfg = self.world, self.config
        if cfg.sync_bn and not world.active:
            return  # one process: nothing to synchronise, the option is a no-op
        if cfg.sync_bn and self.device.type != "cuda":
            raise FtguiError(
                "--sync-bn needs CUDA GPUs: torch's SyncBatchNorm runs only there. On the CPU train "
                "without it (each process then normalises over its own share of the batch)."
            )
        bn_trains = any(
            isinstance(m, nn.modules.batchnorm._BatchNorm) and any(p.requires_grad for p in m.parameters())
            for m in self.model.modules()
        )
        if world.active and bn_trains and not cfg.sync_bn and cfg.batch_size < 2 * world.size:
            raise FtguiError(
                f"--batch-size is the batch of all {world.size} processes together; with BatchNorm "
                f"training each process needs at least 2 images of it: use --batch-size "
                f"{2 * world.size} or more."
            )
        if cfg.sync_bn:
            assert self.built is not None
            self.built.model = nn.SyncBatchNorm.convert_sync_batchnorm(self.built.model)

    def _wrap(self) -> None:
        """DistributedDataParallel over the model's trainable part, with the trainer's forward
        (the cached suffix or the whole model). DDP fixes its parameter set when it wraps, so
        gradual unfreezing wraps again; the optimizer and its state stay."""
        if not self.world.active:
            return
        from torch.nn.parallel import DistributedDataParallel

        ids = [self.device.index] if self.device.type == "cuda" else None
        self.ddp = DistributedDataParallel(_TrainerForward(self.model, self.forward), device_ids=ids)

    def units(self) -> list[list[str]]:
        """The head, then the blocks from the last to the first (discriminative learning rates)."""
        assert self.built is not None
        return [head_names(self.model, self.built.head), *reversed(self.blocks)]

    def new_optimizer(self, only: set[str] | None = None) -> torch.optim.Optimizer:
        cfg = self.config
        assert isinstance(cfg.lr, float)
        groups = group_parameters(self.model, self.units(), cfg.lr, cfg.weight_decay, cfg.lr_decay, only)
        return make_optimizer(cfg.optimizer, groups, cfg.lr, cfg.momentum)

    # ------------------------------------------------------------ batches and modes

    def batches(self, train: bool, epoch: int | None = None) -> Iterator[Batch]:
        """The epoch's batches: cached activations when the frozen-prefix cache is active."""
        assert self.source is not None and self.prefix is not None
        epoch = self.state.epoch if epoch is None else epoch
        merge = train and any(
            isinstance(m, nn.modules.batchnorm._BatchNorm) and m.training for m in self.model.modules()
        )
        if self.prefix.active:
            return self.prefix.batches(train, epoch, merge)
        return self.source.images(train, epoch, merge_single=merge)

    def forward(self, x: torch.Tensor) -> Any:
        if x.dim() == 4 and self._channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        assert self.prefix is not None
        return self.prefix.forward(x) if self.prefix.active else self.model(x)

    def set_train_mode(self) -> None:
        assert self.prefix is not None
        self.prefix.train_mode() if self.prefix.active else train_mode(self.model)

    def set_eval_mode(self) -> None:
        assert self.prefix is not None
        self.model.eval()
        if self.prefix.active:
            self.prefix.eval_mode()

    def ensure_cache(self, cancel: CancelToken) -> Iterator[ev.Event]:
        """Build (or reuse) the frozen-prefix cache for the current freeze state, if it helps."""
        assert self.prefix is not None
        yield from self.prefix.ensure(cancel, self.report_failures)

    def train_step(self) -> TrainStep:
        assert self.optimizer is not None
        if self.world.active:
            return DistributedStep(
                self._ddp_forward, self.optimizer, self.device, self.config.amp, self.world, self._no_images
            )
        return TrainStep(self.forward, self.optimizer, self.device, self.config.amp)

    def _ddp_forward(self, x: torch.Tensor) -> Any:
        assert self.ddp is not None
        return self.ddp(x)

    def _no_images(self) -> torch.Tensor:
        """A batch of zero inputs of the right shape (a rank with nothing to read this step)."""
        assert self.prefix is not None
        if self.prefix.active:
            return torch.zeros((0, *self.prefix.feature_shape))
        size = self.preprocess.crop_size
        return torch.zeros((0, 3, size, size))

    # ------------------------------------------------------------ running

    def run(self, cancel: CancelToken | None = None) -> Iterator[ev.Event]:
        """Train to ``config.epochs``, yielding events. Ends with Finished, Cancelled or Failed."""
        # Under torchrun every rank stops at the same batch, whichever was asked to.
        stop = AgreedStop(cancel or CancelToken(), self.world)
        try:
            if not self.prepared:
                self.prepare()
            yield from self._run(stop)
        except FtguiError as exc:
            self._restore_best()
            yield ev.Failed(str(exc), self.epoch)
        except Exception as exc:  # a run ends with a message, whatever torch raises
            self._restore_best()
            first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            if is_out_of_memory(exc):
                msg = oom_message(exc, self.config.batch_size)
            elif self.world.active and is_collective_failure(exc):
                msg = collective_message(exc, self.world)
            else:
                msg = f"Training failed: {first}\n\n{traceback.format_exc(limit=3)}"
            yield ev.Failed(msg, self.epoch)

    def _run(self, cancel: CancelToken) -> Iterator[ev.Event]:
        cfg, st = self.config, self.state
        assert self.scan is not None and self.split is not None and self.optimizer is not None
        for w in self.scan.warnings:
            yield ev.Message("warning", w)
        for rel, reason in self.scan.skipped:
            yield ev.FileSkipped(rel, reason)
        trainable, total = count_params(self.model)
        batches = math.ceil(len(self.split.train) / cfg.batch_size)
        if cfg.lr_note and st.epoch == 0:
            yield ev.Message("info", f"Learning rate: {cfg.lr_note}.")
        yield ev.RunStarted(
            tuple(self.scan.classes), len(self.split.train), len(self.split.val), str(self.device),
            trainable, total, cfg.epochs, st.epoch, batches,
        )  # fmt: skip
        rng = st.rank_rng_state(self.world.rank, self.world.size)
        if rng is not None:
            torch.set_rng_state(rng)
        else:  # each rank its own stream (augmentation, dropout); rank 0's is one process's
            torch.manual_seed(cfg.seed + 1 + self.world.rank)
        clock = Clock(cfg.epochs * batches, st.step)
        step = self.train_step()
        stopped_early = False
        while st.epoch < cfg.epochs and not cancel.cancelled:
            if cfg.freeze.strategy == "gradual":
                unfrozen = self._maybe_unfreeze()
                if unfrozen:
                    yield unfrozen
            epoch_start = time.perf_counter()
            self._check_root()  # cached pixels and features would let a run go on without its folder
            yield from self.ensure_cache(cancel)
            if cancel.cancelled:
                break
            self.set_train_mode()
            tally = Tally(len(self.scan.classes))
            for b, batch in enumerate(self.batches(train=True), start=1):
                if cancel.cancelled:
                    break
                self.world.fault(st.epoch + 1, b, batches)
                yield from self.report_failures(batch, self.split.train)
                if batch.images.numel() == 0 and not self.world.active:
                    continue  # under torchrun the step runs anyway: every rank takes part
                t0 = time.perf_counter()
                lr = set_lr(self.optimizer, lr_factor(cfg.schedule, st.step, clock.total))
                try:
                    result = step(batch.images, batch.labels)
                except NonFiniteLoss as exc:
                    raise TrainingError(
                        f"The loss became {exc.value} at epoch {st.epoch + 1}, batch {b}. "
                        f"Try a lower learning rate (now {cfg.lr:g}). {self._kept()}"
                    ) from None
                st.step += 1
                if result.count == 0:
                    continue  # no rank could read an image of this batch
                tally.add_step(result)
                dt = max(time.perf_counter() - t0, 1e-9)
                yield ev.BatchEnded(
                    st.epoch + 1, b, batches, st.step, result.loss, lr, result.count / dt, clock.eta(st.step)
                )
            if cancel.cancelled:
                break
            if tally.loss is None or tally.accuracy is None:
                self._check_root()
                raise DataError("No image of the training set could be read in this epoch.")
            val = yield from self._evaluate(cancel)
            if cancel.cancelled:
                break
            self._check_finite(val.loss)
            yield from self._gather_skipped()
            is_best = st.end_epoch(val.loss if val.loss is not None else tally.loss, self.model)
            if self.world.active:
                st.rank_rng_states = self.world.gather(st.rng_state)
            record = ev.EpochEnded(
                st.epoch, cfg.epochs, tally.loss, tally.accuracy, val.loss, val.accuracy,
                tuple(val.per_class()), max(g["lr"] for g in self.optimizer.param_groups),
                time.perf_counter() - epoch_start, is_best,
            )  # fmt: skip
            st.history.append(record.to_dict())
            yield record
            if cfg.early_stopping and st.stale >= cfg.early_stopping and st.epoch < cfg.epochs:
                stopped_early = True
                yield ev.Message(
                    "info", f"Early stopping: validation loss has not improved for {st.stale} epochs."
                )
                break
        self._restore_best()
        if cancel.cancelled:
            yield ev.Cancelled(st.epoch)
            return
        if st.best_epoch is not None and st.best_epoch != st.epoch:
            yield ev.Message("info", f"Kept the weights of {self.kept_because()}.")
        yield ev.Finished(st.epoch, st.best_epoch, st.best_val_loss, st.best_val_accuracy(), stopped_early)

    def kept_because(self) -> str:
        """Which epoch's weights the model holds, and why (for the log and model.json)."""
        measure = "validation loss" if self.split is not None and self.split.val else "training loss"
        return self.state.kept_because(measure)

    def _kept(self) -> str:
        if self.state.best_epoch is None:
            return "No epoch finished with finite weights, so there is no model to keep."
        return f"The best model so far (epoch {self.state.best_epoch}) is kept."

    def _check_finite(self, val_loss: float | None) -> None:
        """An epoch that ends with NaN or infinite weights (or validation loss) ends the run."""
        bad = first_non_finite(self.model)
        if bad is None and (val_loss is None or math.isfinite(val_loss)):
            return
        what = f"the weights of {bad}" if bad else f"the validation loss ({val_loss})"
        raise TrainingError(
            f"Training diverged in epoch {self.epoch + 1}: {what} became NaN or infinite. "
            f"Try a lower learning rate (now {self.config.lr:g}). {self._kept()}"
        )

    def _maybe_unfreeze(self) -> ev.BlocksUnfrozen | None:
        """Gradual unfreezing: open the next block when its epoch comes; new parameters join the
        optimizer as new groups, existing groups keep their state (momentum, Adam moments)."""
        assert self.optimizer is not None
        blocks, st = self.blocks, self.state
        wanted = min(st.epoch // max(self.config.freeze.unfreeze_every, 1), len(blocks))
        if wanted <= st.unfrozen_blocks:
            return None
        before = set(trainable_names(self.model))
        self.config.freeze.apply(self.model, wanted)
        st.unfrozen_blocks = wanted
        self._wrap()
        new = {n for n in trainable_names(self.model) if n not in before}
        cfg, lr = self.config, self.config.lr
        assert isinstance(lr, float)
        for group in group_parameters(self.model, self.units(), lr, cfg.weight_decay, cfg.lr_decay, only=new):
            self.optimizer.add_param_group(group)
        names = tuple(".".join(b[:1]) for b in blocks[len(blocks) - wanted :])
        return ev.BlocksUnfrozen(st.epoch + 1, names, count_params(self.model)[0])

    def report_failures(self, batch: Batch, samples: Sequence[Sample]) -> Iterator[ev.Event]:
        for index, reason in batch.failed:
            rel = samples[index].path
            if rel not in self.state.skipped:
                self.state.skipped[rel] = reason
                yield ev.FileSkipped(rel, reason)

    def _gather_skipped(self) -> Iterator[ev.Event]:
        """Files other ranks could not read: known to every rank (and reported by rank 0)."""
        if not self.world.active:
            return
        for skipped in self.world.gather(dict(self.state.skipped)):
            for rel, reason in skipped.items():
                if rel not in self.state.skipped:
                    self.state.skipped[rel] = reason
                    yield ev.FileSkipped(rel, reason)

    def _check_root(self) -> None:
        assert self.scan is not None
        if not os.path.isdir(self.scan.root):
            raise DataError(f"The dataset folder {self.scan.root} is no longer there; training stopped.")

    def _evaluate(self, cancel: CancelToken) -> Generator[ev.Event, None, Tally]:
        """The validation pass: loss, accuracy, per class (an empty tally without validation images)."""
        assert self.scan is not None and self.split is not None
        tally = Tally(len(self.scan.classes))
        if not self.split.val:
            return tally
        self.set_eval_mode()
        with torch.inference_mode():
            for batch in self.batches(train=False):
                if cancel.cancelled:
                    return tally
                yield from self.report_failures(batch, self.split.val)
                if batch.images.numel():
                    logits = split_logits(self.forward(batch.images.to(self.device)))[0].float()
                    tally.add_logits(logits, batch.labels.to(self.device))
        tally = tally.reduced(self.world)  # the whole validation set's numbers, on every rank
        if tally.seen == 0:
            self._check_root()
        return tally

    def _restore_best(self) -> None:
        if self.state.best_state is not None and self.built is not None:
            self.model.load_state_dict(self.state.best_state)

    # ------------------------------------------------------------ checkpoints (see checkpoint.py)

    def checkpoint_state(self) -> dict[str, Any]:
        """Everything needed to resume, as tensors and plain values (loads with weights_only=True)."""
        assert self.built and self.optimizer and self.scan and self.split
        return checkpoint_record(
            self.config, self.built, self.optimizer, self.scan, self.split, self.state, self.requested
        )

    def save_checkpoint(self, path: str | os.PathLike[str]) -> Path:
        from .files import atomic_torch_save

        return atomic_torch_save(self.checkpoint_state(), path)

    @classmethod
    def from_checkpoint(
        cls,
        path: str | os.PathLike[str],
        data_dir: str | None = None,
        epochs: int | None = None,
        device: str | None = None,
        world: World = SINGLE,
    ) -> Trainer:
        """Resume a run: same freeze state, optimizer state, schedule position and split."""
        restored = read_checkpoint(path, data_dir, epochs, device)
        trainer = cls(restored.config, world=world)
        trainer.requested = restored.requested or trainer.requested
        trainer.scan, trainer.split, trainer.state = restored.scan, restored.split, restored.state
        trainer._attach(restored.built, world.device(restored.config.device))
        if trainer.state.best_state is not None:
            trainer.state.best_state = {k: v.to(trainer.device) for k, v in trainer.state.best_state.items()}
        trainer.optimizer = restored.optimizer(trainer.model)
        return trainer


class _TrainerForward(nn.Module):
    """The trainer's forward as a module for DistributedDataParallel: it holds the whole model
    (so DDP sees every trainable parameter) and calls the cached suffix or the whole model."""

    def __init__(self, model: nn.Module, forward: Callable[[torch.Tensor], Any]) -> None:
        super().__init__()
        self.model = model
        self._forward = forward

    def forward(self, x: torch.Tensor) -> Any:
        return self._forward(x)


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
