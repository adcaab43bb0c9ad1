"""Architectures, pretrained weights, head replacement and preprocessing.

Everything goes through torchvision's own registry (``list_models``, ``get_model``,
``get_model_weights``): no architecture or weight URL is written down here.
"""

from __future__ import annotations

import os
import pickle
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import torch
import torchvision.models as tvm
from torch import nn

from .errors import ModelError, WeightsError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
LOCAL_WEIGHT_SUFFIXES = (".pth", ".pt", ".safetensors", ".bin")

# Modules that hold the classifier, in the order they are looked for.
_HEAD_CONTAINERS = ("fc", "classifier", "heads", "head")
# Auxiliary classifiers (GoogLeNet, Inception v3): (module, its final layer).
_AUX_HEADS = (("AuxLogits", "fc"), ("aux1", "fc2"), ("aux2", "fc2"))
_AUX_ARCHS = ("googlenet", "inception_v3")


@dataclass(frozen=True)
class Preprocess:
    """What an image goes through before the model sees it (eval-time)."""

    crop_size: int = 224
    resize_size: int = 256
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    interpolation: str = "bilinear"

    def with_image_size(self, size: int) -> Preprocess:
        """Same preprocessing at another crop size, keeping the resize/crop ratio."""
        ratio = self.resize_size / self.crop_size
        return replace(self, crop_size=int(size), resize_size=int(round(size * ratio)))

    def to_dict(self) -> dict[str, Any]:
        return {
            "crop_size": self.crop_size,
            "resize_size": self.resize_size,
            "mean": list(self.mean),
            "std": list(self.std),
            "interpolation": self.interpolation,
        }

    @classmethod
    def from_bundle(cls, meta: dict[str, Any]) -> Preprocess:
        """The preprocessing an exported model.json records (under its own, documented names)."""
        return cls.from_dict(
            {
                "crop_size": meta["input_size"],
                "resize_size": meta["resize_size"],
                "mean": meta["mean"],
                "std": meta["std"],
                "interpolation": meta.get("interpolation", "bilinear"),
            }
        )

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Preprocess:
        return cls(
            crop_size=int(d["crop_size"]),
            resize_size=int(d["resize_size"]),
            mean=tuple(float(v) for v in d["mean"]),  # type: ignore[arg-type]
            std=tuple(float(v) for v in d["std"]),  # type: ignore[arg-type]
            interpolation=str(d.get("interpolation", "bilinear")),
        )


@dataclass(frozen=True)
class ArchInfo:
    """What the model picker shows about an architecture."""

    name: str
    weights: tuple[str, ...]
    default_weights: str | None
    num_params: int | None
    imagenet_acc1: float | None
    min_size: int


@dataclass
class BuiltModel:
    """A model ready for fine-tuning on ``num_classes`` classes."""

    model: nn.Module
    arch: str
    num_classes: int
    head: list[str]
    preprocess: Preprocess
    weights_source: str
    model_kwargs: dict[str, Any] = field(default_factory=dict)


def list_architectures() -> list[str]:
    """Every torchvision image-classification architecture, sorted by name."""
    return sorted(tvm.list_models(module=tvm))


def _check_arch(arch: str) -> None:
    if arch not in list_architectures():
        raise ModelError(
            f"Unknown model '{arch}'. Choose one of torchvision's classification models, "
            f"e.g. resnet18, efficientnet_b0, mobilenet_v3_small, vit_b_16."
        )


def _weights_enum(arch: str) -> Any | None:
    try:
        return tvm.get_model_weights(arch)
    except (ValueError, KeyError):
        return None


def arch_info(arch: str) -> ArchInfo:
    _check_arch(arch)
    enum = _weights_enum(arch)
    names: tuple[str, ...] = tuple(w.name for w in enum) if enum is not None else ()
    default = enum.DEFAULT if enum is not None and names else None
    meta = default.meta if default is not None else {}
    acc = meta.get("_metrics", {}).get("ImageNet-1K", {}).get("acc@1")
    return ArchInfo(
        name=arch,
        weights=names,
        default_weights=default.name if default is not None else None,
        num_params=meta.get("num_params"),
        imagenet_acc1=float(acc) if acc is not None else None,
        min_size=int(meta.get("min_size", (1, 1))[0]),
    )


def resolve_weights(arch: str, spec: str | None) -> Any | None:
    """Turn 'default', 'IMAGENET1K_V1' or 'ResNet18_Weights.IMAGENET1K_V1' into a weights enum.

    Returns None for 'none'. Local files are not handled here (see :func:`build_model`).
    """
    if spec is None or spec.lower() == "none":
        return None
    enum = _weights_enum(arch)
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


def weights_cache_path(weights: Any) -> Path:
    """Where torch's hub cache keeps (or will keep) the file of these weights."""
    filename = os.path.basename(urlparse(weights.url).path)
    return Path(torch.hub.get_dir()) / "checkpoints" / filename


def weights_availability(weights: Any, timeout: float = 2.0) -> tuple[str, str]:
    """('cached' | 'download' | 'offline', a sentence for the user) for torchvision weights."""
    import socket

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


def preprocess_for(arch: str, weights: Any | None = None, image_size: int | None = None) -> Preprocess:
    """Preprocessing from the weights' own transforms (or the architecture's default weights)."""
    source = weights
    if source is None:
        enum = _weights_enum(arch)
        source = enum.DEFAULT if enum is not None and list(enum) else None
    if source is None:
        pre = Preprocess()
    else:
        t = source.transforms()
        pre = Preprocess(
            crop_size=int(t.crop_size[0]),
            resize_size=int(t.resize_size[0]),
            mean=tuple(t.mean),
            std=tuple(t.std),
            interpolation=str(t.interpolation.value),
        )
    if image_size is not None and image_size != pre.crop_size:
        pre = pre.with_image_size(image_size)
    return pre


# ---------------------------------------------------------------- head replacement


def find_head(model: nn.Module) -> str:
    """Qualified name of the final classification layer (Linear, or SqueezeNet's Conv2d)."""
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
    for module_name, layer in _AUX_HEADS:
        mod = getattr(model, module_name, None)
        if isinstance(mod, nn.Module) and isinstance(getattr(mod, layer, None), nn.Module):
            found.append(f"{module_name}.{layer}")
    return found


def aux_modules(model: nn.Module) -> list[str]:
    """Top-level names of auxiliary classifier modules present in the model."""
    return [m for m, _ in _AUX_HEADS if isinstance(getattr(model, m, None), nn.Module)]


def _new_layer_like(old: nn.Module, num_classes: int) -> nn.Module:
    if isinstance(old, nn.Linear):
        device, dtype = old.weight.device, old.weight.dtype
        return nn.Linear(old.in_features, num_classes, bias=old.bias is not None, device=device, dtype=dtype)
    if isinstance(old, nn.Conv2d):
        new = nn.Conv2d(
            old.in_channels,
            num_classes,
            kernel_size=old.kernel_size,
            stride=old.stride,
            padding=old.padding,
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
    names = [find_head(model), *aux_heads(model)]
    for name in names:
        _set_submodule(model, name, _new_layer_like(model.get_submodule(name), num_classes))
    if hasattr(model, "num_classes"):
        model.num_classes = num_classes
    return names


def head_classes(model: nn.Module) -> int:
    layer = model.get_submodule(find_head(model))
    return int(layer.out_features if isinstance(layer, nn.Linear) else layer.out_channels)  # type: ignore[union-attr]


# ---------------------------------------------------------------- weights files


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


def describe_mismatch(model: nn.Module, state: dict[str, torch.Tensor], limit: int = 5) -> str | None:
    """A readable list of missing/unexpected keys and shape mismatches, or None if it fits."""
    expected = {k: v for k, v in model.state_dict().items() if not k.endswith("num_batches_tracked")}
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


def _load_into(model: nn.Module, state: dict[str, torch.Tensor], what: str, arch: str) -> None:
    problem = describe_mismatch(model, state)
    if problem:
        raise WeightsError(f"{what} does not fit {arch}: {problem}.")
    model.load_state_dict(state, strict=False)


def _aux_kwargs(
    arch: str, state: dict[str, torch.Tensor] | None, pretrained_imagenet: bool
) -> dict[str, Any]:
    if arch not in _AUX_ARCHS:
        return {}
    kwargs: dict[str, Any] = {"init_weights": False} if state is not None else {}
    if state is not None:
        kwargs["aux_logits"] = any(k.split(".")[0] in ("AuxLogits", "aux1", "aux2") for k in state)
        # torchvision's ImageNet files for these two were trained on re-normalised input.
        kwargs["transform_input"] = pretrained_imagenet
    return kwargs


def build_model(
    arch: str,
    num_classes: int,
    weights: str | None = "default",
    image_size: int | None = None,
    allow_download: bool = True,
) -> BuiltModel:
    """Build ``arch`` with the chosen weights and a new head for ``num_classes`` classes.

    ``weights`` is 'default', 'none', a torchvision weights name, or a local file path.
    """
    _check_arch(arch)
    info = arch_info(arch)
    random_vit = arch.startswith("vit_") and str(weights).lower() == "none"
    if image_size is not None and image_size < info.min_size and not random_vit:
        raise ModelError(f"{arch} needs images of at least {info.min_size} px (got {image_size}).")
    model_kwargs: dict[str, Any] = {}
    if is_local_weights(weights):
        path = Path(str(weights)).expanduser()
        state = read_state_dict(path)
        file_classes = _file_head_classes(arch, state)
        model_kwargs = _aux_kwargs(arch, state, pretrained_imagenet=file_classes == 1000)
        model = _construct(arch, model_kwargs)
        if file_classes is not None and file_classes != head_classes(model):
            replace_head(model, file_classes)
        _load_into(model, state, f"Weights file {path.name}", arch)
        pre = preprocess_for(arch, None, image_size)
        source = str(path)
    else:
        w = resolve_weights(arch, weights)
        if w is None:
            model_kwargs = {}
            pre = preprocess_for(arch, None, image_size)
            if arch.startswith("vit_"):
                # A ViT only accepts its own input size; match it to the preprocessing.
                model_kwargs["image_size"] = pre.crop_size
            model = _construct(arch, model_kwargs)
            source = "none (random initialisation)"
        else:
            pre = preprocess_for(arch, w, image_size)
            model = _load_pretrained(arch, w, allow_download)
            model_kwargs = pretrained_model_kwargs(arch)
            source = f"{type(w).__name__}.{w.name}"
        if arch.startswith("vit_") and w is not None and image_size is not None:
            fixed = int(w.transforms().crop_size[0])
            if image_size != fixed:
                raise ModelError(f"{arch} with pretrained weights works only at {fixed} px.")
    head = replace_head(model, num_classes)
    return BuiltModel(model, arch, num_classes, head, pre, source, model_kwargs)


def pretrained_model_kwargs(arch: str) -> dict[str, Any]:
    """Constructor arguments that torchvision's builder uses with pretrained weights and that
    differ from the plain constructor (needed to rebuild the same model without weights)."""
    if arch == "googlenet":
        return {"aux_logits": False, "transform_input": True}
    if arch == "inception_v3":
        return {"aux_logits": True, "transform_input": True, "init_weights": False}
    return {}


def _construct(arch: str, kwargs: dict[str, Any]) -> nn.Module:
    try:
        return tvm.get_model(arch, weights=None, **kwargs)
    except Exception as exc:
        raise ModelError(f"Could not build {arch}: {exc}") from None


def build_skeleton(arch: str, num_classes: int | None = None, **kwargs: Any) -> nn.Module:
    """The architecture on the meta device: structure and shapes, no memory, no weights.

    Enough for the layer tree and parameter counts before any weights are loaded.
    """
    _check_arch(arch)
    try:
        with torch.device("meta"):
            model = tvm.get_model(arch, weights=None, **kwargs)
    except NotImplementedError:
        # Some builders (RegNet) compute layer widths with tensors; build those on the CPU
        # but move every parameter and buffer to meta as soon as it is registered.
        model = _build_moving_to_meta(arch, kwargs)
    if num_classes is not None:
        replace_head(model, num_classes)
    return model


def _build_moving_to_meta(arch: str, kwargs: dict[str, Any]) -> nn.Module:
    register_parameter = nn.Module.register_parameter
    register_buffer = nn.Module.register_buffer

    def meta_parameter(self: nn.Module, name: str, param: Any) -> None:
        register_parameter(self, name, param)
        if param is not None:
            p = self._parameters[name]
            self._parameters[name] = nn.Parameter(p.to("meta"), requires_grad=p.requires_grad)

    def meta_buffer(self: nn.Module, name: str, tensor: Any, persistent: bool = True) -> None:
        register_buffer(self, name, tensor.to("meta") if tensor is not None else None, persistent)

    nn.Module.register_parameter = meta_parameter  # type: ignore[method-assign]
    nn.Module.register_buffer = meta_buffer  # type: ignore[method-assign]
    try:
        return tvm.get_model(arch, weights=None, **kwargs)
    finally:
        nn.Module.register_parameter = register_parameter  # type: ignore[method-assign]
        nn.Module.register_buffer = register_buffer  # type: ignore[method-assign]


def _file_head_classes(arch: str, state: dict[str, torch.Tensor]) -> int | None:
    probe = build_skeleton(arch)
    key = find_head(probe) + ".weight"
    return int(state[key].shape[0]) if key in state else None


def _load_pretrained(arch: str, weights: Any, allow_download: bool) -> nn.Module:
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


def rebuild_for_inference(arch: str, num_classes: int, model_kwargs: dict[str, Any]) -> nn.Module:
    """The plain torchvision model an exported bundle loads into."""
    _check_arch(arch)
    return tvm.get_model(arch, weights=None, num_classes=num_classes, **model_kwargs)
