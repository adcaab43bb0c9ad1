"""Every training run is kept: a small JSON record per run in the app's data folder.

The window, ``ftgui-train`` and ``ftgui-compare`` record each run (configuration, freeze plan,
per-epoch history, final metrics, where its bundle is). Records are plain JSON, readable without
the dataset: a dataset moved elsewhere keeps its past runs (they are matched by folder, or by
folder name and class names when the folder moved).
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ftgui.core.base.errors import FtguiError
from ftgui.core.base.paths import data_dir

if TYPE_CHECKING:
    from ftgui.core.training.engine import Trainer

RUN_FORMAT = "ftgui-run"


def runs_dir() -> Path:
    return data_dir() / "runs"


@dataclass
class RunRecord:
    id: str
    created: str  # ISO time, UTC
    source: str  # window | ftgui-train | ftgui-compare
    dataset: str  # the dataset folder when the run trained
    classes: list[str]
    arch: str
    strategy: str
    freeze: dict[str, Any]
    config: dict[str, Any]
    history: list[dict[str, Any]]
    epochs: int
    best_epoch: int | None
    best_val_accuracy: float | None
    best_val_loss: float | None
    seconds: float | None = None
    bundle: str | None = None  # where its model.safetensors + model.json are, if exported
    comparison: str | None = None  # the comparison it was a candidate of
    candidate: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    ended: str = "finished"  # finished | stopped early | stopped (by the user) | failed

    @property
    def dataset_name(self) -> str:
        return Path(self.dataset).name

    def to_dict(self) -> dict[str, Any]:
        return {"format": RUN_FORMAT, "version": 1, **asdict(self)}


def how_it_ended(event: object) -> str:
    """A run's last event as the record's ``ended``."""
    from ftgui.core.base import events as ev

    if isinstance(event, ev.Finished):
        return "stopped early" if event.stopped_early else "finished"
    return "stopped" if isinstance(event, ev.Cancelled) else "failed"


def record_run(
    trainer: Trainer,
    source: str,
    *,
    bundle: str | os.PathLike[str] | None = None,
    seconds: float | None = None,
    comparison: str | None = None,
    candidate: str | None = None,
    folder: Path | None = None,
    ended: str = "finished",
) -> RunRecord:
    """Write the record of a run that completed at least one epoch; returns it."""
    from ftgui.core.base.files import atomic_write, remove_stale_partials
    from ftgui.core.bundle.format import dumps_json

    if trainer.scan is None or trainer.epoch < 1:
        raise FtguiError("Only runs that finished an epoch are recorded.")
    cfg = trainer.config
    now = _dt.datetime.now(_dt.timezone.utc)
    record = RunRecord(
        id=f"{now:%Y%m%d-%H%M%S}-{uuid.uuid4().hex[:6]}",
        created=now.isoformat(timespec="microseconds"),  # orders runs made in the same second
        source=source,
        dataset=str(trainer.scan.root),
        classes=list(trainer.classes),
        arch=cfg.arch,
        strategy=cfg.strategy,
        freeze=cfg.freeze.to_dict(),
        config=cfg.to_dict(),
        history=list(trainer.history),
        epochs=trainer.epoch,
        best_epoch=trainer.best_epoch,
        best_val_accuracy=trainer.state.best_val_accuracy(),
        best_val_loss=trainer.state.best_val_loss,
        seconds=seconds,
        bundle=str(Path(bundle).resolve()) if bundle is not None else None,
        comparison=comparison,
        candidate=candidate,
        ended=ended,
    )
    target = (folder or runs_dir()) / f"{record.id}.json"
    target.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_partials(target, every=".json")  # a killed run's record, never renamed into place
    atomic_write(target, lambda fh: fh.write(dumps_json(record.to_dict()).encode()))
    return record


_NUMBER = (int, float)
# What each field of a record must hold (None allowed where the type lists it).
_FIELD_TYPES: dict[str, tuple[type, ...]] = {
    **dict.fromkeys(("id", "created", "source", "dataset", "arch", "strategy"), (str,)),
    "classes": (list,),
    **dict.fromkeys(("freeze", "config", "extra"), (dict,)),
    "history": (list,),
    "epochs": (int,),
    "best_epoch": (int, type(None)),
    **dict.fromkeys(("best_val_accuracy", "best_val_loss", "seconds"), (*_NUMBER, type(None))),
    **dict.fromkeys(("bundle", "comparison", "candidate"), (str, type(None))),
    "ended": (str,),
}


_EPOCH_NUMBERS = ("epoch", "train_loss", "val_loss", "val_accuracy", "train_accuracy", "lr", "seconds")


def _epoch_fits(h: object) -> bool:
    """One history entry: the figures the Runs panel draws are numbers (or absent/null)."""
    if not isinstance(h, dict) or not isinstance(h.get("epoch"), _NUMBER) or isinstance(h["epoch"], bool):
        return False
    return all(
        h.get(k) is None or (isinstance(h[k], _NUMBER) and not isinstance(h[k], bool)) for k in _EPOCH_NUMBERS
    )


def _fits(d: dict[str, Any]) -> bool:
    for key, kinds in _FIELD_TYPES.items():
        if key in d and (not isinstance(d[key], kinds) or isinstance(d[key], bool)):
            return False
    try:
        _dt.datetime.fromisoformat(d.get("created", ""))
    except (TypeError, ValueError):
        return False
    return all(isinstance(c, str) for c in d.get("classes", [])) and all(
        _epoch_fits(h) for h in d.get("history", [])
    )


def _read(path: Path) -> RunRecord | None:
    try:
        d = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(d, dict) or d.get("format") != RUN_FORMAT or not _fits(d):
            return None
        known = set(RunRecord.__dataclass_fields__)
        return RunRecord(**{k: v for k, v in d.items() if k in known})
    except (OSError, ValueError, TypeError, RecursionError):
        return None  # a damaged record is left alone, not shown


def list_runs(
    dataset: str | os.PathLike[str] | None = None,
    classes: list[str] | None = None,
    folder: Path | None = None,
) -> list[RunRecord]:
    """Recorded runs, newest first; with ``dataset``, those of that folder (or of a folder of the
    same name and classes: the dataset moved)."""
    root = folder or runs_dir()
    records = [r for r in (_read(p) for p in sorted(root.glob("*.json"))) if r is not None]
    if dataset is not None:
        here = os.path.realpath(dataset)
        name = Path(dataset).name
        records = [
            r
            for r in records
            if os.path.realpath(r.dataset) == here
            or (r.dataset_name == name and classes is not None and r.classes == classes)
        ]
    return sorted(records, key=lambda r: r.created, reverse=True)


def note_export(run_id: str, bundle: str | os.PathLike[str], folder: Path | None = None) -> None:
    """The run was exported (after it was recorded): its record says where, from now on."""
    from ftgui.core.base.files import atomic_write
    from ftgui.core.bundle.format import dumps_json

    path = (folder or runs_dir()) / f"{run_id}.json"
    record = _read(path) if "/" not in run_id and os.sep not in run_id else None
    if record is None:
        raise FtguiError(f"No recorded run {run_id!r}.")
    data = {**record.to_dict(), "bundle": str(Path(bundle).expanduser().resolve())}
    atomic_write(path, lambda fh: fh.write(dumps_json(data).encode()))


def delete_run(run_id: str, folder: Path | None = None) -> None:
    """Forget a run (its record only: its bundle, if any, stays where it is)."""
    path = (folder or runs_dir()) / f"{run_id}.json"
    if "/" in run_id or os.sep in run_id or not path.is_file():
        raise FtguiError(f"No recorded run {run_id!r}.")
    path.unlink()
