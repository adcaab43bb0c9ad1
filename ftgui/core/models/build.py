"""Building a model for fine-tuning: real (weights loaded) or a skeleton on the meta device.

Both go through :func:`model_source`, so the layer tree the window shows is the model the
engine trains: the same constructor arguments, the same heads.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torchvision.models import WeightsEnum

from ftgui.core.base.errors import ModelError, WeightsError
from ftgui.core.models import timm_source
from ftgui.core.models.catalog import arch_info, check_arch
from ftgui.core.models.heads import (
    HEAD_FORMS,
    find_head,
    head_classes,
    replace_head,
    resolve_head_form,
    set_head_form,
)
from ftgui.core.models.preprocess import Preprocess, preprocess_for
from ftgui.core.models.registry import quirks
from ftgui.core.models.sizes import size_problem
from ftgui.core.models.skeleton import build_skeleton, construct, with_head
from ftgui.core.models.weights import (
    describe_mismatch,
    is_local_weights,
    load_into,
    load_pretrained,
    read_state_dict,
    resolve_weights,
)


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


@dataclass(frozen=True)
class ModelSource:
    """How a model is made: constructor arguments, where its weights come from, preprocessing."""

    arch: str
    kwargs: dict[str, Any]
    preprocess: Preprocess
    description: str  # what model.json records as weights_source
    weights: WeightsEnum | None = None  # torchvision's pretrained weights
    file_state: dict[str, torch.Tensor] | None = None  # a local weights file's tensors
    file_path: Path | None = None
    file_classes: int | None = None  # the class count of the file's own head


def model_source(
    arch: str, weights: str | None = "default", image_size: int | None = None, check_size: bool = True
) -> ModelSource:
    """Check the choice and work out the constructor arguments (reads a local weights file).

    With ``check_size`` the model is run on the meta device at ``image_size`` (models.sizes)."""
    check_arch(arch)
    if timm_source.is_timm(arch):
        source = _timm_source(arch, weights, image_size)
        guess = timm_source.MIN_SIZE
    else:
        source = _torchvision_source(arch, weights, image_size)
        guess = arch_info(arch).min_size
    if check_size and image_size is not None:
        problem = size_problem(arch, source.kwargs, source.preprocess.crop_size, guess)
        if problem:
            raise ModelError(problem)
    return source


def _torchvision_source(arch: str, weights: str | None, image_size: int | None) -> ModelSource:
    quirk = quirks(arch)
    if is_local_weights(weights):
        path = Path(str(weights)).expanduser()
        state = read_state_dict(path)
        file_classes = _file_head_classes(arch, state)
        kwargs: dict[str, Any] = {}
        if quirk.aux_from_file:
            kwargs = {
                "init_weights": False,
                "aux_logits": any(k.split(".")[0] in {m for m, _ in quirk.aux_heads} for k in state),
                # torchvision's ImageNet files for these were trained on re-normalised input.
                "transform_input": file_classes == 1000,
            }
        return ModelSource(
            arch,
            kwargs,
            preprocess_for(arch, None, image_size),
            str(path),
            file_state=state,
            file_path=path,
            file_classes=file_classes,
        )
    w = resolve_weights(arch, weights)
    if w is None:
        pre = preprocess_for(arch, None, image_size)
        # A ViT only accepts its own input size; match it to the preprocessing.
        kwargs = {"image_size": pre.crop_size} if quirk.sized else {}
        return ModelSource(arch, kwargs, pre, "none (random initialisation)")
    if quirk.sized and image_size is not None:
        fixed = int(w.transforms().crop_size[0])
        if image_size != fixed:
            raise ModelError(f"{arch} with pretrained weights works only at {fixed} px.")
    return ModelSource(
        arch,
        dict(quirk.pretrained_kwargs),
        preprocess_for(arch, w, image_size),
        f"{type(w).__name__}.{w.name}",
        weights=w,
    )


def build_model(
    arch: str,
    num_classes: int,
    weights: str | None = "default",
    image_size: int | None = None,
    allow_download: bool = True,
    meta: bool = False,
    head_form: str = "linear",
) -> BuiltModel:
    """Build ``arch`` with the chosen weights and a new head for ``num_classes`` classes.

    ``weights`` is 'default', 'none', a torchvision weights name, or a local file path.
    ``meta=True`` builds the same model on the meta device (no memory, no weights loaded): a
    local file is still read and checked against the architecture.
    """
    source = model_source(arch, weights, image_size, check_size=not meta)
    if head_form not in (*HEAD_FORMS, "auto"):
        raise ModelError(f"Unknown head {head_form!r}: choose auto, {' or '.join(HEAD_FORMS)}.")
    if timm_source.is_timm(arch):
        if head_form == "concat":
            raise ModelError(f"The {head_form} head is for torchvision models; {arch} takes --head linear.")
        return _build_timm(source, num_classes, allow_download, meta)
    if meta:
        model = build_skeleton(arch, **source.kwargs)
    elif source.weights is not None:
        model = load_pretrained(arch, source.weights, allow_download)
    else:
        model = construct(arch, source.kwargs)
    if source.file_state is not None:
        if source.file_classes is not None and source.file_classes != head_classes(model):
            replace_head(model, source.file_classes)
        assert source.file_path is not None
        what = f"Weights file {source.file_path.name}"
        if meta:
            problem = describe_mismatch(model, source.file_state)
            if problem:
                raise WeightsError(f"{what} does not fit {arch}: {problem}.")
        else:
            load_into(model, source.file_state, what, arch)
    head = replace_head(model, num_classes)
    kwargs = dict(source.kwargs)
    head_form = resolve_head_form(model, head_form)
    if head_form != "linear":
        set_head_form(model, head_form, num_classes)
        kwargs["head"] = head_form  # rebuilt from model.json and checkpoints the same way
    return BuiltModel(model, arch, num_classes, head, source.preprocess, source.description, kwargs)


def pretrained_model_kwargs(arch: str) -> dict[str, Any]:
    """Constructor arguments that torchvision's builder uses with pretrained weights and that
    differ from the plain constructor (needed to rebuild the same model without weights)."""
    return dict(quirks(arch).pretrained_kwargs)


def _file_head_classes(arch: str, state: dict[str, torch.Tensor]) -> int | None:
    key = find_head(build_skeleton(arch)) + ".weight"
    return int(state[key].shape[0]) if key in state else None


def rebuild_for_inference(arch: str, num_classes: int, model_kwargs: dict[str, Any]) -> nn.Module:
    """The plain torchvision (or timm) model an exported bundle loads into."""
    check_arch(arch)
    if timm_source.is_timm(arch):
        return timm_source.create(arch, num_classes, model_kwargs)
    model = construct(arch, {**model_kwargs, "num_classes": num_classes})
    return with_head(model, model_kwargs, num_classes)


# ---------------------------------------------------------------- timm models


def _timm_source(arch: str, weights: str | None, image_size: int | None) -> ModelSource:
    """A timm model: its preprocessing and input size from ``pretrained_cfg``; weights from the
    Hugging Face cache ('default'), a local file, or none."""
    pre = timm_source.preprocess(arch, image_size)
    kwargs = timm_source.model_kwargs(arch, pre.crop_size)
    spec = str(weights or "none")
    if spec.lower() == "none":
        return ModelSource(arch, kwargs, pre, "none (random initialisation)")
    if is_local_weights(spec):
        path = Path(spec).expanduser()
        read_state_dict(path)  # refuses pickled code, and a file that is no weights file, at once
        return ModelSource(arch, kwargs, pre, str(path), file_path=path)
    if spec.lower() not in ("default", timm_source.weights_tag(arch).lower()):
        raise WeightsError(
            f"{arch} has one set of pretrained weights: use --weights default, none or a file."
        )
    return ModelSource(arch, kwargs, pre, f"timm {timm_source.hub_id(arch)} (Hugging Face hub)")


# Tensors timm resamples to the model's size when it loads pretrained weights (positions).
_RESAMPLED = ("pos_embed", "relative_position_bias_table")


def check_timm_file(arch: str, file: Path, kwargs: dict[str, Any], in_cache: bool) -> None:
    """A timm weights file goes through ftgui's checks before timm loads it, as torchvision's do:
    a damaged, empty or pickled file is one line naming it (and the cache folder it is in), and a
    file whose tensors are not this architecture's (the classifier aside) is refused; timm would
    only warn and train from random weights."""
    try:
        state = read_state_dict(file)
    except WeightsError as exc:
        if not in_cache:
            raise
        folder = file.parent.parent.parent  # models--OWNER--NAME/snapshots/REVISION/FILE
        raise WeightsError(
            f"The weights of {arch} in the Hugging Face cache are damaged: {exc} ({file}). Delete the "
            f"folder {folder} to download them again, or choose a weights file."
        ) from None
    pretrained_classes = int(timm_source.pretrained_cfg(arch).get("num_classes") or 0)
    skeleton = timm_source.skeleton(arch, pretrained_classes, kwargs)
    head = timm_source.classifier_name(skeleton) if pretrained_classes else None

    def kept(name: str) -> bool:
        return not (head and (name == head or name.startswith(head + "."))) and not name.endswith(_RESAMPLED)

    expected = {k: v for k, v in skeleton.state_dict().items() if kept(k)}
    # Every tensor the model needs, of its shape; extra tensors in the file timm leaves out.
    problem = describe_mismatch(expected, {k: v for k, v in state.items() if k in expected})
    if problem:
        raise WeightsError(f"{file} does not hold the weights of {arch}: {problem}.")


def _build_timm(source: ModelSource, num_classes: int, allow_download: bool, meta: bool) -> BuiltModel:
    arch = source.arch
    if meta:
        model = timm_source.skeleton(arch, num_classes, source.kwargs)
    elif source.file_path is not None:
        check_timm_file(arch, source.file_path, source.kwargs, in_cache=False)
        model = timm_source.create(arch, num_classes, source.kwargs, file=source.file_path)
    elif source.description.startswith("timm "):
        file = timm_source.weights_file(arch, allow_download)
        check_timm_file(arch, file, source.kwargs, in_cache=True)
        model = timm_source.create(arch, num_classes, source.kwargs, file=file)
    else:
        model = timm_source.create(arch, num_classes, source.kwargs)
    head = replace_head(model, num_classes)
    return BuiltModel(model, arch, num_classes, head, source.preprocess, source.description, source.kwargs)
