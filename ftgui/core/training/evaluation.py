"""Evaluating a trainer's current model on its validation split (cached features where they match)."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import TYPE_CHECKING

import torch

from ftgui.core.evaluation.metrics import Evaluation, summarise_outcomes
from ftgui.core.evaluation.stream import _stream_outcomes, evaluate_model
from ftgui.core.training.state import weights_digest

if TYPE_CHECKING:
    from ftgui.core.training.engine import Trainer


def evaluate_trainer(
    trainer: Trainer,
    progress: Callable[[int, int], None] | None = None,
    cancelled: Callable[[], bool] | None = None,
) -> Evaluation | None:
    """Evaluate a trainer's current model on its validation split (under torchrun: together,
    the result on rank 0). With the frozen layers' output cached, only the trainable layers run
    on it (no image is decoded again); else the whole model runs on the images. Right after a
    run, the kept epoch's own validation pass is the evaluation (nothing runs again)."""
    assert trainer.split is not None and trainer.scan is not None
    samples = trainer.split.val or trainer.split.train
    kept = trainer.kept_outcomes
    if (
        kept is not None
        and trainer.split.val
        and weights_digest(trainer.model) == kept.digest
        and all(os.path.isfile(os.path.join(trainer.scan.root, samples[i].path)) for i in kept.positions)
    ):  # the same weights, and no file gone since (a file deleted during the run is reported)
        reused = summarise_outcomes(
            trainer.classes, trainer.scan.root, [samples[i] for i in kept.positions], kept.rows
        )
        reused.requested = len(samples)
        if progress:
            progress(len(samples), len(samples))
        return reused
    prefix = trainer.prefix
    if trainer.split.val and not trainer.world.active and prefix is not None and prefix.matches_model():
        local = _outcomes_from_cache(trainer, progress, cancelled)
        if local is None:
            return None
        cached = summarise_outcomes(
            trainer.classes, trainer.scan.root, [samples[i] for i in local[0]], local[1]
        )
        cached.requested = len(samples)
        return cached
    result = evaluate_model(
        trainer.model,
        trainer.preprocess,
        trainer.classes,
        trainer.scan.root,
        samples,
        batch_size=trainer.config.batch_size,
        progress=progress,
        cancelled=cancelled,
        world=trainer.world,
        precision=trainer.precision,
    )
    if result is not None and not trainer.split.val:
        result.split = "training"
    return result


def _outcomes_from_cache(
    trainer: Trainer,
    progress: Callable[[int, int], None] | None,
    cancelled: Callable[[], bool] | None,
) -> tuple[list[int], torch.Tensor] | None:
    """:func:`evaluate_outcomes` for the validation split, from its cached features."""
    assert trainer.split is not None
    was_training = trainer.model.training
    trainer.set_eval_mode()
    try:
        return _stream_outcomes(
            trainer.batches(train=False), trainer.forward, trainer.device, len(trainer.split.val),
            progress, cancelled, trainer.precision,
        )  # fmt: skip
    finally:
        if was_training:
            trainer.set_train_mode()
