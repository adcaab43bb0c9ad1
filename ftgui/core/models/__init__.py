"""Architectures, pretrained weights, head replacement and preprocessing.

``registry`` (torchvision's architectures and the table of per-architecture quirks),
``timm_source`` (timm's pretrained classifiers as ``timm:NAME``), ``catalog`` (both),
``weights`` (torchvision's and local files), ``heads`` (the classifier and auxiliary ones),
``preprocess`` and ``build`` (real models and meta-device skeletons, made the same way).
"""

from ftgui.core.models.build import (
    BuiltModel,
    ModelSource,
    build_model,
    build_skeleton,
    construct,
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
from ftgui.core.models.weights import (
    LOCAL_WEIGHT_SUFFIXES,
    describe_mismatch,
    is_local_weights,
    read_state_dict,
    resolve_weights,
    unsafe_pickle_reason,
    weights_availability,
    weights_cache_path,
)

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
