"""The bundle format: file names, limits, and reading and validating model.json and split.json.gz."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeGuard

import torch

from ftgui.core.base.errors import CheckpointError
from ftgui.core.base.options import EXPORT_FORMATS, HEADS, format_files
from ftgui.core.base.staging import finish_interrupted

if TYPE_CHECKING:
    pass

BUNDLE_FORMAT = "ftgui-model"
BUNDLE_VERSION = 2  # 2: model.json records the weights' SHA-256
WEIGHTS_FILE = "model.safetensors"
META_FILE = "model.json"
CARD_FILE = "MODEL_CARD.md"
# The file lists of the split (and the skipped files), and the full evaluation, kept out of
# model.json so that it stays small however many images and classes there are.
SPLIT_FILE = "split.json.gz"
EVALUATION_FILE = "evaluation.json"
TOP_CONFUSIONS = 20  # model.json's evaluation summary lists this many
SKIPPED_LISTED = 20  # and this many skipped files (all of them are in split.json.gz)
FORMAT_FILES = {key: file for key, (file, _) in EXPORT_FORMATS.items()}
# Everything an export writes: replaced together, so no file of an older export stays beside it.
BUNDLE_FILES = (
    WEIGHTS_FILE,
    META_FILE,
    SPLIT_FILE,
    EVALUATION_FILE,
    CARD_FILE,
    *(name for fmt in EXPORT_FORMATS for name in format_files(fmt)),
)


def _json_default(o: Any) -> Any:
    if isinstance(o, (tuple, set)):
        return list(o)
    if isinstance(o, Path):
        return str(o)
    if isinstance(o, torch.Tensor):
        return o.tolist()
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


_SURROGATE = re.compile("[\ud800-\udfff]")


def dumps_json(obj: Any, indent: int | None = 2) -> str:
    """JSON text for any ftgui record: readable UTF-8, file names with undecodable bytes kept.

    Linux file names that are not valid UTF-8 reach Python as lone surrogates; they are written
    as ``\\udcXX`` escapes, which ``json.loads`` turns back into the same name. NaN and
    infinity, which JSON cannot hold, become null.
    """
    text = json.dumps(_finite(obj), indent=indent, default=_json_default, ensure_ascii=False, allow_nan=False)
    return _SURROGATE.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


def _finite(obj: Any) -> Any:
    if isinstance(obj, float):
        return obj if obj == obj and obj not in (float("inf"), float("-inf")) else None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    return obj


def read_split(bundle_dir: str | os.PathLike[str] | None, meta: dict[str, Any]) -> dict[str, Any] | None:
    """The split a bundle was trained on (root, train and val lists of [file, class index]), from
    its split.json.gz or, for bundles of earlier versions, model.json; None if it has none."""
    import gzip
    import zlib

    split = meta.get("split")
    if not isinstance(split, dict):
        return None
    if "train" in split or "val" in split:
        return split  # an earlier bundle: checked with model.json
    if split.get("file") != SPLIT_FILE or bundle_dir is None:
        return None
    path = Path(bundle_dir).expanduser() / SPLIT_FILE
    if not path.is_file():
        return None
    try:
        with gzip.open(path, "rb") as fh:
            raw = fh.read(MAX_META_BYTES + 1)
        if len(raw) > MAX_META_BYTES:
            raise CheckpointError(f"{SPLIT_FILE} in {bundle_dir} is far larger than any split ftgui writes.")
        record = json.loads(raw.decode("utf-8"))
    except (OSError, EOFError, zlib.error, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CheckpointError(
            f"{SPLIT_FILE} in {bundle_dir} is damaged and cannot be read ({exc})."
        ) from None
    problem = split_lists_problem(record, len(meta["classes"]))
    if problem:
        raise CheckpointError(f"{SPLIT_FILE} in {bundle_dir} is not a valid ftgui split: {problem}.")
    return {**record, "root": split.get("root", record.get("root", ""))}


def split_lists_problem(split: Any, num_classes: int) -> str | None:
    """What is wrong with a split record's file lists, or None."""
    if not isinstance(split, dict) or not isinstance(split.get("root", ""), str):
        return "'split' must be an object with the dataset folder as 'root'"
    for part in ("train", "val"):
        items = split.get(part, [])
        if not isinstance(items, list) or not all(
            isinstance(it, list) and len(it) == 2 and isinstance(it[0], str) and _is_int(it[1])
            and 0 <= it[1] < num_classes
            for it in items
        ):  # fmt: skip
            return f"'split.{part}' must list [file, class index] pairs"
    return None


MAX_CLASSES = 100_000  # ImageNet-21k has 21,843; more would cost gigabytes for the head alone
MAX_META_BYTES = 256 << 20
INTERPOLATIONS = ("nearest", "nearest-exact", "bilinear", "bicubic", "box", "hamming", "lanczos")
# Constructor arguments a bundle may pass to torchvision's builder, with their types.
MODEL_KWARGS = {
    "aux_logits": bool,
    "transform_input": bool,
    "init_weights": bool,
    "image_size": int,
    "img_size": int,
    "head": str,  # ftgui's head form (models/heads.py HEAD_FORMS), not torchvision's
}


def read_metadata(bundle_dir: str | os.PathLike[str]) -> dict[str, Any]:
    """Read and check model.json of an exported bundle."""
    d = Path(bundle_dir).expanduser()
    if d.is_dir():
        finish_interrupted(d)  # an export killed half-way through renaming its files in
    path = d / META_FILE if d.is_dir() else d
    if not path.is_file():
        raise CheckpointError(f"No {META_FILE} in {d}: choose the folder ftgui exported.")
    try:
        if path.stat().st_size > MAX_META_BYTES:
            raise CheckpointError(
                f"{path.name} is {path.stat().st_size / 2**20:,.0f} MB, far larger than any model "
                "description ftgui writes; it was not read."
            )
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"{path.name} is not valid JSON: {exc}") from None
    except RecursionError:
        raise CheckpointError(
            f"{path.name} is not a valid ftgui model description: nested too deeply."
        ) from None
    validate_metadata(meta, path.name)
    return meta


def _is_int(v: Any) -> TypeGuard[int]:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and v == v and abs(v) != float("inf")


def validate_metadata(meta: Any, name: str = META_FILE) -> None:
    """Every field that loading and prediction read, with its type and range."""
    from ftgui.core.base.text import class_names_problem
    from ftgui.core.models import is_known_arch
    from ftgui.core.models.timm_source import timm_missing

    def bad(what: str) -> CheckpointError:
        return CheckpointError(f"{name} is not a valid ftgui model description: {what}.")

    if not isinstance(meta, dict) or meta.get("format") != BUNDLE_FORMAT:
        raise bad("missing format 'ftgui-model'")
    version = meta.get("version")
    if not _is_int(version) or not 1 <= version <= BUNDLE_VERSION:
        raise bad(f"'version' must be 1 to {BUNDLE_VERSION} (this ftgui reads up to {BUNDLE_VERSION})")
    arch = meta.get("arch")
    if not isinstance(arch, str) or not is_known_arch(arch):
        missing = timm_missing() if isinstance(arch, str) and arch.startswith("timm:") else None
        if missing:
            raise bad(f"'arch' is {arch}: {missing}")
        raise bad("'arch' must be the name of a torchvision classification model (or timm:NAME)")
    classes = meta.get("classes")
    if not isinstance(classes, list) or not classes or not all(isinstance(c, str) for c in classes):
        raise bad("'classes' must be a non-empty list of names")
    problem = class_names_problem(classes)
    if problem:
        raise bad(problem)
    if len(classes) > MAX_CLASSES:
        raise bad(f"{len(classes):,} classes is more than ftgui supports ({MAX_CLASSES:,})")
    if meta.get("num_classes") != len(classes) or not _is_int(meta.get("num_classes")):
        raise bad(f"'num_classes' ({meta.get('num_classes')!r}) differs from the {len(classes)} class names")
    for key in ("input_size", "resize_size"):
        if not _is_int(meta.get(key)) or not 8 <= meta[key] <= 4096:
            raise bad(f"'{key}' must be a size in pixels (8 to 4096)")
    for key in ("mean", "std"):
        v = meta.get(key)
        if not isinstance(v, list) or len(v) != 3 or not all(_is_number(x) for x in v):
            raise bad(f"'{key}' must be three numbers")
    if any(float(s) <= 0 for s in meta["std"]):
        raise bad("'std' values must be positive")
    if meta.get("interpolation") not in INTERPOLATIONS:
        raise bad(f"'interpolation' must be one of {', '.join(INTERPOLATIONS)}")
    kwargs = meta.get("model_kwargs")
    if not isinstance(kwargs, dict):
        raise bad("'model_kwargs' must be an object")
    for key, value in kwargs.items():
        kind = MODEL_KWARGS.get(key)
        if kind is None:
            raise bad(f"'model_kwargs' has an argument ftgui never writes ({key!r})")
        if kind is str and value not in HEADS.keys() - {"auto"}:
            raise bad("'model_kwargs.head' must be linear or concat")
        if (kind is bool and not isinstance(value, bool)) or (kind is int and not _is_int(value)):
            raise bad(f"'model_kwargs.{key}' must be {'true or false' if kind is bool else 'a whole number'}")
        if key == "image_size" and not 8 <= value <= 4096:
            raise bad("'model_kwargs.image_size' must be a size in pixels (8 to 4096)")
    sha = meta.get("weights_sha256")
    if version >= 2 or sha is not None:
        if not isinstance(sha, str) or not re.fullmatch("[0-9a-f]{64}", sha):
            raise bad("'weights_sha256' must be the 64 hexadecimal digits of the weights' SHA-256")
    split = meta.get("split")
    if split is not None:
        problem = split_lists_problem(split, len(classes))
        if problem:
            raise bad(problem)


def non_finite(state: dict[str, torch.Tensor]) -> list[str]:
    """Names of floating-point tensors holding a NaN or an infinity (one reduction per tensor:
    amax keeps a NaN, and is infinite where any value is)."""
    return [
        k
        for k, t in state.items()
        if t.is_floating_point() and t.numel() and not bool(torch.isfinite(t.abs().amax()))
    ]
