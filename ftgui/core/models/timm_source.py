"""timm's pretrained classifiers as a second model source: ``timm:NAME`` beside torchvision's.

Names are timm's own (``timm:vit_small_patch14_dinov2.lvd142m``). Structure, preprocessing and
licence come from the model and its ``pretrained_cfg``; weights come from the Hugging Face hub
cache (or a local file) as tensors only — no repository code is fetched or run. timm is an
optional package (the ``timm`` extra); without it a timm name gets a message saying how to
install it.
"""

from __future__ import annotations

import contextlib
import json
import os
from functools import lru_cache
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ftgui.core.base import paths
from ftgui.core.base.errors import ModelError, WeightsError
from ftgui.core.base.extras import importable
from ftgui.core.base.files import atomic_write
from ftgui.core.models.preprocess import IMAGENET_MEAN, IMAGENET_STD, Preprocess

PREFIX = "timm:"
INSTALL_HINT = "pip install 'ftgui[timm]'"
WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")  # what timm's hub repositories hold
CPU_SIZE = 224  # a default input size for models pretrained larger (DINOv2: 518 px)
MIN_SIZE = 32


def is_timm(arch: str) -> bool:
    return arch.startswith(PREFIX)


def timm_name(arch: str) -> str:
    return arch[len(PREFIX) :] if is_timm(arch) else arch


def timm_missing() -> str | None:
    if importable("timm"):
        return None
    return f"timm models need the timm package, which is not installed: {INSTALL_HINT}"


@lru_cache(maxsize=1)
def list_timm() -> tuple[str, ...]:
    """timm's classifiers with pretrained weights, as ``timm:NAME`` (empty without timm).

    Kept in the cache folder per timm version, so the model picker lists them without importing
    timm (half a second after torch); a damaged list is made again."""
    if timm_missing():
        return ()
    from importlib.metadata import version

    path = paths.cache_dir() / f"timm-models-{version('timm')}.json"
    try:
        names = json.loads(path.read_text(encoding="utf-8"))
        if isinstance(names, list) and names and all(isinstance(n, str) and is_timm(n) for n in names):
            return tuple(names)
    except (OSError, ValueError):
        pass
    import timm

    names = [PREFIX + n for n in sorted(timm.list_models(pretrained=True))]
    with contextlib.suppress(OSError):  # a read-only cache folder costs the speed-up, not the list
        atomic_write(path, lambda fh: fh.write(json.dumps(names).encode("utf-8")))
    return tuple(names)


def check_timm(arch: str) -> None:
    missing = timm_missing()
    if missing:
        raise ModelError(missing)
    import timm

    name = timm_name(arch)
    if not timm.is_model(name.split(".")[0]):
        raise ModelError(
            f"Unknown timm model '{name}'. Choose one of timm.list_models(pretrained=True), "
            "e.g. timm:vit_small_patch14_dinov2.lvd142m, timm:convnextv2_atto.fcmae_ft_in1k."
        )


@lru_cache(maxsize=256)
def pretrained_cfg(arch: str) -> dict[str, Any]:
    """timm's record of the model's pretrained weights (input size, mean, std, licence, hub id)."""
    check_timm(arch)
    from timm.models import get_pretrained_cfg

    cfg = get_pretrained_cfg(timm_name(arch))
    return dict(cfg.to_dict()) if cfg is not None else {}


def default_size(arch: str) -> tuple[int, str]:
    """The input size a run uses unless told otherwise, and why, in a sentence."""
    native = int(pretrained_cfg(arch).get("input_size", (3, CPU_SIZE, CPU_SIZE))[-1])
    if native > 384:
        return CPU_SIZE, (
            f"pretrained at {native} px; ftgui defaults to {CPU_SIZE} px, about "
            f"{(native / CPU_SIZE) ** 2:.0f}x less work per image on a CPU (its position "
            "embeddings are resampled to the new size)"
        )
    return native, f"its pretraining size, {native} px"


def weights_tag(arch: str) -> str:
    """The name's pretrained tag ('lvd142m' of vit_small_patch14_dinov2.lvd142m), the weights' name."""
    name = timm_name(arch)
    return name.split(".", 1)[1] if "." in name else "default"


def licence(arch: str) -> str | None:
    value = pretrained_cfg(arch).get("license")
    return str(value) if value else None


def preprocess(arch: str, image_size: int | None = None) -> Preprocess:
    """Mean, std, interpolation and crop fraction from the model's ``pretrained_cfg``."""
    cfg = pretrained_cfg(arch)
    size = image_size or default_size(arch)[0]
    crop_pct = float(cfg.get("crop_pct") or 0.875)
    return Preprocess.from_dict(
        {
            "crop_size": size,
            "resize_size": int(size / crop_pct + 0.5) if cfg.get("crop_mode", "center") == "center" else size,
            "mean": cfg.get("mean", IMAGENET_MEAN),
            "std": cfg.get("std", IMAGENET_STD),
            "interpolation": cfg.get("interpolation") or "bicubic",
        }
    )


def model_kwargs(arch: str, size: int) -> dict[str, Any]:
    """Constructor arguments beyond the class count: a ViT takes its input size as one."""
    return {"img_size": int(size)} if pretrained_cfg(arch).get("fixed_input_size") else {}


def create(arch: str, num_classes: int, kwargs: dict[str, Any], file: Path | None = None) -> nn.Module:
    """``timm.create_model``; with ``file`` its tensors load through timm's own adaptation of
    pretrained weights (position embeddings resampled, a classifier of another size left out)."""
    check_timm(arch)
    import timm

    try:
        if file is None:
            return timm.create_model(timm_name(arch), pretrained=False, num_classes=num_classes, **kwargs)
        return timm.create_model(
            timm_name(arch),
            pretrained=True,
            pretrained_cfg_overlay={"file": str(file)},
            num_classes=num_classes,
            **kwargs,
        )
    except (RuntimeError, ValueError, KeyError, OSError) as exc:
        what = f" from {file.name}" if file is not None else ""
        raise WeightsError(f"Could not build {arch}{what}: {str(exc).splitlines()[0]}") from None


def skeleton(arch: str, num_classes: int, kwargs: dict[str, Any]) -> nn.Module:
    """The model on the meta device: structure and shapes, no memory, no weights."""
    with torch.device("meta"):
        return create(arch, num_classes, kwargs)


@lru_cache(maxsize=256)
def num_params(arch: str) -> int:
    return sum(p.numel() for p in skeleton(arch, 1000, {}).parameters())


# ---------------------------------------------------------------- weights in the hub cache


def hub_cache() -> Path:
    """Hugging Face's hub cache, read from the environment each time (as huggingface_hub does)."""
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"]).expanduser()
    home = os.environ.get("HF_HOME") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "huggingface"
    )
    return Path(home).expanduser() / "hub"


def offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def hub_id(arch: str) -> str:
    repo = pretrained_cfg(arch).get("hf_hub_id")
    if not repo:
        raise WeightsError(f"{arch} has no weights on the Hugging Face hub; use --weights none or a file.")
    return str(repo)


def cached_weights(arch: str) -> Path | None:
    """The weights file in the hub cache, or None."""
    from huggingface_hub import try_to_load_from_cache

    for filename in WEIGHT_FILES:
        found = try_to_load_from_cache(hub_id(arch), filename, cache_dir=str(hub_cache()))
        if isinstance(found, str) and os.path.isfile(found):
            return Path(found)
    return None


def availability(arch: str, timeout: float = 2.0) -> tuple[str, str]:
    """('cached' | 'download' | 'offline', a sentence) for the model's pretrained weights; when
    not cached, whether the hub answers at all (within ``timeout``)."""
    path = cached_weights(arch)
    if path is not None:
        return "cached", f"Cached: {path}"
    if offline():
        return "offline", _not_cached(arch, "HF_HUB_OFFLINE is set")
    import socket
    from urllib.parse import urlparse

    from huggingface_hub import constants

    host = urlparse(constants.ENDPOINT).hostname or "huggingface.co"
    try:
        socket.create_connection((host, 443), timeout=timeout).close()
    except OSError:
        return "offline", _not_cached(arch, f"{host} cannot be reached")
    return "download", f"Will download {hub_id(arch)}/{WEIGHT_FILES[0]} from the Hugging Face hub on Start."


def _not_cached(arch: str, why: str) -> str:
    folder = hub_cache() / f"models--{hub_id(arch).replace('/', '--')}"
    return (
        f"The weights of {arch} ({hub_id(arch)}/{WEIGHT_FILES[0]}) are not in the Hugging Face cache "
        f"{folder} and cannot be downloaded ({why}): put the file there, choose a weights file, or use "
        "none (random initialisation)."
    )


def weights_file(arch: str, allow_download: bool) -> Path:
    """The pretrained weights' file: from the cache, else downloaded (the file alone, no code)."""
    path = cached_weights(arch)
    if path is not None:
        return path
    if offline() or not allow_download:
        raise WeightsError(_not_cached(arch, "HF_HUB_OFFLINE is set" if offline() else "downloads are off"))
    from huggingface_hub import hf_hub_download

    try:
        return Path(hf_hub_download(hub_id(arch), WEIGHT_FILES[0], cache_dir=str(hub_cache())))
    except Exception as exc:  # network errors of every kind: one message
        raise WeightsError(
            _not_cached(arch, str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
        ) from None


# ---------------------------------------------------------------- structure


def is_timm_model(model: nn.Module) -> bool:
    return callable(getattr(model, "group_matcher", None)) and callable(
        getattr(model, "get_classifier", None)
    )


def classifier_name(model: nn.Module) -> str | None:
    """The qualified name of the module ``get_classifier()`` returns, if it is a named one."""
    head = model.get_classifier()  # type: ignore[operator]
    for name, module in model.named_modules():
        if module is head and name:
            return name
    return None


def blocks(model: nn.Module, excluded: set[str]) -> list[list[str]]:
    """timm's own coarse groups (stem, stages or blocks, final norm), earliest first, as the
    fewest module/parameter names that cover each; the classifier is not a block."""
    from timm.models import group_parameters

    groups = group_parameters(model, model.group_matcher(coarse=True))  # type: ignore[operator]
    out: list[list[str]] = []
    for _, names in sorted(groups.items()):
        kept = {n for n in names if not any(n == e or n.startswith(e + ".") for e in excluded)}
        if not kept:
            continue
        covering = _covering_names(model, kept)
        if out and all(_is_norm(model, n) for n in covering):
            out[-1].extend(covering)  # a lone final norm (ConvNeXt's head.norm) joins the last stage
        else:
            out.append(covering)
    return out


def _is_norm(model: nn.Module, name: str) -> bool:
    try:
        module = model.get_submodule(name)
    except AttributeError:
        return False  # a parameter of its own (a class token), not a layer
    return isinstance(module, (nn.LayerNorm, nn.GroupNorm, nn.modules.batchnorm._BatchNorm))


def _covering_names(model: nn.Module, names: set[str]) -> list[str]:
    out: list[str] = []

    def visit(prefix: str, module: nn.Module) -> None:
        for n, _ in module.named_parameters(recurse=False):
            full = f"{prefix}.{n}" if prefix else n
            if full in names:
                out.append(full)
        for n, child in module.named_children():
            full = f"{prefix}.{n}" if prefix else n
            inside = [f"{full}.{p}" for p, _ in child.named_parameters()]
            if inside and all(p in names for p in inside):
                out.append(full)
            elif any(p in names for p in inside):
                visit(full, child)

    visit("", model)
    return out
