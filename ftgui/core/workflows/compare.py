"""Compare freeze layouts: the same split, seed, epochs and preprocessing for every candidate.

A comparison trains its candidates one after another with the engine's own ``Trainer`` and yields
their events tagged with the candidate's name, then a summary with a recommendation. What can
be shared without changing any result is shared: the folder scan, the decoded pixels of every
image (the same preprocessing for all candidates), and the frozen layers' output wherever two
candidates freeze the same prefix of the same weights (one strategy at several learning rates,
gradual unfreezing's first epochs after head only).
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import TYPE_CHECKING

from ftgui.core.base import events as ev
from ftgui.core.base.errors import FtguiError
from ftgui.core.base.intervals import interval_of, span
from ftgui.core.data.scan import scan_folder
from ftgui.core.models.freeze import NOTHING_TRAINS, FreezePlan, NothingTrains
from ftgui.core.training.config import TrainConfig

if TYPE_CHECKING:
    from ftgui.core.data.samples import ScanResult, Split
    from ftgui.core.data.stores import RowStore
    from ftgui.core.training.engine import Trainer

OVERFIT_GAP = 0.2  # a train-validation accuracy gap above this is called overfitting
CLOSE_ENOUGH = 0.005  # within half a point of the best validation accuracy counts as as good


@dataclass(frozen=True)
class Candidate:
    name: str
    plan: FreezePlan
    lr: float | str | None = None  # None: the strategy's default


def parse_candidates(text: str, lrs: Sequence[float] = ()) -> list[Candidate]:
    """'head,last-1,full' (each at every learning rate in ``lrs``, or at its default)."""
    names = [t.strip() for t in text.split(",") if t.strip()]
    if not names:
        raise FtguiError("--candidates needs at least one strategy, e.g. head,last-1,full.")
    plans = [(name, FreezePlan.parse(name)) for name in names]
    seen: dict[str, str] = {}
    for name, plan in plans:
        if plan.label in seen:
            raise FtguiError(
                f"--candidates names {plan.label} twice ({seen[plan.label]} and {name}); give each once."
            )
        seen[plan.label] = name
    if not lrs:
        return [Candidate(plan.label, plan) for _, plan in plans]
    return [Candidate(f"{plan.label}@{lr:g}", plan, float(lr)) for _, plan in plans for lr in lrs]


@dataclass(frozen=True)
class CandidateEvent(ev.Event):
    """An engine event of one candidate."""

    candidate: str
    event: ev.Event

    def to_dict(self) -> dict[str, object]:
        return {"type": "CandidateEvent", "candidate": self.candidate, "event": self.event.to_dict()}


@dataclass
class CandidateSummary:
    name: str
    strategy: str
    lr: float | None = None
    trainable_params: int = 0
    total_params: int = 0
    epochs: int = 0
    best_epoch: int | None = None
    best_val_accuracy: float | None = None
    best_val_loss: float | None = None
    final_train_accuracy: float | None = None
    gap: float | None = None  # final train accuracy minus best validation accuracy
    seconds: float = 0.0
    images_per_s: float = 0.0
    status: str = "not run"  # finished | stopped | failed | refused | not run
    message: str = ""
    val_images: int = 0  # what best_val_accuracy was measured on

    def val_interval(self) -> tuple[float, float] | None:
        """The 95% Wilson interval of best_val_accuracy."""
        return interval_of(self.best_val_accuracy, self.val_images)

    def to_dict(self) -> dict[str, object]:
        ci = self.val_interval()
        extra = {"val_ci_low": ci[0], "val_ci_high": ci[1], "val_range": span(*ci)} if ci else {}
        return {**asdict(self), "val_ci_low": None, "val_ci_high": None, "val_range": None, **extra}


@dataclass(frozen=True)
class ComparisonFinished(ev.Event):
    summaries: tuple[CandidateSummary, ...]
    recommended: str | None
    reason: str
    notes: tuple[str, ...] = field(default=())


def recommend(summaries: Sequence[CandidateSummary]) -> tuple[str | None, str, tuple[str, ...]]:
    """(the candidate to use, why in one sentence, notes on overfitting)."""
    notes = tuple(
        f"{s.name} overfits: train {100 * (s.final_train_accuracy or 0):.0f} %, "
        f"validation {100 * (s.best_val_accuracy or 0):.0f} %"
        for s in summaries
        if s.gap is not None and s.gap > OVERFIT_GAP
    )
    done = [s for s in summaries if s.status == "finished" and s.best_val_accuracy is not None]
    if not done:
        return None, "no candidate finished with a validation accuracy to compare", notes
    best = max(s.best_val_accuracy or 0.0 for s in done)
    close = [s for s in done if best - (s.best_val_accuracy or 0.0) <= CLOSE_ENOUGH]
    # The cheapest of the candidates as good as the best: less time, then fewer trainable weights.
    pick = min(close, key=lambda s: (s.seconds, s.trainable_params))
    acc = pick.best_val_accuracy or 0.0
    rivals = [s for s in close if s is not pick]
    if not rivals:
        others = [s for s in done if s is not pick]
        if not others:
            return pick.name, f"{pick.name}: validation accuracy {100 * acc:.1f} %", notes
        runner = max(others, key=lambda s: s.best_val_accuracy or 0.0)
        lead = 100 * (acc - (runner.best_val_accuracy or 0.0))
        return (
            pick.name,
            f"{pick.name}: the best validation accuracy ({100 * acc:.1f} %), {lead:.1f} points ahead of {runner.name}",
            notes,
        )
    rival = max(rivals, key=lambda s: (s.best_val_accuracy or 0.0, -s.seconds))
    ratio = rival.seconds / pick.seconds if pick.seconds > 0 else math.inf
    cost = f"at 1/{ratio:.0f} of the time" if ratio >= 2 else f"in {100 / ratio:.0f} % of its time"
    diff = 100 * ((rival.best_val_accuracy or 0.0) - acc)
    if diff <= 0.05:
        return pick.name, f"{pick.name}: as accurate as {rival.name} ({100 * acc:.1f} %) {cost}", notes
    return pick.name, f"{pick.name}: within {diff:.1f} points of {rival.name} {cost}", notes


class Comparison:
    """Train ``candidates`` on ``base``'s data and settings, one after another."""

    def __init__(
        self, base: TrainConfig, candidates: Sequence[Candidate], allow_download: bool = True
    ) -> None:
        if not candidates:
            raise FtguiError("A comparison needs at least one candidate.")
        names = [c.name for c in candidates]
        if len(set(names)) != len(names):
            raise FtguiError(f"Candidate names must differ: {', '.join(names)}.")
        self.base = base
        self.candidates = list(candidates)
        self.allow_download = allow_download
        self.trainers: dict[str, Trainer] = {}
        self.summaries = {c.name: CandidateSummary(c.name, c.plan.label) for c in candidates}

    def config_for(self, candidate: Candidate) -> TrainConfig:
        return replace(self.base, freeze=candidate.plan, lr=candidate.lr, lr_note="", precision_note="")

    def run(
        self, cancel: ev.CancelToken | None = None, scan: ScanResult | None = None, split: Split | None = None
    ) -> Iterator[ev.Event]:
        """Each candidate in turn, on ``split`` (a fold of ``--repeats``) or the base's own split."""
        from ftgui.core.models.layers import count_params
        from ftgui.core.training.engine import Trainer

        cancel = cancel or ev.CancelToken()
        self.base.validate()
        scan = scan or scan_folder(self.base.data_dir)
        memo: dict[str, RowStore] | None = None
        features: dict[str, RowStore] = {}  # frozen-prefix outputs, by what they depend on
        for candidate in self.candidates:
            if cancel.cancelled:
                break
            summary = self.summaries[candidate.name]
            trainer = Trainer(self.config_for(candidate), allow_download=self.allow_download)
            try:
                trainer.prepare(scan=scan, split=split)
            except NothingTrains:
                summary.status, summary.message = "refused", f"{candidate.name}: {NOTHING_TRAINS}"
                yield CandidateEvent(candidate.name, ev.Failed(summary.message, 0))
                continue
            except FtguiError as exc:
                summary.status, summary.message = "failed", str(exc)
                yield CandidateEvent(candidate.name, ev.Failed(str(exc), 0))
                continue
            trainable, total = count_params(trainer.model)
            summary.trainable_params, summary.total_params = trainable, total
            summary.lr = trainer.config.lr if isinstance(trainer.config.lr, float) else None
            assert trainer.source is not None and trainer.prefix is not None
            trainer.prefix.shared = features
            if memo is None:
                memo = trainer.source.memo  # decoded pixels: the same for every candidate
            else:
                trainer.source.memo = memo
            self.trainers[candidate.name] = trainer
            yield from self._run_one(candidate, trainer, summary, cancel)
        recommended, reason, notes = recommend(list(self.summaries.values()))
        yield ComparisonFinished(tuple(self.summaries.values()), recommended, reason, notes)

    def _run_one(
        self, candidate: Candidate, trainer: Trainer, summary: CandidateSummary, cancel: ev.CancelToken
    ) -> Iterator[ev.Event]:
        start = time.perf_counter()
        for event in trainer.run(cancel):
            if isinstance(event, ev.EpochEnded):
                summary.final_train_accuracy = event.train_accuracy
            elif isinstance(event, ev.Finished):
                summary.status = "finished"
            elif isinstance(event, ev.Cancelled):
                summary.status = "stopped"
            elif isinstance(event, ev.Failed):
                summary.status, summary.message = "failed", event.message.split("\n\n")[0]
            yield CandidateEvent(candidate.name, event)
        summary.seconds = time.perf_counter() - start
        state = trainer.state
        summary.epochs = state.epoch
        summary.best_epoch, summary.best_val_loss = state.best_epoch, state.best_val_loss
        summary.best_val_accuracy = state.best_val_accuracy()
        summary.val_images = state.best_val_images()
        if summary.final_train_accuracy is not None and summary.best_val_accuracy is not None:
            summary.gap = summary.final_train_accuracy - summary.best_val_accuracy
        assert trainer.split is not None
        seen = len(trainer.split.train) * state.epoch
        summary.images_per_s = seen / summary.seconds if summary.seconds > 0 else 0.0
