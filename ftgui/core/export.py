"""Exported bundles (model.safetensors + model.json) and atomic file writes.

``model.safetensors`` holds the complete state dict: it loads into
``torchvision.models.get_model(arch, num_classes=K, **model_kwargs)`` with ``strict=True``
(``model_kwargs`` is empty for every architecture except pretrained GoogLeNet/Inception,
whose input transform and auxiliary heads differ from the plain constructor's defaults).
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import json
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

import torch
import torchvision

from .. import __version__
from .errors import CheckpointError
from .layers import trainable_names

BUNDLE_FORMAT = "ftgui-model"
WEIGHTS_FILE = "model.safetensors"
META_FILE = "model.json"


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike[str], mode: str = "wb") -> Iterator[IO[Any]]:
    """Write to a temporary file beside ``path`` and rename it over ``path`` only when complete.

    A crash or kill half-way leaves the previous file at ``path`` untouched.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".partial", dir=target.parent)
    # mkstemp creates 0600 files; give the result the permissions a normal file would get.
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)
    try:
        with os.fdopen(fd, mode) as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def atomic_write(path: str | os.PathLike[str], writer: Callable[[IO[bytes]], None]) -> Path:
    with atomic_open(path, "wb") as fh:
        writer(fh)
    return Path(path)


def atomic_torch_save(obj: Any, path: str | os.PathLike[str]) -> Path:
    return atomic_write(path, lambda fh: torch.save(obj, fh))


def _json_default(o: Any) -> Any:
    if isinstance(o, (tuple, set)):
        return list(o)
    if isinstance(o, Path):
        return str(o)
    if isinstance(o, torch.Tensor):
        return o.tolist()
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def bundle_metadata(trainer: Any) -> dict[str, Any]:
    """model.json's content for a trainer's current model."""
    built, scan, split = trainer.built, trainer.scan, trainer.split
    pre = built.preprocess
    counts = scan.counts(split.train) if split else []
    val_counts = scan.counts(split.val) if split else []
    return {
        "format": BUNDLE_FORMAT,
        "version": 1,
        "ftgui_version": __version__,
        "torch_version": torch.__version__,
        "torchvision_version": torchvision.__version__,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "arch": built.arch,
        "num_classes": built.num_classes,
        "classes": list(scan.classes),
        "model_kwargs": dict(built.model_kwargs),
        "input_size": pre.crop_size,
        "resize_size": pre.resize_size,
        "mean": list(pre.mean),
        "std": list(pre.std),
        "interpolation": pre.interpolation,
        "weights_source": built.weights_source,
        "head": list(built.head),
        "trainable_parameters": trainable_names(built.model),
        "training": trainer.config.to_dict(),
        "epochs_completed": trainer.epoch,
        "best_epoch": trainer.best_epoch,
        "history": trainer.history,
        "class_counts": {"train": counts, "val": val_counts},
        "split": {"root": scan.root, **(split.to_dict() if split else {"train": [], "val": []})},
        "skipped": [[p, r] for p, r in sorted(trainer.skipped.items())],
    }


def export_bundle(trainer: Any, out_dir: str | os.PathLike[str]) -> Path:
    """Write model.safetensors and model.json to ``out_dir`` (each atomically)."""
    from safetensors.torch import save

    out = Path(out_dir).expanduser()
    if out.exists() and not out.is_dir():
        raise CheckpointError(f"Cannot export to {out}: it is a file, not a folder.")
    out.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous().clone() for k, v in trainer.model.state_dict().items()}
    meta = bundle_metadata(trainer)
    data = save(state, metadata={"format": BUNDLE_FORMAT, "arch": meta["arch"]})
    atomic_write(out / WEIGHTS_FILE, lambda fh: fh.write(data))
    text = json.dumps(meta, indent=2, default=_json_default, ensure_ascii=False)
    atomic_write(out / META_FILE, lambda fh: fh.write(text.encode("utf-8")))
    return out


def read_metadata(bundle_dir: str | os.PathLike[str]) -> dict[str, Any]:
    """Read and check model.json of an exported bundle."""
    d = Path(bundle_dir).expanduser()
    path = d / META_FILE if d.is_dir() else d
    if not path.is_file():
        raise CheckpointError(f"No {META_FILE} in {d}: choose the folder ftgui exported.")
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"{path.name} is not valid JSON: {exc}") from None
    _validate_metadata(meta, path.name)
    return meta


def _validate_metadata(meta: Any, name: str) -> None:
    def bad(what: str) -> CheckpointError:
        return CheckpointError(f"{name} is not a valid ftgui model description: {what}.")

    if not isinstance(meta, dict) or meta.get("format") != BUNDLE_FORMAT:
        raise bad("missing format 'ftgui-model'")
    if not isinstance(meta.get("arch"), str):
        raise bad("'arch' must be a model name")
    classes = meta.get("classes")
    if not isinstance(classes, list) or not classes or not all(isinstance(c, str) for c in classes):
        raise bad("'classes' must be a non-empty list of names")
    if meta.get("num_classes") != len(classes):
        raise bad(f"'num_classes' ({meta.get('num_classes')}) differs from the {len(classes)} class names")
    for key in ("input_size", "resize_size"):
        if not isinstance(meta.get(key), int) or not 8 <= meta[key] <= 4096:
            raise bad(f"'{key}' must be a size in pixels")
    for key in ("mean", "std"):
        v = meta.get(key)
        if not isinstance(v, list) or len(v) != 3 or not all(isinstance(x, (int, float)) for x in v):
            raise bad(f"'{key}' must be three numbers")
    if any(float(s) <= 0 for s in meta["std"]):
        raise bad("'std' values must be positive")
    if not isinstance(meta.get("model_kwargs", {}), dict):
        raise bad("'model_kwargs' must be an object")
