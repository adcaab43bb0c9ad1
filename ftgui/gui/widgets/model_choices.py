"""The model picker's entries: torchvision's architectures with size and ImageNet accuracy,
then timm's pretrained classifiers (when timm is installed), and a chosen timm model's note."""

from __future__ import annotations

from typing import TYPE_CHECKING

from PySide6.QtWidgets import QComboBox

if TYPE_CHECKING:
    from ftgui.core.models import ArchInfo


def human_count(n: int | None) -> str:
    if n is None:
        return "?"
    return f"{n / 1e6:.1f}M" if n >= 1e6 else f"{n / 1e3:.0f}K"


def fill_model_choices(combo: QComboBox) -> None:
    """Every model, its name as the item's data. timm's entries show their name alone: their
    size and licence appear once one is chosen (counting parameters builds the model)."""
    from ftgui.core.models import arch_info, list_architectures
    from ftgui.core.models.timm_source import list_timm

    combo.clear()
    for name in list_architectures():
        info = arch_info(name)
        acc = f" · {info.imagenet_acc1:.1f}% ImageNet" if info.imagenet_acc1 else ""
        combo.addItem(f"{name}  ·  {human_count(info.num_params)} params{acc}", name)
    for name in list_timm():
        combo.addItem(name, name)


def model_note(info: ArchInfo) -> str:
    """For a timm model: its size, licence and default input size with the reason ('' otherwise)."""
    if info.source != "timm":
        return ""
    return (
        f"timm · {human_count(info.num_params)} params · licence {info.licence or 'not recorded'} · "
        f"{info.default_size} px by default: {info.size_note}"
    )
