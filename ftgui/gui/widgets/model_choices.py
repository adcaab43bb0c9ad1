"""The model picker's entries: torchvision's architectures with size and ImageNet accuracy,
then timm's pretrained classifiers (when timm is installed), and a chosen timm model's note."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QComboBox, QCompleter

if TYPE_CHECKING:
    from torch import nn

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


def typed_choice(combo: QComboBox) -> int | None:
    """When typing in the model box ends: the index of the model the text names (its name, or
    the start of only one name), or None, with the box's text put back to the chosen model's
    name. The box never shows a model that is not the one Start would train."""
    text = combo.currentText().strip().lower()
    current = combo.currentIndex()
    if text == combo.itemText(current).lower():
        return None
    names = [str(combo.itemData(i) or "").lower() for i in range(combo.count())]
    exact = [i for i, n in enumerate(names) if n == text or combo.itemText(i).lower() == text]
    starts = [i for i, n in enumerate(names) if text and n.startswith(text)]
    chosen = exact or (starts if len(starts) == 1 else [])
    if chosen and chosen[0] != current:
        return chosen[0]
    combo.setEditText(combo.itemText(current))
    return None


def searchable(combo: QComboBox, chosen: Callable[[int | None], None]) -> None:
    """The editable model box: typing searches every name (contains, any case); picking a
    result, or typing that ends on one model's name, calls ``chosen(index)``; other text calls
    ``chosen(None)`` once the box shows the chosen model's name again."""
    completer = QCompleter(combo.model(), combo)
    completer.setFilterMode(Qt.MatchFlag.MatchContains)
    completer.setCaseSensitivity(Qt.CaseSensitivity.CaseInsensitive)
    completer.activated[str].connect(  # type: ignore[index]
        lambda text: chosen(combo.findText(text) if combo.findText(text) >= 0 else None)
    )
    combo.setCompleter(completer)
    # The list of matches as wide as its longest entry (it took the box's width and cut the
    # entries' sizes and accuracies), and the drop-down list likewise.
    widest = max(
        (combo.fontMetrics().horizontalAdvance(combo.itemText(i)) for i in range(combo.count())), default=0
    )
    popup = completer.popup()
    if popup is not None:
        popup.setMinimumWidth(widest + 40)
    combo.view().setMinimumWidth(widest + 40)
    line = combo.lineEdit()
    if line is not None:
        line.editingFinished.connect(lambda: chosen(typed_choice(combo)))


def skeleton_for(arch: str, num_classes: int, weights: str, size: int | None, head: str) -> nn.Module:
    """The skeleton the engine would build (same constructor arguments, same heads). For an image
    size or a head this model cannot take, the tree at the weights' own size with the automatic
    head (Start reports the problem)."""
    from ftgui.core.base.errors import FtguiError
    from ftgui.core.models import build_model

    try:
        return build_model(arch, num_classes, weights, size, meta=True, head_form=head).model
    except FtguiError:
        return build_model(arch, num_classes, weights, None, meta=True, head_form="auto").model
