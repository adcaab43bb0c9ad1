"""What each export format needs installed, and what to say when it is missing (no torch here:
the window asks before it draws the Export dialog)."""

from __future__ import annotations

import sys

from ftgui.core.base.extras import importable
from ftgui.core.base.options import EXPORT_FORMATS
from ftgui.frozen import is_frozen

_ONNX = ("onnx", "onnxscript", "onnxruntime")
# Python modules each format needs, and the extra that installs them.
FORMAT_PACKAGES: dict[str, tuple[str, ...]] = {
    "onnx": _ONNX,
    "onnx-int8": _ONNX,
    "torchscript": (),
    "openvino": ("openvino",),
    "openvino-int8": ("openvino", "nncf"),
    "tflite": ("litert_torch", "ai_edge_litert"),
    "tflite-int8": ("litert_torch", "ai_edge_litert"),
    "coreml": ("coremltools",),
}
_EXTRA = {
    "onnx": ("onnx", "onnx, onnxscript and onnxruntime"),
    "onnx-int8": ("onnx", "onnx, onnxscript and onnxruntime"),
    "openvino": ("openvino", "openvino and nncf"),
    "openvino-int8": ("openvino", "openvino and nncf"),
    "tflite": ("tflite", "litert-torch and ai-edge-litert"),
    "tflite-int8": ("tflite", "litert-torch and ai-edge-litert"),
    "coreml": ("coreml", "coremltools"),
}


def install_hint(fmt: str) -> str:
    extra, what = _EXTRA[fmt]
    if is_frozen():  # the installed application: nothing can be added to it with pip
        return (
            f"pip install 'ftgui[{extra}]' in a Python environment (this installed ftgui leaves {what} out)"
        )
    return f"pip install 'ftgui[{extra}]'  ({what})"


def missing_packages(fmt: str) -> list[str]:
    return [m for m in FORMAT_PACKAGES.get(fmt, ()) if not importable(m)]


def missing_format_packages(formats: tuple[str, ...] | list[str]) -> str | None:
    """A message naming what to install for the chosen formats, or None when all is there."""
    for fmt in formats:
        missing = missing_packages(fmt)
        if missing:
            return (
                f"Export to {fmt} needs {', '.join(missing)}, which {'is' if len(missing) == 1 else 'are'} "
                f"not installed. Install with: {install_hint(fmt)}"
            )
    return None


def unknown_formats(formats: tuple[str, ...] | list[str]) -> str | None:
    unknown = [f for f in formats if f != "safetensors" and f not in EXPORT_FORMATS]
    if not unknown:
        return None
    return f"Unknown export format {', '.join(unknown)}: use {', '.join(EXPORT_FORMATS)}."


def runtime_available(fmt: str) -> str | None:
    """Why an export of ``fmt`` cannot be run on this machine, or None when it can."""
    if fmt == "coreml" and sys.platform != "darwin":
        return "the Core ML runtime runs only on macOS"
    missing = missing_packages(fmt)
    return f"{', '.join(missing)} not installed" if missing else None
