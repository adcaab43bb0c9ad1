"""Models on the meta device: structure and shapes, no memory, no weights (and the plain constructor)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
import torchvision.models as tvm
from torch import nn

from ftgui.core.base.errors import ModelError
from ftgui.core.models import timm_source
from ftgui.core.models.catalog import check_arch
from ftgui.core.models.heads import head_classes, replace_head, set_head_form
from ftgui.core.models.registry import quirks


def construct(arch: str, kwargs: dict[str, Any]) -> nn.Module:
    """torchvision's plain model (``kwargs`` without ftgui's own ``head``: see with_head)."""
    try:
        return tvm.get_model(arch, weights=None, **{k: v for k, v in kwargs.items() if k != "head"})
    except Exception as exc:
        raise ModelError(f"Could not build {arch}: {exc}") from None


def with_head(model: nn.Module, kwargs: dict[str, Any], num_classes: int) -> nn.Module:
    """The model given the head form its ``kwargs`` record (``head``; linear when absent)."""
    set_head_form(model, str(kwargs.get("head", "linear")), num_classes)
    return model


def build_skeleton(arch: str, num_classes: int | None = None, **kwargs: Any) -> nn.Module:
    """The architecture on the meta device: structure and shapes, no memory, no weights.

    Enough for the layer tree and parameter counts before any weights are loaded.
    """
    check_arch(arch)
    if timm_source.is_timm(arch):
        return timm_source.skeleton(arch, num_classes or 1000, kwargs)
    if quirks(arch).computes_widths:
        # The builder (RegNet) computes layer widths with real tensors: build on the CPU, but
        # every parameter and buffer goes to meta as it is registered (this thread only).
        with _registered_on_meta():
            model = construct(arch, kwargs)
    else:
        with torch.device("meta"):
            model = construct(arch, kwargs)
    if num_classes is not None:
        replace_head(model, num_classes)
    return with_head(model, kwargs, num_classes or head_classes(model))


@contextmanager
def _registered_on_meta() -> Iterator[None]:
    """torch's global registration hooks, acting only on this thread's modules while active."""
    from torch.nn.modules.module import (
        register_module_buffer_registration_hook,
        register_module_parameter_registration_hook,
    )

    me = threading.get_ident()

    def parameter(module: nn.Module, name: str, param: nn.Parameter | None) -> nn.Parameter | None:
        if param is None or threading.get_ident() != me:
            return None
        return nn.Parameter(param.to("meta"), requires_grad=param.requires_grad)

    def buffer(module: nn.Module, name: str, tensor: torch.Tensor | None) -> torch.Tensor | None:
        if tensor is None or threading.get_ident() != me:
            return None
        return tensor.to("meta")

    # torch uses a hook's return value as the registered tensor (its annotation says None).
    handles = [
        register_module_parameter_registration_hook(parameter),  # type: ignore[arg-type]
        register_module_buffer_registration_hook(buffer),  # type: ignore[arg-type]
    ]
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()
