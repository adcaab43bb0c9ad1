"""Intervals and the fold comparison test, against published values and constructed cases."""

from __future__ import annotations

import math

import numpy as np
import pytest

from ftgui.core.evaluation.intervals import (
    balanced_accuracy,
    bootstrap,
    corrected_resampled_t,
    describe,
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
    assert describe(38, 45) == "84.4 % (71–92 %, 45 images)"
    assert describe(1, 1).endswith("1 image)") and describe(0, 0) == "no images"


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
