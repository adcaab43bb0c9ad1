"""Default learning rates per strategy and the automatic one (range test on cached features)."""

from __future__ import annotations

import math

import pytest

from ftgui.cli.train import train_parser
from ftgui.core.models.freeze import FreezePlan
from ftgui.core.training.engine import Trainer
from ftgui.core.training.recipe import choose_auto_lr, default_lr


@pytest.mark.parametrize(
    "strategy, lr",
    [("head", 3e-2), ("last-1", 3e-3), ("last-2", 1e-3), ("last-3", 1e-3), ("full", 1e-3), ("gradual", 3e-3)],
)
def test_each_strategy_has_its_own_default(strategy, lr):
    choice = default_lr(strategy)
    assert choice.lr == lr and choice.reason.startswith(f"default for {strategy}: ")


def test_a_head_alone_gets_a_higher_rate_than_any_backbone():
    head = default_lr("head").lr
    assert all(head >= 3 * default_lr(s).lr for s in ("last-1", "last-2", "full", "gradual", "custom"))


def test_auto_trusts_only_a_clear_range_test():
    falling = [2.0 - 0.01 * i for i in range(50)]
    assert choose_auto_lr(2e-2, falling, "head").lr == 2e-2
    assert choose_auto_lr(2e-2, falling, "head").reason == "auto: 2.0e-02 from the range test"
    none = choose_auto_lr(None, falling, "head")
    assert none.lr == 3e-2 and "no clear minimum" in none.reason
    flat = choose_auto_lr(5e-3, [2.0 + 0.001 * (i % 3) for i in range(50)], "head")
    assert flat.lr == 3e-2 and "hardly fell" in flat.reason
    wild = choose_auto_lr(5.0, falling, "head")  # a noisy curve on a small set can point anywhere
    assert wild.lr == pytest.approx(3e-1) and "kept within 10x" in wild.reason
    tiny = choose_auto_lr(1e-7, falling, "head")
    assert tiny.lr == pytest.approx(3e-3)
    assert choose_auto_lr(float("nan"), falling, "head").lr == 3e-2
    assert choose_auto_lr(2e-2, falling[:5], "head").lr == 3e-2  # too few points to judge


def test_cli_lr_accepts_auto_or_a_number():
    p = train_parser()
    assert p.parse_args(["d", "--out", "o"]).lr is None  # the strategy's default
    assert p.parse_args(["d", "--out", "o", "--lr", "AUTO"]).lr == "auto"
    assert p.parse_args(["d", "--out", "o", "--lr", "3e-4"]).lr == 3e-4
    with pytest.raises(SystemExit):
        p.parse_args(["d", "--out", "o", "--lr", "fast"])


def _head(tiny_config, **changes):
    tiny_config.freeze, tiny_config.epochs = FreezePlan.parse("head"), 1
    for k, v in changes.items():
        setattr(tiny_config, k, v)
    return tiny_config


def test_auto_runs_the_range_test_for_a_head_and_is_reproducible(tiny_config):
    cfg = _head(tiny_config, lr="auto")
    first = Trainer(cfg)
    first.prepare()
    again = Trainer(_head(type(tiny_config).from_dict({**tiny_config.to_dict(), "lr": "auto"})))
    again.prepare()
    assert isinstance(first.config.lr, float) and first.config.lr_note.startswith("auto:")
    assert first.config.lr == again.config.lr  # same seed, same choice
    assert all(g["base_lr"] == first.config.lr for g in first.optimizer.param_groups)
    assert 3e-3 <= first.config.lr <= 3e-1


def test_defaults_other_strategies_and_explicit_rates(tiny_config):
    trainer = Trainer(_head(tiny_config, lr=None))
    trainer.prepare()
    assert trainer.config.lr == 3e-2 and trainer.config.lr_note.startswith("default for head: 3e-02")
    trainer = Trainer(_head(tiny_config, freeze=FreezePlan.parse("last-1"), lr=None))
    trainer.prepare()
    assert trainer.config.lr == 3e-3 and trainer.config.lr_note.startswith("default for last-1: 3e-03")
    trainer = Trainer(_head(tiny_config, freeze=FreezePlan.parse("last-1"), lr="auto"))
    trainer.prepare()
    assert trainer.config.lr == 3e-3 and "runs only for a head alone" in trainer.config.lr_note
    trainer = Trainer(_head(tiny_config, lr=0.05))
    trainer.prepare()
    assert trainer.config.lr == 0.05 and trainer.config.lr_note == "set by you: 0.05"
    trainer = Trainer(_head(tiny_config, lr="auto", augment=True))  # no cache: no quick range test
    trainer.prepare()
    assert (
        trainer.config.lr == 3e-2
        and "runs only for a head alone on cached features" in trainer.config.lr_note
    )


@pytest.mark.slow
def test_the_range_test_suggestion_is_stable_across_seeds(tiny_config):
    suggestions = []
    for seed in (0, 1, 2):
        trainer = Trainer(_head(tiny_config, lr=1e-2, seed=seed))
        trainer.prepare()
        result = trainer.find_lr()
        assert result.suggestion is not None
        suggestions.append(result.suggestion)
    spread = max(suggestions) / min(suggestions)
    assert spread <= 4.0, suggestions  # within a factor of 4 on the same cached-feature problem
    assert all(math.isfinite(s) for s in suggestions)
