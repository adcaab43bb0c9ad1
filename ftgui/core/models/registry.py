"""torchvision's classification architectures, and the one table of per-architecture quirks.

Everything goes through torchvision's own registry (``list_models``, ``get_model``,
``get_model_weights``): no architecture or weight URL is written down here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import torchvision.models as tvm

from ftgui.core.base.errors import ModelError


@dataclass(frozen=True)
class Quirks:
    """What one architecture needs beyond ``get_model(arch, num_classes=k)``."""

    # Auxiliary classifiers: (module, its final layer). They train with the head and are
    # dropped by nothing: exports keep them so the state dict loads into the same model.
    aux_heads: tuple[tuple[str, str], ...] = ()
    # Constructor arguments torchvision's builder sets with pretrained weights, which differ
    # from the plain constructor (needed to rebuild the same model without weights).
    pretrained_kwargs: dict[str, Any] = field(default_factory=dict)
    # Weights files for this family may or may not hold the auxiliary classifiers.
    aux_from_file: bool = False
    # Built without weights, the model takes its input size as a constructor argument, and
    # with pretrained weights it accepts only the weights' own size (ViT).
    sized: bool = False
    # The builder computes layer widths with tensors, so it cannot run on the meta device.
    computes_widths: bool = False


_QUIRKS: dict[str, Quirks] = {
    "googlenet": Quirks(
        aux_heads=(("aux1", "fc2"), ("aux2", "fc2")),
        pretrained_kwargs={"aux_logits": False, "transform_input": True},
        aux_from_file=True,
    ),
    "inception_v3": Quirks(
        aux_heads=(("AuxLogits", "fc"),),
        pretrained_kwargs={"aux_logits": True, "transform_input": True, "init_weights": False},
        aux_from_file=True,
    ),
    "vit_": Quirks(sized=True),
    "regnet_": Quirks(computes_widths=True),
}
# Every auxiliary classifier some architecture has: (module, final layer).
AUX_HEADS = tuple(h for q in _QUIRKS.values() for h in q.aux_heads)


def quirks(arch: str) -> Quirks:
    """The architecture's entry (families by prefix: 'vit_', 'regnet_'), or no quirks."""
    for key, value in _QUIRKS.items():
        if arch == key or (key.endswith("_") and arch.startswith(key)):
            return value
    return Quirks()


@dataclass(frozen=True)
class ArchInfo:
    """What the model picker shows about an architecture."""

    name: str
    weights: tuple[str, ...]
    default_weights: str | None
    num_params: int | None
    imagenet_acc1: float | None
    min_size: int
    licence: str | None = None  # of the pretrained weights, where the source records it
    source: str = "torchvision"
    default_size: int | None = None  # the input size a run uses unless told otherwise
    size_note: str = ""  # why that size


@lru_cache(maxsize=1)
def _architectures() -> tuple[str, ...]:
    return tuple(sorted(tvm.list_models(module=tvm)))


def list_architectures() -> list[str]:
    """Every torchvision image-classification architecture, sorted by name."""
    return list(_architectures())


def check_arch(arch: str) -> None:
    if arch not in _architectures():
        raise ModelError(
            f"Unknown model '{arch}'. Choose one of torchvision's classification models, "
            f"e.g. resnet18, efficientnet_b0, mobilenet_v3_small, vit_b_16."
        )


def weights_enum(arch: str) -> Any | None:
    """The architecture's WeightsEnum class (a class torchvision ships without type information)."""
    try:
        return tvm.get_model_weights(arch)
    except (ValueError, KeyError):
        return None


def arch_info(arch: str) -> ArchInfo:
    check_arch(arch)
    enum = weights_enum(arch)
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
