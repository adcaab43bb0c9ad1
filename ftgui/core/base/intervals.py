"""How far an accuracy measured on few images can be trusted: Wilson score intervals for a
proportion (k right of n), a percentile bootstrap over images for figures that are not one
proportion (balanced accuracy, macro F1), and the corrected resampled t-test of Nadeau and
Bengio (2003) for the difference of two candidates trained and validated on the same folds.
Pure Python and NumPy: no SciPy needed.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

LEVEL = 0.95


def _z(level: float) -> float:
    from statistics import NormalDist

    return NormalDist().inv_cdf(0.5 + level / 2)


def wilson(k: int, n: int, level: float = LEVEL) -> tuple[float, float]:
    """The Wilson score interval of the proportion k/n (0..1); (0, 1) when n is 0."""
    if n <= 0:
        return 0.0, 1.0
    if not 0 <= k <= n:
        raise ValueError(f"{k} right of {n} is not a proportion")
    z = _z(level)
    p = k / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    low = 0.0 if k == 0 else max(0.0, centre - half)  # exact at the ends, not 1e-17 off
    high = 1.0 if k == n else min(1.0, centre + half)
    return low, high


def bootstrap(
    statistic: Callable[[np.ndarray, np.ndarray], float],
    targets: Sequence[int] | np.ndarray,
    predictions: Sequence[int] | np.ndarray,
    resamples: int = 2000,
    level: float = LEVEL,
    seed: int = 0,
) -> tuple[float, float]:
    """A percentile bootstrap interval of ``statistic(targets, predictions)``, resampling images
    with replacement (seeded: the same data gives the same interval)."""
    t = np.asarray(targets)
    p = np.asarray(predictions)
    if len(t) == 0:
        return 0.0, 1.0
    rng = np.random.default_rng(seed)
    values = np.empty(resamples)
    for i in range(resamples):
        idx = rng.integers(0, len(t), len(t))
        values[i] = statistic(t[idx], p[idx])
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(values, [tail, 100 - tail])
    return float(low), float(high)


def balanced_accuracy(targets: np.ndarray, predictions: np.ndarray) -> float:
    """The mean of the per-class recalls, over the classes present in ``targets``."""
    k = int(max(targets.max(), predictions.max())) + 1
    hits = np.bincount(targets[targets == predictions], minlength=k)
    totals = np.bincount(targets, minlength=k)
    present = totals > 0
    return float(np.mean(hits[present] / totals[present]))


def span(low: float, high: float) -> str:
    """'71–92%': an interval of proportions in whole percent."""
    return f"{100 * low:.0f}–{100 * high:.0f}%"


def interval_of(value: float | None, n: int, level: float = LEVEL) -> tuple[float, float] | None:
    """The Wilson interval of an accuracy measured on n images (None when either is unknown)."""
    if value is None or n <= 0:
        return None
    return wilson(round(value * n), n, level)


def with_range(value: float | None, low: float | None = None, high: float | None = None) -> str:
    """'84.4% (71–92%)'; the bare figure without an interval, 'n/a' without a figure."""
    if value is None:
        return "n/a"
    return f"{100 * value:.1f}%" + ("" if low is None or high is None else f" ({span(low, high)})")


def describe(k: int, n: int, level: float = LEVEL) -> str:
    """'84.4% (71–92%, 45 images)': the figure, its interval and what it was measured on."""
    if n <= 0:
        return "no images"
    return f"{100 * k / n:.1f}% ({span(*wilson(k, n, level))}, {n} image{'s' if n != 1 else ''})"


def proportion(value: float, n: int, with_count: bool = True, level: float = LEVEL) -> str:
    """A measured share of n images (an accuracy) with its interval; the bare figure when n is
    not known (0)."""
    if n > 0 and with_count:
        return describe(round(value * n), n, level)
    return with_range(value, *(interval_of(value, n, level) or (None, None)))


# ------------------------------------------------------------ comparisons over resampled folds


def _betacf(a: float, b: float, x: float) -> float:
    """The continued fraction of the incomplete beta function (modified Lentz)."""
    tiny, qab, qap, qam = 1e-300, a + b, a + 1, a - 1
    c, d = 1.0, 1 - qab * x / qap
    d = 1 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 300):
        m2 = 2 * m
        for aa in (
            m * (b - m) * x / ((qam + m2) * (a + m2)),
            -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2)),
        ):
            d = 1 + aa * d
            d = 1 / (d if abs(d) > tiny else tiny)
            c = 1 + aa / c
            c = c if abs(c) > tiny else tiny
            h *= d * c
        if abs(d * c - 1) < 1e-14:
            break
    return h


def _incomplete_beta(a: float, b: float, x: float) -> float:
    if x <= 0:
        return 0.0
    if x >= 1:
        return 1.0
    front = math.exp(
        math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    )
    if x < (a + 1) / (a + b + 2):
        return front * _betacf(a, b, x) / a
    return 1 - front * _betacf(b, a, 1 - x) / b


def student_t_cdf(t: float, df: float) -> float:
    """P(T <= t) for Student's t with ``df`` degrees of freedom."""
    tail = 0.5 * _incomplete_beta(df / 2, 0.5, df / (df + t * t))
    return 1 - tail if t >= 0 else tail


def student_t_quantile(q: float, df: float) -> float:
    """The t with P(T <= t) = q (bisection on the CDF)."""
    low, high = -1e3, 1e3
    for _ in range(200):
        mid = (low + high) / 2
        if student_t_cdf(mid, df) < q:
            low = mid
        else:
            high = mid
    return (low + high) / 2


@dataclass(frozen=True)
class Difference:
    """Candidate A minus candidate B over the same folds, in the figures' own unit."""

    mean: float
    low: float
    high: float
    p_value: float
    folds: int

    @property
    def real(self) -> bool:
        """Whether the interval leaves out zero: a difference this data shows."""
        return self.low > 0 or self.high < 0


def corrected_half_width(values: Sequence[float], n_train: int, n_val: int, level: float = LEVEL) -> float:
    """Half the width of the corrected resampled t-interval of the mean of ``values``, one per
    fold: folds that share training images are correlated, and the variance term
    (1/J + n_val/n_train) allows for it, where the plain t-test's 1/J would be too narrow."""
    j = len(values)
    var = float(np.var(np.asarray(values, dtype=float), ddof=1))
    return student_t_quantile(0.5 + level / 2, j - 1) * math.sqrt((1 / j + n_val / max(n_train, 1)) * var)


def points(d: Difference, unit: str = " points") -> str:
    """'+2.1 points (−1.4 to +5.6)': a difference of proportions, in points."""
    return f"{100 * d.mean:+.1f}{unit} ({100 * d.low:+.1f} to {100 * d.high:+.1f})".replace("-", "−")


def corrected_resampled_t(
    a: Sequence[float], b: Sequence[float], n_train: int, n_val: int, level: float = LEVEL
) -> Difference:
    """Nadeau and Bengio's corrected resampled t-test of ``a - b``, one pair per fold (see
    :func:`corrected_half_width`)."""
    if len(a) != len(b) or len(a) < 2:
        raise ValueError("the test needs the same two or more folds for both candidates")
    d = np.asarray(a, dtype=float) - np.asarray(b, dtype=float)
    folds = len(d)
    mean = float(d.mean())
    half = corrected_half_width(d.tolist(), n_train, n_val, level)
    if half == 0:
        return Difference(mean, mean, mean, 1.0 if mean == 0 else 0.0, folds)
    scale = half / student_t_quantile(0.5 + level / 2, folds - 1)
    p = 2 * (1 - student_t_cdf(abs(mean / scale), folds - 1))
    return Difference(mean, mean - half, mean + half, p, folds)
