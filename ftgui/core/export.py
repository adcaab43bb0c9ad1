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
from dataclasses import dataclass
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


def export_bundle(trainer: Any, out_dir: str | os.PathLike[str], evaluation: Any | None = None) -> Path:
    """Write model.safetensors and model.json to ``out_dir`` (each atomically)."""
    from safetensors.torch import save

    out = Path(out_dir).expanduser()
    if out.exists() and not out.is_dir():
        raise CheckpointError(f"Cannot export to {out}: it is a file, not a folder.")
    out.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous().clone() for k, v in trainer.model.state_dict().items()}
    meta = bundle_metadata(trainer)
    evaluation = evaluation if evaluation is not None else getattr(trainer, "evaluation", None)
    if evaluation is not None:
        meta["evaluation"] = evaluation.to_dict()
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


# ---------------------------------------------------------------- other formats, verified

EXPORT_FORMATS = ("safetensors", "onnx", "torchscript")
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


def verification_images(trainer: Any, count: int = 3) -> torch.Tensor:
    """A few validation (or training) images, preprocessed exactly as for prediction."""
    from .data import ImageListDataset

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
    trainer: Any, out_dir: str | os.PathLike[str], images: torch.Tensor | None = None
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
        program.save(buffer)  # type: ignore[union-attr]
    path = Path(out_dir) / "model.onnx"
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
    trainer: Any, out_dir: str | os.PathLike[str], images: torch.Tensor | None = None
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
    path = Path(out_dir) / "model.torchscript.pt"
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


def model_card(trainer: Any, checks: list[FormatCheck] | None = None, evaluation: Any | None = None) -> str:
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
        f"- Freeze strategy: {cfg['strategy']}"
        + (" (BatchNorm layers trained)" if cfg.get("train_bn") else "")
        + f"; {len(meta['trainable_parameters'])} parameter tensors trained",
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
        lines.append(
            f"- Validation accuracy {100 * evaluation.accuracy:.1f}%, loss {evaluation.loss:.4f} "
            f"({evaluation.count} images)"
        )
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
    trainer: Any,
    out_dir: str | os.PathLike[str],
    formats: tuple[str, ...] = ("safetensors",),
    evaluation: Any | None = None,
) -> list[FormatCheck]:
    """The bundle, the chosen extra formats (each verified), and MODEL_CARD.md."""
    unknown = [f for f in formats if f not in EXPORT_FORMATS]
    if unknown:
        raise CheckpointError(f"Unknown export format {', '.join(unknown)}: use {', '.join(EXPORT_FORMATS)}.")
    out = export_bundle(trainer, out_dir, evaluation=evaluation)
    checks: list[FormatCheck] = []
    images = verification_images(trainer) if set(formats) - {"safetensors"} else None
    if "onnx" in formats:
        checks.append(export_onnx(trainer, out, images))
    if "torchscript" in formats:
        checks.append(export_torchscript(trainer, out, images))
    text = model_card(
        trainer, checks, evaluation if evaluation is not None else getattr(trainer, "evaluation", None)
    )
    atomic_write(out / "MODEL_CARD.md", lambda fh: fh.write(text.encode("utf-8")))
    return checks
