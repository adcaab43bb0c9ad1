"""The range test's suggestion on curves the range test really produced (tests/core/data)."""

from __future__ import annotations

import json
import math
import random
from pathlib import Path

import pytest

from ftgui.core.training.lr_finder import suggest
from ftgui.core.training.recipe import choose_auto_lr

CURVES = json.loads((Path(__file__).parent / "data" / "lr_curves.json").read_text())["curves"]


def _final_fall(lrs: list[float], losses: list[float]) -> tuple[float, float]:
    """From the last rate where the loss is still within a fifth of the way down from its start
    to its minimum, to the minimum: an independent, cruder reading of where the curve falls."""
    low = min(range(len(losses)), key=lambda i: losses[i])
    level = sorted(losses[: len(losses) // 10])[len(losses) // 20]
    near_start = [i for i in range(low) if losses[i] >= level - 0.2 * (level - losses[low])]
    return lrs[near_start[-1] if near_start else 0], lrs[low]


@pytest.mark.parametrize("name", sorted(CURVES))
def test_the_suggestion_lies_in_the_final_fall_of_a_real_curve(name):
    lrs, losses = CURVES[name]["lrs"], CURVES[name]["losses"]
    s = suggest(lrs, losses)
    assert s is not None
    first, last = _final_fall(lrs, losses)
    assert first / 2 <= s <= last, (s, first, last)


def _noisy_start(lrs: list[float], losses: list[float], seed: int) -> list[float]:
    """The curve with the wandering of a running average of a few batches on its flat start:
    noise, and a dip, before the loss starts to fall."""
    rng = random.Random(seed)
    first, _ = _final_fall(lrs, losses)
    out = list(losses)
    for i, lr in enumerate(lrs):
        if lr < first / 3:
            out[i] += rng.gauss(0, 0.03) - (0.12 if 12 <= i <= 15 else 0)
    return out


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("name", ["digits32-default-head", "digits32-none-head"])
def test_a_dip_on_the_flat_noisy_start_is_not_the_answer(name, seed):
    """The window suggested 1.35e-06 on a flat noisy stretch of a head-only curve that falls from
    1e-3 to 1e-2; two epochs at that rate learned nothing (16 % for 5 classes)."""
    lrs, losses = CURVES[name]["lrs"], CURVES[name]["losses"]
    noisy = _noisy_start(lrs, losses, seed)
    s = suggest(lrs, noisy)
    first, last = _final_fall(lrs, losses)
    assert s is not None and first / 2 <= s <= last, (s, first, last)
    assert choose_auto_lr(s, noisy, "head").lr >= 3e-3


def test_no_suggestion_without_a_fall():
    lrs = [1e-7 * 10 ** (8 * i / 99) for i in range(100)]
    rng = random.Random(0)
    flat = [2.3 + rng.gauss(0, 0.02) for _ in lrs]
    assert suggest(lrs, flat) is None
    rising = [2.3 + 0.01 * i for i in range(100)]
    assert suggest(lrs, rising) is None
    assert suggest(lrs[:5], flat[:5]) is None


def test_suggestions_are_finite_rates_from_the_curve():
    for name, curve in CURVES.items():
        s = suggest(curve["lrs"], curve["losses"])
        assert s in curve["lrs"] and math.isfinite(s), name
