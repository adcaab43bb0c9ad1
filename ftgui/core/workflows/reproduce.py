"""``ftgui-train --reproduce BUNDLE``: the recorded configuration trained again on the recorded
files, and whether the new weights and validation figures match the bundle's.

Refused before any training when the files or the versions differ from the record (saying
what differs). The expectation depends on how the run was made: with one process, deterministic
algorithms on and the same machine, the weights should be bit-identical; otherwise the new
validation accuracy should fall within the recorded one's 95% interval.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ftgui.core.base import events as ev
from ftgui.core.base.errors import FtguiError
from ftgui.core.base.intervals import proportion, wilson
from ftgui.core.bundle.format import read_metadata, read_split
from ftgui.core.bundle.predict import Predictor
from ftgui.core.compute import environment
from ftgui.core.compute.device import select_device
from ftgui.core.compute.precision import Precision
from ftgui.core.data.fingerprint import DataFingerprint, differences, fingerprint
from ftgui.core.data.samples import Sample, ScanResult, Split
from ftgui.core.models.timm_source import is_timm
from ftgui.core.training.config import TrainConfig
from ftgui.core.training.engine import Trainer
from ftgui.core.training.provenance import recorded_precision


@dataclass
class Reproduction:
    """A bundle's run, checked and ready to train again."""

    bundle: Path
    meta: dict[str, Any]
    config: TrainConfig
    scan: ScanResult
    split: Split
    precision: Precision
    data: DataFingerprint
    machine_changes: list[str]
    expect_identical: bool
    expectation: str  # why that is what to expect
    trainer: Trainer | None = None  # the new run (run() makes it)

    def describe(self) -> list[str]:
        """What is about to run, a line each."""
        cfg, versions = self.config, self.meta["reproducibility"]["versions"]
        size = self.data.total_bytes / 2**20
        lr = cfg.lr if isinstance(cfg.lr, str) else f"{cfg.lr:.3g}"
        return [
            f"data: {len(self.data.files)} files ({size:,.1f} MB) under {self.scan.root}, each as recorded "
            f"(SHA-256 {self.data.digest[:12]}…)",
            "versions: "
            + ", ".join(f"{k} {v}" for k, v in versions.items() if v and k != "python")
            + " as recorded",
            f"run: {cfg.arch}, {cfg.strategy}, {cfg.epochs} epochs, learning rate {lr}, seed {cfg.seed}, "
            f"{self.precision.note}, deterministic algorithms {'on' if cfg.deterministic else 'off'}",
            f"expecting {self.expectation}",
        ]


def prepare(bundle_dir: str, data_dir: str | None = None) -> Reproduction:
    """Read a bundle's record and check the files and versions against it (FtguiError if they
    differ, with what differs)."""
    bundle = Path(bundle_dir).expanduser()
    meta = read_metadata(bundle)
    record, data = meta.get("reproducibility"), meta.get("data")
    if not isinstance(record, dict) or not record or not isinstance(data, dict):
        raise FtguiError(
            f"{bundle} was written by ftgui {meta.get('ftgui_version', 'of an earlier version')}, which did not "
            "record the data's fingerprint and the seeds: it cannot be reproduced. Train it again to get a "
            "bundle that can."
        )
    changed = environment.version_differences(
        record["versions"], environment.versions(), is_timm(meta["arch"])
    )
    if changed:
        names = ("torch", "torchvision", "timm") if is_timm(meta["arch"]) else ("torch", "torchvision")
        wanted = " ".join(
            f"{k}=={str(v).split('+')[0]}" for k, v in record["versions"].items() if k in names and v
        )
        raise FtguiError(
            "Cannot reproduce this run: the versions differ from the record (" + "; ".join(changed) + "). "
            f"Install the recorded ones (pip install {wanted}) in another environment."
        )
    split_record = read_split(bundle, meta)
    if split_record is None or not split_record.get("fingerprint"):
        raise FtguiError(f"{bundle} has no record of the files it was trained on (split.json.gz).")
    root = Path(data_dir).expanduser() if data_dir else Path(split_record["root"])
    if not root.is_dir():
        raise FtguiError(
            f"The dataset folder the run used, {root}, is not there; give its new place with --data DIR."
        )
    split = Split.from_dict(split_record)
    recorded = DataFingerprint.from_listing(split_record["fingerprint"])
    now = fingerprint(str(root), [*split.train, *split.val])
    problems = differences(recorded, now)
    if problems or now.digest != data.get("sha256"):
        raise FtguiError(
            f"Cannot reproduce this run: the files under {root} are not the ones it used ("
            + ("; ".join(problems) or "the fingerprint differs")
            + "). Restore them, or train anew."
        )
    cfg = TrainConfig.from_dict(meta["training"])
    cfg.data_dir = str(root)
    stopped = int(meta.get("epochs_completed") or 0)
    if stopped < cfg.epochs and not cfg.early_stopping:
        raise FtguiError(
            f"This run was stopped by hand after epoch {stopped} of {cfg.epochs}; a stop cannot be repeated. "
            "Reproduce a run that finished."
        )
    ran_on = record["machine"]
    if ran_on.get("device") == "cpu":
        cfg.device = "cpu"  # not a GPU this machine may have
    machine_changes = environment.machine_differences(ran_on, environment.machine(select_device(cfg.device)))
    single = int(record.get("processes", 1)) == 1
    identical = bool(record.get("deterministic")) and single and not machine_changes
    if identical:
        why = "bit-identical weights: one process, deterministic algorithms, the same machine"
    else:
        reasons = (
            (["it ran with deterministic algorithms off"] if not record.get("deterministic") else [])
            + ([f"it ran in {record.get('processes')} processes"] if not single else [])
            + ([f"the machine differs ({'; '.join(machine_changes)})"] if machine_changes else [])
        )
        why = (
            "a validation accuracy within the recorded one's 95% interval, not bit-identical weights: "
            + ", ".join(reasons)
        )
    scan = ScanResult(
        str(root), list(meta["classes"]), [Sample(s.path, s.label) for s in [*split.train, *split.val]]
    )
    precision = recorded_precision(record.get("precision", {}))
    return Reproduction(bundle, meta, cfg, scan, split, precision, now, machine_changes, identical, why)


@dataclass(frozen=True)
class Reproduced(ev.Event):
    """How the new run compares with the record."""

    identical_tensors: int
    tensors: int
    largest_difference: float  # the largest absolute difference of any weight (0.0: identical)
    accuracy: float | None  # the new run's validation accuracy at its kept epoch
    recorded_accuracy: float | None
    val_images: int
    same_history: bool  # every epoch's validation loss and accuracy equal to the recorded ones
    matched: bool  # what was expected happened
    verdict: str
    lines: list[str] = field(default_factory=list)


def run(rep: Reproduction, cancel: ev.CancelToken | None = None) -> Iterator[ev.Event]:
    """Train the recorded configuration on the recorded files; then :class:`Reproduced`."""
    trainer = Trainer(rep.config, allow_download=False)
    trainer.forced_precision = rep.precision
    trainer.prepare(scan=rep.scan, split=rep.split)
    rep.trainer = trainer
    last: ev.Event | None = None
    for e in trainer.run(cancel):
        last = e
        yield e
    if not isinstance(last, ev.Finished):
        return
    yield compare(rep, trainer, last)


def compare(rep: Reproduction, trainer: Trainer, finished: ev.Finished) -> Reproduced:
    """The new weights and figures against the bundle's."""
    recorded = Predictor.load(rep.bundle).model.state_dict()
    new = {k: v.detach().cpu() for k, v in trainer.model.state_dict().items()}
    same, largest = 0, 0.0
    for name, old in recorded.items():
        mine = new.get(name)
        if mine is None or mine.shape != old.shape or mine.dtype != old.dtype:
            largest = float("inf")
            continue
        if torch.equal(mine, old):
            same += 1
        elif old.is_floating_point():
            largest = max(largest, float((mine.double() - old.double()).abs().max()))
        else:
            largest = max(largest, 1.0)
    before = [(h.get("val_loss"), h.get("val_accuracy")) for h in rep.meta.get("history", [])]
    after = [(h.get("val_loss"), h.get("val_accuracy")) for h in trainer.history]
    old_acc = _kept_accuracy(rep.meta)
    n = finished.val_images or int(rep.meta.get("split", {}).get("counts", {}).get("val", 0))
    new_acc = finished.best_val_accuracy
    identical = same == len(recorded) == len(new)
    lines = [
        f"weights: {same} of {len(recorded)} tensors bit-identical"
        + ("" if identical else f"; largest difference {largest:.3g}"),
        f"validation: {_said(new_acc, n)} now, {_said(old_acc, n)} recorded"
        + ("; every epoch's loss and accuracy identical" if before == after else ""),
    ]
    within = False
    if new_acc is not None and old_acc is not None and n:
        low, high = wilson(round(old_acc * n), n)
        within = low <= new_acc <= high
    if identical:
        verdict = "reproduced: bit-identical weights" + (
            "" if rep.expect_identical else " (more than was expected)"
        )
        matched = True
    elif rep.expect_identical:
        verdict = (
            "NOT reproduced bit for bit, though one process with deterministic algorithms on the same machine "
            "should be" + ("; the accuracy is within the recorded interval" if within else "")
        )
        matched = False
    elif within:
        verdict = "reproduced within the interval: the new accuracy lies in the recorded one's 95% range"
        matched = True
    else:
        verdict = "NOT reproduced: the new accuracy lies outside the recorded one's 95% range"
        matched = False
    return Reproduced(
        same, len(recorded), largest, new_acc, old_acc, n, before == after, matched, verdict, lines
    )


def _kept_accuracy(meta: dict[str, Any]) -> float | None:
    best, history = meta.get("best_epoch"), meta.get("history", [])
    if not isinstance(best, int) or not 1 <= best <= len(history):
        return None
    value = history[best - 1].get("val_accuracy")
    return float(value) if isinstance(value, (int, float)) else None


def _said(accuracy: float | None, n: int) -> str:
    if accuracy is None:
        return "no accuracy"
    return proportion(accuracy, n)
