"""What an image goes through before the model sees it, from the weights' own transforms."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from ftgui.core.models.registry import weights_enum

if TYPE_CHECKING:
    from torchvision.models import WeightsEnum

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class Preprocess:
    """What an image goes through before the model sees it (eval-time)."""

    crop_size: int = 224
    resize_size: int = 256
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    interpolation: str = "bilinear"

    def with_image_size(self, size: int) -> Preprocess:
        """Same preprocessing at another crop size, keeping the resize/crop ratio."""
        ratio = self.resize_size / self.crop_size
        return replace(self, crop_size=int(size), resize_size=int(round(size * ratio)))

    def to_dict(self) -> dict[str, Any]:
        return {
            "crop_size": self.crop_size,
            "resize_size": self.resize_size,
            "mean": list(self.mean),
            "std": list(self.std),
            "interpolation": self.interpolation,
        }

    @classmethod
    def from_bundle(cls, meta: dict[str, Any]) -> Preprocess:
        """The preprocessing an exported model.json records (under its own, documented names)."""
        return cls.from_dict(
            {
                "crop_size": meta["input_size"],
                "resize_size": meta["resize_size"],
                "mean": meta["mean"],
                "std": meta["std"],
                "interpolation": meta.get("interpolation", "bilinear"),
            }
        )

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Preprocess:
        return cls(
            crop_size=int(d["crop_size"]),
            resize_size=int(d["resize_size"]),
            mean=_triple(d["mean"], "mean"),
            std=_triple(d["std"], "std"),
            interpolation=str(d.get("interpolation", "bilinear")),
        )


def _triple(values: Any, what: str) -> tuple[float, float, float]:
    if len(values) != 3:
        raise ValueError(f"'{what}' must hold three numbers, one per colour channel")
    return float(values[0]), float(values[1]), float(values[2])


def preprocess_for(
    arch: str, weights: WeightsEnum | None = None, image_size: int | None = None
) -> Preprocess:
    """Preprocessing from the weights' own transforms (or the architecture's default weights)."""
    source = weights
    if source is None:
        enum = weights_enum(arch)
        source = enum.DEFAULT if enum is not None and list(enum) else None
    if source is None:
        pre = Preprocess()
    else:
        t = source.transforms()
        pre = Preprocess(
            crop_size=int(t.crop_size[0]),
            resize_size=int(t.resize_size[0]),
            mean=_triple(t.mean, "mean"),
            std=_triple(t.std, "std"),
            interpolation=str(t.interpolation.value),
        )
    if image_size is not None and image_size != pre.crop_size:
        pre = pre.with_image_size(image_size)
    return pre
