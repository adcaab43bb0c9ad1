"""Evaluating a model on samples: batches streamed through it, three numbers kept per image."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

import torch
from torch import nn

from ftgui.core.compute.distributed import SINGLE, World
from ftgui.core.compute.precision import FP32, Precision
from ftgui.core.data.images import Batch, ImageListDataset, decode_threads, threaded_batches
from ftgui.core.data.samples import Sample
from ftgui.core.evaluation.metrics import Evaluation, outcomes, summarise_outcomes
from ftgui.core.models import Preprocess


def evaluate_model(
    model: nn.Module,
    preprocess: Preprocess,
    classes: list[str],
    root: str,
    samples: Sequence[Sample],
    batch_size: int = 32,
    progress: Callable[[int, int], None] | None = None,
    cancelled: Callable[[], bool] | None = None,
    world: World = SINGLE,
    precision: Precision = FP32,
) -> Evaluation | None:
    """Run ``model`` (eval mode) over ``samples``; unreadable files are left out. None if cancelled.

    Under torchrun each rank runs its shard and rank 0 gathers the outcomes and summarises (the
    other ranks return None): the report is exactly that of one process over every sample."""
    mine = world.shard(list(range(len(samples))))
    local = evaluate_outcomes(
        model, preprocess, root, [samples[i] for i in mine], batch_size, progress, cancelled, precision
    )
    if local is None:
        return None
    parts = world.gather(([mine[i] for i in local[0]], local[1]))
    if not world.main:
        return None
    order = [i for indices, _ in parts for i in indices]
    outputs = [rows for indices, rows in parts if indices]
    rows = torch.cat(outputs) if outputs else torch.empty(0, 3, dtype=torch.float64)
    rank = sorted(range(len(order)), key=order.__getitem__)  # back into the samples' order
    result = summarise_outcomes(classes, root, [samples[order[i]] for i in rank], rows[rank])
    result.requested = len(samples)
    return result


def evaluate_outcomes(
    model: nn.Module,
    preprocess: Preprocess,
    root: str,
    samples: Sequence[Sample],
    batch_size: int,
    progress: Callable[[int, int], None] | None = None,
    cancelled: Callable[[], bool] | None = None,
    precision: Precision = FP32,
) -> tuple[list[int], torch.Tensor] | None:
    """Positions of the readable ``samples`` and their :func:`outcomes` (CPU); None if cancelled.
    Streams: each batch's logits are reduced to three numbers per image at once."""
    device = next(model.parameters()).device
    ds = ImageListDataset(root, samples, preprocess)
    batches = [list(range(i, min(i + batch_size, len(samples)))) for i in range(0, len(samples), batch_size)]
    was_training = model.training
    model.eval()
    try:
        return _stream_outcomes(
            threaded_batches(ds, batches, decode_threads()), model, device, len(samples), progress, cancelled,
            precision,
        )  # fmt: skip
    finally:
        model.train(was_training)


def _stream_outcomes(
    batches: Iterable[Batch],
    forward: Callable[[torch.Tensor], torch.Tensor],
    device: torch.device,
    total: int,
    progress: Callable[[int, int], None] | None,
    cancelled: Callable[[], bool] | None,
    precision: Precision = FP32,
) -> tuple[list[int], torch.Tensor] | None:
    """Each batch's logits (under ``precision.infer``) reduced to :func:`outcomes` at once;
    (positions kept, outcomes), or None if cancelled."""
    kept: list[int] = []
    outputs: list[torch.Tensor] = []
    done = 0
    with torch.inference_mode(), precision.autocast("infer"):
        for batch in batches:
            if cancelled and cancelled():
                return None
            if batch.images.numel():
                logits = forward(batch.images.to(device)).float().cpu()
                outputs.append(outcomes(logits, batch.labels))
                kept.extend(batch.indices.tolist())
            done += len(batch.indices) + len(batch.failed)
            if progress:
                progress(done, total)
    if progress and done < total:
        progress(total, total)  # rows a cache lacks (unreadable files) are done too
    return kept, (torch.cat(outputs) if outputs else torch.empty(0, 3, dtype=torch.float64))
