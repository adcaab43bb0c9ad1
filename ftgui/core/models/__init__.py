"""Architectures, pretrained weights, head replacement and preprocessing.

``registry`` (torchvision's architectures and the table of per-architecture quirks),
``timm_source`` (timm's pretrained classifiers as ``timm:NAME``), ``catalog`` (both),
``weights`` (torchvision's and local files), ``heads`` (the classifier and auxiliary ones),
``preprocess`` and ``build`` (real models and meta-device skeletons, made the same way).

Importing a submodule (``models.freeze``, plain data) must not import torch: the window loads
torch in the background. So the names below load their module on first use (PEP 562).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ftgui.core.models.build import (
        BuiltModel,
        ModelSource,
        build_model,
        model_source,
        pretrained_model_kwargs,
        rebuild_for_inference,
    )
    from ftgui.core.models.catalog import arch_info, check_arch, is_known_arch, list_models
    from ftgui.core.models.heads import (
        aux_heads,
        aux_modules,
        classifier_names,
        find_head,
        head_classes,
        replace_head,
    )
    from ftgui.core.models.preprocess import IMAGENET_MEAN, IMAGENET_STD, Preprocess, preprocess_for
    from ftgui.core.models.registry import ArchInfo, Quirks, list_architectures, quirks, weights_enum
    from ftgui.core.models.skeleton import build_skeleton, construct
    from ftgui.core.models.weights import (
        LOCAL_WEIGHT_SUFFIXES,
        describe_mismatch,
        is_local_weights,
        load_state,
        read_state_dict,
        resolve_weights,
        unsafe_pickle_reason,
        weights_availability,
        weights_cache_path,
    )

_WHERE = {
    "ArchInfo": "ftgui.core.models.registry",
    "BuiltModel": "ftgui.core.models.build",
    "IMAGENET_MEAN": "ftgui.core.models.preprocess",
    "IMAGENET_STD": "ftgui.core.models.preprocess",
    "LOCAL_WEIGHT_SUFFIXES": "ftgui.core.models.weights",
    "ModelSource": "ftgui.core.models.build",
    "Preprocess": "ftgui.core.models.preprocess",
    "Quirks": "ftgui.core.models.registry",
    "arch_info": "ftgui.core.models.catalog",
    "aux_heads": "ftgui.core.models.heads",
    "aux_modules": "ftgui.core.models.heads",
    "build_model": "ftgui.core.models.build",
    "build_skeleton": "ftgui.core.models.skeleton",
    "check_arch": "ftgui.core.models.catalog",
    "classifier_names": "ftgui.core.models.heads",
    "construct": "ftgui.core.models.skeleton",
    "describe_mismatch": "ftgui.core.models.weights",
    "find_head": "ftgui.core.models.heads",
    "head_classes": "ftgui.core.models.heads",
    "is_known_arch": "ftgui.core.models.catalog",
    "load_state": "ftgui.core.models.weights",
    "is_local_weights": "ftgui.core.models.weights",
    "list_architectures": "ftgui.core.models.registry",
    "list_models": "ftgui.core.models.catalog",
    "model_source": "ftgui.core.models.build",
    "preprocess_for": "ftgui.core.models.preprocess",
    "pretrained_model_kwargs": "ftgui.core.models.build",
    "quirks": "ftgui.core.models.registry",
    "read_state_dict": "ftgui.core.models.weights",
    "rebuild_for_inference": "ftgui.core.models.build",
    "replace_head": "ftgui.core.models.heads",
    "resolve_weights": "ftgui.core.models.weights",
    "unsafe_pickle_reason": "ftgui.core.models.weights",
    "weights_availability": "ftgui.core.models.weights",
    "weights_cache_path": "ftgui.core.models.weights",
    "weights_enum": "ftgui.core.models.registry",
}


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        return getattr(importlib.import_module(_WHERE[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "LOCAL_WEIGHT_SUFFIXES",
    "ArchInfo",
    "BuiltModel",
    "ModelSource",
    "Preprocess",
    "Quirks",
    "arch_info",
    "aux_heads",
    "aux_modules",
    "build_model",
    "build_skeleton",
    "check_arch",
    "classifier_names",
    "construct",
    "describe_mismatch",
    "find_head",
    "head_classes",
    "is_known_arch",
    "is_local_weights",
    "list_architectures",
    "load_state",
    "list_models",
    "model_source",
    "preprocess_for",
    "pretrained_model_kwargs",
    "quirks",
    "read_state_dict",
    "rebuild_for_inference",
    "replace_head",
    "resolve_weights",
    "unsafe_pickle_reason",
    "weights_availability",
    "weights_cache_path",
    "weights_enum",
]
