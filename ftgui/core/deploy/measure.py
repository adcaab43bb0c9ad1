"""What a deployment export is worth, measured in its own runtime on the validation images.

Top-1 agreement with the trained model and the largest logit difference, accuracy and its
change, the median latency per image at a batch of one, the file's size, and, for INT8
formats, how many INT8 tensors the file holds. A float format must match the model (logits
within ``TOLERANCE``); an INT8 one must not lose more than the allowed accuracy.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ftgui.core.base.options import MAX_ACCURACY_DROP, QUANTIZED_FORMATS, format_files

TOLERANCE = 1e-3  # largest allowed difference in logits for a float format
LATENCY_RUNS = 20  # timed single-image runs (after two to warm up), or up to LATENCY_SECONDS
LATENCY_SECONDS = 3.0


@dataclass
class ExportCheck:
    """One export format: written or not, and what it gave in its runtime."""

    format: str
    path: str
    runtime: str = ""
    converter: str = ""
    images: int = 0  # validation images it was measured on
    labelled: bool = True  # False: no validation split, accuracy is agreement with the model
    agreement: float | None = None  # share of images with the trained model's top-1 class
    max_difference: float = float("nan")  # largest logit difference from the trained model
    accuracy: float | None = None
    reference_accuracy: float | None = None  # the trained model's, in PyTorch, on the same images
    latency_ms: float | None = None  # per image at a batch of one (median)
    size_bytes: int = 0
    int8_tensors: int | None = None  # for INT8 formats
    batch_sizes: tuple[int, ...] = ()
    error: str = ""  # why it was not written or not kept
    refused: bool = False  # an INT8 export the accuracy gate refused (its file is not kept)
    note: str = ""  # e.g. why it could not be run here
    # Each kept file's SHA-256, and the input size and class count it was exported with: a
    # runtime runs it only when they still match (not another bundle's file copied in).
    sha256: dict[str, str] = field(default_factory=dict)
    input_size: int = 0
    num_classes: int = 0

    @property
    def kept(self) -> bool:
        return not self.error

    @property
    def accuracy_change(self) -> float | None:
        """In points (percentage points of accuracy)."""
        if self.accuracy is None or self.reference_accuracy is None:
            return None
        return 100 * (self.accuracy - self.reference_accuracy)

    def to_dict(self) -> dict[str, Any]:
        record = asdict(self)
        record["path"] = Path(self.path).name
        record["files"] = list(format_files(self.format))
        return record

    @classmethod
    def from_dict(cls, record: dict[str, Any]) -> ExportCheck:
        names = {f.name for f in fields(cls)}
        values = {k: v for k, v in record.items() if k in names}
        if "batch_sizes" in values:
            values["batch_sizes"] = tuple(values["batch_sizes"] or ())
        if values.get("max_difference") is None:
            values["max_difference"] = float("nan")
        if not isinstance(values.get("sha256"), dict):
            values.pop("sha256", None)
        return cls(**values)


def file_sha256(path: Path) -> str:
    import hashlib

    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def sign(check: ExportCheck, folder: Path, input_size: int, num_classes: int) -> None:
    """Record what ties a kept export to its bundle (see ``check_exported``)."""
    check.sha256 = {
        name: file_sha256(folder / name) for name in format_files(check.format) if (folder / name).is_file()
    }
    check.input_size, check.num_classes = int(input_size), int(num_classes)


@dataclass
class Reference:
    """The trained model on the measured images: its logits, accuracy and latency in PyTorch."""

    logits: np.ndarray
    labels: np.ndarray | None
    accuracy: float | None
    latency_ms: float
    size_bytes: int


def batches(images: torch.Tensor, size: int = 32) -> list[np.ndarray]:
    return [np.ascontiguousarray(images[i : i + size].numpy()) for i in range(0, len(images), size)]


def latency_ms(run: Callable[[np.ndarray], Any], image: np.ndarray) -> float:
    """Median milliseconds of one call on one image."""
    for _ in range(2):
        run(image)
    times: list[float] = []
    deadline = time.perf_counter() + LATENCY_SECONDS
    while len(times) < LATENCY_RUNS and (len(times) < 3 or time.perf_counter() < deadline):
        start = time.perf_counter()
        run(image)
        times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times)


def reference(model: torch.nn.Module, images: torch.Tensor, labels: list[int] | None, size: int) -> Reference:
    def run(x: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return model(torch.from_numpy(x)).float().numpy()

    logits = np.concatenate([run(b) for b in batches(images)])
    y = np.asarray(labels) if labels is not None else None
    accuracy = float((logits.argmax(1) == y).mean()) if y is not None and len(y) else None
    return Reference(logits, y, accuracy, latency_ms(run, batches(images[:1])[0]), size)


def measure(
    check: ExportCheck,
    run: Callable[[np.ndarray], np.ndarray],
    images: torch.Tensor,
    ref: Reference,
    batch: int = 32,
) -> ExportCheck:
    """Fill in ``check``'s figures from running ``run`` on ``images``."""
    logits = np.concatenate([run(b) for b in batches(images, batch)])
    if logits.shape != ref.logits.shape:
        check.error = f"the exported model gave logits of shape {logits.shape}, expected {ref.logits.shape}"
        return check
    check.images = len(images)
    check.max_difference = float(np.abs(logits - ref.logits).max())
    top = logits.argmax(1)
    check.agreement = float((top == ref.logits.argmax(1)).mean())
    if ref.labels is not None:
        check.accuracy = float((top == ref.labels).mean())
        check.reference_accuracy = ref.accuracy
    else:  # no labelled images: the trained model's answers stand in for the labels
        check.labelled = False
        check.accuracy, check.reference_accuracy = check.agreement, 1.0
    check.latency_ms = latency_ms(run, batches(images[:1])[0])
    check.batch_sizes = (1, min(batch, len(images)))
    return check


def judge(check: ExportCheck, max_accuracy_drop: float = MAX_ACCURACY_DROP) -> ExportCheck:
    """Refuse a float export that does not match the model, and an INT8 one that loses more than
    ``max_accuracy_drop`` points or holds no INT8 at all; ``check.error`` then says why."""
    if check.error or check.note:
        return check
    if check.format not in QUANTIZED_FORMATS:
        if not check.max_difference <= TOLERANCE:
            check.error = (
                f"does not match the model: logits differ by up to {check.max_difference:.2e} "
                f"(tolerance {TOLERANCE:g})"
            )
        return check
    if not check.int8_tensors:
        check.error, check.refused = "the quantized file holds no INT8 tensors", True
        return check
    drop = -(check.accuracy_change or 0.0)
    if drop > max_accuracy_drop:
        what = "accuracy" if check.labelled else "agreement with the model"
        check.error = (
            f"refused: {what} {100 * (check.accuracy or 0):.1f}% against "
            f"{100 * (check.reference_accuracy or 0):.1f}% for the float model ({drop:.1f} points lost, "
            f"more than the {max_accuracy_drop:g} point{'' if max_accuracy_drop == 1 else 's'} allowed)"
        )
        check.refused = True
    return check


def files_size(folder: Path, fmt: str) -> int:
    return sum((folder / name).stat().st_size for name in format_files(fmt) if (folder / name).is_file())
