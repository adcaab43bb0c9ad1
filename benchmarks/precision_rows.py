"""bench_training's precision rows: ftgui with --precision fp32 against the same run in bf16
(and what ``auto`` picks), in one process, with how close each runs to the processor's peak.

Peak = threads x FLOPs per cycle x the clock /proc/cpuinfo reports. FLOPs per cycle per core
are assumed from the instruction set: 32 fp32 (two 256-bit FMA pipes, AMD Zen 4; Intel server
cores with two 512-bit FMA units do 64) and twice that in bf16 where AVX-512 BF16 or AMX is
present. A processor boosting above its reported clock can show more than 100 %.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import torch

from ftgui.core.base import events as ev
from ftgui.core.compute.precision import native_bf16
from ftgui.core.models.freeze import FreezePlan
from ftgui.core.training.config import TrainConfig
from ftgui.core.training.engine import Trainer


def clock_hz() -> float:
    try:
        with open("/proc/cpuinfo") as fh:
            mhz = [float(line.split(":")[1]) for line in fh if line.startswith("cpu MHz")]
        return max(mhz) * 1e6 if mhz else 0.0
    except OSError:
        return 0.0


def peak_flops() -> dict[str, float]:
    """fp32 and bf16 FLOP/s this process could reach at best (see the module's note)."""
    per_cycle = 32.0
    threads = torch.get_num_threads()
    hz = clock_hz()
    return {"fp32": threads * per_cycle * hz, "bf16": threads * per_cycle * (2 if native_bf16() else 1) * hz}


def flops_per_image(arch: str, strategy: str, size: int, forward_only: bool) -> float:
    """FLOPs of one image's training step (forward, and backward of what trains under
    ``strategy``) or of one forward pass, counted by torch's FlopCounterMode."""
    from torch.utils.flop_counter import FlopCounterMode

    from ftgui.core.models import build_model

    built = build_model(arch, 4, "none", size)
    FreezePlan.parse(strategy).apply(built.model, 0)
    x = torch.randn(2, 3, size, size)
    with FlopCounterMode(display=False) as counter:
        if forward_only:
            built.model.eval()
            with torch.no_grad():
                built.model(x)
        else:
            built.model.train()
            built.model(x).float().sum().backward()
    return counter.get_total_flops() / 2


def ftgui_seconds(data: Path, arch: str, strategy: str, epochs: int, precision: str) -> tuple[float, str]:
    """Wall time of an ftgui run (weights none, SGD at a constant rate) and its precision line."""
    cfg = TrainConfig(
        data_dir=str(data), arch=arch, weights="none", freeze=FreezePlan.parse(strategy), epochs=epochs,
        batch_size=32, lr=1e-3, optimizer="sgd", schedule="constant", seed=0, device="cpu",
        precision=precision,
    )  # fmt: skip
    said = ""
    t0 = time.perf_counter()
    final = None
    for e in Trainer(cfg).run():
        if isinstance(e, ev.Message) and e.text.startswith("Precision: "):
            said = e.text.removeprefix("Precision: ").rstrip(".")
        final = e
    assert isinstance(final, ev.Finished), final
    return time.perf_counter() - t0, said


ROWS: list[tuple[str, str, str, int, float | None, bool]] = [
    # name, arch, strategy, epochs, goal (bf16 / fp32 speed-up), forward only (a cache fill)
    ("ResNet18 full fine-tuning", "resnet18", "full", 1, 1.7, False),
    ("ConvNeXt-T last-1", "convnext_tiny", "last-1", 1, None, False),
    ("ViT-B/16 head only (cache fill)", "vit_b_16", "head", 1, 1.6, True),
    ("MobileNet v3 full (auto must pick fp32)", "mobilenet_v3_large", "full", 1, None, False),
]


def precision_rows(
    data: Path, train_images: int, val_images: int, report: Callable[[str], None]
) -> list[tuple[str, ...]]:
    """One row per model: fp32 and bf16 seconds, bf16's speed-up, share of the peak, and what
    auto chose (its trial remembered in the work folder's cache, as on a user's machine)."""
    peak = peak_flops()
    report(
        f"peak assumed: fp32 {peak['fp32'] / 1e9:.0f} GFLOP/s, bf16 {peak['bf16'] / 1e9:.0f} GFLOP/s "
        f"({torch.get_num_threads()} threads x 32{' / 64' if native_bf16() else ''} FLOPs per cycle x "
        f"{clock_hz() / 1e9:.2f} GHz reported; native bf16: {native_bf16() or 'none'})"
    )
    rows = []
    for name, arch, strategy, epochs, goal, forward_only in ROWS:
        # Training images take a step (or, cached, one forward pass), validation images a
        # forward pass each epoch; the end-of-run report reuses the last epoch's.
        step = flops_per_image(arch, strategy, 224, forward_only)
        forward = flops_per_image(arch, strategy, 224, True)
        work = (step * train_images + forward * val_images) * epochs
        seconds: dict[str, float] = {}
        for precision in ("fp32", "bf16"):
            seconds[precision], _ = ftgui_seconds(data, arch, strategy, epochs, precision)
        _, auto = ftgui_seconds(data, arch, strategy, epochs, "auto")
        gain = seconds["fp32"] / seconds["bf16"]
        share = {p: work / seconds[p] / peak[p] if peak[p] else float("nan") for p in seconds}
        verdict = "-" if goal is None else f"{'OK' if gain >= goal else 'MISS'} (goal {goal:g}x)"
        row = (
            name, f"{seconds['fp32']:.1f}s", f"{seconds['bf16']:.1f}s", f"{gain:.2f}x {verdict}",
            f"peak fp32 {100 * share['fp32']:.0f}% bf16 {100 * share['bf16']:.0f}%", f"auto: {auto}",
        )  # fmt: skip
        report("  " + " | ".join(row))
        rows.append(row)
    return rows
