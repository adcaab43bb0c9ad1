"""Predictions from an exported bundle, with exactly the preprocessing it records."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .data import build_transform, load_rgb
from .errors import CheckpointError, DataError
from .export import WEIGHTS_FILE, read_metadata
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
        meta = read_metadata(bundle_dir)
        weights = Path(bundle_dir).expanduser() / WEIGHTS_FILE
        if not weights.is_file():
            raise CheckpointError(f"No {WEIGHTS_FILE} in {bundle_dir}.")
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            state = load_file(str(weights), device="cpu")
        except (SafetensorError, OSError) as exc:
            raise CheckpointError(f"Could not read {WEIGHTS_FILE}: {exc}") from None
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
        pre = Preprocess(
            crop_size=meta["input_size"],
            resize_size=meta["resize_size"],
            mean=tuple(meta["mean"]),
            std=tuple(meta["std"]),
            interpolation=meta.get("interpolation", "bilinear"),
        )
        return cls(model.to(device), list(meta["classes"]), pre, meta)

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
            if not Path(p).is_file():
                out.append(Prediction(str(p), (), f"file not found: {p}"))
                continue
            try:
                x = self.load_images([p])
            except Exception as exc:
                out.append(Prediction(str(p), (), f"unreadable image: {exc}"))
                continue
            probs = torch.softmax(self.logits(x)[0], dim=0)
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
