"""Photographs-like data at 224 px for the accuracy benchmark, and its stand-in pretrained model.

Nothing can be downloaded, so the "ImageNet" model is a stand-in: a ResNet18 trained from scratch
on crops of real photographs that ship with scikit-image and scikit-learn (an astronaut, a cat,
coffee, a rocket, a galaxy field, a microscope slide, a page of text, ...: 15 photographs, one
class each, random crops, flips, rotations and colour changes). Its weights file is placed where
torch's hub cache looks for torchvision's ResNet18 weights, so ftgui, the tutorial, fastai and
Lightning all load it as they would load the real ImageNet weights.

The tasks never share a photograph with the stand-in:
- shapes: the speed benchmark's folder (drawn shapes on noisy backgrounds, JPEG);
- textures: crops of five real surfaces (brick, grass, gravel, the moon, coins), JPEG;
- digits at 224 px: scikit-learn's real handwritten scans, scaled up, JPEG (the held-out check;
  bench_accuracy.write_digits).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image, ImageEnhance

from ftgui.core.data.example import draw_example

SHAPES = ("circle", "square", "stripes", "triangle")
TEXTURES = ("brick", "grass", "gravel", "moon", "coins")
PRETRAIN = (
    "astronaut", "camera", "chelsea", "coffee", "hubble_deep_field", "immunohistochemistry", "page",
    "rocket", "text", "clock", "retina", "cell", "china", "flower", "motorcycle",
)  # fmt: skip


def photograph(name: str) -> Image.Image:
    """One of the photographs shipped with scikit-image / scikit-learn, as RGB."""
    if name in ("china", "flower"):
        from sklearn.datasets import load_sample_image

        return Image.fromarray(load_sample_image(f"{name}.jpg")).convert("RGB")
    import skimage.data

    pixels = skimage.data.stereo_motorcycle()[0] if name == "motorcycle" else getattr(skimage.data, name)()
    pixels = np.asarray(pixels)
    if pixels.dtype != np.uint8:
        pixels = (255 * (pixels - pixels.min()) / max(float(np.ptp(pixels)), 1e-9)).astype(np.uint8)
    return Image.fromarray(pixels).convert("RGB")


def random_crop(photo: Image.Image, rng: random.Random, size: int, area: tuple[float, float]) -> Image.Image:
    """A crop of ``area`` (fraction of the photograph), aspect 3:4 to 4:3, flipped, turned by a
    multiple of 90 degrees, brightness and contrast changed by up to 25 %, at ``size`` px."""
    w, h = photo.size
    frac = rng.uniform(*area)
    aspect = rng.uniform(0.75, 4 / 3)
    cw = max(8, min(w, int(round((frac * w * h * aspect) ** 0.5))))
    ch = max(8, min(h, int(round((frac * w * h / aspect) ** 0.5))))
    x, y = rng.randint(0, w - cw), rng.randint(0, h - ch)
    im = photo.crop((x, y, x + cw, y + ch)).resize((size, size), Image.BICUBIC)
    if rng.random() < 0.5:
        im = im.transpose(Image.FLIP_LEFT_RIGHT)
    im = im.rotate(90 * rng.randrange(4))
    im = ImageEnhance.Brightness(im).enhance(rng.uniform(0.75, 1.25))
    return ImageEnhance.Contrast(im).enhance(rng.uniform(0.75, 1.25))


def write_classes(
    root: Path, counts: dict[str, int], draw: Callable[[str, random.Random], Image.Image], seed: int
) -> Path:
    """``counts[name]`` JPEGs per class folder (quality 75-95, as cameras and phones vary)."""
    rng = random.Random(seed)
    for name, n in counts.items():
        folder = root / name
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(n):
            draw(name, rng).save(folder / f"{i:04d}.jpg", quality=rng.randint(75, 95))
    return root


def write_shapes(root: Path, counts: tuple[int, ...], size: int = 224, seed: int = 0) -> Path:
    """The speed benchmark's shapes (``counts`` per class, in SHAPES' order)."""
    return write_classes(root, dict(zip(SHAPES, counts)), lambda c, r: draw_example(c, size, r), seed)


def write_crops(
    root: Path, names: tuple[str, ...], counts: tuple[int, ...], size: int = 224, seed: int = 0,
    area: tuple[float, float] = (0.03, 0.25),
) -> Path:  # fmt: skip
    """Random crops of real photographs, one class per photograph."""
    photos = {n: photograph(n) for n in names}
    return write_classes(
        root, dict(zip(names, counts)), lambda n, r: random_crop(photos[n], r, size, area), seed
    )


def write_pretraining(root: Path, per_class: int = 48, size: int = 224, seed: int = 1) -> Path:
    """The stand-in's own training folder: crops of the 15 PRETRAIN photographs."""
    return write_crops(root, PRETRAIN, (per_class,) * len(PRETRAIN), size, seed, area=(0.05, 0.6))
