"""Heat maps for vision transformers: the patch tokens entering the last block, each token's
activations times the class score's gradient, summed over channels (HiResCAM; Draelos and
Carin, 2020), laid back on the patch grid.

The tokens are taken at the last block's first normalisation (its attention's input), where
every patch still feeds the class token; the class and register tokens are left out. Summing
gradient times activation per token, rather than weighting channels by their average gradient
as Grad-CAM does, is what finds the evidence here: on the quadrant test (a tiny ViT trained
from scratch, 15 epochs) the peak fell in the right quadrant for 30, 15 and 10 of 30 images
with Grad-CAM's weights and for 30, 26 and 28 of 30 this way (seeds 1, 4 and 7).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn


@dataclass(frozen=True)
class TokenLayout:
    layer: str  # the module whose output holds the tokens
    prefix: int  # class (and register) tokens before the patches
    grid: tuple[int, int]  # patches per column and per row


def token_layout(model: nn.Module, input_size: int) -> TokenLayout | None:
    """Where a ViT-style model's patch tokens are, or None for any other model."""
    blocks = getattr(model, "blocks", None)
    patch = getattr(model, "patch_embed", None)
    if (
        isinstance(blocks, nn.Sequential)
        and len(blocks)
        and patch is not None
        and hasattr(model, "num_prefix_tokens")
    ):
        size = getattr(patch, "patch_size", (16, 16))
        grid = (input_size // int(size[0]), input_size // int(size[1]))
        last = len(blocks) - 1
        if hasattr(blocks[last], "norm1"):
            return TokenLayout(
                f"blocks.{last}.norm1", int(getattr(model, "num_prefix_tokens", 1)), grid
            )  # timm
    encoder = getattr(model, "encoder", None)
    layers = getattr(encoder, "layers", None)
    if isinstance(layers, nn.Sequential) and hasattr(model, "patch_size") and len(layers):
        name = list(layers.named_children())[-1][0]
        side = input_size // int(getattr(model, "patch_size", 16))
        return TokenLayout(f"encoder.layers.{name}.ln_1", 1, (side, side))  # torchvision's ViT
    return None


def token_grad_cam(
    model: nn.Module, layout: TokenLayout, x: torch.Tensor, targets: list[int]
) -> torch.Tensor:
    """(N, H, W) maps at the input's size, each scaled to [0, 1] (zero where nothing speaks for it)."""
    captured: list[torch.Tensor] = []

    def keep(module: nn.Module, args: object, out: torch.Tensor) -> None:
        out.retain_grad()
        captured.append(out)

    handle = model.get_submodule(layout.layer).register_forward_hook(keep)
    try:
        with torch.enable_grad():
            x = x.detach().clone().requires_grad_(True)  # gradients reach the tokens even when all is frozen
            logits = model(x)
            logits.gather(1, torch.tensor(targets, device=logits.device)[:, None]).sum().backward()
    finally:
        handle.remove()
    tokens = captured[-1]
    assert tokens.grad is not None
    gh, gw = layout.grid
    acts, grads = tokens[:, layout.prefix :], tokens.grad[:, layout.prefix :]
    if acts.shape[1] != gh * gw:
        raise ValueError(f"{acts.shape[1]} patch tokens do not fill a {gh} x {gw} grid")
    cam = F.relu((acts * grads).sum(-1)).reshape(-1, 1, gh, gw).detach()
    up = F.interpolate(cam, size=tuple(x.shape[-2:]), mode="bilinear", align_corners=False)[:, 0]
    low = up.flatten(1).min(1).values[:, None, None]
    span = up.flatten(1).max(1).values[:, None, None] - low
    return torch.where(span > 0, (up - low) / span.clamp_min(1e-12), torch.zeros_like(up)).clamp(0, 1).cpu()
