"""Exported bundles (model.safetensors + model.json) and atomic file writes.

``model.safetensors`` holds the complete state dict: it loads into
``torchvision.models.get_model(arch, num_classes=K, **model_kwargs)`` with ``strict=True``
(``model_kwargs`` is empty for every architecture except pretrained GoogLeNet/Inception,
whose input transform and auxiliary heads differ from the plain constructor's defaults).
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import hashlib
import json
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeGuard

import torch
import torchvision

from .. import __version__
from .errors import CheckpointError
from .extras import importable
from .files import (
    DestinationError,
    atomic_write,
    bundle_bytes_needed,
    check_destination,
    staged_folder,
    write_synced,
)
from .freeze import FreezePlan
from .layers import trainable_names
from .options import EXPORT_FORMATS

if TYPE_CHECKING:
    from .engine import Trainer
    from .evaluate import Evaluation

__all__ = ["export_all", "export_bundle", "read_metadata"]

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
BUNDLE_FILES = (WEIGHTS_FILE, META_FILE, SPLIT_FILE, EVALUATION_FILE, CARD_FILE, *FORMAT_FILES.values())


def _json_default(o: Any) -> Any:
    if isinstance(o, (tuple, set)):
        return list(o)
    if isinstance(o, Path):
        return str(o)
    if isinstance(o, torch.Tensor):
        return o.tolist()
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def bundle_metadata(trainer: Trainer) -> dict[str, Any]:
    """model.json's content for a trainer's current model."""
    built, scan, split = trainer.built, trainer.scan, trainer.split
    if built is None or scan is None:
        raise CheckpointError("There is no trained model to export.")
    pre = built.preprocess
    counts = scan.counts(split.train) if split else []
    val_counts = scan.counts(split.val) if split else []
    return {
        "format": BUNDLE_FORMAT,
        "version": BUNDLE_VERSION,
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
        "trainable_parameter_names": trainable_names(built.model),
        "training": trainer.config.to_dict(),
        "distributed": distributed_record(trainer),
        "epochs_completed": trainer.epoch,
        "best_epoch": trainer.best_epoch,
        "weights_from": trainer.kept_because(),
        "history": trainer.history,
        "class_counts": {"train": counts, "val": val_counts},
        "split": {
            "root": scan.root,
            "file": SPLIT_FILE,
            "counts": {"train": len(split.train) if split else 0, "val": len(split.val) if split else 0},
        },
        "skipped": [[p, r] for p, r in sorted(trainer.skipped.items())[:SKIPPED_LISTED]],
        "skipped_total": len(trainer.skipped),
    }


def split_record(trainer: Trainer) -> dict[str, Any]:
    """split.json.gz's content: the dataset folder, the split's file lists, every skipped file."""
    scan, split = trainer.scan, trainer.split
    assert scan is not None
    return {
        "root": scan.root,
        **(split.to_dict() if split else {"train": [], "val": []}),
        "skipped": [[p, r] for p, r in sorted(trainer.skipped.items())],
    }


def evaluation_summary(evaluation: Evaluation) -> dict[str, Any]:
    """model.json's part of an evaluation: the headline figures and the most frequent
    confusions (the whole matrix, per-class figures and worst mistakes are in evaluation.json)."""
    d = evaluation.to_dict()
    cells = evaluation.top_confusions(TOP_CONFUSIONS)
    return {
        **{key: d[key] for key in ("split", "count", "unreadable", "accuracy", "loss")},
        "top_confusions": [{"true": i, "predicted": j, "count": n} for n, i, j in cells],
        "file": EVALUATION_FILE,
    }


def distributed_record(trainer: Trainer) -> dict[str, Any]:
    """How many processes trained, and the batch: ``--batch-size`` is always the global batch."""
    world = getattr(trainer, "world", None)
    size = world.size if world is not None and world.active else 1
    batch = trainer.config.batch_size
    return {
        "world_size": size,
        "backend": world.backend if world is not None and world.active else None,
        "global_batch_size": batch,
        "per_process_batch_size": -(-batch // size),
        "sync_bn": bool(trainer.config.sync_bn and size > 1),
    }


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


def weights_bytes(model: torch.nn.Module, arch: str) -> bytes:
    """model.safetensors's content; refuses weights that are not finite numbers."""
    from safetensors.torch import save

    state = {k: v.detach().cpu().contiguous().clone() for k, v in model.state_dict().items()}
    bad = [k for k, v in state.items() if v.is_floating_point() and not bool(torch.isfinite(v).all())]
    if bad:
        raise CheckpointError(
            f"The model's weights are not finite numbers (NaN or infinity in {bad[0]}"
            + (f" and {len(bad) - 1} more" if len(bad) > 1 else "")
            + "); nothing was exported. Train again with a lower learning rate."
        )
    return save(state, metadata={"format": BUNDLE_FORMAT, "arch": arch})


def write_bundle_files(trainer: Any, folder: Path, evaluation: Any | None = None) -> dict[str, Any]:
    """model.safetensors and model.json (with the weights' SHA-256) into ``folder``."""
    import gzip

    meta = bundle_metadata(trainer)
    evaluation = evaluation if evaluation is not None else getattr(trainer, "evaluation", None)
    if evaluation is not None:
        meta["evaluation"] = evaluation_summary(evaluation)
        write_synced(folder / EVALUATION_FILE, dumps_json(evaluation.to_dict(), indent=None).encode("utf-8"))
    data = weights_bytes(trainer.model, meta["arch"])
    meta["weights_sha256"] = hashlib.sha256(data).hexdigest()
    write_synced(folder / WEIGHTS_FILE, data)
    split = dumps_json(split_record(trainer), indent=None).encode("utf-8")
    write_synced(folder / SPLIT_FILE, gzip.compress(split, compresslevel=6, mtime=0))
    write_synced(folder / META_FILE, dumps_json(meta).encode("utf-8"))
    return meta


def read_split(bundle_dir: str | os.PathLike[str] | None, meta: dict[str, Any]) -> dict[str, Any] | None:
    """The split a bundle was trained on (root, train and val lists of [file, class index]), from
    its split.json.gz or, for bundles of earlier versions, model.json; None if it has none."""
    import gzip

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
    except (OSError, EOFError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"{SPLIT_FILE} in {bundle_dir} cannot be read: {exc}") from None
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


def check_output_folder(
    out: str | os.PathLike[str],
    data_dir: str | os.PathLike[str] | None,
    total_params: int = 0,
    trainable_params: int = 0,
    checkpoint: bool = False,
    what: str = "--out",
) -> Path:
    """Refuse an output folder before any work: a file, a file among its parents, read-only,
    inside a class folder of the dataset, or too little free space for the model (+ checkpoint)."""
    from .data import output_inside_class_folder

    path = check_destination(out, what)
    inside = output_inside_class_folder(data_dir, out) if data_dir else None
    if inside:
        raise DestinationError(
            f"{what} {path} is inside the class folder '{inside}' of the dataset: its files would be "
            "taken for images of that class. Choose a folder outside the dataset."
        )
    if total_params:
        check_destination(out, what, bundle_bytes_needed(total_params, trainable_params, checkpoint))
    return path


def export_bundle(
    trainer: Trainer, out_dir: str | os.PathLike[str], evaluation: Evaluation | None = None
) -> Path:
    """Write model.safetensors and model.json to ``out_dir``, swapped in together.

    Any file of an earlier export (MODEL_CARD.md, model.onnx, ...) goes with it; other files
    in ``out_dir`` (a checkpoint, the user's own) stay.
    """
    out = Path(out_dir).expanduser()
    with staged_folder(out, BUNDLE_FILES) as stage:
        write_bundle_files(trainer, stage, evaluation)
    return out


MAX_CLASSES = 100_000  # ImageNet-21k has 21,843; more would cost gigabytes for the head alone
MAX_META_BYTES = 256 << 20
INTERPOLATIONS = ("nearest", "nearest-exact", "bilinear", "bicubic", "box", "hamming", "lanczos")
# Constructor arguments a bundle may pass to torchvision's builder, with their types.
MODEL_KWARGS = {"aux_logits": bool, "transform_input": bool, "init_weights": bool, "image_size": int}


def read_metadata(bundle_dir: str | os.PathLike[str]) -> dict[str, Any]:
    """Read and check model.json of an exported bundle."""
    d = Path(bundle_dir).expanduser()
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
    from .models import list_architectures

    def bad(what: str) -> CheckpointError:
        return CheckpointError(f"{name} is not a valid ftgui model description: {what}.")

    if not isinstance(meta, dict) or meta.get("format") != BUNDLE_FORMAT:
        raise bad("missing format 'ftgui-model'")
    version = meta.get("version")
    if not _is_int(version) or not 1 <= version <= BUNDLE_VERSION:
        raise bad(f"'version' must be 1 to {BUNDLE_VERSION} (this ftgui reads up to {BUNDLE_VERSION})")
    if not isinstance(meta.get("arch"), str) or meta["arch"] not in list_architectures():
        raise bad("'arch' must be the name of a torchvision classification model")
    classes = meta.get("classes")
    if not isinstance(classes, list) or not classes or not all(isinstance(c, str) for c in classes):
        raise bad("'classes' must be a non-empty list of names")
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


# ---------------------------------------------------------------- other formats, verified

ONNX_OPSET = 18
TOLERANCE = 1e-3  # largest allowed difference in logits after a round trip


@dataclass(frozen=True)
class FormatCheck:
    """What a round trip of one exported file gave."""

    format: str
    path: str
    max_difference: float
    batch_sizes: tuple[int, ...]
    runtime: str


def verification_images(trainer: Trainer, count: int = 3) -> torch.Tensor:
    """A few validation (or training) images, preprocessed exactly as for prediction."""
    from .data import ImageListDataset

    assert trainer.split is not None and trainer.scan is not None, "the trainer is prepared"
    samples = (trainer.split.val or trainer.split.train)[: count * 3]
    ds = ImageListDataset(trainer.scan.root, samples, trainer.preprocess)
    images = [item[0] for item in (ds[i] for i in range(len(samples))) if item[0] is not None][:count]
    if not images:
        size = trainer.preprocess.crop_size
        return torch.rand(count, 3, size, size)
    while len(images) < count:
        images.append(images[-1])
    return torch.stack(images)


def _plain_eval_copy(model: torch.nn.Module) -> torch.nn.Module:
    import copy

    clone = copy.deepcopy(model).cpu().eval()
    return clone.to(memory_format=torch.contiguous_format)


def _compare(reference: torch.nn.Module, run: Callable[[torch.Tensor], Any], images: torch.Tensor) -> float:
    worst = 0.0
    with torch.inference_mode():
        for batch in (images[:1], images[:3]):
            expected = reference(batch).float()
            got = torch.as_tensor(run(batch)).float()
            if got.shape != expected.shape:
                raise CheckpointError(
                    f"exported model gave shape {tuple(got.shape)}, expected {tuple(expected.shape)}"
                )
            worst = max(worst, float((got - expected).abs().max()))
    return worst


def export_onnx(
    trainer: Trainer, out_dir: str | os.PathLike[str], images: torch.Tensor | None = None
) -> FormatCheck:
    """model.onnx with a dynamic batch dimension, checked with onnxruntime when it is installed."""
    import io
    import warnings

    model = _plain_eval_copy(trainer.model)
    images = verification_images(trainer) if images is None else images
    batch = torch.export.Dim("batch", min=1, max=4096)
    buffer = io.BytesIO()
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        # Exported with a batch of 2 (a batch of 1 can get specialised) and batch marked dynamic.
        program = torch.onnx.export(
            model,
            (images[:2],),
            input_names=["image"],
            output_names=["logits"],
            dynamic_shapes=({0: batch},),
            opset_version=ONNX_OPSET,
            dynamo=True,
            verbose=False,
        )
        program.save(buffer)  # type: ignore[union-attr, arg-type]  # torch writes to file objects too
    path = Path(out_dir) / FORMAT_FILES["onnx"]
    atomic_write(path, lambda fh: fh.write(buffer.getvalue()))
    try:
        import onnxruntime as ort
    except ImportError:
        return FormatCheck("onnx", str(path), float("nan"), (), "not checked: onnxruntime is not installed")
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    diff = _compare(model, lambda x: session.run(None, {name: x.numpy()})[0], images)
    return _checked("onnx", path, diff, f"onnxruntime {ort.__version__}, opset {ONNX_OPSET}")


def export_torchscript(
    trainer: Trainer, out_dir: str | os.PathLike[str], images: torch.Tensor | None = None
) -> FormatCheck:
    """model.torchscript.pt, loaded back with torch.jit.load and compared."""
    import io
    import warnings

    model = _plain_eval_copy(trainer.model)
    images = verification_images(trainer) if images is None else images
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            scripted = torch.jit.script(model)
        except Exception:
            scripted = torch.jit.trace(model, images[:2])
        buffer = io.BytesIO()
        torch.jit.save(scripted, buffer)
    path = Path(out_dir) / FORMAT_FILES["torchscript"]
    atomic_write(path, lambda fh: fh.write(buffer.getvalue()))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        loaded = torch.jit.load(str(path), map_location="cpu").eval()
    diff = _compare(model, loaded, images)
    return _checked("torchscript", path, diff, f"torch.jit {torch.__version__}")


def _checked(fmt: str, path: Path, diff: float, runtime: str) -> FormatCheck:
    if not diff <= TOLERANCE:
        raise CheckpointError(
            f"The exported {fmt} file does not match the model: logits differ by up to {diff:.2e} "
            f"(tolerance {TOLERANCE:g}). {path.name} should not be used."
        )
    return FormatCheck(fmt, str(path), diff, (1, 3), runtime)


def model_card(
    trainer: Trainer, checks: list[FormatCheck] | None = None, evaluation: Evaluation | None = None
) -> str:
    """A short Markdown description of the exported model."""
    meta = bundle_metadata(trainer)
    cfg = meta["training"]
    counts = meta["class_counts"]
    lines = [
        f"# {meta['arch']} fine-tuned on {Path(meta['split']['root']).name}",
        "",
        f"Exported by ftgui {meta['ftgui_version']} on {meta['created']} "
        f"(torch {meta['torch_version']}, torchvision {meta['torchvision_version']}).",
        "",
        "## Model",
        f"- Architecture: `{meta['arch']}` (torchvision), {meta['num_classes']} classes",
        f"- Weights it started from: {meta['weights_source']}",
        f"- Which layers trained: {FreezePlan.from_dict(cfg['freeze']).describe()}; "
        f"{len(meta['trainable_parameter_names'])} parameter tensors trained",
        "",
        "## Classes",
        "| index | class | train images | validation images |",
        "|---:|---|---:|---:|",
    ]
    for i, name in enumerate(meta["classes"]):
        tr = counts["train"][i] if i < len(counts["train"]) else 0
        va = counts["val"][i] if i < len(counts["val"]) else 0
        lines.append(f"| {i} | {name} | {tr} | {va} |")
    lines += [
        "",
        "## Training",
        f"- Epochs: {meta['epochs_completed']} of {cfg['epochs']} (best epoch {meta['best_epoch']})",
        f"- Optimizer: {cfg['optimizer']}, learning rate {cfg['lr']:g}, schedule {cfg['schedule']}, "
        f"batch size {cfg['batch_size']}, weight decay {cfg['weight_decay']:g}",
        f"- Augmentation: {'random resized crops and flips' if cfg['augment'] else 'none'}; seed {cfg['seed']}",
        "",
        "## Results",
    ]
    history = meta["history"]
    best = (
        history[meta["best_epoch"] - 1]
        if meta["best_epoch"] and history
        else (history[-1] if history else None)
    )
    if evaluation is not None:
        from .evaluate import headline

        line = headline(evaluation)
        lines.append(f"- {line[:1].upper()}{line[1:]}")
        for m in evaluation.per_class:
            pr = "n/a" if m.precision is None else f"{100 * m.precision:.1f}%"
            rc = "n/a" if m.recall is None else f"{100 * m.recall:.1f}%"
            lines.append(f"  - {m.name}: precision {pr}, recall {rc}")
    elif best and best.get("val_accuracy") is not None:
        lines.append(f"- Validation accuracy {100 * best['val_accuracy']:.1f}%, loss {best['val_loss']:.4f}")
    else:
        lines.append("- No validation results.")
    lines += [
        "",
        "## Preprocessing",
        f"RGB image, resize the shorter side to {meta['resize_size']} px ({meta['interpolation']}), "
        f"centre crop {meta['input_size']}×{meta['input_size']}, scale to [0, 1], normalise with mean "
        f"{meta['mean']} and std {meta['std']}.",
        "",
        "## Files",
        "- `model.safetensors` + `model.json`: load with `torchvision.models.get_model(arch, "
        "num_classes=K, **model_kwargs)` and `load_state_dict(strict=True)`",
    ]
    for c in checks or []:
        diff = (
            "not checked"
            if c.max_difference != c.max_difference
            else f"max difference {c.max_difference:.1e}"
        )
        lines.append(f"- `{Path(c.path).name}`: checked with {c.runtime} at batch sizes 1 and 3, {diff}")
    return "\n".join(lines) + "\n"


def export_all(
    trainer: Trainer,
    out_dir: str | os.PathLike[str],
    formats: tuple[str, ...] = ("safetensors",),
    evaluation: Evaluation | None = None,
) -> list[FormatCheck]:
    """The bundle, the chosen extra formats (each verified) and MODEL_CARD.md, swapped in together."""
    unknown = [f for f in formats if f != "safetensors" and f not in EXPORT_FORMATS]
    if unknown:
        raise CheckpointError(f"Unknown export format {', '.join(unknown)}: use {', '.join(EXPORT_FORMATS)}.")
    missing = missing_format_packages(formats)
    if missing:
        raise CheckpointError(missing)
    out = Path(out_dir).expanduser()
    evaluation = evaluation if evaluation is not None else getattr(trainer, "evaluation", None)
    from .text import display_path

    checks: list[FormatCheck] = []
    with staged_folder(out, BUNDLE_FILES) as stage:
        write_bundle_files(trainer, stage, evaluation)
        images = verification_images(trainer) if set(formats) - {"safetensors"} else None
        if "onnx" in formats:
            checks.append(export_onnx(trainer, stage, images))
        if "torchscript" in formats:
            checks.append(export_torchscript(trainer, stage, images))
        text = model_card(trainer, checks, evaluation)
        write_synced(stage / CARD_FILE, display_path(text).encode("utf-8"))
    # Report where the files are now, not where they were checked.
    return [
        FormatCheck(c.format, str(out / Path(c.path).name), c.max_difference, c.batch_sizes, c.runtime)
        for c in checks
    ]


# Python modules each extra format needs, and the command that installs them.
FORMAT_PACKAGES = {"onnx": ("onnx", "onnxscript", "onnxruntime")}
INSTALL_HINT = {"onnx": "pip install 'ftgui[onnx]'  (onnx, onnxscript and onnxruntime)"}


def missing_format_packages(formats: tuple[str, ...] | list[str]) -> str | None:
    """A message naming what to install for the chosen formats, or None when all is there."""
    for fmt in formats:
        missing = [m for m in FORMAT_PACKAGES.get(fmt, ()) if not importable(m)]
        if missing:
            return (
                f"Export to {fmt} needs {', '.join(missing)}, which {'is' if len(missing) == 1 else 'are'} "
                f"not installed. Install with: {INSTALL_HINT[fmt]}"
            )
    return None
