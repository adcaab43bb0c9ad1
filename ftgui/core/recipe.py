"""Default learning rates per strategy, and the automatic one (a range test on cached features).

The defaults come from ``benchmarks/bench_accuracy.py`` (real handwritten digits, a ResNet18
pretrained on other digits): a new head alone wants a rate ten times higher than a backbone
that trains with it. Everything here is Qt-free and deterministic for a given seed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .engine import Trainer

# Adam's learning rate for each strategy when the user sets none: the best of the benchmark's
# sweep in every setting (see the README's table). The fewer layers train, the higher the rate.
DEFAULT_LR = {"head": 3e-2, "last-1": 3e-3, "last": 1e-3, "gradual": 3e-3, "full": 1e-3, "custom": 1e-3}
# The range test's suggestion is trusted only this far from the strategy's default.
AUTO_SPAN = 10.0


@dataclass(frozen=True)
class LRChoice:
    lr: float
    reason: str  # one line for the log, the window and model.json


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
        )
    return LRChoice(suggestion, f"auto: {suggestion:.1e} from the range test")


def resolve_lr(trainer: Trainer, requested: float | str | None, quick: bool) -> LRChoice:
    """The learning rate a run uses: the user's number, the strategy's default (None), or
    ('auto') the range test's choice, trusted only within 10x of the default.

    ``quick``: the range test can run on cached features (a head alone, no augmentation); the
    trainer's optimizer must then exist, at any rate.
    """
    strategy = trainer.config.strategy
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
    from .lr_finder import find_lr

    result = find_lr(trainer)
    return choose_auto_lr(result.suggestion, result.losses, strategy)


def choose_lr(trainer: Trainer) -> None:
    """Set the run's learning rate (the strategy's default, auto, or the user's), the reason,
    and the optimizer that uses it."""
    cfg = trainer.config
    requested = cfg.lr
    quick = cfg.freeze.label == "head" and cfg.cache != "off" and not cfg.augment
    if requested == "auto" and quick:
        cfg.lr = default_lr(cfg.strategy).lr  # the range test needs an optimizer to start from
        trainer.optimizer = trainer.new_optimizer()
    choice = resolve_lr(trainer, requested, quick)
    cfg.lr, cfg.lr_note = choice.lr, choice.reason
    trainer.optimizer = trainer.new_optimizer()
