"""Evaluation results: confusion matrix, per-class metrics, worst mistakes, and their report."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.nn.functional as F

from ftgui.core.base.intervals import LEVEL, balanced_accuracy, bootstrap, span, wilson, with_range
from ftgui.core.data.samples import Sample

if TYPE_CHECKING:
    pass

Interval = tuple[float, float]


@dataclass(frozen=True)
class ClassMetrics:
    name: str
    support: int  # images of this class
    precision: float | None  # of the images predicted as this class, the share that are it
    recall: float | None  # of the images of this class, the share found (the class's accuracy)
    f1: float | None
    accuracy: float  # one-vs-rest: (true positives + true negatives) / all images
    # 95% Wilson intervals of precision (over the images predicted as the class) and recall
    # (over the class's images); None where the figure is.
    precision_ci_low: float | None = None
    precision_ci_high: float | None = None
    recall_ci_low: float | None = None
    recall_ci_high: float | None = None

    def cells(self) -> list[tuple[float | None, float | None, float | None]]:
        """(figure, interval low, high) of precision, recall, F1 and accuracy, for a table."""
        return [
            (self.precision, self.precision_ci_low, self.precision_ci_high),
            (self.recall, self.recall_ci_low, self.recall_ci_high),
            (self.f1, None, None),
            (self.accuracy, None, None),
        ]


@dataclass(frozen=True)
class Mistake:
    path: str  # relative to ``root``
    true_label: int
    predicted: int
    confidence: float  # probability of the predicted class
    loss: float


@dataclass
class Evaluation:
    classes: list[str]
    root: str
    confusion: list[list[int]]  # confusion[true][predicted]
    per_class: list[ClassMetrics]
    accuracy: float | None  # None when no image could be read
    loss: float | None
    count: int  # images evaluated
    worst: list[Mistake] = field(default_factory=list)  # highest loss first
    predictions: list[tuple[str, int, int]] = field(default_factory=list)  # (path, true, predicted)
    split: str = "validation"  # or "training", when there are no validation images
    requested: int | None = None  # images asked for (count + unreadable)
    _balanced_ci: Interval | None = field(default=None, repr=False, compare=False)

    @property
    def unreadable(self) -> int:
        return max(0, (self.requested if self.requested is not None else self.count) - self.count)

    def top_confusions(self, limit: int = 20) -> list[tuple[int, int, int]]:
        """(count, true, predicted) of the most frequent mistakes, largest first."""
        cells = [(n, t, p) for t, row in enumerate(self.confusion) for p, n in enumerate(row) if t != p and n]
        return sorted(cells, key=lambda c: (-c[0], c[1], c[2]))[:limit]

    def paths_in_cell(self, true: int, predicted: int) -> list[str]:
        """The images behind one cell of the confusion matrix."""
        return [p for p, t, q in self.predictions if t == true and q == predicted]

    @property
    def correct(self) -> int:
        return sum(self.confusion[i][i] for i in range(len(self.confusion)))

    def accuracy_interval(self) -> Interval | None:
        """The 95% Wilson interval of the accuracy (None without images)."""
        return wilson(self.correct, self.count) if self.count else None

    def balanced_accuracy(self) -> float | None:
        """The mean recall over the classes that have images here."""
        recalls = [m.recall for m in self.per_class if m.recall is not None]
        return sum(recalls) / len(recalls) if recalls else None

    def balanced_interval(self) -> Interval | None:
        """A 95% bootstrap interval of the balanced accuracy, resampling the images (seed 0)."""
        if not self.count:
            return None
        if self._balanced_ci is None:  # resampled once: the report, model.json and the card share it
            targets, predicted = _pairs(self.confusion)
            self._balanced_ci = bootstrap(balanced_accuracy, targets, predicted, resamples=1000)
        return self._balanced_ci

    def to_dict(self) -> dict[str, Any]:
        ci, balanced = self.accuracy_interval(), self.balanced_interval()
        return {
            "split": self.split,
            "count": self.count,
            "unreadable": self.unreadable,
            "accuracy": self.accuracy,
            "accuracy_ci_low": ci[0] if ci else None,
            "accuracy_ci_high": ci[1] if ci else None,
            "balanced_accuracy": self.balanced_accuracy(),
            "balanced_accuracy_ci_low": balanced[0] if balanced else None,
            "balanced_accuracy_ci_high": balanced[1] if balanced else None,
            "ci_level": LEVEL,
            "ci_method": "Wilson score (accuracy, precision, recall); bootstrap over images, "
            "1000 resamples, seed 0 (balanced accuracy)",
            "loss": self.loss,
            "confusion": self.confusion,
            "per_class": [asdict(m) for m in self.per_class],
            "worst": [asdict(m) for m in self.worst],
        }


def _ratio(a: int, b: int) -> float | None:
    return a / b if b else None


def _pairs(confusion: Sequence[Sequence[int]]) -> tuple[np.ndarray, np.ndarray]:
    """(true, predicted) per image, rebuilt from the confusion matrix."""
    cells = [(t, p, n) for t, row in enumerate(confusion) for p, n in enumerate(row) if n]
    targets = np.concatenate([np.full(n, t) for t, _, n in cells]) if cells else np.zeros(0, int)
    predicted = np.concatenate([np.full(n, p) for _, p, n in cells]) if cells else np.zeros(0, int)
    return targets, predicted


def _ci(k: int, n: int) -> Interval | tuple[None, None]:
    return wilson(k, n) if n else (None, None)


def metrics_from_confusion(confusion: Sequence[Sequence[int]], classes: Sequence[str]) -> list[ClassMetrics]:
    """Per-class precision, recall, F1 and one-vs-rest accuracy from ``confusion[true][pred]``."""
    k = len(classes)
    total = sum(sum(row) for row in confusion)
    out = []
    for c in range(k):
        tp = confusion[c][c]
        actual = sum(confusion[c])
        predicted = sum(confusion[r][c] for r in range(k))
        fp, fn = predicted - tp, actual - tp
        tn = total - tp - fp - fn
        precision, recall = _ratio(tp, predicted), _ratio(tp, actual)
        f1 = (
            (2 * precision * recall / (precision + recall))
            if precision and recall
            else (0.0 if precision is not None and recall is not None else None)
        )
        out.append(
            ClassMetrics(
                classes[c], actual, precision, recall, f1, (tp + tn) / total if total else 0.0,
                *_ci(tp, predicted), *_ci(tp, actual),
            )
        )  # fmt: skip
    return out


def outcomes(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Per image what the report needs of its logits: (predicted class, its probability, loss).

    Evaluation keeps these three numbers per image, never the logits (100k images of 1,000
    classes would be 400 MB of them)."""
    losses = F.cross_entropy(logits.float(), labels, reduction="none")
    conf, pred = torch.softmax(logits.float(), dim=1).max(dim=1)
    return torch.stack([pred.double(), conf.double(), losses.double()], dim=1)


def summarise(
    classes: list[str], root: str, samples: Sequence[Sample], logits: torch.Tensor, worst: int = 24
) -> Evaluation:
    """Build the evaluation from the model's logits for ``samples`` (same order)."""
    labels = torch.tensor([s.label for s in samples], dtype=torch.long)
    return summarise_outcomes(classes, root, samples, outcomes(logits, labels), worst)


def summarise_outcomes(
    classes: list[str], root: str, samples: Sequence[Sample], rows: torch.Tensor, worst: int = 24
) -> Evaluation:
    """Build the evaluation from :func:`outcomes` rows for ``samples`` (same order)."""
    k = len(classes)
    labels = torch.tensor([s.label for s in samples], dtype=torch.long)
    rows = rows.reshape(-1, 3)
    pred, conf, losses = rows[:, 0].long(), rows[:, 1].float(), rows[:, 2].float()
    confusion = [[0] * k for _ in range(k)]
    for t, p in zip(labels.tolist(), pred.tolist()):
        confusion[t][p] += 1
    order = torch.argsort(losses, descending=True).tolist()
    mistakes = [
        Mistake(samples[i].path, int(labels[i]), int(pred[i]), float(conf[i]), float(losses[i]))
        for i in order[:worst]
    ]
    n = len(samples)
    return Evaluation(
        classes=list(classes),
        root=root,
        confusion=confusion,
        per_class=metrics_from_confusion(confusion, classes),
        accuracy=float((pred == labels).float().mean()) if n else None,
        loss=float(losses.mean()) if n else None,
        count=n,
        worst=mistakes,
        predictions=[(s.path, s.label, int(q)) for s, q in zip(samples, pred.tolist())],
    )


FULL_MATRIX_MAX_CLASSES = 20


def headline(ev: Evaluation) -> str:
    """One line on what was evaluated and how it went, honest about missing images."""
    if ev.split == "training":
        where = f"training images (no validation images, so this is not a measure of new images): {ev.count}"
    else:
        where = f"validation: {ev.count} images"
    if ev.accuracy is None:
        return f"{ev.split}: none of the {ev.unreadable} images could be read, so there is no accuracy"
    unread = f" ({ev.unreadable} could not be read)" if ev.unreadable else ""
    ci, balanced, bal = ev.accuracy_interval(), ev.balanced_interval(), ev.balanced_accuracy()
    acc = with_range(ev.accuracy, *(ci or (None, None)))
    bal_text = f", balanced accuracy {with_range(bal, *balanced)}" if bal is not None and balanced else ""
    return f"{where}{unread}, accuracy {acc}{bal_text}, loss {ev.loss:.4f}"


def format_report(ev: Evaluation) -> str:
    """A plain-text report for the command line (top confusions instead of a large matrix)."""
    lines = [headline(ev)]
    if ev.accuracy is None:
        return lines[0]
    width = max(len(c) for c in ev.classes) + 2
    lines.append("")

    def pct(v: float | None) -> str:
        return "   n/a" if v is None else f"{100 * v:5.1f}%"

    def rng(low: float | None, high: float | None) -> str:
        return f"{'n/a' if low is None or high is None else span(low, high):>9}"

    lines.append(f"ranges: 95% intervals on these {ev.count} images (Wilson; balanced accuracy: bootstrap)")
    lines.append(f"{'class':<{width}} images precision     range recall     range     F1 accuracy")
    for m in ev.per_class:
        lines.append(
            f"{m.name:<{width}} {m.support:6d}    {pct(m.precision)} {rng(m.precision_ci_low, m.precision_ci_high)} "
            f"{pct(m.recall)} {rng(m.recall_ci_low, m.recall_ci_high)} {pct(m.f1)}   {pct(m.accuracy)}"
        )
    if len(ev.classes) > FULL_MATRIX_MAX_CLASSES:
        top = ev.top_confusions()
        lines += ["", f"top confusions ({len(ev.classes)} classes; the full matrix is in model.json)"]
        lines += [f"  {n:5d}  {ev.classes[t]} taken for {ev.classes[p]}" for n, t, p in top] or ["  none"]
    else:
        lines += ["", "confusion matrix (rows: true class, columns: predicted)"]
        cell = max(5, max(len(str(v)) for row in ev.confusion for v in row) + 1)
        lines.append(" " * width + "".join(f"{i:>{cell}}" for i in range(len(ev.classes))))
        for i, row in enumerate(ev.confusion):
            lines.append(f"{i}:{ev.classes[i]:<{width - 2}}" + "".join(f"{v:>{cell}}" for v in row))
    mistakes = [m for m in ev.worst if m.true_label != m.predicted][:5]
    if mistakes:
        lines += ["", "worst mistakes:"]
        for mistake in mistakes:
            lines.append(
                f"  {mistake.path}: {ev.classes[mistake.true_label]} taken for "
                f"{ev.classes[mistake.predicted]} ({100 * mistake.confidence:.0f}%)"
            )
    return "\n".join(lines)
