"""Intervals and the fold comparison test, against published values and constructed cases."""

from __future__ import annotations

import math

import numpy as np
import pytest

from ftgui.core.base.intervals import (
    balanced_accuracy,
    bootstrap,
    corrected_resampled_t,
    describe,
    proportion,
    span,
    student_t_cdf,
    student_t_quantile,
    wilson,
)


def test_wilson_matches_published_intervals():
    low, high = wilson(81, 263)  # Newcombe (1998), Statistics in Medicine 17, example (a)
    assert (round(low, 4), round(high, 4)) == (0.2553, 0.3662)
    low, high = wilson(0, 10)  # upper bound z^2 / (n + z^2)
    assert low == 0 and high == pytest.approx(1.959964**2 / (10 + 1.959964**2), abs=1e-6)
    assert wilson(10, 10)[1] == 1.0 and wilson(10, 10)[0] == pytest.approx(1 - high, abs=1e-9)
    low, high = wilson(21, 32)  # the example dataset's 65.6 %: anything from about 48 to 80 %
    assert (round(100 * low), round(100 * high)) == (48, 80)
    with pytest.raises(ValueError):
        wilson(5, 4)


def test_the_sentence_says_figure_interval_and_count():
    assert describe(38, 45) == "84.4% (71–92%, 45 images)"
    assert describe(1, 1).endswith("1 image)") and describe(0, 0) == "no images"
    assert proportion(0.844, 45) == "84.4% (71–92%, 45 images)"
    assert proportion(0.844, 45, with_count=False) == "84.4% (71–92%)"
    assert proportion(0.844, 0) == "84.4%"  # the count unknown: no interval


def test_student_t_against_tables():
    assert student_t_quantile(0.975, 4) == pytest.approx(2.776445, abs=1e-5)
    assert student_t_quantile(0.975, 9) == pytest.approx(2.262157, abs=1e-5)
    assert student_t_cdf(0.0, 3) == pytest.approx(0.5)
    assert student_t_cdf(1.0, 1) == pytest.approx(0.75)  # Cauchy: 1/2 + atan(1)/pi


def test_bootstrap_is_seeded_and_covers_the_estimate():
    rng = np.random.default_rng(3)
    targets = rng.integers(0, 3, 90)
    predictions = np.where(rng.random(90) < 0.8, targets, (targets + 1) % 3)
    first = bootstrap(balanced_accuracy, targets, predictions, resamples=500)
    assert first == bootstrap(balanced_accuracy, targets, predictions, resamples=500)
    assert first[0] < balanced_accuracy(targets, predictions) < first[1]
    assert bootstrap(balanced_accuracy, targets, targets, resamples=200) == (1.0, 1.0)


def test_the_corrected_test_finds_a_real_difference_and_not_a_noisy_one():
    rng = np.random.default_rng(0)
    base = 0.80 + rng.normal(0, 0.02, 10)
    better = corrected_resampled_t(base + 0.06 + rng.normal(0, 0.01, 10), base, n_train=160, n_val=40)
    assert better.real and better.low > 0 and better.p_value < 0.01
    same = corrected_resampled_t(base + rng.normal(0, 0.03, 10), base, n_train=160, n_val=40)
    assert not same.real and same.low < 0 < same.high and same.p_value > 0.05


def test_the_correction_widens_the_interval_by_its_formula():
    d = [0.02, 0.04, -0.01, 0.03, 0.00]
    r = corrected_resampled_t(d, [0.0] * 5, n_train=100, n_val=25)
    var = float(np.var(d, ddof=1))
    assert r.mean == pytest.approx(0.016)
    assert r.high - r.mean == pytest.approx(2.776445 * math.sqrt((1 / 5 + 25 / 100) * var), rel=1e-5)
    naive = 2.776445 * math.sqrt(var / 5)  # the plain t-test's half width: too narrow for folds
    assert r.high - r.mean > naive
    with pytest.raises(ValueError):
        corrected_resampled_t([0.1], [0.2], 10, 5)


def test_an_evaluation_carries_its_intervals_everywhere_it_is_written():
    from ftgui.core.bundle.metadata import evaluation_summary
    from ftgui.core.evaluation.metrics import Evaluation, format_report, headline, metrics_from_confusion

    confusion = [[8, 2], [1, 9]]  # 17 of 20 right; recalls 0.8 and 0.9
    ev = Evaluation(["cat", "dog"], "/data", confusion, metrics_from_confusion(confusion, ["cat", "dog"]),
                    accuracy=0.85, loss=0.4, count=20)  # fmt: skip
    assert ev.accuracy_interval() == wilson(17, 20)
    cat = ev.per_class[0]
    assert (cat.recall_ci_low, cat.recall_ci_high) == wilson(8, 10)
    assert (cat.precision_ci_low, cat.precision_ci_high) == wilson(8, 9)
    assert ev.balanced_accuracy() == pytest.approx(0.85)
    low, high = ev.balanced_interval()
    assert low < 0.85 < high and ev.balanced_interval() == (low, high)
    d = ev.to_dict()
    assert (d["accuracy_ci_low"], d["accuracy_ci_high"]) == wilson(17, 20) and d["ci_level"] == 0.95
    assert d["per_class"][1]["recall_ci_low"] == wilson(9, 10)[0]
    summary = evaluation_summary(ev)
    assert summary["accuracy_ci_high"] == wilson(17, 20)[1] and summary["balanced_accuracy_ci_low"] == low
    lo, hi = wilson(17, 20)
    assert f"accuracy 85.0% ({100 * lo:.0f}–{100 * hi:.0f}%)" in headline(ev)
    report = format_report(ev)
    assert "95% intervals on these 20 images" in report
    assert f"{100 * wilson(8, 10)[0]:.0f}–{100 * wilson(8, 10)[1]:.0f}%" in report


def test_the_log_says_each_accuracy_with_its_range_and_the_level_once():
    from ftgui.core.base import events as ev
    from ftgui.core.base import report

    started = ev.RunStarted(("a", "b"), 180, 45, "cpu", 10, 100, 5, 0, 6)
    assert "accuracies in brackets: the range (95%) that 45 images allow" in report.describe(started)[1]
    epoch = ev.EpochEnded(1, 5, 0.5, 0.8, 0.4, 0.844, (), 0.01, 1.0, True, 45)
    assert report.describe(epoch)[1].endswith("val accuracy 84.4% (71–92%) (1.0s) — best so far")
    done = ev.Finished(5, 2, 0.41, 0.844, False, 45)
    assert (
        report.short_status(done)
        == "Finished · kept epoch 2 (lowest validation loss): 84.4% (71–92%, 45 images)"
    )


def test_the_compare_table_gives_each_candidate_its_range():
    from ftgui.cli.compare import comparison_table
    from ftgui.core.workflows.compare import CandidateSummary

    measured = CandidateSummary("head", "head", best_val_accuracy=0.8, val_images=40, status="finished")
    unknown = CandidateSummary("full", "full", best_val_accuracy=0.9, status="finished")  # an old record
    low, high = wilson(32, 40)
    assert measured.val_interval() == (low, high)
    d = measured.to_dict()
    assert (d["val_ci_low"], d["val_ci_high"]) == (low, high) and d["val_range"] == span(low, high)
    assert unknown.val_interval() is None and unknown.to_dict()["val_range"] is None
    table = comparison_table([measured, unknown])
    assert "95% range" in table.splitlines()[0] and span(low, high) in table
