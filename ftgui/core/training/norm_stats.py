"""BatchNorm statistics adapted to the user's images before training ("AdaBN").

A pretrained network's BatchNorm layers normalise with the mean and variance of the images it was
trained on (ImageNet's, for torchvision's and timm's weights). Frozen layers keep them, so on
images unlike those (microscopy, drawings, scans, another camera) every frozen layer normalises
with numbers that do not fit, and the new head learns from distorted features. fastai trains the
BatchNorm layers of the frozen body for this reason (``train_bn``), which runs the whole body
forwards and backwards at every step: the frozen-layer cache is then impossible.

Adapting the statistics costs one forward pass over the training images, once, before the
cache is filled: each BatchNorm layer's running mean and variance become those of its input over
the training images, the layers before it normalising with batch statistics as in training (Li
et al., "Revisiting Batch Normalization for Practical Domain Adaptation", 2016). No weight changes.
``benchmarks/bench_accuracy.py`` measured what it gives (the README's strategies section).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Generator, Iterable, Sequence
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from ftgui.core.base import events as ev
from ftgui.core.compute.precision import FP32, Precision
from ftgui.core.data.images import Batch
from ftgui.core.data.samples import Sample, Split

if TYPE_CHECKING:
    from ftgui.core.training.batches import BatchSource

_BN = nn.modules.batchnorm._BatchNorm


def batchnorm_layers(model: nn.Module) -> list[nn.modules.batchnorm._BatchNorm]:
    """The BatchNorm layers that keep running statistics (the ones adaptation changes)."""
    return [m for m in model.modules() if isinstance(m, _BN) and m.track_running_stats]


def keeps_pretrained_statistics(model: nn.Module) -> bool:
    """Whether a BatchNorm layer is frozen (eval mode in training: its statistics never move).
    Only then is adaptation worth its pass; trainable ones adapt as they train."""
    return any(not any(p.requires_grad for p in m.parameters()) for m in batchnorm_layers(model))


def adapt_batchnorm(
    model: nn.Module,
    batches: Iterable[Batch],
    forward: Callable[[torch.Tensor], Any],
    total: int,
    cancel: ev.CancelToken,
    precision: Precision = FP32,
) -> Generator[ev.Event, None, int | None]:
    """Set every BatchNorm layer's running statistics to those of the images in ``batches``.

    Yields ``Preparing("adapting", done, total)``; returns the number of layers changed (0: the
    model has none, or no image could be read), or None when cancelled (nothing is changed then)."""
    layers = batchnorm_layers(model)
    if not layers:
        return 0
    sums: dict[int, list[Any]] = {}  # per layer: sum, sum of squares (float64), values per channel

    def record(mod: nn.Module, args: tuple[Any, ...]) -> None:
        x = args[0].detach().double()
        dims = [d for d in range(x.dim()) if d != 1]
        s = sums.setdefault(id(mod), [0.0, 0.0, 0])
        s[0] = s[0] + x.sum(dims)
        s[1] = s[1] + (x * x).sum(dims)
        s[2] += x.numel() // x.shape[1]

    modes = {m: m.training for m in model.modules()}
    momenta = {m: m.momentum for m in layers}
    hooks = [m.register_forward_pre_hook(record) for m in layers]
    done = 0
    try:
        model.eval()
        for m in layers:
            m.train()  # batch statistics inside the pass, as in training
            m.momentum = 0.0  # ... without moving the running values while it runs
        with torch.no_grad():
            for batch in batches:
                if cancel.cancelled:
                    return None
                if len(batch.images) > 1:  # (BatchNorm cannot normalise one 1x1 map with its own statistics)
                    with precision.autocast("infer"):
                        forward(batch.images)
                done += len(batch.indices)
                yield ev.Preparing("adapting", min(done, total), total)
    finally:
        for h in hooks:
            h.remove()
        for module, mode in modes.items():
            module.training = mode
        for layer, momentum in momenta.items():
            layer.momentum = momentum
    changed = 0
    for m in layers:
        got = sums.get(id(m))
        if got is None or got[2] < 2:
            continue
        s1, s2, n = got
        mean = s1 / n
        var = (s2 / n - mean * mean).clamp_min(0.0) * (n / (n - 1))  # unbiased, as BatchNorm keeps it
        assert m.running_mean is not None and m.running_var is not None
        m.running_mean.copy_(mean.to(m.running_mean.dtype))
        m.running_var.copy_(var.to(m.running_var.dtype))
        changed += 1
    return changed


# auto: the images' statistics are "clearly different" when the first BatchNorm layer's mean moves
# by more than MEAN_SHIFT of its pretrained standard deviation, or its variance by more than a
# factor e**LOG_VAR_RATIO (channel averages). bench_accuracy.py's settings chose them: the drawn
# shapes and the textures on the photograph stand-in measured 0.17-0.35 and 1.0-1.1 (adapting
# gained 4-8 points on the shapes), the digits on the digits stand-in 0.02 and 0.08 (it lost 1-4).
MEAN_SHIFT = 0.1
LOG_VAR_RATIO = 0.5
AUTO_PROBE = 512  # images auto measures first (a seeded sample); all of them only if it adapts
# Fewer training images than this give variances too unreliable to normalise with (4 nearly
# uniform images gave variances of 3e-4 and a run that went to NaN): the statistics are kept.
MIN_IMAGES = 32


def first_layer_shift(
    layer: nn.modules.batchnorm._BatchNorm, mean: torch.Tensor, var: torch.Tensor
) -> tuple[float, float]:
    """How far ``layer``'s statistics are from (``mean``, ``var``): the mean's move in standard
    deviations and the variance's |log ratio|, averaged over channels."""
    assert layer.running_mean is not None and layer.running_var is not None
    eps = layer.eps
    moved = ((layer.running_mean - mean).abs() / (var + eps).sqrt()).mean()
    ratio = ((layer.running_var + eps).log() - (var + eps).log()).abs().mean()
    return float(moved), float(ratio)


def adapt_run(
    model: nn.Module,
    source: BatchSource,
    split: Split,
    channels_last: bool,
    mode: str,
    cancel: ev.CancelToken,
    precision: Precision = FP32,
) -> Generator[ev.Event, None, bool]:
    """A run's BatchNorm statistics before its first step (``mode`` adapt, keep or auto), from
    its training images as they are decoded for training (without augmentation); ends with a
    line for the log. True when it is settled (also when nothing was to do).

    Under torchrun every process passes all the training images in the same batches as one
    process would (not its shard): inside the pass the layers normalise with batch statistics,
    so shards would give other statistics, and a run on two processes other weights than on one."""
    start = time.perf_counter()
    layers = batchnorm_layers(model)
    if mode == "keep" or not keeps_pretrained_statistics(model):
        return True
    if len(split.train) < MIN_IMAGES:
        yield ev.Message(
            "info",
            f"BatchNorm statistics kept: {len(split.train)} training images are too few to measure "
            f"them (adapting takes {MIN_IMAGES} or more).",
        )
        return True
    saved = [(m.running_mean.clone(), m.running_var.clone()) for m in layers]  # type: ignore[union-attr]

    def restore() -> None:
        for m, (mean, var) in zip(layers, saved):
            m.running_mean.copy_(mean)  # type: ignore[union-attr]
            m.running_var.copy_(var)  # type: ignore[union-attr]

    def whole(x: torch.Tensor) -> Any:
        return model(x.contiguous(memory_format=torch.channels_last) if channels_last and x.dim() == 4 else x)

    def over(samples: Sequence[Sample]) -> Generator[ev.Event, None, int | None]:
        # Pixels not kept: with the frozen-layer cache next, keeping them costs gigabytes for nothing.
        batches = source.images(
            train=False, samples=samples, shard=False, merge_single=True, keep_pixels=False
        )
        return (yield from adapt_batchnorm(model, batches, whole, len(samples), cancel, precision))

    samples: Sequence[Sample] = split.train
    if mode == "auto" and len(samples) > AUTO_PROBE:
        order = torch.randperm(len(samples), generator=torch.Generator().manual_seed(0))[:AUTO_PROBE]
        samples = [split.train[i] for i in sorted(order.tolist())]
    changed = yield from over(samples)
    why = ""
    if changed and mode == "auto":
        moved, ratio = first_layer_shift(layers[0], *saved[0])
        measured = f"first layer: mean {moved:.2f} standard deviations away, variance x{math.exp(ratio):.2f}"
        if moved < MEAN_SHIFT and ratio < LOG_VAR_RATIO:
            restore()
            yield ev.Message(
                "info",
                f"BatchNorm statistics kept: the training images' are close to the pretrained ones ({measured}).",
            )
            return True
        why = f"; they differ from the pretrained ones ({measured})"
        if len(samples) < len(split.train):
            changed = yield from over(split.train)
    if changed is None:
        restore()
        return False
    if changed:
        yield ev.Message(
            "info",
            f"BatchNorm statistics adapted to the {len(split.train)} training images ({changed} layers, "
            f"{time.perf_counter() - start:.0f} s){why}.",
        )
    return True
