"""Which input sizes an architecture works at, found by running it on the meta device.

A table of minimum sizes is wrong for some models (torchvision lists 75 px for Inception v3,
which holds only without its auxiliary classifier; in training it needs 299 px, and 283 px fails
while 299 px works). So a size is accepted when the model itself, built on the meta device (no
memory, no weights), runs a batch at that size in training mode and in evaluation mode.
"""

from __future__ import annotations

import functools
import threading
from typing import Any

import torch
from torch import nn

from ftgui.core.models.skeleton import build_skeleton

LOWEST, HIGHEST = 8, 1024  # where the smallest working size is looked for
_lock = threading.Lock()


@functools.lru_cache(maxsize=8)
def _skeleton(arch: str, kwargs: tuple[tuple[str, Any], ...]) -> nn.Module:
    return build_skeleton(arch, 2, **dict(kwargs))


@functools.lru_cache(maxsize=1024)
def _failure(arch: str, kwargs: tuple[tuple[str, Any], ...], size: int) -> str | None:
    """Why ``arch`` cannot take ``size`` px images (the first line of its error), or None.

    One pass in training mode: it takes every path evaluation takes, and the auxiliary
    classifiers too (evaluation skips them)."""
    with _lock:  # one shared skeleton
        model = _skeleton(arch, kwargs)
        try:
            with torch.no_grad():
                model.train()
                for module in model.modules():  # shapes as in training; BatchNorm's are the same
                    if isinstance(module, nn.modules.batchnorm._NormBase):  # and 2x faster on meta
                        module.eval()
                model(torch.empty(2, 3, size, size, device="meta"))
        except (RuntimeError, ValueError, IndexError, AssertionError, NotImplementedError) as exc:
            text = str(exc).strip()
            return text.splitlines()[0] if text else type(exc).__name__
    return None


def _key(kwargs: dict[str, Any]) -> tuple[tuple[str, Any], ...]:
    return tuple(sorted(kwargs.items()))


def smallest_size(arch: str, kwargs: dict[str, Any], guess: int = LOWEST) -> int | None:
    """The smallest size from which ``arch`` works, or None when it works at none up to HIGHEST.

    ``guess`` (torchvision's recorded minimum) only saves time: it is taken when it works and one
    pixel less does not, and otherwise the size is bisected (sizes above the result are each
    checked where they are used: bisection assumes every larger size works)."""
    key = _key(kwargs)
    guess = max(LOWEST, min(guess, HIGHEST))
    if _failure(arch, key, guess) is None:
        if guess == LOWEST or _failure(arch, key, guess - 1) is not None:
            return guess
        low, high = LOWEST, guess - 1  # high works: is there a smaller one?
    elif _failure(arch, key, HIGHEST) is None:
        low, high = guess + 1, HIGHEST
    else:
        return None
    while low < high:
        mid = (low + high) // 2
        if _failure(arch, key, mid) is None:
            high = mid
        else:
            low = mid + 1
    return high


def size_problem(arch: str, kwargs: dict[str, Any], size: int, guess: int = LOWEST) -> str | None:
    """A message when ``arch`` (built with ``kwargs``) cannot train or predict at ``size`` px.

    A model that fails at the largest size too (one built for a single size, or an operation the
    meta device lacks) cannot be judged this way: None, and the real run decides."""
    failure = _failure(arch, _key(kwargs), size)
    smallest = smallest_size(arch, kwargs, guess) if failure is not None else None
    if failure is None or smallest is None:
        return None
    if smallest < size:
        key = _key(kwargs)
        above = next(s for s in range(size + 1, HIGHEST + 1) if _failure(arch, key, s) is None)
        hint = f"it works from {smallest} px but not at every size above; {above} px works"
    else:
        hint = f"the smallest size it works at is {smallest} px"
    return f"{arch} cannot take {size} px images ({failure}); {hint}."
