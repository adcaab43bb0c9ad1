"""The accuracy benchmark's selection of defaults (benchmarks/selection.py) on small made-up
measurements: a default that never loses much, held-out settings kept out, the auto threshold."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import selection  # noqa: E402

CANDIDATES = ("keep", "adapt", "train")  # cheapest first


def test_the_choice_minimises_the_worst_shortfall_not_the_mean():
    # adapt wins big on one setting and loses 10 points on the other (mean shortfall 5); train
    # never loses more than 7 (mean 5.5): the default is the one that never loses much.
    measured = {
        "a": {"head": {"keep": 0.80, "adapt": 0.99, "train": 0.92}},
        "b": {"head": {"keep": 0.90, "adapt": 0.80, "train": 0.86}},
    }
    assert selection.choose(measured, "head", CANDIDATES, set()) == "train"
    assert selection.shortfalls(measured, "head", "adapt", ["a", "b"]) == pytest.approx([0.0, 0.10])
    measured["a"]["head"]["train"] = 0.70  # now train loses 29 points on a
    assert selection.choose(measured, "head", CANDIDATES, set()) == "adapt"


def test_ties_go_to_the_better_mean_then_the_cheaper_candidate():
    same = {"a": {"last-1": {"keep": 0.9, "adapt": 0.9, "train": 0.9}}}
    assert selection.choose(same, "last-1", CANDIDATES, set()) == "keep"
    two = {
        "a": {"head": {"keep": 0.8, "adapt": 0.9, "train": 0.9}},
        "b": {"head": {"keep": 0.9, "adapt": 0.9, "train": 0.8}},
    }
    assert selection.choose(two, "head", CANDIDATES, set()) == "adapt"  # no gap anywhere


def test_worst_shortfalls_within_the_tie_are_equal_and_the_better_mean_decides():
    # The head-form case measured for last-2: linear at most 1.32 below, concat at most 1.34
    # below, but concat below only once (mean shortfall 0.27 against 0.48).
    forms = ("linear", "concat")
    measured = {
        "a": {"last-2": {"linear": 0.9933, "concat": 0.9933}},
        "b": {"last-2": {"linear": 0.7933, "concat": 0.8065}},
        "c": {"last-2": {"linear": 0.7600, "concat": 0.7466}},
        "d": {"last-2": {"linear": 0.9390, "concat": 0.9478}},
        "e": {"last-2": {"linear": 0.9877, "concat": 0.9899}},
    }
    assert selection.choose(measured, "last-2", forms, set()) == "linear"  # by 0.02 points
    assert selection.choose(measured, "last-2", forms, set(), tie=0.005) == "concat"
    # A gap wider than the tie still decides by the worst shortfall.
    measured["c"]["last-2"]["concat"] = 0.70
    assert selection.choose(measured, "last-2", forms, set(), tie=0.005) == "linear"


def test_held_out_settings_never_decide_and_are_reported():
    measured = {
        "a": {"head": {"keep": 0.8, "adapt": 0.9}},
        "held": {"head": {"keep": 0.99, "adapt": 0.5}},
    }
    chosen = selection.choose(measured, "head", ("keep", "adapt"), {"held"})
    assert chosen == "adapt"
    assert selection.held_out_check(measured, "head", chosen, {"held"}) == pytest.approx({"held": 0.49})
    with pytest.raises(ValueError, match="no selection setting"):
        selection.choose(measured, "full", ("keep",), {"held"})


def test_the_threshold_separates_losses_from_gains_or_says_it_cannot():
    shift = {"near": 0.02, "mid": 0.17, "far": 0.35, "flat": 0.5}
    assert selection.threshold(
        shift, {"near": -0.04, "mid": 0.03, "far": 0.08, "flat": 0.0}
    ) == pytest.approx(0.095)
    assert selection.threshold(shift, {"near": -0.04, "mid": 0.03, "far": -0.01}) is None  # overlap
    assert (
        selection.threshold(shift, {"near": 0.01, "far": 0.08}) is None
    )  # never lost: no evidence of a line
