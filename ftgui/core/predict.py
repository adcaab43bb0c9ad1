"""Predictions from an exported bundle, with exactly the preprocessing it records."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .data import build_transform, load_rgb
from .errors import CheckpointError, DataError
from .export import META_FILE, WEIGHTS_FILE, read_metadata
from .models import Preprocess, describe_mismatch, rebuild_for_inference


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
        bad = [k for k, v in state.items() if v.is_floating_point() and not bool(torch.isfinite(v).all())]
        if bad:
            raise CheckpointError(
                f"{WEIGHTS_FILE} holds weights that are not finite numbers (NaN or infinity in {bad[0]}); "
                "this model cannot predict. Train it again with a lower learning rate."
            )
        try:
            model = rebuild_for_inference(meta["arch"], meta["num_classes"], meta.get("model_kwargs", {}))
        except Exception as exc:
            raise CheckpointError(f"Cannot build {meta['arch']} for this bundle: {exc}") from None
        problem = describe_mismatch(model, state)
        if problem:
            raise CheckpointError(
                f"{WEIGHTS_FILE} does not fit {meta['arch']} with {meta['num_classes']} classes: {problem}."
            )
        model.load_state_dict(state, strict=True)
        return cls(model.to(device), list(meta["classes"]), Preprocess.from_bundle(meta), meta)

    def logits(self, images: torch.Tensor) -> torch.Tensor:
        device = next(self.model.parameters()).device
        with torch.inference_mode():
            return self.model(images.to(device)).float().cpu()

    def load_images(self, paths: Sequence[str | os.PathLike[str]]) -> torch.Tensor:
        return torch.stack([self.transform(load_rgb(p, self.preprocess.resize_size)) for p in paths])

    def predict(self, paths: Sequence[str | os.PathLike[str]], topk: int = 5) -> list[Prediction]:
        """Top-k classes per image; an unreadable image gets an error instead of a prediction."""
        out: list[Prediction] = []
        k = max(1, min(topk, len(self.classes)))
        for p in paths:
            if Path(p).is_dir():
                out.append(Prediction(str(p), (), "this is a folder, not an image file; give image files"))
                continue
            if not Path(p).is_file():
                out.append(Prediction(str(p), (), "file not found"))
                continue
            try:
                x = self.load_images([p])
            except Exception as exc:
                out.append(Prediction(str(p), (), f"unreadable image: {exc}"))
                continue
            probs = torch.softmax(self.logits(x)[0], dim=0)
            if not bool(torch.isfinite(probs).all()):
                out.append(Prediction(str(p), (), "the model gave no finite prediction for this image"))
                continue
            values, idx = probs.topk(k)
            out.append(
                Prediction(
                    str(p), tuple((self.classes[i], float(v)) for v, i in zip(values.tolist(), idx.tolist()))
                )
            )
        return out


def predict_files(bundle_dir: str, paths: Sequence[str], topk: int = 5) -> list[Prediction]:
    if not paths:
        raise DataError("No images given to predict.")
    return Predictor.load(bundle_dir).predict(paths, topk)
