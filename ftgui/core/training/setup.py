"""What a training run holds and how it is set up: data, model, freeze, optimizer, batches.

The run loop itself is ``engine.py``; this is everything it stands on, so the learning-rate
range test and the export record (``trained()``) need no loop.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path, PurePosixPath
from typing import Any

import torch
from torch import nn

from ftgui.core.base import events as ev
from ftgui.core.base.errors import CheckpointError, DataError, FtguiError
from ftgui.core.base.events import CancelToken
from ftgui.core.base.text import display_path
from ftgui.core.bundle.metadata import distributed_record
from ftgui.core.bundle.trained import TrainedModel
from ftgui.core.compute.distributed import SINGLE, World
from ftgui.core.compute.precision import FP32, Precision, RunShape, choose_precision
from ftgui.core.data.images import Batch
from ftgui.core.data.samples import Sample, ScanResult, Split, split_samples
from ftgui.core.data.scan import scan_folder
from ftgui.core.evaluation.metrics import Evaluation
from ftgui.core.models import BuiltModel, Preprocess, build_model, load_state
from ftgui.core.models.freeze import NothingTrains
from ftgui.core.models.layers import head_names, model_blocks, train_mode
from ftgui.core.training.batches import BatchSource
from ftgui.core.training.checkpoint import checkpoint_record, requested_record
from ftgui.core.training.config import TrainConfig
from ftgui.core.training.lr_finder import LRFinderResult, RangeTestRun, range_test
from ftgui.core.training.norm_stats import adapt_run
from ftgui.core.training.optim import group_parameters, make_optimizer
from ftgui.core.training.prefix_cache import FrozenPrefix
from ftgui.core.training.provenance import run_record
from ftgui.core.training.recipe import default_lr, resolve_lr
from ftgui.core.training.state import TrainerState
from ftgui.core.training.step import DistributedStep, TrainerForward, TrainStep


class TrainerBase:
    """What a fine-tuning run holds and how it is set up: ``prepare()`` scans data, builds the
    model, freezes and makes the optimizer. The loop is ``engine.Trainer.run()``."""

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
        self.precision: Precision = FP32  # what computes in bf16 (prepare() decides)
        self.evaluation: Evaluation | None = None  # the latest evaluation of this model
        self._gone_folders: set[str] = set()  # folders removed during the run (reported once each)
        self.norms_adapted = False  # BatchNorm statistics set to the training images' (ensure_cache)
        self.forced_precision: Precision | None = None  # a reproduction's recorded precision: no trial
        self.split_drawn = True  # the split came from the seed (not train/ and val/, nor a record)

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
        self.split_drawn = split is None and self.scan.presplit is None
        if not self.split.train:
            raise DataError("No training images left after the split; lower the validation fraction.")
        torch.manual_seed(cfg.seed)
        k, size = len(self.scan.classes), cfg.image_size
        built = built or build_model(cfg.arch, k, cfg.weights, size, self.allow_download, head_form=cfg.head)
        cfg.freeze.apply(built.model, 0)
        if not any(p.requires_grad for p in built.model.parameters()):
            raise NothingTrains()
        self._attach(built, device)
        self._choose_lr()  # the strategy's default, auto (a range test) or the user's; and why
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
            choice
            if choice is not None
            # Transformers gain nothing (a patch embedding, then tokens): torchvision's by name,
            # timm's by their patch embedding.
            else not (arch.startswith(("vit_", "swin", "maxvit")) or hasattr(built.model, "patch_embed"))
        )
        if self._channels_last:
            built.model.to(memory_format=torch.channels_last)
        self.source = BatchSource(
            self.scan.root, self.split, built.preprocess, self.config, device.type == "cuda", self.world
        )
        self.prefix = FrozenPrefix(self.source, built, device)
        self._prepare_world()
        self._choose_precision()
        self._wrap()

    def _choose_precision(self) -> None:
        """fp32 or bf16 for training and for the frozen layers (``compute/precision.py``); under
        torchrun every process computes as the first one chose."""
        cfg, built, prefix = self.config, self.built, self.prefix
        assert built is not None and prefix is not None
        run = RunShape(
            built.arch, built.preprocess.crop_size, cfg.batch_size, cfg.strategy, self._channels_last
        )
        chosen = self.forced_precision or choose_precision(
            cfg.precision, self.device, cfg.amp, lambda: run.trial(built.model)
        )
        self.precision = self.world.broadcast(chosen)  # every rank computes alike: rank 0's choice
        cfg.precision_note = self.precision.note
        prefix.precision = self.precision

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
        self.ddp = DistributedDataParallel(TrainerForward(self.model, self.forward), device_ids=ids)

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
        """Adapt the BatchNorm statistics to the training images (once, before the first step;
        norm_stats.py), then build (or reuse) the frozen-prefix cache for the freeze state."""
        assert self.prefix is not None and self.source is not None and self.split is not None
        cfg = self.config
        if self.state.step == 0 and not self.norms_adapted and not cfg.freeze.freeze_bn:
            self.norms_adapted = yield from adapt_run(
                self.model, self.source, self.split, self._channels_last, cfg.bn_stats, cancel, self.precision
            )
        yield from self.prefix.ensure(cancel, self.report_failures)

    def train_step(self) -> TrainStep:
        assert self.optimizer is not None
        if self.world.active:
            return DistributedStep(
                self._ddp_forward, self.optimizer, self.device, self.precision, self.world, self._no_images
            )
        return TrainStep(self.forward, self.optimizer, self.device, self.precision)

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

    def kept_because(self) -> str:
        """Which epoch's weights the model holds, and why (for the log and model.json)."""
        measure = "validation loss" if self.split is not None and self.split.val else "training loss"
        return self.state.kept_because(measure)

    def report_failures(self, batch: Batch, samples: Sequence[Sample]) -> Iterator[ev.Event]:
        """A line per file that could not be read; one for a whole folder removed during the run
        (a class folder deleted or moved away: not one warning per image)."""
        for index, reason in batch.failed:
            rel = samples[index].path
            if rel in self.state.skipped:
                continue
            self.state.skipped[rel] = reason
            gone = self._gone_folder(rel)
            if gone is None:
                yield ev.FileSkipped(rel, reason)
            elif gone not in self._gone_folders:
                self._gone_folders.add(gone)
                assert self.scan is not None
                count = sum(1 for s in self.scan.samples if s.path.startswith(gone + "/"))
                yield ev.Message(
                    "warning",
                    f"The folder {display_path(gone)}/ was removed during the run: its {count} images "
                    "are skipped from now on.",
                )

    def _gone_folder(self, rel: str) -> str | None:
        """The highest folder on the way to ``rel`` that is no longer there, if any."""
        if self.scan is None:
            return None
        parts = PurePosixPath(rel).parts[:-1]
        for i in range(1, len(parts) + 1):
            if not os.path.isdir(os.path.join(self.scan.root, *parts[:i])):
                return "/".join(parts[:i])
        return None

    def _restore_best(self) -> None:
        if self.state.best_state is not None and self.built is not None:
            load_state(self.model, self.state.best_state)

    # ------------------------------------------------------------ checkpoints (see checkpoint.py)

    def checkpoint_state(self) -> dict[str, Any]:
        """Everything needed to resume, as tensors and plain values (loads with weights_only=True)."""
        assert self.built and self.optimizer and self.scan and self.split
        return checkpoint_record(
            self.config, self.built, self.optimizer, self.scan, self.split, self.state, self.requested
        )

    def save_checkpoint(self, path: str | os.PathLike[str]) -> Path:
        from ftgui.core.base.files import atomic_torch_save

        return atomic_torch_save(self.checkpoint_state(), path)

    # ------------------------------------------------------------ learning rate and results

    def _choose_lr(self) -> None:
        """Set the run's learning rate (the strategy's default, auto, or the user's), the reason,
        and the optimizer that uses it."""
        cfg = self.config
        requested = cfg.lr
        quick = cfg.freeze.label == "head" and cfg.cache != "off" and not cfg.augment
        if requested == "auto" and quick:
            cfg.lr = default_lr(cfg.strategy).lr  # the range test needs an optimizer to start from
            self.optimizer = self.new_optimizer()
        choice = resolve_lr(cfg.strategy, requested, quick, self.find_lr)
        cfg.lr, cfg.lr_note = choice.lr, choice.reason
        self.optimizer = self.new_optimizer()

    def find_lr(
        self,
        steps: int = 100,
        progress: Callable[[int, int, float, float], None] | None = None,
        cancelled: Callable[[], bool] | None = None,
    ) -> LRFinderResult:
        """A learning-rate range test on this run's training data with its own training step
        (on the cached features where the frozen prefix is cached). Restores everything after."""
        if not self.prepared:
            self.prepare()
        assert self.optimizer is not None and isinstance(self.config.lr, float)
        for _ in self.ensure_cache(CancelToken()):
            pass
        return range_test(
            RangeTestRun(
                self.model, self.optimizer, self.train_step(), self.set_train_mode,
                lambda epoch: self.batches(train=True, epoch=epoch), self.config.lr, self.epoch,
                self.world.active,
            ),
            steps=steps, progress=progress, cancelled=cancelled,
        )  # fmt: skip

    def trained(self) -> TrainedModel:
        """The model as it stands and what its bundle records (for export and run records)."""
        if self.built is None or self.scan is None:
            raise CheckpointError("There is no trained model to export.")
        cfg = self.config
        return TrainedModel(
            built=self.built,
            scan=self.scan,
            split=self.split,
            training=cfg.to_dict(),
            distributed=distributed_record(self.world, cfg.batch_size, bool(cfg.sync_bn)),
            epochs_completed=self.epoch,
            best_epoch=self.best_epoch,
            weights_from=self.kept_because(),
            history=list(self.history),
            skipped=dict(self.skipped),
            evaluation=self.evaluation,
            run_id=self.state.run_id,
            reproducibility=run_record(cfg, self.precision, self.world, self.device, self.split_drawn),
        )
