"""bench_accuracy.py --decide: the evidence behind the BatchNorm defaults, and the choice it gives.

For every ResNet18 setting (selection ones and the held-out one) and each of head, last-1 and
last-2, ftgui runs with its frozen BatchNorm layers' statistics kept, adapted to the training
images (``--bn-stats``) or trained at every step (``--train-bn``, fastai's way), over ``seeds``
seeds (each its own split), at its other defaults. It also measures how far the training images'
first-layer statistics are from the stand-in's (the quantity ``--bn-stats auto`` looks at).
``selection.py`` then picks each strategy's candidate and the auto threshold from the selection
settings only; the held-out setting is reported as the check.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import selection
import torch

CANDIDATES = {  # cheapest first
    "keep": {"bn_stats": "keep"},
    "adapt": {"bn_stats": "adapt"},
    "train": {"bn_stats": "keep", "train_bn": True},
}
STRATEGIES = ("head", "last-1", "last-2")


def first_layer_shift(data: Path, size: int, seed: int = 0) -> float:
    """The stand-in's first BatchNorm layer against the training images: the mean's move in
    standard deviations (what ``--bn-stats auto`` compares with MEAN_SHIFT)."""
    import torchvision.models as tvm
    from bench_accuracy import plain_loader, preprocess

    from ftgui.core.base import events as ev
    from ftgui.core.data.images import Batch
    from ftgui.core.data.samples import split_samples
    from ftgui.core.data.scan import scan_folder
    from ftgui.core.training.norm_stats import adapt_batchnorm, batchnorm_layers, first_layer_shift

    split = split_samples(scan_folder(data), 0.2, seed)
    model = tvm.resnet18(weights=tvm.ResNet18_Weights.DEFAULT).eval()
    first = batchnorm_layers(model)[0]
    assert first.running_mean is not None and first.running_var is not None
    mean, var = first.running_mean.clone(), first.running_var.clone()
    batches = [
        Batch(x, y, torch.arange(len(y)), [])
        for x, y in plain_loader(data, split.train, preprocess(size), False, seed)
    ]
    steps = adapt_batchnorm(model, batches, model, len(split.train), ev.CancelToken())
    for _ in steps:
        pass
    return first_layer_shift(first, mean, var)[0]


def decide(settings: list[Any], work: Path, seeds: int) -> None:
    from bench_accuracy import prepare_setting, run_ftgui

    from ftgui.core.models.freeze import FreezePlan

    measured: dict[str, dict[str, dict[str, float]]] = {}
    seconds: dict[tuple[str, str, str], float] = {}
    shift: dict[str, float] = {}
    held = {s.name for s in settings if s.held_out}
    for setting in settings:
        data = prepare_setting(setting, work)
        shift[setting.name] = first_layer_shift(data, setting.size)
        for strategy in STRATEGIES:
            row = measured.setdefault(setting.name, {}).setdefault(strategy, {})
            for name, options in CANDIDATES.items():
                opts = dict(options)
                plan = FreezePlan.parse(strategy, train_bn=bool(opts.pop("train_bn", False)))
                t0 = time.perf_counter()
                accs = [
                    run_ftgui(data, strategy, setting, freeze=plan, seed=s, **opts)[0] for s in range(seeds)
                ]
                seconds[setting.name, strategy, name] = time.perf_counter() - t0
                row[name] = float(np.mean(accs))
            print(
                f"[{setting.name}] {strategy}: " + ", ".join(f"{k} {100 * v:.1f}%" for k, v in row.items()),
                flush=True,
            )
    print(f"\nmean best-epoch validation accuracy over {seeds} seeds (time for all seeds); * held out")
    print(f"{'setting':<32} {'shift':>6} {'strategy':<8} " + " ".join(f"{c:>16}" for c in CANDIDATES))
    for name, rows in measured.items():
        for strategy, row in rows.items():
            cells = " ".join(
                f"{100 * row[c]:7.1f}% ({seconds[name, strategy, c]:4.0f} s)" for c in CANDIDATES
            )
            label = name + (" *" if name in held else "")
            print(f"{label:<32} {shift[name]:6.3f} {strategy:<8} {cells}")
    print()
    for strategy in STRATEGIES:
        chosen = selection.choose(measured, strategy, list(CANDIDATES), held)
        worst = max(selection.shortfalls(measured, strategy, chosen, [n for n in measured if n not in held]))
        check = selection.held_out_check(measured, strategy, chosen, held)
        print(
            f"{strategy}: choose {chosen} (at most {100 * worst:.1f} points below the best candidate "
            "of a selection setting); held out: "
            + (", ".join(f"{n} {100 * g:.1f} points below its best" for n, g in check.items()) or "-")
        )
    gains = {n: measured[n]["head"]["adapt"] - measured[n]["head"]["keep"] for n in measured if n not in held}
    line = selection.threshold({n: shift[n] for n in gains}, gains)
    print(
        "auto threshold from the head rows (mean shift where adapting starts to gain): "
        + (f"{line:.3f}" if line is not None else "none separates gains from losses")
    )
