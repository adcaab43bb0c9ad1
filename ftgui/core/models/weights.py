"""Pretrained weights: torchvision's (through torch's hub cache) and local files, read safely."""

from __future__ import annotations

import os
import pickle
import socket
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import torch
import torchvision.models as tvm
from torch import nn
from torchvision.models import WeightsEnum

from ftgui.core.base.errors import WeightsError
from ftgui.core.models.registry import weights_enum

LOCAL_WEIGHT_SUFFIXES = (".pth", ".pt", ".safetensors", ".bin")


def resolve_weights(arch: str, spec: str | None) -> WeightsEnum | None:
    """Turn 'default', 'IMAGENET1K_V1' or 'ResNet18_Weights.IMAGENET1K_V1' into a weights enum.

    Returns None for 'none'. Local files are not handled here (see :func:`build_model`).
    """
    if spec is None or spec.lower() == "none":
        return None
    enum = weights_enum(arch)
    if enum is None or not list(enum):
        raise WeightsError(f"torchvision has no pretrained weights for {arch}; use --weights none.")
    name = spec.split(".")[-1]
    if name.lower() == "default":
        return enum.DEFAULT
    try:
        return enum[name]
    except KeyError:
        known = ", ".join(w.name for w in enum)
        raise WeightsError(f"{arch} has no weights named '{spec}'. Available: {known}.") from None


def weights_cache_path(weights: WeightsEnum) -> Path:
    """Where torch's hub cache keeps (or will keep) the file of these weights."""
    filename = os.path.basename(urlparse(weights.url).path)
    return Path(torch.hub.get_dir()) / "checkpoints" / filename


def weights_availability(weights: WeightsEnum, timeout: float = 2.0) -> tuple[str, str]:
    """('cached' | 'download' | 'offline', a sentence for the user) for torchvision weights."""

    path = weights_cache_path(weights)
    if path.is_file():
        return "cached", f"Cached: {path}"
    size = weights.meta.get("_file_size")
    mb = f" ({size:.0f} MB)" if isinstance(size, (int, float)) else ""
    host = urlparse(weights.url).hostname or ""
    try:
        socket.create_connection((host, 443), timeout=timeout).close()
    except OSError:
        return "offline", (
            f"Not cached and the download server cannot be reached. Copy {path.name} to {path.parent}, "
            f"choose a weights file (From file…), or use none (random initialisation)."
        )
    return "download", f"Will download {path.name}{mb} on Start."


def is_local_weights(spec: str | None) -> bool:
    return bool(spec) and (
        str(spec).lower().endswith(LOCAL_WEIGHT_SUFFIXES) or os.sep in str(spec) or Path(str(spec)).is_file()
    )


def read_state_dict(path: str | os.PathLike[str]) -> dict[str, torch.Tensor]:
    """Read a state dict from .safetensors or .pth/.pt without running any pickled code."""
    p = Path(path)
    if not p.is_file():
        raise WeightsError(f"Weights file not found: {p}")
    try:
        if p.suffix.lower() == ".safetensors":
            from safetensors.torch import load_file

            obj: Any = load_file(str(p), device="cpu")
        else:
            obj = torch.load(str(p), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        code = unsafe_pickle_reason(exc)
        if code is None:
            raise WeightsError(
                f"Could not read weights file {p.name}: it is not a PyTorch weights file."
            ) from None
        raise WeightsError(
            f"Refused to load {p.name}: it holds Python objects other than tensors ({code}), "
            f"which ftgui never executes. Use a .safetensors file or a plain state-dict .pth."
        ) from None
    except Exception as exc:  # corrupt zip, truncated file, wrong format, ...
        raise WeightsError(f"Could not read weights file {p.name}: {exc}") from None
    if isinstance(obj, dict):
        for key in ("state_dict", "model", "model_state", "model_state_dict"):
            if isinstance(obj.get(key), dict):
                obj = obj[key]
                break
    if not isinstance(obj, dict) or not obj or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise WeightsError(f"{p.name} does not contain a state dict of tensors.")
    prefix = "module."
    if all(k.startswith(prefix) for k in obj):
        obj = {k[len(prefix) :]: v for k, v in obj.items()}
    return obj


def unsafe_pickle_reason(exc: BaseException) -> str | None:
    """What a weights_only load refused (e.g. 'GLOBAL io.open'), or None for a file that is
    simply not a pickle/zip checkpoint."""
    text = str(exc)
    marker = "Unsupported global: "
    if marker in text:
        return text.split(marker, 1)[1].split(" was not", 1)[0].strip()
    return None


def describe_mismatch(
    model: nn.Module | Mapping[str, torch.Tensor], state: Mapping[str, torch.Tensor], limit: int = 5
) -> str | None:
    """A readable list of missing/unexpected keys and shape mismatches, or None if it fits
    (``model``: the model, or the tensors it expects)."""
    wanted = model.state_dict() if isinstance(model, nn.Module) else model
    expected = {k: v for k, v in wanted.items() if not k.endswith("num_batches_tracked")}
    given = {k: v for k, v in state.items() if not k.endswith("num_batches_tracked")}
    missing = [k for k in expected if k not in given]
    unexpected = [k for k in given if k not in expected]
    shapes = [
        f"{k}: file {tuple(given[k].shape)} vs model {tuple(expected[k].shape)}"
        for k in expected
        if k in given and tuple(given[k].shape) != tuple(expected[k].shape)
    ]
    parts = []
    for label, items in (
        ("missing keys", missing),
        ("unexpected keys", unexpected),
        ("shape mismatches", shapes),
    ):
        if items:
            more = f" and {len(items) - limit} more" if len(items) > limit else ""
            parts.append(f"{len(items)} {label} ({'; '.join(items[:limit])}{more})")
    return ", ".join(parts) if parts else None


def load_state(
    model: nn.Module, state: Mapping[str, torch.Tensor], strict: bool = True, assign: bool = False
) -> Any:
    """``model.load_state_dict`` for tensors that lost their module versions on the way (a copy, a
    .safetensors file, a checkpoint's plain dict): the model's own versions go with them, since
    some modules refuse a state without one (MNASNet: 'version should be set to 1 or 2')."""
    from collections import OrderedDict

    versioned: Any = OrderedDict(state)
    versions = getattr(state, "_metadata", None) or getattr(model.state_dict(), "_metadata", None)
    if versions is not None:
        versioned._metadata = versions
    return model.load_state_dict(versioned, strict=strict, assign=assign)


def load_into(model: nn.Module, state: dict[str, torch.Tensor], what: str, arch: str) -> None:
    problem = describe_mismatch(model, state)
    if problem:
        raise WeightsError(f"{what} does not fit {arch}: {problem}.")
    load_state(model, state, strict=False)


def load_pretrained(arch: str, weights: WeightsEnum, allow_download: bool) -> nn.Module:
    cached = weights_cache_path(weights)
    name = f"{type(weights).__name__}.{weights.name}"
    advice = (
        f"Expected file: {cached}. Copy the file there, choose a local weights file "
        f"(--weights PATH), or train from random initialisation (--weights none)."
    )
    if not cached.is_file() and not allow_download:
        raise WeightsError(f"Pretrained weights {name} are not in the cache. {advice}")
    try:
        # Through torchvision's own builder: it uses torch's hub cache and loads with
        # weights_only=True, and knows per-architecture details (e.g. Inception's input transform).
        return tvm.get_model(arch, weights=weights, progress=False)
    except pickle.UnpicklingError as exc:
        raise WeightsError(f"Refused to load cached weights {cached.name}: {exc}") from None
    except (OSError, RuntimeError, ValueError) as exc:
        if cached.is_file():
            raise WeightsError(
                f"Cached weights file {cached} could not be read ({exc}). Delete it and retry."
            ) from None
        raise WeightsError(
            f"Pretrained weights {name} are not cached and could not be downloaded ({exc}). {advice}"
        ) from None
