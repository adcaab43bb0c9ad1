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
# The new classifier's form (--head; core/models/heads.py): key -> the window's label.
HEADS: dict[str, str] = {
    "auto": "Auto (concat where it fits)",
    "concat": "Concat pooling + BatchNorm",
    "linear": "Linear on average pooling",
}
HEAD_TIP = (
    "The classifier ftgui puts on the pretrained network.\n"
    "Concat (fastai's pooling and normalisation): max and average pooling side by side, BatchNorm, "
    "one linear layer. Models that average-pool straight into one linear classifier (ResNet, "
    "RegNet, EfficientNet, ...) take it; the bundle records it and every export format carries it.\n"
    "Linear: one linear layer on the average-pooled features, as torchvision builds the model "
    "(every model; the bundle loads into a plain torchvision or timm model).\n"
    "Auto: concat where the model takes it, else linear."
)
SCHEDULES: dict[str, str] = {
    "cosine": "Cosine decay",
    "onecycle": "One cycle (warm-up, then decay)",
    "constant": "Constant",
}
# What BatchNorm layers in frozen blocks do: key -> the window's label (bench_accuracy.py measured
# them; the README's strategies section has the table). adapt: their statistics set to the training
# images' once before training (the frozen-layer cache stays); train: fastai's train_bn (no cache).
BATCHNORM: dict[str, str] = {
    "auto": "BatchNorm: auto (adapt if needed)",
    "adapt": "BatchNorm: adapt to my images",
    "keep": "BatchNorm: keep pretrained",
    "train": "BatchNorm: train (accurate, slower)",
}
BN_STATS = ("auto", "adapt", "keep")  # --bn-stats (train: --train-bn)
BATCHNORM_TIP = (
    "What BatchNorm layers inside frozen blocks do.\n"
    "Auto (default): adapt when your images' statistics differ clearly from the pretrained "
    "ones (drawings, scans, microscopy), else keep them; the log says which and why.\n"
    "Adapt: their statistics are set to your training images' once before training (one pass "
    "over them); the frozen layers' output is still computed once and cached. Helps most on "
    "images unlike photographs.\n"
    "Keep: the pretrained statistics (ImageNet's).\n"
    "Train: they train at every step, as fastai does. For a head alone the most accurate "
    "choice in ftgui's benchmark (up to 14 points), but the frozen layers then run at every "
    "step (no cache): 4-9x the time there, more with more images."
)
CACHE_MODES = ("auto", "off")
# auto: bf16 mixed precision where the processor computes it natively and a trial finds it faster.
PRECISIONS: dict[str, str] = {
    "auto": "Auto",
    "fp32": "fp32",
    "bf16": "bf16 (mixed)",
}
DEVICES = ("auto", "cpu", "cuda", "mps")

# Export formats besides model.safetensors (always written): key -> (file, the window's label).
# An INT8 format is kept only when it loses no more than --max-accuracy-drop against the model.
EXPORT_FORMATS: dict[str, tuple[str, str]] = {
    "onnx": ("model.onnx", "ONNX (model.onnx, dynamic batch size)"),
    "onnx-int8": ("model.int8.onnx", "ONNX INT8 (model.int8.onnx, static quantization)"),
    "torchscript": ("model.torchscript.pt", "TorchScript (model.torchscript.pt)"),
    "openvino": ("model.openvino.xml", "OpenVINO IR (model.openvino.xml + .bin)"),
    "openvino-int8": ("model.openvino-int8.xml", "OpenVINO INT8 (NNCF post-training quantization)"),
    "tflite": ("model.tflite", "LiteRT / TFLite (model.tflite)"),
    "tflite-int8": ("model.int8.tflite", "LiteRT INT8 (model.int8.tflite, full-integer)"),
    "coreml": ("model.mlpackage.zip", "Core ML (model.mlpackage, zipped)"),
}
# Files a format writes beside its main one.
EXPORT_COMPANIONS: dict[str, tuple[str, ...]] = {
    "openvino": ("model.openvino.bin",),
    "openvino-int8": ("model.openvino-int8.bin",),
}
QUANTIZED_FORMATS = ("onnx-int8", "openvino-int8", "tflite-int8")
MAX_ACCURACY_DROP = 1.0  # points of validation accuracy an INT8 export may lose


def format_files(fmt: str) -> tuple[str, ...]:
    """Every file one export format writes, its main file first."""
    return (EXPORT_FORMATS[fmt][0], *EXPORT_COMPANIONS.get(fmt, ()))
