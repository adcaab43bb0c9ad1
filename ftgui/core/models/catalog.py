"""Every model ftgui can train, from both sources: torchvision's architectures and, where the
timm package is installed, timm's pretrained classifiers (``timm:NAME``)."""

from __future__ import annotations

from ftgui.core.base.errors import ModelError
from ftgui.core.models import registry, timm_source
from ftgui.core.models.registry import ArchInfo


def check_arch(arch: str) -> None:
    """A readable ModelError for a name neither source knows (or a timm name without timm)."""
    if timm_source.is_timm(arch):
        timm_source.check_timm(arch)
    else:
        registry.check_arch(arch)


def is_known_arch(arch: str) -> bool:
    """Whether training would take ``arch``: every reader accepts what a run could write (a timm
    architecture without a pretrained tag, ``timm:convnext_atto``, as well as listed names)."""
    if timm_source.is_timm(arch):
        if arch in timm_source.list_timm():  # without importing timm (empty when it is missing)
            return True
        try:
            timm_source.check_timm(arch)
        except ModelError:
            return False
        return True
    return arch in registry.list_architectures()


def list_models(include_timm: bool = True) -> list[str]:
    """torchvision's architectures, then timm's pretrained classifiers (when timm is installed)."""
    return registry.list_architectures() + (list(timm_source.list_timm()) if include_timm else [])


def arch_info(arch: str) -> ArchInfo:
    if not timm_source.is_timm(arch):
        return registry.arch_info(arch)
    timm_source.check_timm(arch)
    has_weights = bool(timm_source.pretrained_cfg(arch).get("hf_hub_id"))
    tag = timm_source.weights_tag(arch)
    size, note = timm_source.default_size(arch)
    return ArchInfo(
        name=arch,
        weights=(tag,) if has_weights else (),
        default_weights=tag if has_weights else None,
        num_params=timm_source.num_params(arch),
        imagenet_acc1=None,  # timm's package records no accuracy per weight
        min_size=timm_source.MIN_SIZE,
        licence=timm_source.licence(arch),
        source="timm",
        default_size=size,
        size_note=note,
    )
