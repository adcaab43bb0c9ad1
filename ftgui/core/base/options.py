"""The choices a run offers, in one place: ftgui-train's ``choices`` and the window's combo boxes.

Plain values only (no torch), so the command line's ``--help`` stays instant.
"""

from __future__ import annotations

# Freeze strategies: key -> the window's label. ftgui-train spells "last" as last-N.
STRATEGIES: dict[str, str] = {
    "head": "Head only",
    "last": "Last N blocks + head",
    "full": "Full fine-tuning",
    "gradual": "Gradual unfreezing",
}
STRATEGY_HELP = "head, last-N (e.g. last-2), full or gradual"

# key -> the window's label
OPTIMIZERS: dict[str, str] = {"adam": "Adam", "adamw": "AdamW", "sgd": "SGD with momentum"}
SCHEDULES: dict[str, str] = {
    "cosine": "Cosine decay",
    "onecycle": "One cycle (warm-up, then decay)",
    "constant": "Constant",
}
CACHE_MODES = ("auto", "off")
DEVICES = ("auto", "cpu", "cuda", "mps")

# Export formats besides model.safetensors (always written): key -> (file, the window's label).
EXPORT_FORMATS: dict[str, tuple[str, str]] = {
    "onnx": ("model.onnx", "ONNX (model.onnx, dynamic batch size)"),
    "torchscript": ("model.torchscript.pt", "TorchScript (model.torchscript.pt)"),
}
