"""Predictions from an exported bundle, with exactly the preprocessing it records."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ftgui.core.base.errors import CheckpointError
from ftgui.core.base.events import CancelToken
from ftgui.core.bundle.format import META_FILE, WEIGHTS_FILE, non_finite, read_metadata
from ftgui.core.compute.precision import FP32, Precision, choose_precision
from ftgui.core.data.images import (
    ImageListDataset,
    build_transform,
    decode_threads,
    load_rgb,
    threaded_batches,
)
from ftgui.core.data.samples import Sample
from ftgui.core.models import Preprocess, describe_mismatch, load_state, rebuild_for_inference


@dataclass(frozen=True)
class Prediction:
    path: str
    top: tuple[tuple[str, float], ...]  # (class, probability), most likely first
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "top": [{"class": c, "probability": p} for c, p in self.top],
            "error": self.error,
        }


class Predictor:
    """A loaded bundle: model in eval mode, class names, preprocessing."""

    def __init__(self, model: nn.Module, classes: list[str], preprocess: Preprocess, meta: dict[str, Any]):
        self.model = model.eval()
        self.classes = classes
        self.preprocess = preprocess
        self.meta = meta
        self.transform = build_transform(preprocess, augment=False)
        self.folder: Path | None = None  # the bundle's folder, when loaded from one
        # Another runtime in place of the PyTorch model (an exported format of the bundle):
        # preprocessed images on the CPU in, logits out.
        self.forward: Callable[[torch.Tensor], torch.Tensor] | None = None
        self.precision: Precision = FP32  # of the PyTorch model's forward pass

    def use_precision(self, requested: str) -> None:
        """Run the PyTorch model in ``requested`` (fp32 or bf16); ``precision.note`` says what
        that means on this processor."""
        device = next(self.model.parameters()).device
        self.precision = choose_precision(requested, device, True, lambda: None)

    @classmethod
    def load(cls, bundle_dir: str | os.PathLike[str], device: str = "cpu") -> Predictor:
        """Load a bundle, refusing weights that are not the ones its model.json describes."""
        meta = read_metadata(bundle_dir)
        weights = Path(bundle_dir).expanduser() / WEIGHTS_FILE
        if not weights.is_file():
            raise CheckpointError(f"No {WEIGHTS_FILE} in {bundle_dir}.")
        from safetensors import SafetensorError
        from safetensors.torch import load as load_bytes

        try:
            data = weights.read_bytes()
        except OSError as exc:
            raise CheckpointError(f"Could not read {WEIGHTS_FILE}: {exc}") from None
        expected = meta.get("weights_sha256")
        if expected is not None and hashlib.sha256(data).hexdigest() != expected:
            raise CheckpointError(
                f"{WEIGHTS_FILE} in {bundle_dir} is not the one its {META_FILE} describes (the SHA-256 "
                "recorded at export differs): the two files come from different exports, or the weights "
                "were changed. Export the model again."
            )
        try:
            state = load_bytes(data)
        except (SafetensorError, OSError, ValueError) as exc:
            raise CheckpointError(f"Could not read {WEIGHTS_FILE}: {exc}") from None
        bad = non_finite(state)
        if bad:
            raise CheckpointError(
                f"{WEIGHTS_FILE} holds weights that are not finite numbers (NaN or infinity in {bad[0]}); "
                "this model cannot predict. Train it again with a lower learning rate."
            )
        model = _model_with(state, meta)
        predictor = cls(model.to(device), list(meta["classes"]), Preprocess.from_bundle(meta), meta)
        predictor.folder = Path(bundle_dir).expanduser()
        return predictor

    def datasets(self) -> list[str]:
        """The folder the model was trained on, if it is still there: outputs never go into it."""
        split = self.meta.get("split")
        root = split.get("root") if isinstance(split, dict) else None
        return [root] if isinstance(root, str) and root and Path(root).is_dir() else []

    def split(self) -> dict[str, Any] | None:
        """The split the model was trained on (root, train and val file lists), if recorded."""
        from ftgui.core.bundle.format import read_split

        return read_split(self.folder, self.meta)

    def logits(self, images: torch.Tensor) -> torch.Tensor:
        device = next(self.model.parameters()).device
        with torch.inference_mode(), self.precision.autocast("infer"):
            return self.model(images.to(device)).float().cpu()

    def load_images(self, paths: Sequence[str | os.PathLike[str]]) -> torch.Tensor:
        return torch.stack([self.transform(load_rgb(p, self.preprocess.resize_size)) for p in paths])

    def predict(self, paths: Sequence[str | os.PathLike[str]], topk: int = 5) -> list[Prediction]:
        """Top-k classes per image; an unreadable image gets an error instead of a prediction."""
        return list(self.predict_batches([str(p) for p in paths], topk))

    def predict_batches(
        self,
        paths: Sequence[str],
        topk: int = 5,
        batch_size: int = 64,
        cancel: CancelToken | None = None,
        progress: Callable[[int, int], None] | None = None,
    ) -> Iterator[Prediction]:
        """Predictions for ``paths`` in order, batch by batch: decoded by one thread per core,
        channels-last for convolutional networks, one forward pass per batch."""
        k = max(1, min(topk, len(self.classes)))
        device = next(self.model.parameters()).device
        channels_last = self.forward is None and not str(self.meta.get("arch", "")).startswith(
            ("vit_", "swin", "maxvit")
        )
        if channels_last:
            self.model.to(memory_format=torch.channels_last)
        ds = ImageListDataset("", [Sample(str(p), 0) for p in paths], self.preprocess, memory_per_file=True)
        batches = [list(range(i, min(i + batch_size, len(paths)))) for i in range(0, len(paths), batch_size)]
        done = 0
        for idx, batch in zip(batches, threaded_batches(ds, batches, decode_threads())):
            if cancel is not None and cancel.cancelled:
                return
            results = {i: Prediction(paths[i], (), _unreadable(paths[i], why)) for i, why in batch.failed}
            if batch.images.numel():
                x = batch.images if self.forward is not None else batch.images.to(device)
                if channels_last:
                    x = x.contiguous(memory_format=torch.channels_last)
                mixed = self.precision if self.forward is None else FP32  # other runtimes: as exported
                with torch.inference_mode(), mixed.autocast("infer"):
                    logits = self.forward(x) if self.forward is not None else self.model(x)
                    probs = torch.softmax(logits.float(), dim=1).cpu()
                values, best = probs.topk(k, dim=1)
                for row, i in enumerate(batch.indices.tolist()):
                    if not bool(torch.isfinite(probs[row]).all()):
                        results[i] = Prediction(
                            paths[i], (), "the model gave no finite prediction for this image"
                        )
                        continue
                    top = zip(values[row].tolist(), best[row].tolist())
                    results[i] = Prediction(paths[i], tuple((self.classes[c], float(v)) for v, c in top))
            yield from (results[i] for i in idx)
            done += len(idx)
            if progress:
                progress(done, len(paths))


def _model_with(state: dict[str, torch.Tensor], meta: dict[str, Any]) -> torch.nn.Module:
    """The bundle's architecture holding ``state``: built on the meta device and given the
    loaded tensors (no random initialisation to throw away: seconds for a 600M-parameter model),
    or, where some tensor would stay unset, built and loaded as usual."""
    from ftgui.core.models import build_skeleton

    arch, k, kwargs = meta["arch"], meta["num_classes"], meta.get("model_kwargs", {})
    try:
        skeleton = build_skeleton(arch, k, **kwargs)
    except Exception as exc:
        raise CheckpointError(f"Cannot build {arch} for this bundle: {exc}") from None
    problem = describe_mismatch(skeleton, state)
    if problem:
        raise CheckpointError(f"{WEIGHTS_FILE} does not fit {arch} with {k} classes: {problem}.")
    load_state(skeleton, state, strict=True, assign=True)
    if not any(t.is_meta for t in (*skeleton.parameters(), *skeleton.buffers())):
        return skeleton
    model = rebuild_for_inference(arch, k, kwargs)  # a buffer outside the state dict
    load_state(model, state, strict=True)
    return model


def _unreadable(path: str, decode_error: str) -> str:
    p = Path(path)
    if p.is_dir():
        return "this folder holds no image files"
    if not p.exists():
        return "file not found"
    return f"unreadable image: {decode_error}"
