"""A small generated image folder, for a first try without one's own images (and for tests)."""

from __future__ import annotations

import os
import random
from pathlib import Path

from PIL import Image, ImageDraw, ImageFilter

# Each class: a shape drawn in a colour family, on a noisy background.
EXAMPLE_CLASSES = ("circle", "square", "triangle", "stripes")
_HUES = {
    "circle": (220, 60, 50),
    "square": (50, 170, 70),
    "triangle": (50, 90, 220),
    "stripes": (230, 190, 40),
}


def draw_example(kind: str, size: int, rng: random.Random) -> Image.Image:
    """One picture of the given class: position, scale, colour and background vary."""
    bg = tuple(rng.randint(90, 200) for _ in range(3))
    im = Image.new("RGB", (size, size), bg)
    d = ImageDraw.Draw(im)
    base = _HUES[kind]
    color = tuple(max(0, min(255, c + rng.randint(-35, 35))) for c in base)
    r = rng.uniform(0.22, 0.38) * size
    cx, cy = rng.uniform(r, size - r), rng.uniform(r, size - r)
    if kind == "circle":
        d.ellipse([cx - r, cy - r, cx + r, cy + r], fill=color)
    elif kind == "square":
        d.rectangle([cx - r, cy - r, cx + r, cy + r], fill=color)
    elif kind == "triangle":
        d.polygon([(cx, cy - r), (cx - r, cy + r), (cx + r, cy + r)], fill=color)
    else:
        step = max(2, int(size / rng.uniform(5, 9)))
        for x in range(0, size, step * 2):
            d.rectangle([x, 0, x + step - 1, size], fill=color)
    noise = Image.effect_noise((size, size), rng.uniform(10, 30)).convert("RGB")
    im = Image.blend(im, noise, 0.15)
    return im.filter(ImageFilter.GaussianBlur(rng.uniform(0, 0.8)))


def make_example_dataset(
    dest: str | os.PathLike[str],
    per_class: int = 60,
    size: int = 96,
    seed: int = 0,
    classes: tuple[str, ...] = EXAMPLE_CLASSES,
    fmt: str = "JPEG",
) -> Path:
    """Write ``per_class`` images of each class to ``dest/<class>/``; returns ``dest``.

    Existing files are left alone; only missing images are written.
    """
    root = Path(dest).expanduser()
    rng = random.Random(seed)
    ext = ".jpg" if fmt.upper() == "JPEG" else "." + fmt.lower()
    for kind in classes:
        folder = root / kind
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            img = draw_example(kind, size, rng)
            path = folder / f"{kind}_{i:04d}{ext}"
            if not path.exists():
                img.save(path, fmt, **({"quality": 90} if fmt.upper() == "JPEG" else {}))
    return root
