"""A comparison repeated over folds (``ftgui-compare --repeats N``): every candidate trains on
the same N stratified train/validation splits (repeated k-fold: k from the validation fraction,
a new shuffle for each repetition), so each gets a mean and an interval, and each difference
from the best a corrected resampled t-test. The recommendation is the cheapest candidate that
the folds cannot tell from the best.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from ftgui.core.base import events as ev
from ftgui.core.base.errors import FtguiError
from ftgui.core.base.intervals import Difference, corrected_half_width, corrected_resampled_t, points, wilson
from ftgui.core.base.report import duration
from ftgui.core.data.samples import Sample, ScanResult, Split
from ftgui.core.training.config import TrainConfig
from ftgui.core.workflows.compare import Candidate, Comparison, ComparisonFinished

MAX_REPEATS = 50


def folds_per_repetition(val_fraction: float) -> int:
    """k of the k-fold: one fold is about ``val_fraction`` of the images (at least 2 folds)."""
    return max(2, round(1 / val_fraction)) if val_fraction > 0 else 5


def fold_splits(scan: ScanResult, repeats: int, val_fraction: float, seed: int) -> list[Split]:
    """``repeats`` stratified splits: the folds of a k-fold partition (each class's images
    shuffled and dealt to the k folds in turn), then of a new partition when more are asked for.
    Within a repetition the validation sets are disjoint and together cover every image."""
    if not 1 <= repeats <= MAX_REPEATS:
        raise FtguiError(f"--repeats must be between 1 and {MAX_REPEATS} (got {repeats}).")
    if scan.presplit is not None:
        raise FtguiError(
            "This dataset has its own train/ and val/ folders: repeated folds would mix them. "
            "Compare it with --repeats 1, or merge the folders."
        )
    k = folds_per_repetition(val_fraction)
    by_label: list[list[Sample]] = [[] for _ in scan.classes]
    for s in scan.samples:
        by_label[s.label].append(s)
    small = [scan.classes[i] for i, items in enumerate(by_label) if 0 < len(items) < 2]
    if small:
        raise FtguiError(
            f"Repeated folds need at least 2 images of every class; {', '.join(small)} has fewer."
        )
    splits: list[Split] = []
    repetition = 0
    while len(splits) < repeats:
        rng = random.Random(seed + repetition)
        folds: list[list[Sample]] = [[] for _ in range(k)]
        offset = 0
        for items in by_label:
            shuffled = sorted(items, key=lambda s: s.path)
            rng.shuffle(shuffled)
            for i, s in enumerate(shuffled):
                folds[(offset + i) % k].append(s)
            offset += len(shuffled)  # the next class starts where this one ended: even folds
        for i in range(k):
            if len(splits) == repeats:
                break
            val = sorted(folds[i], key=lambda s: s.path)
            train = sorted((s for j, f in enumerate(folds) if j != i for s in f), key=lambda s: s.path)
            splits.append(Split(train, val))
        repetition += 1
    return splits


def default_repeats(images: int) -> int:
    """More folds where one split says least: 5 below 500 images, 3 below 2,000, else 1."""
    return 5 if images < 500 else 3 if images < 2000 else 1


@dataclass
class Repeated:
    """One candidate over the folds."""

    name: str
    trainable_params: int = 0
    accuracies: list[float] = field(default_factory=list)  # best validation accuracy per fold
    seconds: list[float] = field(default_factory=list)
    val_images: list[int] = field(default_factory=list)

    @property
    def mean(self) -> float:
        return sum(self.accuracies) / len(self.accuracies) if self.accuracies else math.nan

    def interval(self, n_train: int, n_val: int) -> tuple[float, float]:
        """95%: Wilson on one fold; over several, the corrected resampled t-interval of the mean."""
        if len(self.accuracies) == 1:
            return wilson(round(self.accuracies[0] * self.val_images[0]), self.val_images[0])
        half = corrected_half_width(self.accuracies, n_train, n_val)
        return max(0.0, self.mean - half), min(1.0, self.mean + half)


@dataclass
class RepeatedOutcome:
    candidates: list[Repeated]
    best: str
    differences: dict[str, Difference]  # each other candidate minus the best
    recommended: str
    reason: str
    n_train: int
    n_val: int
    planned: int = 0  # folds asked for (more than were run when the accepted time ran out)

    def to_dict(self, splits: Sequence[Split | None]) -> dict[str, Any]:
        run = len(self.candidates[0].accuracies) if self.candidates else 0
        folds = [split for split in splits if split is not None][:run]  # the folds that ran
        candidates = {}
        for c in self.candidates:
            low, high = c.interval(self.n_train, self.n_val)
            candidates[c.name] = {
                "accuracies": c.accuracies,
                "mean": c.mean,
                "ci_low": low,
                "ci_high": high,
                "trainable_params": c.trainable_params,
                "seconds": c.seconds,
            }
        return {
            "folds": [{"fold": i + 1, "val": [s.path for s in split.val]} for i, split in enumerate(folds)],
            "candidates": candidates,
            "best": self.best,
            "differences": {
                name: {
                    "mean": d.mean,
                    "ci_low": d.low,
                    "ci_high": d.high,
                    "p_value": d.p_value,
                    "real": d.real,
                }
                for name, d in self.differences.items()
            },
            "test": "corrected resampled t-test (Nadeau and Bengio 2003), 95%",
            "recommended": self.recommended,
            "reason": self.reason,
            "folds_planned": self.planned or len(folds),
        }


def decide(candidates: Sequence[Repeated], n_train: int, n_val: int) -> RepeatedOutcome:
    """The best mean; each other candidate against it; the cheapest not really worse."""
    done = [c for c in candidates if c.accuracies and len(c.accuracies) == len(candidates[0].accuracies)]
    if not done:
        raise FtguiError("No candidate finished every fold, so there is nothing to compare.")
    best = max(done, key=lambda c: c.mean)
    differences: dict[str, Difference] = {}
    if len(best.accuracies) >= 2:
        for c in done:
            if c is not best:
                differences[c.name] = corrected_resampled_t(c.accuracies, best.accuracies, n_train, n_val)
    same = [best] + [c for c in done if c.name in differences and not differences[c.name].real]
    pick = min(same, key=lambda c: (c.trainable_params, sum(c.seconds)))
    folds = len(best.accuracies)
    if pick is best:
        behind = [
            f"{c.name} {points(d)}{', a real difference' if d.real else ', not a real difference'}"
            for c in done
            if (d := differences.get(c.name)) is not None
        ]
        reason = (
            f"{best.name}: the best mean over {folds} fold{'s' if folds > 1 else ''} ({100 * best.mean:.1f}%)"
        )
        if behind:
            reason += "; the others, against it: " + ", ".join(behind)
        if folds == 1:
            reason += "; one split cannot say whether a difference is real (use --repeats 5)"
    else:
        d = differences[pick.name]
        reason = (
            f"{pick.name}: {points(d)} against {best.name} over {folds} folds, not a real difference "
            f"on this data, and {pick.name} is cheaper ({pick.trainable_params:,} trainable parameters "
            f"against {best.trainable_params:,})"
        )
    return RepeatedOutcome(list(done), best.name, differences, pick.name, reason, n_train, n_val)


@dataclass(frozen=True)
class FoldStarted(ev.Event):
    fold: int  # 1-based
    folds: int
    train_images: int
    val_images: int


@dataclass(frozen=True)
class RepeatsFinished(ev.Event):
    """The verdict over the folds (None when a fold did not finish: stopped)."""

    outcome: RepeatedOutcome | None


class RepeatedComparison:
    """The candidates of a :class:`Comparison`, trained on each fold in turn. ``first`` is the
    first fold's comparison (its models are the ones exported); ``fold`` the fold running."""

    def __init__(
        self,
        base: TrainConfig,
        candidates: Sequence[Candidate],
        scan: ScanResult,
        splits: Sequence[Split | None],  # None: the base configuration's own split (one run)
        allow_download: bool = True,
        time_limit_s: float | None = None,  # the time the user accepted: no fold starts that would pass it
    ) -> None:
        self.base, self.candidates, self.scan, self.splits = base, list(candidates), scan, list(splits)
        self.allow_download = allow_download
        self.time_limit_s = time_limit_s
        self.out_of_time = False  # stopped adding folds to stay within time_limit_s
        self.first = Comparison(base, candidates, allow_download)
        self.fold = 0
        self.finished: list[ComparisonFinished] = []

    def run(self, cancel: ev.CancelToken | None = None) -> Iterator[ev.Event]:
        cancel = cancel or ev.CancelToken()
        started = time.monotonic()
        for fold, split in enumerate(self.splits, start=1):
            if cancel.cancelled:
                break
            spent = time.monotonic() - started
            if self.time_limit_s is not None and fold > 1 and spent * fold / (fold - 1) > self.time_limit_s:
                self.out_of_time = True
                yield ev.Message(
                    "warning",
                    f"Stopped after {fold - 1} of {len(self.splits)} folds: at {duration(spent / (fold - 1))} a fold, "
                    f"another would end past the {duration(self.time_limit_s)} accepted for this comparison.",
                )
                break
            self.fold = fold
            comparison = (
                self.first if fold == 1 else Comparison(self.base, self.candidates, self.allow_download)
            )
            sizes = (len(split.train), len(split.val)) if split is not None else (0, 0)
            yield FoldStarted(fold, len(self.splits), *sizes)
            for e in comparison.run(cancel, scan=self.scan, split=split):
                if isinstance(e, ComparisonFinished):
                    self.finished.append(e)
                yield e
        yield RepeatsFinished(self.outcome() if not cancel.cancelled else None)

    def outcome(self) -> RepeatedOutcome | None:
        splits = [s for s in self.splits if s is not None]
        complete = len(self.finished) == len(self.splits) or (self.out_of_time and self.finished)
        if not complete or not splits or len(splits) != len(self.splits):
            return None
        by_name: dict[str, Repeated] = {}
        for done in self.finished:
            for s in done.summaries:
                r = by_name.setdefault(s.name, Repeated(s.name, s.trainable_params))
                if s.status == "finished" and s.best_val_accuracy is not None:
                    r.accuracies.append(s.best_val_accuracy)
                    r.seconds.append(s.seconds)
                    r.val_images.append(s.val_images)
        outcome = decide(list(by_name.values()), len(splits[0].train), len(splits[0].val))
        outcome.planned = len(self.splits)
        if self.out_of_time:
            ran = len(self.finished)
            outcome.reason += (
                f" ({ran} of {len(self.splits)} folds: the others would have run past the time accepted)"
            )
        return outcome
