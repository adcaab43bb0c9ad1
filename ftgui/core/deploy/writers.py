"""Writing each deployment format from a model in eval mode on the CPU.

Every writer takes the model, a few example images (the shape to trace or export at), the
calibration images (the user's training images, preprocessed as for prediction; only INT8
writers read them) and the folder to write into; it returns the converter's description.
"""

from __future__ import annotations

import contextlib
import io
import warnings
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch

from ftgui.core.base.files import atomic_write
from ftgui.core.base.options import EXPORT_FORMATS

ONNX_OPSET = 18
Writer = Callable[[torch.nn.Module, torch.Tensor, torch.Tensor, Path], str]


def file_of(fmt: str, folder: Path) -> Path:
    return folder / EXPORT_FORMATS[fmt][0]


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Converters print progress bars and warnings of their own; the report says what matters."""
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        yield


@contextlib.contextmanager
def silenced() -> Iterator[None]:
    """Also what C++ libraries write to the process's own stdout and stderr (LiteRT's converter
    and interpreter log every step there), and Python's warnings and prints."""
    import os
    import sys

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    saved: list[int] = []
    try:
        null = os.open(os.devnull, os.O_WRONLY)
        saved = [os.dup(1), os.dup(2)]
        os.dup2(null, 1)
        os.dup2(null, 2)
        os.close(null)
    except OSError:  # no file descriptors to redirect (an embedded interpreter): say it all
        saved = []
    try:
        with _quiet(), contextlib.redirect_stderr(io.StringIO()):
            yield
    finally:
        for fd, original in zip((1, 2), saved):
            os.dup2(original, fd)
            os.close(original)


def _onnx_bytes(model: torch.nn.Module, example: torch.Tensor) -> bytes:
    batch = torch.export.Dim("batch", min=1, max=4096)
    buffer = io.BytesIO()
    with _quiet():
        # Exported with a batch of 2 (a batch of 1 can get specialised) and batch marked dynamic.
        program = torch.onnx.export(
            model,
            (example[:2] if len(example) > 1 else example.repeat(2, 1, 1, 1),),
            input_names=["image"],
            output_names=["logits"],
            dynamic_shapes=({0: batch},),
            opset_version=ONNX_OPSET,
            dynamo=True,
            verbose=False,
        )
        program.save(buffer)  # type: ignore[union-attr, arg-type]  # torch writes to file objects too
    return buffer.getvalue()


def write_onnx(model: torch.nn.Module, example: torch.Tensor, _calib: torch.Tensor, folder: Path) -> str:
    """model.onnx with a dynamic batch dimension."""
    data = _onnx_bytes(model, example)
    atomic_write(file_of("onnx", folder), lambda fh: fh.write(data))
    return f"torch.onnx (dynamo), opset {ONNX_OPSET}"


def write_onnx_int8(model: torch.nn.Module, example: torch.Tensor, calib: torch.Tensor, folder: Path) -> str:
    """model.int8.onnx: onnxruntime's static quantization (QDQ, INT8 weights per channel, INT8
    activations), calibrated on ``calib``."""
    import tempfile

    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Images(CalibrationDataReader):
        def __init__(self) -> None:
            self.batches = iter(calib[i : i + 1].numpy() for i in range(len(calib)))

        def get_next(self) -> dict[str, Any] | None:
            batch = next(self.batches, None)
            return None if batch is None else {"image": batch}

    with tempfile.TemporaryDirectory(prefix="ftgui-onnx-int8-") as tmp:
        plain, prepared = Path(tmp) / "float.onnx", Path(tmp) / "prepared.onnx"
        plain.write_bytes(_onnx_bytes(model, example))
        with _quiet():
            try:
                quant_pre_process(str(plain), str(prepared))
            except TypeError:  # its symbolic shape inference fails on some graphs (a Concat of poolings)
                quant_pre_process(str(plain), str(prepared), skip_symbolic_shape=True)
            quantize_static(
                str(prepared),
                str(Path(tmp) / "int8.onnx"),
                Images(),
                quant_format=QuantFormat.QDQ,
                per_channel=True,
                activation_type=QuantType.QInt8,
                weight_type=QuantType.QInt8,
            )
        data = (Path(tmp) / "int8.onnx").read_bytes()
    atomic_write(file_of("onnx-int8", folder), lambda fh: fh.write(data))
    return f"onnxruntime.quantization static QDQ, per-channel, {len(calib)} calibration images"


def write_torchscript(
    model: torch.nn.Module, example: torch.Tensor, _calib: torch.Tensor, folder: Path
) -> str:
    """model.torchscript.pt: scripted, or traced where the scripted model returns no tensor."""
    with _quiet():
        scripted: Any = None
        with contextlib.suppress(Exception):
            scripted = torch.jit.script(model)
            with torch.inference_mode():
                if not isinstance(scripted(example[:1]), torch.Tensor):
                    # Scripted GoogLeNet and Inception return a tuple (logits, aux, ...); traced
                    # in eval mode they return the logits, as a deployed model must.
                    scripted = None
        how = "torch.jit.script"
        if scripted is None:
            scripted, how = torch.jit.trace(model, example[:2]), "torch.jit.trace"
        buffer = io.BytesIO()
        torch.jit.save(scripted, buffer)
    atomic_write(file_of("torchscript", folder), lambda fh: fh.write(buffer.getvalue()))
    return how


def _openvino_model(model: torch.nn.Module, example: torch.Tensor) -> Any:
    import openvino as ov

    size = tuple(example.shape[1:])
    with _quiet():
        return ov.convert_model(model, example_input=example[:1], input=[ov.PartialShape([-1, *size])])


def _save_openvino(ov_model: Any, fmt: str, folder: Path) -> None:
    import openvino as ov

    # The .bin goes beside the .xml, named after it; both are new files in a fresh stage.
    ov.save_model(ov_model, str(file_of(fmt, folder)), compress_to_fp16=False)


def write_openvino(model: torch.nn.Module, example: torch.Tensor, _calib: torch.Tensor, folder: Path) -> str:
    """model.openvino.xml + .bin, FP32 weights, dynamic batch size."""
    import openvino as ov

    _save_openvino(_openvino_model(model, example), "openvino", folder)
    return f"openvino.convert_model {ov.__version__}, FP32"


def write_openvino_int8(
    model: torch.nn.Module, example: torch.Tensor, calib: torch.Tensor, folder: Path
) -> str:
    """model.openvino-int8.xml + .bin: NNCF post-training quantization calibrated on ``calib``."""
    import logging

    import nncf

    nncf_logger = logging.getLogger("nncf")
    level = nncf_logger.level
    nncf_logger.setLevel(logging.ERROR)
    try:
        data = nncf.Dataset([calib[i : i + 1].numpy() for i in range(len(calib))])
        with _quiet(), contextlib.redirect_stderr(io.StringIO()):
            quantized = nncf.quantize(_openvino_model(model, example), data, subset_size=len(calib))
    finally:
        nncf_logger.setLevel(level)
    _save_openvino(quantized, "openvino-int8", folder)
    return f"nncf.quantize {nncf.__version__}, {len(calib)} calibration images"


def write_tflite(model: torch.nn.Module, example: torch.Tensor, _calib: torch.Tensor, folder: Path) -> str:
    """model.tflite (float32) through litert-torch, at a batch of 1 (LiteRT's input shape is fixed;
    the runtime resizes it for larger batches)."""
    with silenced():
        import litert_torch

        litert_torch.convert(model, (example[:1],)).export(str(file_of("tflite", folder)))
    return f"litert-torch {_version('litert-torch')}, float32"


def write_tflite_int8(
    model: torch.nn.Module, example: torch.Tensor, calib: torch.Tensor, folder: Path
) -> str:
    """model.int8.tflite: full-integer (INT8 input, weights, activations and output), PT2E static
    quantization per channel calibrated on ``calib``, converted by litert-torch."""
    args = (example[:1],)
    with silenced():
        import litert_torch
        from litert_torch.quantize import pt2e_quantizer, quant_config
        from torchao.quantization.pt2e import quantize_pt2e

        exported = torch.export.export(model, args).module()
        quantizer = pt2e_quantizer.PT2EQuantizer().set_global(
            pt2e_quantizer.get_symmetric_quantization_config(is_per_channel=True, is_dynamic=False)
        )
        prepared = quantize_pt2e.prepare_pt2e(exported, quantizer)
        with torch.no_grad():
            for i in range(len(calib)):
                prepared(calib[i : i + 1])
        converted = quantize_pt2e.convert_pt2e(prepared, fold_quantize=False)
        edge = litert_torch.convert(
            converted, args, quant_config=quant_config.QuantConfig(pt2e_quantizer=quantizer)
        )
        edge.export(str(file_of("tflite-int8", folder)))
    return f"litert-torch {_version('litert-torch')} PT2E full-integer, {len(calib)} calibration images"


def write_coreml(model: torch.nn.Module, example: torch.Tensor, _calib: torch.Tensor, folder: Path) -> str:
    """model.mlpackage (an ML program, FP32, batch 1 to 64), zipped into one file so that it is
    swapped in with the bundle like every other file."""
    import shutil
    import tempfile

    import coremltools as ct

    size = tuple(example.shape[1:])
    with silenced():
        traced = torch.jit.trace(model, example[:1])
        converted = ct.convert(
            traced,
            inputs=[ct.TensorType(name="image", shape=(ct.RangeDim(1, 64, 1), *size))],
            outputs=[ct.TensorType(name="logits")],
            convert_to="mlprogram",
            compute_precision=ct.precision.FLOAT32,
        )
    with tempfile.TemporaryDirectory(prefix="ftgui-coreml-") as tmp:
        package = Path(tmp) / "model.mlpackage"
        converted.save(str(package))
        if getattr(converted, "is_temp_package", False):  # else kept in the temporary folder until exit
            shutil.rmtree(converted.package_path, ignore_errors=True)
        target = file_of("coreml", folder)
        with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as archive:
            for path in sorted(package.rglob("*")):
                archive.write(path, path.relative_to(tmp).as_posix())
    return f"coremltools {ct.__version__}, ML program, FP32"


def _version(dist: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(dist)
    except PackageNotFoundError:
        return "?"


WRITERS: dict[str, Writer] = {
    "onnx": write_onnx,
    "onnx-int8": write_onnx_int8,
    "torchscript": write_torchscript,
    "openvino": write_openvino,
    "openvino-int8": write_openvino_int8,
    "tflite": write_tflite,
    "tflite-int8": write_tflite_int8,
    "coreml": write_coreml,
}
