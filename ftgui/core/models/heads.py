"""Finding and replacing the classifier (and the auxiliary classifiers some models train with)."""

from __future__ import annotations

from torch import nn

from ftgui.core.base.errors import ModelError
from ftgui.core.models.registry import AUX_HEADS
from ftgui.core.models.timm_source import classifier_name, is_timm_model

# Modules that hold the classifier, in the order they are looked for.
_HEAD_CONTAINERS = ("fc", "classifier", "heads", "head")


def find_head(model: nn.Module) -> str:
    """Qualified name of the final classification layer (Linear, or SqueezeNet's Conv2d)."""
    if is_timm_model(model):
        name = classifier_name(model)  # timm says which module classifies
        if name is not None:
            return name
    for container in _HEAD_CONTAINERS:
        mod = getattr(model, container, None)
        if mod is None or not isinstance(mod, nn.Module):
            continue
        if isinstance(mod, (nn.Linear, nn.Conv2d)):
            return container
        last = None
        for name, sub in mod.named_modules():
            if isinstance(sub, (nn.Linear, nn.Conv2d)):
                last = name
        if last is not None:
            return f"{container}.{last}"
    raise ModelError(f"Could not find the classifier of {type(model).__name__}.")


def aux_heads(model: nn.Module) -> list[str]:
    """Qualified names of auxiliary classifiers' final layers, when the model has them."""
    found = []
    for module_name, layer in AUX_HEADS:
        mod = getattr(model, module_name, None)
        if isinstance(mod, nn.Module) and isinstance(getattr(mod, layer, None), nn.Module):
            found.append(f"{module_name}.{layer}")
    return found


def aux_modules(model: nn.Module) -> list[str]:
    """Top-level names of auxiliary classifier modules present in the model."""
    return [m for m, _ in AUX_HEADS if isinstance(getattr(model, m, None), nn.Module)]


def classifier_names(model: nn.Module) -> list[str]:
    """The final classifier layer and the auxiliary classifiers' final layers: what a new head
    replaces (the same names :func:`replace_head` returns)."""
    return [find_head(model), *aux_heads(model)]


def _new_layer_like(old: nn.Module, num_classes: int) -> nn.Module:
    if isinstance(old, nn.Linear):
        device, dtype = old.weight.device, old.weight.dtype
        return nn.Linear(old.in_features, num_classes, bias=old.bias is not None, device=device, dtype=dtype)
    if isinstance(old, nn.Conv2d):
        new = nn.Conv2d(
            old.in_channels,
            num_classes,
            kernel_size=old.kernel_size,  # type: ignore[arg-type]
            stride=old.stride,  # type: ignore[arg-type]
            padding=old.padding,  # type: ignore[arg-type]
            bias=old.bias is not None,
            device=old.weight.device,
            dtype=old.weight.dtype,
        )
        # SqueezeNet initialises its final conv this way.
        nn.init.normal_(new.weight, mean=0.0, std=0.01)
        if new.bias is not None:
            nn.init.zeros_(new.bias)
        return new
    raise ModelError(f"Cannot replace a classifier layer of type {type(old).__name__}.")


def _set_submodule(model: nn.Module, name: str, new: nn.Module) -> None:
    parent_name, _, child = name.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    setattr(parent, child, new)


def replace_head(model: nn.Module, num_classes: int) -> list[str]:
    """Give the model a fresh classifier (and auxiliary classifiers) for ``num_classes``.

    Returns the qualified names of the new layers.
    """
    if num_classes < 1:
        raise ModelError("A classifier needs at least one class.")
    names = classifier_names(model)
    for name in names:
        _set_submodule(model, name, _new_layer_like(model.get_submodule(name), num_classes))
    if hasattr(model, "num_classes"):
        setattr(model, "num_classes", num_classes)  # noqa: B010 - torchvision models keep it as a plain int
    return names


def head_classes(model: nn.Module) -> int:
    layer = model.get_submodule(find_head(model))
    if isinstance(layer, nn.Linear):
        return int(layer.out_features)
    if isinstance(layer, nn.Conv2d):
        return int(layer.out_channels)
    raise ModelError(f"Cannot read the class count of a {type(layer).__name__} classifier.")
