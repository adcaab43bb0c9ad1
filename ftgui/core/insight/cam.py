"""Class-activation heat maps: where in a picture the evidence for a class lies (Grad-CAM).

Computed with Captum's ``LayerGradCam`` (``pip install 'ftgui[insight]'``) on the model's last
convolutional stage, found from the model itself: the last module, in the order a forward
pass finishes them, outside the classifier and not a pooling layer, whose output is a feature
map of at least 2 x 2. ViT-style transformers (torchvision's and timm's) get HiResCAM on their
patch tokens instead (``token_cam.py``); Swin and MaxViT have neither, and for them ftgui says
the heat map is not available rather than draw a picture it cannot vouch for.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch
from PIL import Image
from torch import nn

from ftgui.core.base.errors import FtguiError
from ftgui.core.base.extras import importable
from ftgui.core.insight.token_cam import TokenLayout, token_grad_cam, token_layout
from ftgui.core.models import aux_modules, classifier_names
from ftgui.core.models.timm_source import timm_name

if TYPE_CHECKING:
    from ftgui.core.bundle.predict import Predictor

TRANSFORMERS = ("vit_", "swin", "maxvit")
INSTALL = "pip install 'ftgui[insight]'  (Captum)"


class CamUnavailable(FtguiError):
    """No heat map for this model (a transformer), or Captum is missing."""


def captum_missing() -> str | None:
    """What to install for heat maps, or None when Captum is there."""
    if not importable("captum"):
        return f"Heat maps need Captum, which is not installed. Install with: {INSTALL}"
    return None


def cam_layer(model: nn.Module, arch: str, input_size: int) -> str:
    """The name of the module whose output Grad-CAM explains (see the module's docstring)."""
    layout = token_layout(model, input_size)
    if layout is not None:
        return layout.layer  # a ViT: its patch tokens (token_cam.py)
    if timm_name(arch).startswith(TRANSFORMERS):
        raise CamUnavailable(
            f"Heat maps are not available for {arch}: a transformer has no convolutional feature "
            "map to explain, and ftgui does not draw a heat map it cannot vouch for."
        )
    head = classifier_names(model)
    outside = [h.rsplit(".", 1)[0] if "." in h else h for h in head] + list(aux_modules(model))
    finished: list[str] = []
    hooks = []
    for name, module in model.named_modules():
        if not name or any(name == o or name.startswith(o + ".") for o in outside):
            continue
        if isinstance(module, nn.modules.pooling._AdaptiveAvgPoolNd | nn.modules.pooling._AdaptiveMaxPoolNd):
            continue

        def record(mod: nn.Module, args: object, out: object, name: str = name) -> None:
            if isinstance(out, torch.Tensor) and out.dim() == 4 and min(out.shape[-2:]) >= 2:
                finished.append(name)

        hooks.append(module.register_forward_hook(record))
    was_training = model.training
    model.eval()
    try:
        device = next(model.parameters()).device
        with torch.no_grad():
            model(torch.zeros(1, 3, input_size, input_size, device=device))
    finally:
        for h in hooks:
            h.remove()
        model.train(was_training)
    if not finished:
        raise CamUnavailable(f"Heat maps are not available for {arch}: no feature map of 2 x 2 or more.")
    return finished[-1]


@dataclass(frozen=True)
class HeatMaps:
    maps: torch.Tensor  # (N, H, W) in [0, 1], at the input's size
    layer: str  # the module explained
    targets: tuple[int, ...]  # the class explained for each image
    method: str = "Grad-CAM on"  # or HiResCAM on a transformer's patch tokens


def grad_cam(model: nn.Module, arch: str, images: torch.Tensor, targets: list[int] | None = None) -> HeatMaps:
    """Grad-CAM of ``targets`` (default: each image's predicted class) for a batch of
    preprocessed ``images``; each map scaled to [0, 1] (all zero where nothing speaks for it)."""
    layout = token_layout(model, int(images.shape[-1]))
    if layout is not None:
        return _token_heat_maps(model, layout, images, targets)
    missing = captum_missing()
    if missing:
        raise CamUnavailable(missing)
    from captum.attr import LayerAttribution, LayerGradCam

    layer = cam_layer(model, arch, int(images.shape[-1]))
    was_training = model.training
    model.eval()
    try:
        x = images.detach().to(next(model.parameters()).device).clone().requires_grad_(True)
        if targets is None:
            with torch.no_grad():
                targets = model(x).argmax(1).tolist()
        attr = LayerGradCam(model, model.get_submodule(layer)).attribute(
            x, target=list(targets), relu_attributions=True
        )
        up = LayerAttribution.interpolate(attr.detach(), tuple(x.shape[-2:]), interpolate_mode="bilinear")[
            :, 0
        ]
    finally:
        model.train(was_training)
    low = up.flatten(1).min(1).values[:, None, None]
    span = up.flatten(1).max(1).values[:, None, None] - low
    maps = torch.where(span > 0, (up - low) / span.clamp_min(1e-12), torch.zeros_like(up))
    return HeatMaps(maps.clamp(0, 1).cpu(), layer, tuple(int(t) for t in targets))


def _token_heat_maps(
    model: nn.Module, layout: TokenLayout, images: torch.Tensor, targets: list[int] | None
) -> HeatMaps:
    was_training = model.training
    model.eval()
    try:
        x = images.detach().to(next(model.parameters()).device)
        if targets is None:
            with torch.no_grad():
                targets = model(x).argmax(1).tolist()
        maps = token_grad_cam(model, layout, x, list(targets))
    finally:
        model.train(was_training)
    return HeatMaps(maps, layout.layer, tuple(int(t) for t in targets), "HiResCAM on the patch tokens of")


def image_heat_map(predictor: Predictor, path: str | os.PathLike[str]) -> tuple[Image.Image, HeatMaps]:
    """The picture as the model sees it (resized and cropped) with the heat map of its
    predicted class on top, and the map itself."""
    pictures, heat = class_heat_maps(predictor, path, [None])
    return pictures[0], heat


def class_heat_maps(
    predictor: Predictor, path: str | os.PathLike[str], classes: Sequence[int | None]
) -> tuple[list[Image.Image], HeatMaps]:
    """The picture with the heat map of each class in ``classes`` on top (None: the class the
    model predicts), as the model sees the picture; and the maps."""
    from ftgui.core.data.images import Normalize, build_pixel_transform, load_rgb

    pre = predictor.preprocess
    pixels = build_pixel_transform(pre)(load_rgb(path, pre.resize_size))  # decoded once, for both
    x = Normalize(pre)(pixels)[None]
    predicted = int(predictor.logits(x).argmax(1)[0]) if any(c is None for c in classes) else -1
    targets = [predicted if c is None else int(c) for c in classes]
    arch = str(predictor.meta.get("arch", ""))
    heat = grad_cam(predictor.model, arch, x.repeat(len(targets), 1, 1, 1), targets)
    seen = Image.fromarray(pixels.permute(1, 2, 0).numpy(), "RGB")
    return [overlay(seen, m) for m in heat.maps], heat


def overlay(image: Image.Image, heat: torch.Tensor, alpha: float = 0.45) -> Image.Image:
    """The picture with the heat map on top (blue: nothing, red: the strongest evidence)."""
    h = heat.numpy()
    # A jet-like ramp: blue -> cyan -> yellow -> red.
    r = np.clip(1.5 - np.abs(4 * h - 3), 0, 1)
    g = np.clip(1.5 - np.abs(4 * h - 2), 0, 1)
    b = np.clip(1.5 - np.abs(4 * h - 1), 0, 1)
    colour = Image.fromarray((np.stack([r, g, b], -1) * 255).astype(np.uint8), "RGB")
    base = image.convert("RGB").resize(colour.size)
    return Image.blend(base, colour, alpha)
