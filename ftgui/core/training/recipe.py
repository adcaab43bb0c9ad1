"""Default learning rates per strategy, and the automatic one (a range test on cached features).

The defaults come from ``benchmarks/bench_accuracy.py`` (real handwritten digits, a ResNet18
pretrained on other digits): a new head alone wants a rate ten times higher than a backbone
that trains with it. Everything here is Qt-free and deterministic for a given seed.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from ftgui.core.training.lr_finder import LRFinderResult

# Adam's learning rate for each strategy when the user sets none: the best of the benchmark's
# sweep in every setting (see the README's table). The fewer layers train, the higher the rate.
DEFAULT_LR = {"head": 3e-2, "last-1": 3e-3, "last": 1e-3, "gradual": 3e-3, "full": 1e-3, "custom": 1e-3}
# The range test's suggestion is trusted only this far from the strategy's default.
AUTO_SPAN = 10.0


@dataclass(frozen=True)
class LRChoice:
    lr: float
    reason: str  # one line for the log, the window and model.json
    from_curve: bool = False  # taken from a range test's curve (not the default's fallback)


def strategy_kind(strategy: str) -> str:
    if strategy in ("last", "last-1"):
        return "last-1"
    return "last" if strategy.startswith("last") else strategy


def default_lr(strategy: str) -> LRChoice:
    kind = strategy_kind(strategy)
    lr = DEFAULT_LR.get(kind, DEFAULT_LR["custom"])
    why = {
        "head": "a new head alone takes a high rate",
        "last-1": "one block adapts with the new head",
        "last": "the last blocks adapt gently",
        "gradual": "blocks join one by one",
        "full": "the whole network adapts gently",
        "custom": "blocks train with a new head",
    }.get(kind, "blocks train with a new head")
    return LRChoice(lr, f"default for {strategy}: {lr:.0e} ({why})")


def choose_auto_lr(suggestion: float | None, losses: list[float], strategy: str) -> LRChoice:
    """Trust the range test only when its curve clearly falls; else the strategy's default."""
    fallback = default_lr(strategy)
    if suggestion is None or not math.isfinite(suggestion) or len(losses) < 10:
        return LRChoice(fallback.lr, f"auto: no clear minimum in the range test, so the {fallback.reason}")
    drop = (losses[0] - min(losses)) / max(abs(losses[0]), 1e-12)
    if drop < 0.1:
        return LRChoice(fallback.lr, f"auto: the range test's loss hardly fell, so the {fallback.reason}")
    low, high = fallback.lr / AUTO_SPAN, fallback.lr * AUTO_SPAN
    if not low <= suggestion <= high:
        clipped = min(max(suggestion, low), high)
        return LRChoice(
            clipped,
            f"auto: {clipped:.1e} (the range test's {suggestion:.1e}, kept within 10x of the default)",
            True,
        )
    return LRChoice(suggestion, f"auto: {suggestion:.1e} from the range test", True)


def resolve_lr(
    strategy: str, requested: float | str | None, quick: bool, range_test: Callable[[], LRFinderResult]
) -> LRChoice:
    """The learning rate a run uses: the user's number, the strategy's default (None), or
    ('auto') the range test's choice, trusted only within 10x of the default.

    ``quick``: the range test can run on cached features (a head alone, no augmentation);
    ``range_test`` runs it (the caller's run, with its optimizer made at the default rate).
    """
    if isinstance(requested, (int, float)) and not isinstance(requested, bool):
        return LRChoice(float(requested), f"set by you: {float(requested):g}")
    fallback = default_lr(strategy)
    if requested != "auto":
        return fallback
    if not quick:
        return LRChoice(
            fallback.lr,
            "auto: the range test runs only for a head alone on cached features (augmentation "
            f"off), where it takes seconds; the {fallback.reason}",
        )
    result = range_test()
    return choose_auto_lr(result.suggestion, result.losses, strategy)
