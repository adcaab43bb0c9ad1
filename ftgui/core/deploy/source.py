"""What a deployment export starts from: the model, its preprocessing and its images.

From a model just trained (``from_trained``) or from any bundle on disk (``from_bundle``: its
weights, and the training and validation file lists of its split.json.gz, found under the
dataset folder it was trained on or under another one given with ``--data``).
"""

from __future__ import annotations

import copy
import os
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from ftgui.core.base.errors import CheckpointError
from ftgui.core.bundle.predict import Predictor
from ftgui.core.bundle.trained import TrainedModel
from ftgui.core.data.samples import Sample
from ftgui.core.models.preprocess import Preprocess

MEASURE_LIMIT = 500  # validation images each format is measured on (spread over the split)
MEASURE_BYTES = 256 << 20  # ... and no more than fit in this much memory as float tensors
CALIBRATION_IMAGES = 300  # training images INT8 formats are calibrated on


def plain_eval_copy(model: nn.Module) -> nn.Module:
    """The copy every format is written from: float, eval mode, on the CPU, at its fixed size."""
    clone = copy.deepcopy(model).cpu().eval().float()
    fixed_size_positions(clone)
    return clone.to(memory_format=torch.contiguous_format)


def fixed_size_positions(model: nn.Module) -> bool:
    """A timm ViT built for any input size resamples its position table (bicubic, antialiased)
    at every call; LiteRT has no such op and Core ML's converter fails on it. An exported file
    takes one size, the one the table was built for, where the resampling changes nothing: the
    copy uses the table as it is (the same numbers; every format is still measured against the
    trained model). True when the model was changed."""
    patch = getattr(model, "patch_embed", None)
    pos = getattr(model, "pos_embed", None)
    if not getattr(model, "dynamic_img_size", False) or patch is None or not isinstance(pos, torch.Tensor):
        return False
    grid = getattr(patch, "grid_size", None)
    prefix = 0 if getattr(model, "no_embed_class", False) else int(getattr(model, "num_prefix_tokens", 0))
    if not grid or getattr(patch, "flatten", True) or pos.shape[1] != grid[0] * grid[1] + prefix:
        return False
    model.dynamic_img_size = False  # type: ignore[assignment]
    patch.flatten = True  # tokens in a row (N, L, C), as the fixed-size forward expects
    return True


def spread(samples: list[Sample], limit: int) -> list[Sample]:
    """At most ``limit`` samples, evenly spaced (the lists are sorted class by class, so every
    class keeps its share)."""
    if len(samples) <= limit:
        return list(samples)
    step = len(samples) / limit
    return [samples[int(i * step)] for i in range(limit)]


@dataclass
class DeploySource:
    model: nn.Module  # a float copy in eval mode on the CPU
    preprocess: Preprocess
    classes: list[str]
    root: str
    train: list[Sample]
    val: list[Sample]

    @classmethod
    def from_trained(cls, trained: TrainedModel) -> DeploySource:
        split = trained.split
        return cls(
            plain_eval_copy(trained.model),
            trained.preprocess,
            trained.classes,
            str(trained.scan.root),
            list(split.train) if split else [],
            list(split.val) if split else [],
        )

    @classmethod
    def from_bundle(
        cls, bundle_dir: str | os.PathLike[str], data: str | os.PathLike[str] | None = None
    ) -> tuple[DeploySource, Predictor]:
        predictor = Predictor.load(bundle_dir)
        split = predictor.split() or {}
        root = Path(data).expanduser() if data else Path(str(split.get("root", "")))
        train = [Sample(str(p), int(c)) for p, c in split.get("train", [])]
        val = [Sample(str(p), int(c)) for p, c in split.get("val", [])]
        if not (train or val):
            raise CheckpointError(
                f"{bundle_dir} records no training or validation images (no split.json.gz): the "
                "formats cannot be measured or calibrated. Export it again from ftgui."
            )
        if not root.is_dir() or not any((root / s.path).is_file() for s in (val or train)[:50]):
            raise CheckpointError(
                f"The images this model was trained on are not in {root}"
                + ("" if data else " (the folder recorded in its split)")
                + ": pass the dataset's folder with --data FOLDER. Its validation images are what "
                "every format is measured on, its training images what INT8 formats are calibrated on."
            )
        source = cls(
            plain_eval_copy(predictor.model), predictor.preprocess, predictor.classes, str(root), train, val
        )
        return source, predictor

    def _load(self, samples: list[Sample]) -> tuple[torch.Tensor, list[int]]:
        from ftgui.core.data.images import ImageListDataset

        ds = ImageListDataset(self.root, samples, self.preprocess)
        images, labels = [], []
        for i in range(len(samples)):
            image, label, _, _ = ds[i]
            if image is not None:
                images.append(image)
                labels.append(int(label))
        if not images:
            return torch.empty(0), []
        return torch.stack(images), labels

    def example(self) -> torch.Tensor:
        """Two images of the right shape, to trace and export at."""
        images, _ = self._load((self.val or self.train)[:4])
        if len(images) >= 2:
            return images[:2]
        size = self.preprocess.crop_size
        return torch.rand(2, 3, size, size)

    def measured_images(self, limit: int = MEASURE_LIMIT) -> tuple[torch.Tensor, list[int] | None, str]:
        """Validation images and their labels (None where there are no validation images: the
        trained model's answers on training images then stand in), and which images they are."""
        size = self.preprocess.crop_size
        limit = max(32, min(limit, MEASURE_BYTES // (3 * 4 * size * size)))
        if self.val:
            images, labels = self._load(spread(self.val, limit))
            if len(images):
                return images, labels, f"{len(images)} validation images"
        images, _ = self._load(spread(self.train, limit))
        if not len(images):
            raise CheckpointError(f"None of the model's images under {self.root} could be read.")
        return images, None, f"{len(images)} training images (no validation split: accuracy is agreement)"

    def calibration_images(self, limit: int = CALIBRATION_IMAGES) -> torch.Tensor:
        """Training images (validation images where there are none), preprocessed as for
        prediction: what the deployed model will see, never random data."""
        size = self.preprocess.crop_size
        limit = max(32, min(limit, MEASURE_BYTES // (3 * 4 * size * size)))
        images, _ = self._load(spread(self.train or self.val, limit))
        if not len(images):
            raise CheckpointError(f"No training image under {self.root} could be read for calibration.")
        return images
