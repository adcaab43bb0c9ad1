"""Running an exported file in its own runtime: onnxruntime, OpenVINO, LiteRT, TorchScript, Core ML.

``load_runtime(fmt, folder)`` gives a callable from a float32 batch (N, 3, H, W) of preprocessed
images to float32 logits (N, classes), whatever the file's own input and output types, and how
many INT8 tensors the file holds (an "INT8" export without them is no INT8 export).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ftgui.core.base.errors import CheckpointError
from ftgui.core.deploy.registry import runtime_available
from ftgui.core.deploy.writers import file_of, silenced

Run = Callable[[np.ndarray], np.ndarray]


@dataclass
class Runtime:
    run: Run
    name: str  # the runtime and its version
    int8_tensors: int  # INT8 weight or activation tensors in the file


def _onnx(path: Path) -> Runtime:
    import onnx
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    graph = onnx.load(str(path), load_external_data=False).graph
    int8 = sum(1 for t in graph.initializer if t.data_type in (onnx.TensorProto.INT8, onnx.TensorProto.UINT8))

    def run(x: np.ndarray) -> np.ndarray:
        return np.asarray(session.run(None, {name: x})[0], dtype=np.float32)

    return Runtime(run, f"onnxruntime {ort.__version__}", int8)


def _openvino(path: Path) -> Runtime:
    import openvino as ov

    core = ov.Core()
    model = core.read_model(str(path))
    int8 = sum(
        1
        for op in model.get_ops()
        if op.get_type_name() == "FakeQuantize"
        or (op.get_type_name() == "Constant" and op.get_element_type() in (ov.Type.i8, ov.Type.u8))
    )
    # FP32 inference: on CPUs with BF16 OpenVINO would otherwise run the FP32 model in BF16
    # (logits 4e-3 off instead of 4e-7); INT8 layers stay INT8 either way.
    compiled = core.compile_model(model, "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    request = compiled.create_infer_request()

    def run(x: np.ndarray) -> np.ndarray:
        return np.asarray(request.infer({0: x})[compiled.output(0)], dtype=np.float32).copy()

    return Runtime(run, f"OpenVINO {ov.get_version().split('-')[0]} CPU", int8)


def _tflite(path: Path) -> Runtime:
    with silenced():  # LiteRT announces its delegate on the process's stderr
        from ai_edge_litert.interpreter import Interpreter

        interpreter = Interpreter(model_path=str(path))
        interpreter.allocate_tensors()
    inp, out = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
    shape = [int(s) for s in inp["shape"]]
    int8 = sum(1 for t in interpreter.get_tensor_details() if t["dtype"] in (np.int8, np.uint8))

    exported = shape[0]
    fixed: list[bool] = []  # set once the graph refused another batch size

    def run(x: np.ndarray) -> np.ndarray:
        if fixed and len(x) != exported:  # the exported batch size, a slice at a time (padded)
            parts = []
            for i in range(0, len(x), exported):
                part = x[i : i + exported]
                pad = np.zeros((exported - len(part), *part.shape[1:]), part.dtype)
                parts.append(run(np.concatenate([part, pad]) if len(pad) else part)[: len(part)])
            return np.concatenate(parts)
        if shape[0] != len(x):  # LiteRT's input shape is fixed: resized for another batch size
            try:
                interpreter.resize_tensor_input(inp["index"], [len(x), *shape[1:]])
                interpreter.allocate_tensors()
                shape[0] = len(x)
            except (RuntimeError, ValueError):  # reshapes baked for one size (a ViT's tokens)
                interpreter.resize_tensor_input(inp["index"], [exported, *shape[1:]])
                interpreter.allocate_tensors()
                shape[0] = exported
                fixed.append(True)
                return run(x)
        if inp["dtype"] != np.float32:  # a full-integer model: quantize the input as it says
            scale, zero = inp["quantization"]
            info = np.iinfo(inp["dtype"])
            x = np.clip(np.round(x / scale) + zero, info.min, info.max).astype(inp["dtype"])
        interpreter.set_tensor(inp["index"], np.ascontiguousarray(x))
        interpreter.invoke()
        y = interpreter.get_tensor(out["index"])
        if out["dtype"] != np.float32:
            scale, zero = out["quantization"]
            return ((y.astype(np.float32) - zero) * scale).astype(np.float32)
        return np.asarray(y, dtype=np.float32).copy()

    return Runtime(run, f"LiteRT {_litert_version()} (XNNPACK)", int8)


def _litert_version() -> str:
    from importlib.metadata import version

    return version("ai-edge-litert")


def _torchscript(path: Path) -> Runtime:
    import warnings

    import torch

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        module = torch.jit.load(str(path), map_location="cpu").eval()

    def run(x: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return module(torch.from_numpy(x)).float().numpy()

    return Runtime(run, f"torch.jit {torch.__version__}", 0)


def _coreml(path: Path) -> Runtime:  # macOS only; the zip holds model.mlpackage
    import shutil
    import tempfile
    import weakref
    import zipfile

    import coremltools as ct

    tmp = tempfile.mkdtemp(prefix="ftgui-coreml-")
    with zipfile.ZipFile(path) as archive:
        archive.extractall(tmp)
    model = ct.models.MLModel(str(Path(tmp) / "model.mlpackage"), compute_units=ct.ComputeUnit.CPU_ONLY)
    weakref.finalize(model, shutil.rmtree, tmp, True)  # the unpacked copy goes with the model

    def run(x: np.ndarray) -> np.ndarray:
        return np.asarray(model.predict({"image": x})["logits"], dtype=np.float32)

    return Runtime(run, f"Core ML (coremltools {ct.__version__})", 0)


_LOADERS: dict[str, Callable[[Path], Runtime]] = {
    "onnx": _onnx,
    "onnx-int8": _onnx,
    "openvino": _openvino,
    "openvino-int8": _openvino,
    "tflite": _tflite,
    "tflite-int8": _tflite,
    "torchscript": _torchscript,
    "coreml": _coreml,
}


def load_runtime(fmt: str, folder: str | Path) -> Runtime:
    """The exported ``fmt`` file of ``folder`` in its runtime; a clear error where it cannot run."""
    path = file_of(fmt, Path(folder).expanduser())
    if not path.is_file():
        raise CheckpointError(
            f"{path.name} is not in {path.parent}: export it first (ftgui-export {path.parent} --format {fmt})."
        )
    why = runtime_available(fmt)
    if why:
        raise CheckpointError(f"Cannot run {path.name} here: {why}.")
    try:
        return _LOADERS[fmt](path)
    except Exception as exc:  # a damaged or foreign file: each runtime has its own error types
        text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(f"{path.name} could not be loaded by its runtime: {text}") from None


def runtime_names() -> list[str]:
    """What ftgui-predict --runtime accepts."""
    names = ["torch", *_LOADERS]
    return names if sys.platform == "darwin" else [n for n in names if n != "coreml"]


def check_exported(fmt: str, folder: Path, meta: dict[str, Any]) -> None:
    """Before a runtime runs an exported file: the file is the one this bundle's export wrote
    (its SHA-256 as model.json recorded it), for this bundle's input size and classes. Another
    bundle's file copied in, a file renamed to another format's name or a changed file would
    otherwise answer with this bundle's class names."""
    from ftgui.core.base.options import format_files
    from ftgui.core.deploy.measure import file_sha256

    exports = meta.get("exports")
    formats = exports.get("formats") if isinstance(exports, dict) else None
    record = formats.get(fmt) if isinstance(formats, dict) else None
    again = f"Export it again: ftgui-export {folder} --format {fmt}"
    first = format_files(fmt)[0]
    error = record.get("error") if isinstance(record, dict) else None
    if isinstance(error, str) and error:  # refused by the accuracy gate, or failed, at export
        reason = error.strip().splitlines()[0]
        if record.get("refused"):  # type: ignore[union-attr]
            raise CheckpointError(
                f"{first} was not kept when this model was exported: {reason}. To keep it anyway, "
                f"allow a larger loss: ftgui-export {folder} --format {fmt} --max-accuracy-drop POINTS."
            )
        raise CheckpointError(f"{first} was not written when this model was exported: {reason}. {again}.")
    digests = record.get("sha256") if isinstance(record, dict) else None
    if not isinstance(record, dict) or not isinstance(digests, dict) or not digests:
        raise CheckpointError(
            f"{first} in {folder} cannot be tied to this model: model.json records no SHA-256 for "
            f"its {fmt} export (exported by an older ftgui, or copied in). {again}."
        )
    for name in format_files(fmt):
        path = folder / name
        if not path.is_file():
            raise CheckpointError(f"{name} is missing from {folder}. {again}.")
        if digests.get(name) != file_sha256(path):
            raise CheckpointError(
                f"{name} in {folder} is not the file this model's {fmt} export wrote (its SHA-256 "
                f"differs from model.json's: another model's file, another format's, or a changed "
                f"one). {again}."
            )
    for key in ("input_size", "num_classes"):
        if record.get(key) != meta.get(key):
            raise CheckpointError(
                f"{first} in {folder} was exported for {key.replace('_', ' ')} {record.get(key)!r}, "
                f"this model has {meta.get(key)!r}. {again}."
            )
