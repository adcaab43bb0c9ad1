"""The layer tree, the architecture's blocks, and the mechanics of freezing.

Which layers train is decided by a ``FreezePlan`` (``freeze.py``). Frozen means frozen:
``requires_grad=False`` *and* eval mode during training, so BatchNorm statistics, Dropout and
StochasticDepth inside frozen parts neither change nor randomise.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Literal

from torch import nn

from ftgui.core.base.errors import ModelError
from ftgui.core.models import aux_modules
from ftgui.core.models.timm_source import blocks as timm_blocks
from ftgui.core.models.timm_source import is_timm_model

TrainState = Literal["all", "none", "partial"]

# Containers whose children are the architecture's blocks (ResNet's layers are top-level).
_EXPAND = {"features", "layers", "trunk_output", "encoder", "blocks", "stages"}
_NORM_TYPES = (
    nn.BatchNorm1d,
    nn.BatchNorm2d,
    nn.BatchNorm3d,
    nn.SyncBatchNorm,
    nn.LayerNorm,
    nn.GroupNorm,
)
_BATCHNORM_TYPES = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.SyncBatchNorm)


@dataclass
class LayerNode:
    """One module in the tree: what the layer browser shows per row."""

    name: str  # qualified name, "" for the whole model
    type_name: str
    own_params: int
    total_params: int
    trainable_params: int
    children: list[LayerNode] = field(default_factory=list)

    @property
    def state(self) -> TrainState:
        if self.total_params == 0 or self.trainable_params == 0:
            return "none"
        return "all" if self.trainable_params == self.total_params else "partial"

    @property
    def short_name(self) -> str:
        return self.name.rsplit(".", 1)[-1] if self.name else "(model)"

    def walk(self) -> Iterable[LayerNode]:
        yield self
        for child in self.children:
            yield from child.walk()


def layer_tree(model: nn.Module) -> LayerNode:
    """The module tree with own/total/trainable parameter counts."""

    def build(name: str, module: nn.Module) -> LayerNode:
        own = list(module.parameters(recurse=False))
        children = [build(f"{name}.{n}" if name else n, m) for n, m in module.named_children()]
        own_n = sum(p.numel() for p in own)
        return LayerNode(
            name=name,
            type_name=type(module).__name__,
            own_params=own_n,
            total_params=own_n + sum(c.total_params for c in children),
            trainable_params=sum(p.numel() for p in own if p.requires_grad)
            + sum(c.trainable_params for c in children),
            children=children,
        )

    return build("", model)


def count_params(model: nn.Module) -> tuple[int, int]:
    """(trainable, total) parameter counts."""
    total = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return trainable, total


def trainable_names(model: nn.Module) -> list[str]:
    return [n for n, p in model.named_parameters() if p.requires_grad]


def under(name: str, prefix: str) -> bool:
    """Whether ``name`` is ``prefix`` or inside it ("" holds every name)."""
    return prefix == "" or name == prefix or name.startswith(prefix + ".")


def set_trainable(model: nn.Module, prefixes: Iterable[str], trainable: bool) -> None:
    """Freeze or unfreeze every parameter under the given module/parameter names."""
    prefixes = list(prefixes)
    known = {n for n, _ in model.named_modules()} | {n for n, _ in model.named_parameters()}
    unknown = [p for p in prefixes if p not in known]
    if unknown:
        raise ModelError(f"No layer named {', '.join(repr(u) for u in unknown)} in this model.")
    for name, param in model.named_parameters():
        if any(under(name, p) for p in prefixes):
            param.requires_grad_(trainable)


def set_trainable_exactly(model: nn.Module, names: Iterable[str]) -> None:
    """Make exactly these parameters trainable (e.g. restoring a saved freeze state)."""
    wanted = set(names)
    for name, param in model.named_parameters():
        param.requires_grad_(name in wanted)


def unfreeze_batchnorm(model: nn.Module) -> None:
    """The 'train BatchNorm layers' option: BN stays trainable inside frozen blocks."""
    for module in model.modules():
        if isinstance(module, _BATCHNORM_TYPES):
            for p in module.parameters(recurse=False):
                p.requires_grad_(True)


def freeze_batchnorm(model: nn.Module) -> None:
    """The 'freeze BatchNorm' option: every BN layer keeps its weights and (in eval mode) its
    running statistics, inside training blocks too."""
    for module in model.modules():
        if isinstance(module, _BATCHNORM_TYPES):
            for p in module.parameters(recurse=False):
                p.requires_grad_(False)


def apply_frozen_eval(model: nn.Module) -> None:
    """Put every fully frozen subtree in eval mode. Call after every ``model.train()``."""

    def visit(module: nn.Module) -> None:
        params = list(module.parameters())
        if params and not any(p.requires_grad for p in params):
            module.eval()
            return
        for child in module.children():
            visit(child)

    visit(model)


def train_mode(model: nn.Module) -> None:
    """``model.train()`` that keeps frozen parts in eval mode."""
    model.train()
    apply_frozen_eval(model)


# ---------------------------------------------------------------- blocks and strategies


def _has_params(module: nn.Module) -> bool:
    return any(True for _ in module.parameters())


def model_blocks(model: nn.Module, head: list[str]) -> list[list[str]]:
    """The architecture's blocks, earliest first, each a list of module/parameter names.

    ResNet: [conv1, bn1], layer1, ..., layer4; VGG/AlexNet/MobileNet/EfficientNet/ConvNeXt/
    DenseNet/Swin: the children of ``features``; ViT: the encoder layers; hidden layers of a
    multi-layer classifier count as the last blocks. A lone normalisation layer joins the block
    before it. The head and auxiliary classifiers are not blocks.
    """
    excluded = set(head) | set(aux_modules(model))
    if is_timm_model(model):
        return timm_blocks(model, excluded)  # timm's own grouping (group_matcher), not a heuristic
    head_parents = {h.rsplit(".", 1)[0] for h in head if "." in h}
    blocks: list[list[str]] = []
    stem: list[str] = []  # parameters owned directly by containers (ViT's class token, ...)

    leaf_names: set[str] = set()

    def add(name: str, module: nn.Module, top_level_leaf: bool) -> None:
        joins_previous = isinstance(module, _NORM_TYPES) or (
            top_level_leaf and bool(blocks) and blocks[-1][-1] in leaf_names
        )
        if blocks and joins_previous:
            blocks[-1].append(name)
        else:
            blocks.append([name])
        if top_level_leaf:
            leaf_names.add(name)

    def visit(prefix: str, module: nn.Module, expand: bool) -> None:
        stem.extend(f"{prefix}.{n}" if prefix else n for n, _ in module.named_parameters(recurse=False))
        for n, child in module.named_children():
            name = f"{prefix}.{n}" if prefix else n
            if name in excluded or not _has_params(child):
                continue
            if n in _EXPAND or name in head_parents:
                visit(name, child, expand=True)
            else:
                # Consecutive top-level leaves (ResNet's conv1 + bn1) form one block.
                add(name, child, top_level_leaf=not expand and not list(child.children()))

    visit("", model, expand=False)
    if stem:
        if blocks:
            blocks[0] = stem + blocks[0]
        else:
            blocks.append(stem)
    return blocks


def head_names(model: nn.Module, head: list[str]) -> list[str]:
    """The head's layers plus whole auxiliary classifiers (they only shape training)."""
    return list(dict.fromkeys([*head, *aux_modules(model)]))
