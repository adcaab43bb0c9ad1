"""The training engine: one loop for the window, the command line and the tests.

``Trainer.run()`` is a generator of events (see ``base/events.py``); it checks a cancellation
token before every batch and never raises for problems the user can act on: it yields
``Failed`` with a readable message instead. It stands on ``setup.TrainerBase`` (what the run
holds and its set-up) and on the parts beside it: the configuration (``config.py``), the batch
source (``batches.py``), the frozen-prefix cache (``prefix_cache.py``), the training step
(``step.py``), the run's state (``state.py``) and checkpoints (``checkpoint.py``); the device
and out-of-memory handling come from ``compute/``. Under torchrun (``compute/distributed.py``)
the same loop runs on every rank, the trainable part of the model wrapped in
DistributedDataParallel, each rank on its shard of every batch.
"""

from __future__ import annotations

import math
import os
import time
import traceback
from collections.abc import Callable, Generator, Iterator

import torch

from ftgui.core.base import events as ev
from ftgui.core.base.errors import DataError, FtguiError, TrainingError
from ftgui.core.base.events import CancelToken
from ftgui.core.compute.device import deterministic_algorithms, is_out_of_memory, oom_message
from ftgui.core.compute.distributed import (
    SINGLE,
    AgreedStop,
    World,
    collective_message,
    is_collective_failure,
)
from ftgui.core.evaluation.metrics import outcomes
from ftgui.core.models.layers import count_params, trainable_names
from ftgui.core.training.checkpoint import read_checkpoint
from ftgui.core.training.config import TrainConfig
from ftgui.core.training.optim import group_parameters, lr_factor, set_lr
from ftgui.core.training.setup import TrainerBase
from ftgui.core.training.state import KeptOutcomes, weights_digest
from ftgui.core.training.step import (
    Clock,
    NonFiniteLoss,
    Tally,
    first_non_finite,
    norms_fixed_for_one_image,
    split_logits,
)

__all__ = ["CancelToken", "TrainConfig", "Trainer", "run_to_end"]


class Trainer(TrainerBase):
    """A fine-tuning run. ``prepare()`` scans data and builds the model; ``run()`` trains."""

    # The kept epoch's validation outcomes, recorded during its validation pass: the report at
    # the end is built from them instead of running the validation images again.
    kept_outcomes: KeptOutcomes | None = None
    _last_outcomes: tuple[list[int], torch.Tensor] | None = None

    # ------------------------------------------------------------ running

    def run(self, cancel: CancelToken | None = None) -> Iterator[ev.Event]:
        """Train to ``config.epochs``, yielding events. Ends with Finished, Cancelled or Failed."""
        # Under torchrun every rank stops at the same batch, whichever was asked to.
        stop = AgreedStop(cancel or CancelToken(), self.world)
        self.kept_outcomes = None
        try:
            if not self.prepared:
                self.prepare()
            with deterministic_algorithms(self.config.deterministic):
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
        yield ev.Message("warning" if self.precision.slower else "info", f"Precision: {self.precision.note}.")
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
        best_outcomes: tuple[list[int], torch.Tensor] | None = None
        step = self.train_step()
        stopped_early = False
        while st.epoch < cfg.epochs and not cancel.cancelled:
            if cfg.freeze.strategy == "gradual":
                unfrozen = self._maybe_unfreeze()
                if unfrozen:
                    yield unfrozen
            epoch_start = time.perf_counter()
            self._check_root()  # cached pixels and features would let a run go on without its folder
            filling = time.perf_counter()
            yield from self.ensure_cache(cancel)
            clock.exclude(time.perf_counter() - filling)  # once, not each epoch: no ETA from it
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
                    with norms_fixed_for_one_image(self.model, batch.images):
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
            if is_best:
                best_outcomes = self._last_outcomes
            if self.world.active:
                st.rank_rng_states = self.world.gather(st.rng_state)
            record = ev.EpochEnded(
                st.epoch, cfg.epochs, tally.loss, tally.accuracy, val.loss, val.accuracy,
                tuple(val.per_class()), max(g["lr"] for g in self.optimizer.param_groups),
                time.perf_counter() - epoch_start, is_best, val.seen,
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
        # Only when the kept epoch was the last: files may have gone since an earlier one's pass.
        if best_outcomes is not None and st.best_epoch is not None and st.best_epoch == st.epoch:
            self.kept_outcomes = KeptOutcomes(best_outcomes[0], best_outcomes[1], weights_digest(self.model))
        if st.best_epoch is not None and st.best_epoch != st.epoch:
            yield ev.Message("info", f"Kept the weights of {self.kept_because()}.")
        yield ev.Finished(
            st.epoch,
            st.best_epoch,
            st.best_val_loss,
            st.best_val_accuracy(),
            stopped_early,
            st.best_val_images(),
        )

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
        self._last_outcomes = None
        if not self.split.val:
            return tally
        kept: list[int] = []
        rows: list[torch.Tensor] = []
        self.set_eval_mode()
        with torch.inference_mode(), self.precision.autocast("infer"):
            for batch in self.batches(train=False):
                if cancel.cancelled:
                    return tally
                yield from self.report_failures(batch, self.split.val)
                if batch.images.numel():
                    logits = split_logits(self.forward(batch.images.to(self.device)))[0].float()
                    tally.add_logits(logits, batch.labels.to(self.device))
                    rows.append(outcomes(logits.cpu(), batch.labels))
                    kept.extend(batch.indices.tolist())
        if not self.world.active and rows:  # the report of the kept epoch needs no second pass
            self._last_outcomes = (kept, torch.cat(rows))
        tally = tally.reduced(self.world)  # the whole validation set's numbers, on every rank
        if tally.seen == 0:
            self._check_root()
        return tally

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
