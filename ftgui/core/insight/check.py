"""Check data: likely wrong labels, near-duplicates, train/validation leaks, outliers and class
imbalance, found from the model's view of the images with cleanlab's ``Datalab``.

The frozen backbone's features come from the frozen-prefix cache (so a second check, or a
training run after it, reuses them). The head is then trained k times on the cached features
(scikit-learn's logistic regression: a linear head, seconds), each time predicting the fold it
did not see; cleanlab reads those out-of-fold probabilities and the features. Nothing here
changes a file: fixing what it finds is ``core/data/fixes.py``'s job.
"""

from __future__ import annotations

import csv
import io
import json
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from ftgui.core.base import events as ev
from ftgui.core.base.errors import FtguiError
from ftgui.core.base.extras import importable
from ftgui.core.data.samples import ScanResult, Split, split_samples
from ftgui.core.data.scan import scan_folder
from ftgui.core.insight.folds import Progress, out_of_fold_probabilities
from ftgui.core.models.build import BuiltModel
from ftgui.core.models.freeze import FreezePlan
from ftgui.core.training.config import TrainConfig

if TYPE_CHECKING:
    from ftgui.core.bundle.trained import TrainedModel

INSTALL = "pip install 'ftgui[insight]'  (cleanlab)"
KINDS = ("leak", "label", "duplicate", "outlier", "imbalance")
KIND_NAMES = {
    "leak": "In train and validation",
    "label": "Likely mislabeled",
    "duplicate": "Near-duplicate",
    "outlier": "Outlier",
    "imbalance": "Class imbalance",
}

PLURALS = {
    "leak": "in train and validation",
    "label": "likely mislabeled",
    "duplicate": "near-duplicates",
    "outlier": "outliers",
    "imbalance": "rare classes",
}

Note = Callable[[str], None]


def cleanlab_missing() -> str | None:
    """What to install for Check data, or None when cleanlab is there."""
    missing = [m for m in ("cleanlab", "sklearn", "datasets") if not importable(m)]
    if missing:
        return f"Check data needs cleanlab, which is not installed. Install with: {INSTALL}"
    return None


@dataclass(frozen=True)
class Finding:
    kind: str  # one of KINDS
    path: str  # relative to the dataset; a class folder for "imbalance"
    score: float  # 0..1, higher = more certainly a problem (ranks the list)
    given: str  # the class folder it is in
    split: str  # "train" | "val" | ""
    suggested: str = ""  # label issues: the class the model believes
    partner: str = ""  # duplicates and leaks: the closest other image
    detail: str = ""  # one readable sentence

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class DataCheck:
    root: str
    classes: list[str]
    counts: list[int]
    images: int
    findings: list[Finding]
    features_from: str  # what made the features (model and weights, or the bundle)
    oof_accuracy: float  # the k-fold head's accuracy on the folds it did not see
    folds: int
    seconds: float
    skipped: list[tuple[str, str]] = field(default_factory=list)
    random_features: bool = False  # made by a backbone with random weights: the scores say little

    def of_kind(self, kind: str) -> list[Finding]:
        return [f for f in self.findings if f.kind == kind]

    def summary(self) -> str:
        parts = [f"{len(self.of_kind(k))} {PLURALS[k]}" for k in KINDS if self.of_kind(k)]
        return (
            f"Checked {self.images} images in {self.seconds:.1f} s: "
            + (", ".join(parts) if parts else "nothing suspicious found")
            + f". The head's out-of-fold accuracy is {100 * self.oof_accuracy:.1f}% ({self.folds} folds)."
        )

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["findings"] = [f.to_dict() for f in self.findings]
        return d

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, ensure_ascii=False)

    def to_csv(self) -> str:
        buf = io.StringIO()
        names = list(Finding.__dataclass_fields__)
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(names)
        for f in self.findings:
            w.writerow([f"{v:.4f}" if isinstance(v, float) else v for v in asdict(f).values()])
        return buf.getvalue()


def check_config(config: TrainConfig) -> TrainConfig:
    """The run whose features a check uses: head only, unaugmented, with the cache on."""
    cfg = TrainConfig.from_dict(config.to_dict())
    cfg.freeze, cfg.augment, cfg.cache, cfg.epochs = FreezePlan.parse("head"), False, "auto", 1
    return cfg


def _split_for(scan: ScanResult, config: TrainConfig, recorded: dict[str, Any] | None) -> Split:
    """The split training would use; with a bundle, its own recorded validation files."""
    if isinstance(recorded, dict) and isinstance(recorded.get("val"), list):
        val = {str(p[0]) for p in recorded["val"] if isinstance(p, list) and p}
        return Split(
            [s for s in scan.samples if s.path not in val], [s for s in scan.samples if s.path in val]
        )
    return split_samples(scan, config.val_fraction, config.seed)


@dataclass
class FrozenFeatures:
    scan: ScanResult
    rows: np.ndarray  # one feature vector per readable image
    labels: np.ndarray
    paths: list[str]
    parts: list[str]  # "train" | "val", per row
    described: str  # what made the features
    built: BuiltModel | None = None  # the model whose frozen layers made them
    random: bool = False  # a backbone with random weights made them


def frozen_features(
    config: TrainConfig,
    bundle: str | None,
    cancel: ev.CancelToken,
    note: Note,
    progress: Progress | None,
    trained: TrainedModel | None = None,
) -> FrozenFeatures:
    """The frozen backbone's features of every readable image, from the frozen-prefix cache:
    the configured model's, an exported ``bundle``'s, or the model just ``trained`` (a copy)."""  # fmt: skip
    from ftgui.core.insight.sources import features_source
    from ftgui.core.training.engine import Trainer

    cfg = check_config(config)
    scan = scan_folder(cfg.data_dir)
    weights = cfg.weights or "none"
    built, recorded, described = features_source(cfg, bundle, trained)  # sets cfg.arch and bn_stats
    split = _split_for(scan, cfg, recorded)
    trainer = Trainer(cfg)
    trainer.prepare(scan=scan, built=built, split=split)
    for e in trainer.ensure_cache(cancel):
        if isinstance(e, ev.Message):
            note(e.text)
        elif isinstance(e, ev.Preparing) and progress and e.what == "caching":
            progress(e.done, e.total)
    if cancel.cancelled:
        raise FtguiError("Check data was stopped.")
    prefix = trainer.prefix
    assert prefix is not None
    if not prefix.active:
        raise FtguiError(
            f"Check data could not cache {cfg.arch}'s frozen layers (not enough memory or disk, or "
            "a model with auxiliary classifiers); try another model or --cache-memory."
        )
    active = prefix._active
    assert active is not None
    rows, labels, parts, paths = [], [], [], []
    for part, store, samples in (("train", active.train, split.train), ("val", active.val, split.val)):
        keep = [i for i in range(len(samples)) if store.valid[i]]
        for start in range(0, len(keep), 1024):
            chunk = keep[start : start + 1024]
            x = store.get(chunk).float()
            rows.append((x.flatten(2).mean(2) if x.dim() > 2 else x.flatten(1)).numpy())
        labels += [samples[i].label for i in keep]
        parts += [part] * len(keep)
        paths += [samples[i].path for i in keep]
    if progress:
        progress(1, 1)  # the features' step is done (from the cache it reports nothing else)
    skipped = sorted(trainer.skipped.items())
    scan.skipped = [*scan.skipped, *(s for s in skipped if s not in scan.skipped)]
    feats = np.concatenate(rows) if rows else np.zeros((0, 1), np.float32)
    random = bundle is None and trained is None and weights == "none"
    return FrozenFeatures(
        scan, feats, np.asarray(labels, dtype=np.int64), paths, parts, described, trainer.built, random
    )


def _share(progress: Progress | None, start: int, end: int) -> Progress | None:
    """A step's own (done, total) as its share, start to end, of a bar of 100."""
    return (
        None
        if progress is None
        else lambda d, t: progress(start + (end - start) * min(d, t) // max(t, 1), 100)
    )


def check_data(
    config: TrainConfig,
    bundle: str | os.PathLike[str] | None = None,
    folds: int = 5,
    cancel: ev.CancelToken | None = None,
    note: Note | None = None,
    progress: Progress | None = None,
    trained: TrainedModel | None = None,
) -> DataCheck:
    """Check ``config.data_dir`` (see the module's docstring); raises FtguiError on bad input.
    Features come from ``bundle`` or ``trained`` where given, else from the configured model."""
    missing = cleanlab_missing()
    if missing:
        raise FtguiError(missing)
    started = time.perf_counter()
    cancel = cancel or ev.CancelToken()
    note = note or (lambda _text: None)
    # One bar for the three steps, each its share of the time: the features (computed once,
    # then cached), the k heads, then cleanlab's search (100 % only when the check is done).
    got = frozen_features(
        config, str(bundle) if bundle else None, cancel, note, _share(progress, 0, 60), trained
    )
    scan, feats, labels, paths, parts = got.scan, got.rows, got.labels, got.paths, got.parts
    n = len(labels)
    counts = np.bincount(labels, minlength=len(scan.classes)) if n else np.zeros(len(scan.classes), int)
    present = counts[counts > 0]
    if n < 10 or len(present) < 2:
        raise FtguiError(f"Check data needs at least 10 readable images in 2 classes; found {n}.")
    k = int(min(folds, present.min()))
    if k < 2:
        rare = [c for c, m in zip(scan.classes, counts) if m == 1]
        raise FtguiError(
            f"Check data needs at least 2 images in every class; {', '.join(rare)} has only one."
        )
    note(f"Training the head {k} times on the cached features of {n} images…")
    probs = out_of_fold_probabilities(feats, labels, k, config.seed, _share(progress, 60, 90))
    if cancel.cancelled:
        raise FtguiError("Check data was stopped.")
    # Columns for classes without images (all excluded, say) would confuse cleanlab.
    used = np.flatnonzero(counts > 0)
    remap = {int(c): i for i, c in enumerate(used)}
    findings = _find_issues(
        feats, np.array([remap[int(y)] for y in labels]), probs, [scan.classes[i] for i in used],
        paths, parts, Path(scan.root),
    )  # fmt: skip
    if progress:
        progress(100, 100)
    oof = float((probs.argmax(1) == np.array([remap[int(y)] for y in labels])).mean())
    return DataCheck(
        root=scan.root,
        classes=list(scan.classes),
        counts=[int(c) for c in counts],
        images=n,
        findings=findings,
        features_from=got.described,
        oof_accuracy=oof,
        folds=k,
        seconds=time.perf_counter() - started,
        skipped=list(scan.skipped),
        random_features=got.random,
    )


def _same_bytes(a: Path, b: Path) -> bool:
    try:
        return a.stat().st_size == b.stat().st_size and a.read_bytes() == b.read_bytes()
    except OSError:
        return False


def _find_issues(
    feats: np.ndarray,
    labels: np.ndarray,
    probs: np.ndarray,
    classes: list[str],
    paths: list[str],
    parts: list[str],
    root: Path,
) -> list[Finding]:
    from cleanlab import Datalab

    lab = Datalab(data={"label": labels}, label_name="label", verbosity=0)
    issue_types: dict[str, dict[str, Any]] = {
        # One process: cleanlab's default forks a worker pool, and forking a process that runs
        # threads (the window, decoding, torch) can leave a worker waiting on a lock forever.
        "label": {"clean_learning_kwargs": {"find_label_issues_kwargs": {"n_jobs": 1}}},
        "outlier": {},
        "near_duplicate": {},
        "class_imbalance": {},
    }
    torch_threads = torch.get_num_threads()
    try:
        lab.find_issues(features=feats.astype(np.float32), pred_probs=probs, issue_types=issue_types)
    finally:
        torch.set_num_threads(torch_threads)
    given = [classes[int(y)] for y in labels]
    out: list[Finding] = []

    label = lab.get_issues("label")
    for i in np.flatnonzero(label["is_label_issue"].to_numpy()):
        believed = classes[int(label["predicted_label"].iloc[i])]
        out.append(
            Finding("label", paths[i], 1 - float(label["label_score"].iloc[i]), given[i], parts[i],
                    suggested=believed,
                    detail=f"In {given[i]}, but the model says {believed} ({100 * probs[i].max():.0f}%).")
        )  # fmt: skip

    dup = lab.get_issues("near_duplicate")
    flagged = dup["is_near_duplicate_issue"].to_numpy()
    seen_pairs: set[tuple[int, int]] = set()
    for i in np.flatnonzero(flagged).tolist():
        others = [int(j) for j in dup["near_duplicate_sets"].iloc[i]]
        if not others:
            continue
        j = min(others, key=lambda j: float(np.linalg.norm(feats[i] - feats[j])))
        pair = (i, j) if i < j else (j, i)
        if pair in seen_pairs:
            continue
        seen_pairs.add(pair)
        same = _same_bytes(root / paths[i], root / paths[j])
        how = "an identical file" if same else "a near-duplicate"
        score = 1 - float(dup["near_duplicate_score"].iloc[i])
        if {parts[i], parts[j]} == {"train", "val"}:
            v, t = (i, j) if parts[i] == "val" else (j, i)
            out.append(
                Finding("leak", paths[v], max(score, 0.999 if same else score), given[v], "val",
                        partner=paths[t],
                        detail=f"A validation image with {how} in training ({paths[t]}): it makes "
                        "validation accuracy look better than it is.")
            )  # fmt: skip
        else:
            extra = "" if given[i] == given[j] else f", labelled {given[j]}"
            out.append(
                Finding("duplicate", paths[i], score, given[i], parts[i], partner=paths[j],
                        detail=f"{how.capitalize()} of {paths[j]}{extra}.")
            )  # fmt: skip

    outlier = lab.get_issues("outlier")
    for i in np.flatnonzero(outlier["is_outlier_issue"].to_numpy()):
        out.append(
            Finding("outlier", paths[i], 1 - float(outlier["outlier_score"].iloc[i]), given[i], parts[i],
                    detail="Unlike the other images: a stray file, or a kind of picture seen only once.")
        )  # fmt: skip

    counts = np.bincount(labels, minlength=len(classes))
    imbalance = lab.get_issues("class_imbalance")
    rare = sorted({given[i] for i in np.flatnonzero(imbalance["is_class_imbalance_issue"].to_numpy())})
    median = float(np.median(counts))
    for c in rare:
        m = int(counts[classes.index(c)])
        out.append(
            Finding("imbalance", c, 1 - m / max(median, 1), c, "",
                    detail=f"{c} has {m} images; the median class has {median:.0f}. Add images, or expect "
                    "it to be predicted less often.")
        )  # fmt: skip

    order = {k: i for i, k in enumerate(KINDS)}
    out.sort(key=lambda f: (order[f.kind], -f.score, f.path))
    return out
