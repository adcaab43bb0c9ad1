"""Frozen-prefix cache: compute what the frozen layers output once, train only the rest.

When every layer before some point is frozen (and in eval mode) and augmentation is off, the
prefix computes the same thing for an image every epoch. ``plan_cache`` finds that point and
builds a *suffix* (sharing parameters with the model) that continues the forward pass from a
cached activation; the plan is checked numerically against the full model before it is used.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

_RANDOM_TYPES = (nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d, nn.AlphaDropout)


class _Stop(Exception):
    """Raised by a hook to end a forward pass once the cached activation is captured."""


def _random_type(m: nn.Module) -> bool:
    return isinstance(m, _RANDOM_TYPES) or type(m).__name__ == "StochasticDepth"


def _has_trainable(m: nn.Module) -> bool:
    return any(p.requires_grad for p in m.parameters())


def _has_params(m: nn.Module) -> bool:
    return any(True for _ in m.parameters())


def call_order(model: nn.Module, example: torch.Tensor) -> list[str]:
    """Qualified names of modules in the order their forward starts (eval mode, one batch)."""
    order: list[str] = []
    handles = [
        m.register_forward_pre_hook(lambda mod, args, n=name: order.append(n))
        for name, m in model.named_modules()
        if name
    ]
    was_training = model.training
    try:
        model.eval()
        with torch.inference_mode():
            model(example)
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    return order


class _Feeder(nn.Module):
    """Stands in for the first frozen module: returns the cached activation."""

    def __init__(self) -> None:
        super().__init__()
        self.value: torch.Tensor | None = None

    def forward(self, *args: Any, **kwargs: Any) -> torch.Tensor:
        assert self.value is not None
        return self.value


class _Passthrough(nn.Module):
    def forward(self, x: Any, *args: Any, **kwargs: Any) -> Any:
        return x


@dataclass
class CachePlan:
    """Where to cache (the input of ``capture_at``) and how to continue from it."""

    capture_at: str
    runner: nn.Module  # shares parameters and buffers with the model
    feeder: _Feeder | None  # for the swap plan: where cached values enter
    image_shape: tuple[int, int, int]
    description: str

    def forward(self, cached: torch.Tensor) -> Any:
        if self.feeder is None:
            return self.runner(cached)
        self.feeder.value = cached
        placeholder = torch.zeros((cached.shape[0], *self.image_shape), device=cached.device)
        try:
            return self.runner(placeholder)
        finally:
            self.feeder.value = None

    def train_mode(self) -> None:
        from ftgui.core.models.layers import train_mode

        train_mode(self.runner)

    def eval_mode(self) -> None:
        self.runner.eval()


def _get_parent(model: nn.Module, name: str) -> tuple[nn.Module, str]:
    parent, _, child = name.rpartition(".")
    return (model.get_submodule(parent) if parent else model), child


def plan_cache(model: nn.Module, example: torch.Tensor) -> CachePlan | None:
    """Find the frozen prefix and build a checked suffix, or None when caching cannot help."""
    order = call_order(model, example)
    modules = dict(model.named_modules())
    first_trainable = next((i for i, n in enumerate(order) if _has_trainable(modules[n])), None)
    if first_trainable is None:
        return None
    boundary = order[first_trainable]
    # Inside a Sequential, the chain continues child by child: move the boundary to just
    # after the last frozen child with parameters (keeping Dropout & co. in the suffix).
    tail: list[nn.Module] | None = None
    if isinstance(modules[boundary], nn.Sequential):
        seq = list(modules[boundary].children())
        first = next(i for i, c in enumerate(seq) if _has_trainable(c))
        last_frozen = max((i for i in range(first) if _has_params(seq[i])), default=-1)
        tail = seq[last_frozen + 1 :]
    plans = []
    top_level = "." not in boundary
    after = order[first_trainable:]
    later_params = [n for n in after if "." not in n and n != boundary and _has_params(modules[n])]
    if top_level and not later_params and first_trainable > 0:
        plans.append(_tail_plan(model, modules, order, boundary, tail, example))
    # A Sequential runs its children in order: the trainable part starts at the first child
    # that trains (ResNet's layer4.0, EfficientNet's features.7, ...).
    leaf = first_trainable
    while isinstance(modules[order[leaf]], nn.Sequential):
        leaf = next(i for i in range(leaf + 1, len(order)) if _has_trainable(modules[order[i]]))
    plans.append(_swap_plan(model, modules, order, leaf, example))
    for plan in plans:
        if plan is not None and _check(model, plan, example):
            return plan
    return None


def _tail_plan(
    model: nn.Module,
    modules: dict[str, nn.Module],
    order: list[str],
    boundary: str,
    tail: list[nn.Module] | None,
    example: torch.Tensor,
) -> CachePlan | None:
    """The boundary is the model's last parametrised top-level module (the classifier)."""
    steps: list[nn.Module] = list(tail) if tail is not None else [modules[boundary]]
    capture = boundary
    if tail is not None:
        # Capture the input of the first tail module.
        child = next(n for n, c in modules[boundary].named_children() if c is tail[0])
        capture = f"{boundary}.{child}"
    else:
        # GoogLeNet/Inception apply a top-level Dropout right before fc: keep it in the suffix.
        i = order.index(boundary)
        if i > 0 and _random_type(modules[order[i - 1]]) and "." not in order[i - 1]:
            capture = order[i - 1]
            steps.insert(0, modules[order[i - 1]])
    if type(model).__name__ == "SqueezeNet":
        steps.append(nn.Flatten(1))
    runner = nn.Sequential(*steps)
    return CachePlan(capture, runner, None, _image_shape(example), f"classifier input ({capture})")


def _swap_plan(
    model: nn.Module,
    modules: dict[str, nn.Module],
    order: list[str],
    first_trainable: int,
    example: torch.Tensor,
) -> CachePlan | None:
    """A shallow copy of the model whose frozen prefix modules are replaced: the first by a
    feeder of cached values, the rest by pass-throughs. Works where the forward is a chain."""
    boundary = order[first_trainable]
    prefix = order[:first_trainable]
    ancestors = {boundary.rsplit(".", i)[0] for i in range(1, boundary.count(".") + 1)}
    top = [
        n
        for n in dict.fromkeys(prefix)
        if n not in ancestors
        and not any(n.startswith(p + ".") for p in prefix if p != n and p not in ancestors)
    ]
    if not any(_has_params(modules[n]) for n in top) or set(top) & set(order[first_trainable:]):
        return None
    if any(_random_type(modules[n]) for n in top):
        return None  # an active Dropout before the cache point would be skipped
    runner = copy.copy(model)
    runner._modules = dict(model._modules)
    copied = {"": runner}

    def container(path: str) -> nn.Module:
        if path in copied:
            return copied[path]
        parent_path, _, child = path.rpartition(".")
        parent = container(parent_path)
        original = parent._modules[child]
        assert original is not None
        clone = copy.copy(original)
        clone._modules = dict(clone._modules)
        parent._modules[child] = clone
        copied[path] = clone
        return clone

    feeder = _Feeder()
    for i, name in enumerate(top):
        parent_path, _, child = name.rpartition(".")
        container(parent_path)._modules[child] = feeder if i == 0 else _Passthrough()
    return CachePlan(boundary, runner, feeder, _image_shape(example), f"input of {boundary}")


def _image_shape(example: torch.Tensor) -> tuple[int, int, int]:
    c, h, w = (int(v) for v in example.shape[1:])
    return c, h, w


def capture(model: nn.Module, plan: CachePlan, images: torch.Tensor) -> torch.Tensor:
    """The activation entering ``plan.capture_at`` (frozen prefix, eval mode, no autograd)."""
    store: list[torch.Tensor] = []

    def hook(mod: nn.Module, args: tuple[Any, ...]) -> None:
        store.append(args[0])
        raise _Stop

    handle = model.get_submodule(plan.capture_at).register_forward_pre_hook(hook)
    was_training = model.training
    try:
        model.eval()
        with torch.inference_mode():
            try:
                model(images)
            except _Stop:
                pass
    finally:
        handle.remove()
        model.train(was_training)
    if not store:
        raise RuntimeError(f"{plan.capture_at} was not reached")
    return store[0].float().clone()


def _check(model: nn.Module, plan: CachePlan, example: torch.Tensor) -> bool:
    try:
        was_training = model.training
        model.eval()
        with torch.inference_mode():
            full = model(example)
            plan.eval_mode()
            part = plan.forward(capture(model, plan, example))
        model.train(was_training)
        return bool(
            full.shape == part.shape and torch.allclose(full.float(), part.float(), rtol=1e-4, atol=1e-5)
        )
    except Exception:
        return False
