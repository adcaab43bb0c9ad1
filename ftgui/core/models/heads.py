"""Finding and replacing the classifier (and the auxiliary classifiers some models train with)."""

from __future__ import annotations

import torch
from torch import nn

from ftgui.core.base.errors import ModelError
from ftgui.core.models.registry import AUX_HEADS
from ftgui.core.models.timm_source import classifier_name, is_timm_model

# Modules that hold the classifier, in the order they are looked for.
_HEAD_CONTAINERS = ("fc", "classifier", "heads", "head")


# The classifier's form (``--head``): what replaces the pretrained classifier.
HEAD_FORMS = {  # and "auto": concat where the model takes it (resolve_head_form)
    "linear": "one linear layer on the average-pooled features (every model)",
    "concat": "average and max pooling side by side, BatchNorm, one linear layer (fastai's pooling and "
    "normalisation; torchvision models that average-pool straight into their classifier)",
}


class ConcatPool2d(nn.Module):
    """Max and average pooling over the whole map, side by side (fastai's AdaptiveConcatPool2d):
    twice the channels, still N x C x 1 x 1, so the model's own flatten and classifier follow."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # Reductions, not adaptive pooling: every export format lowers them (LiteRT has no
        # adaptive max pooling).
        return torch.cat([x.amax((2, 3), keepdim=True), x.mean((2, 3), keepdim=True)], 1)


class NormLinear(nn.Sequential):
    """The ``concat`` head: BatchNorm over the pooled features, then one linear layer."""

    def __init__(self, in_features: int, num_classes: int, device: torch.device | None = None) -> None:
        super().__init__(
            nn.BatchNorm1d(in_features, device=device), nn.Linear(in_features, num_classes, device=device)
        )

    @property
    def linear(self) -> nn.Linear:
        layer = self[1]
        assert isinstance(layer, nn.Linear)
        return layer

    @property
    def in_features(self) -> int:
        return self.linear.in_features

    @property
    def out_features(self) -> int:
        return self.linear.out_features


def takes_concat(model: nn.Module) -> bool:
    """Whether the model average-pools (``avgpool``) straight into one linear classifier, with
    only parameter-free modules (dropout, flatten) between: where the concat head fits."""
    name = find_head(model)
    head, pool = model.get_submodule(name), getattr(model, "avgpool", None)
    if isinstance(pool, ConcatPool2d) and isinstance(head, NormLinear):
        return True
    if not (isinstance(pool, nn.AdaptiveAvgPool2d) and pool.output_size in (1, (1, 1))):
        return False
    names = [n for n, _ in model.named_modules()]
    if not isinstance(head, nn.Linear) or names.index("avgpool") > names.index(name):
        return False
    between = [
        n for n in names[names.index("avgpool") + 1 : names.index(name)] if not name.startswith(n + ".")
    ]
    return not any(any(True for _ in model.get_submodule(n).parameters()) for n in between)


def resolve_head_form(model: nn.Module, form: str) -> str:
    """``auto``: concat where the model takes it, else linear; any other form as it is."""
    if form not in (*HEAD_FORMS, "auto"):
        raise ModelError(f"Unknown head {form!r}: choose auto, {' or '.join(HEAD_FORMS)}.")
    if form == "auto":
        return "concat" if not is_timm_model(model) and takes_concat(model) else "linear"
    return form


def set_head_form(model: nn.Module, form: str, num_classes: int) -> None:
    """Give a model (its classifier already sized for ``num_classes``) the head ``form``."""
    if resolve_head_form(model, form) == "linear":
        return
    if not takes_concat(model):
        raise ModelError(
            f"The concat head needs a model that average-pools straight into one linear classifier; "
            f"{type(model).__name__} does not. Use --head linear."
        )
    name = find_head(model)
    head = model.get_submodule(name)
    if isinstance(head, NormLinear):
        return
    assert isinstance(head, nn.Linear)
    model.avgpool = ConcatPool2d()
    _set_submodule(model, name, NormLinear(2 * head.in_features, num_classes, head.weight.device))


def find_head(model: nn.Module) -> str:
    """Qualified name of the final classification layer (Linear, or SqueezeNet's Conv2d), or of
    the ``concat`` head that holds it."""
    for name, sub in model.named_modules():
        if isinstance(sub, NormLinear):
            return name
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
    if isinstance(old, NormLinear):
        return NormLinear(old.in_features, num_classes, old.linear.weight.device)
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
    if isinstance(layer, (nn.Linear, NormLinear)):
        return int(layer.out_features)
    if isinstance(layer, nn.Conv2d):
        return int(layer.out_channels)
    raise ModelError(f"Cannot read the class count of a {type(layer).__name__} classifier.")
