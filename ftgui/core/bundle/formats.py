"""Deployment formats beside the bundle (ONNX, TorchScript), each checked against the trained model."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ftgui.core.base.errors import CheckpointError
from ftgui.core.base.extras import importable
from ftgui.core.base.files import (
    atomic_write,
)
from ftgui.core.bundle.format import FORMAT_FILES
from ftgui.core.bundle.trained import TrainedModel

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
    error: str = ""  # why the format could not be written or did not match (the file is not kept)


def verification_images(trained: TrainedModel, count: int = 3) -> torch.Tensor:
    """A few validation (or training) images, preprocessed exactly as for prediction."""
    from ftgui.core.data.images import ImageListDataset

    assert trained.split is not None
    samples = (trained.split.val or trained.split.train)[: count * 3]
    ds = ImageListDataset(trained.scan.root, samples, trained.preprocess)
    images = [item[0] for item in (ds[i] for i in range(len(samples))) if item[0] is not None][:count]
    if not images:
        size = trained.preprocess.crop_size
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
    trained: TrainedModel, out_dir: str | os.PathLike[str], images: torch.Tensor | None = None
) -> FormatCheck:
    """model.onnx with a dynamic batch dimension, checked with onnxruntime when it is installed."""
    import io
    import warnings

    model = _plain_eval_copy(trained.model)
    images = verification_images(trained) if images is None else images
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
    trained: TrainedModel, out_dir: str | os.PathLike[str], images: torch.Tensor | None = None
) -> FormatCheck:
    """model.torchscript.pt, loaded back with torch.jit.load and compared."""
    import io
    import warnings

    model = _plain_eval_copy(trained.model)
    images = verification_images(trained) if images is None else images
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        scripted: Any = None
        with contextlib.suppress(Exception):
            scripted = torch.jit.script(model)
            with torch.inference_mode():
                if not isinstance(scripted(images[:1]), torch.Tensor):
                    # Scripted GoogLeNet and Inception return a tuple (logits, aux, ...); traced
                    # in eval mode they return the logits, as a deployed model must.
                    scripted = None
        if scripted is None:
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


# Python modules each extra format needs, and the command that installs them.
FORMAT_PACKAGES = {"onnx": ("onnx", "onnxscript", "onnxruntime")}
INSTALL_HINT = {"onnx": "pip install 'ftgui[onnx]'  (onnx, onnxscript and onnxruntime)"}
