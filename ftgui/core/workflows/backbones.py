"""The backbone bake-off: which pretrained backbone suits these images, in minutes.

Each candidate's frozen features are computed once (the frozen-prefix cache Check data uses),
a linear head is cross-validated on them (Check data's out-of-fold machinery), and the
backbones are ranked by that accuracy, with CPU latency per image, size and licence. No
backbone is trained: the ranking is of linear probes, which is what head-only training gets
and what predicts fine-tuning well for the small sets ftgui's users bring.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch

from ftgui.core.base import events as ev
from ftgui.core.base.errors import FtguiError
from ftgui.core.base.intervals import Difference, corrected_resampled_t, interval_of, points
from ftgui.core.insight.check import cleanlab_missing, frozen_features
from ftgui.core.insight.folds import fold_ids, out_of_fold_probabilities
from ftgui.core.models import arch_info
from ftgui.core.training.config import TrainConfig

CLOSE = 0.01  # accuracies this close count as a tie, and the faster backbone is picked


@dataclass(frozen=True)
class BackboneResult:
    arch: str
    accuracy: float | None  # cross-validated linear-probe accuracy (None: it could not run)
    images: int
    feature_dim: int
    latency_ms: float | None  # one image through the whole model on this machine
    params: int | None
    licence: str | None
    seconds: float  # features and cross-validation together
    weights: str = ""
    error: str = ""
    random_weights: bool = False  # no pretrained weights: the probe ranks random features
    fold_accuracies: list[float] = field(default_factory=list)  # the probe's accuracy in each fold

    def interval(self) -> tuple[float, float] | None:
        """The 95% Wilson interval of the probe's accuracy over all its images."""
        return interval_of(self.accuracy, self.images)

    @property
    def name(self) -> str:
        """The backbone as the ranking names it: with "(random weights)" when it had none."""
        return f"{self.arch} (random weights)" if self.random_weights else self.arch

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def latency_ms(model: torch.nn.Module, size: int, repeats: int = 3) -> float:
    """The best of ``repeats`` passes of one image through ``model`` (eval mode, no gradients)."""
    was_training = model.training
    model.eval()
    x = torch.rand(1, 3, size, size, device=next(model.parameters()).device)
    best = float("inf")
    with torch.inference_mode():
        model(x)  # warm-up
        for _ in range(repeats):
            t0 = time.perf_counter()
            model(x)
            best = min(best, time.perf_counter() - t0)
    model.train(was_training)
    return 1000 * best


def bake_off(
    config: TrainConfig,
    backbones: Sequence[str],
    folds: int = 5,
    cancel: ev.CancelToken | None = None,
    note: Callable[[str], None] | None = None,
) -> list[BackboneResult]:
    """Rank ``backbones`` on ``config.data_dir`` (best first; those that failed last)."""
    missing = cleanlab_missing()
    if missing:
        raise FtguiError(missing)
    if not backbones:
        raise FtguiError("Name at least one backbone to compare.")
    return ranked(list(each_backbone(config, backbones, folds, cancel, note)))


def each_backbone(
    config: TrainConfig,
    backbones: Sequence[str],
    folds: int = 5,
    cancel: ev.CancelToken | None = None,
    note: Callable[[str], None] | None = None,
) -> Iterator[BackboneResult]:
    """Each backbone's result as it is measured, in the order given (a name once), until cancelled."""
    cancel = cancel or ev.CancelToken()
    for arch in dict.fromkeys(backbones):
        if cancel.cancelled:
            return
        yield measure_backbone(config, arch, folds, cancel, note)


def ranked(results: Sequence[BackboneResult]) -> list[BackboneResult]:
    """Best linear probe first (the faster of equals), those that could not run last."""
    return sorted(results, key=lambda r: (r.accuracy is None, -(r.accuracy or 0.0), r.latency_ms or 0.0))


def measure_backbone(
    config: TrainConfig,
    arch: str,
    folds: int = 5,
    cancel: ev.CancelToken | None = None,
    note: Callable[[str], None] | None = None,
) -> BackboneResult:
    """One backbone: its frozen features, a cross-validated linear probe, latency, size, licence."""
    cancel = cancel or ev.CancelToken()
    note = note or (lambda _text: None)
    cfg = TrainConfig.from_dict({**config.to_dict(), "arch": arch})
    started = time.perf_counter()
    try:
        feats = frozen_features(cfg, None, cancel, note, None)
        counts = np.bincount(feats.labels)
        k = int(min(folds, counts[counts > 0].min())) if len(feats.labels) else 0
        if k < 2:
            raise FtguiError("every class needs at least 2 readable images for cross-validation")
        probs = out_of_fold_probabilities(feats.rows, feats.labels, k, cfg.seed)
        correct = probs.argmax(1) == feats.labels
        accuracy = float(correct.mean())
        ids = fold_ids(feats.labels, k, cfg.seed)
        per_fold = [float(correct[ids == f].mean()) for f in range(k)]
        built = feats.built
        assert built is not None
        ms = latency_ms(built.model, built.preprocess.crop_size)
        params = sum(p.numel() for p in built.model.parameters())
        result = BackboneResult(
            arch, accuracy, len(feats.labels), int(feats.rows.shape[1]), ms, params, arch_info(arch).licence,
            time.perf_counter() - started, built.weights_source, random_weights=feats.random,
            fold_accuracies=per_fold,
        )  # fmt: skip
    except FtguiError as exc:
        result = BackboneResult(
            arch, None, 0, 0, None, None, None, time.perf_counter() - started, error=str(exc).splitlines()[0]
        )
    note(
        f"{arch}: {result.error}"
        if result.error
        else f"{arch}: cross-validated linear probe {result.accuracy:.1%} on {result.images} images"
    )
    return result


def versus_best(results: Sequence[BackboneResult]) -> dict[str, Difference | None]:
    """Each ranked backbone's accuracy minus the top one's, fold by fold over the same folds
    (the corrected resampled t-test: a 95% interval in accuracy, and whether it leaves out 0).
    None for the top one, and where the folds differ (other images, other k)."""
    done = ranked([r for r in results if r.accuracy is not None])
    if not done:
        return {}
    best = done[0]
    out: dict[str, Difference | None] = {best.arch: None}
    for r in done[1:]:
        k = len(r.fold_accuracies)
        same = k >= 2 and k == len(best.fold_accuracies) and r.images == best.images
        out[r.arch] = (
            corrected_resampled_t(
                r.fold_accuracies, best.fold_accuracies, r.images * (k - 1) // k, r.images // k
            )
            if same
            else None
        )
    return out


def difference_text(arch: str, differences: dict[str, Difference | None]) -> str:
    """A ranking's "vs best" cell: 'best', '≈ −1.2 (−4.0 to +1.6)' where the folds cannot tell
    the two apart, '−8.0 (−12.1 to −3.9)' where they can (points); '–' where untested."""
    if arch not in differences:
        return "–"
    d = differences[arch]
    if d is None:
        return "best" if next(iter(differences)) == arch else "–"
    return points(d, unit="") if d.real else f"≈ {points(d, unit='')}"


def alike(results: Sequence[BackboneResult]) -> list[str]:
    """The backbones after the top one that these folds cannot tell from it."""
    return [arch for arch, d in versus_best(results).items() if d is not None and not d.real]


def pick(results: Sequence[BackboneResult]) -> str:
    """One line: the backbone to use, and why (the faster of two within a point)."""
    ranked = [r for r in results if r.accuracy is not None]
    if not ranked:
        return "No backbone could be compared: " + "; ".join(f"{r.arch}: {r.error}" for r in results)
    best = ranked[0]
    assert best.accuracy is not None
    close = [r for r in ranked if r.accuracy is not None and best.accuracy - r.accuracy <= CLOSE]
    fastest = min(close, key=lambda r: r.latency_ms or float("inf"))
    caveat = (
        " These are random weights (none chosen): the ranking says how well random features of "
        "each architecture separate the classes, not how a pretrained one would start; choose "
        "pretrained weights to rank those."
        if best.random_weights
        else ""
    )
    if fastest is not best:
        return (
            f"Use {fastest.name}: {fastest.accuracy:.1%}, within a point of {best.arch} ({best.accuracy:.1%}) "
            f"and faster ({fastest.latency_ms:.0f} ms against {best.latency_ms:.0f} ms per image).{caveat}"
        )
    runner_up = ranked[1].accuracy if len(ranked) > 1 else None
    second = (
        f", {100 * (best.accuracy - runner_up):.1f} points ahead of {ranked[1].arch}"
        if runner_up is not None
        else ""
    )
    same = alike(results)
    tie = (
        f" On these images {', '.join(same)} {'is' if len(same) == 1 else 'are'} not really different "
        f"from it ({len(best.fold_accuracies)} folds, 95%)."
        if same
        else ""
    )
    return f"Use {best.name}: {best.accuracy:.1%} cross-validated linear-probe accuracy{second}.{tie}{caveat}"
