"""The freeze plan: the one answer to "which layers train", from the click to the export.

A :class:`FreezePlan` is a strategy (head only, last N blocks, full, gradual unfreezing), the
train-BatchNorm option, and the edits a user made in the layer tree, applied in order on top of
the strategy. It is plain data: importing it does not import torch. The window's tree renders ``plan.states(model)`` and edits the plan with
``plan.edit(name, trainable)``; ``TrainConfig`` carries it; checkpoints and model.json record
``plan.to_dict()`` (and, separately, the full list of trainable parameter names).

Frozen means frozen: ``requires_grad=False`` *and* eval mode during training (see
``layers.train_mode``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Literal

from ftgui.core.base.errors import ModelError
from ftgui.core.base.options import STRATEGIES, STRATEGY_HELP

if TYPE_CHECKING:
    from torch import nn

    from ftgui.core.models.layers import LayerNode, TrainState

Strategy = Literal["head", "last", "full", "gradual"]

# The tutorial's warning, for a plan under which nothing would train.
NOTHING_TRAINS = (
    "Nothing would train: every layer is frozen, so the model could only ever predict what its "
    "random new head says. Unfreeze at least the classifier (head only)."
)


class NothingTrains(ModelError):
    """A freeze plan that leaves no parameter trainable (refused before any training)."""

    def __init__(self) -> None:
        super().__init__(NOTHING_TRAINS)


@dataclass(frozen=True)
class FreezePlan:
    """Which layers train. Immutable: edits return a new plan."""

    strategy: Strategy = "head"
    blocks: int = 1  # "last": how many blocks before the head train
    unfreeze_every: int = 1  # "gradual": epochs between unfreezing one more block
    train_bn: bool = False  # BatchNorm stays trainable inside frozen blocks
    # Every BatchNorm layer frozen, in training blocks too: the pretrained statistics are kept
    # (eval mode), so the result does not depend on how a batch is split over processes.
    freeze_bn: bool = False
    # Tree edits, in the order made: (module or parameter name, trainable). "" is the whole model.
    overrides: tuple[tuple[str, bool], ...] = ()

    # ------------------------------------------------------------ making and naming plans

    @classmethod
    def parse(
        cls, text: str, train_bn: bool = False, unfreeze_every: int = 1, freeze_bn: bool = False
    ) -> FreezePlan:
        """'head', 'full', 'gradual' or 'last-N' (e.g. 'last-2'), as ftgui-train spells them."""
        if train_bn and freeze_bn:
            raise ModelError("--train-bn and --freeze-bn contradict each other: choose one.")
        t = str(text).strip().lower()
        if t in ("head", "head-only", "full", "gradual"):
            strategy: Strategy = "head" if t.startswith("head") else t  # type: ignore[assignment]
            return cls(strategy, 1, unfreeze_every, train_bn, freeze_bn)
        if t.startswith("last"):
            n = t[4:].lstrip("-") or "1"
            if n.isdigit() and int(n) >= 1:
                return cls("last", int(n), unfreeze_every, train_bn, freeze_bn)
        raise ModelError(f"Unknown strategy '{text}': use {STRATEGY_HELP}.")

    @classmethod
    def exactly(cls, names: Iterable[str], train_bn: bool = False) -> FreezePlan:
        """Exactly these modules/parameters train (everything else frozen)."""
        return cls("head", train_bn=train_bn, overrides=(("", False), *((n, True) for n in names)))

    @property
    def is_custom(self) -> bool:
        return bool(self.overrides)

    @property
    def label(self) -> str:
        """'head', 'last-2', 'full', 'gradual' — or 'custom' once the tree was edited."""
        if self.overrides:
            return "custom"
        return f"last-{self.blocks}" if self.strategy == "last" else self.strategy

    @property
    def base_label(self) -> str:
        """The strategy under the tree edits."""
        return replace(self, overrides=()).label

    def describe(self) -> str:
        """One line for logs and model cards."""
        text = (
            self.label
            if not self.overrides
            else f"custom (from {self.base_label}, {len(self.overrides)} edits)"
        )
        if self.strategy == "gradual":
            text += f", a block every {self.unfreeze_every} epoch(s)"
        if self.freeze_bn:
            return text + ", BatchNorm frozen"
        return text + (", BatchNorm layers trained" if self.train_bn and self.strategy != "full" else "")

    def edit(self, name: str, trainable: bool) -> FreezePlan:
        """The plan with one more tree edit; it replaces earlier edits inside ``name``."""
        from ftgui.core.models.layers import under

        kept = tuple(o for o in self.overrides if not under(o[0], name))
        return replace(self, overrides=(*kept, (name, bool(trainable))))

    def restricted_to(self, model: nn.Module) -> FreezePlan:
        """The plan without edits of layers this model does not have (after a model change)."""
        known = {n for n, _ in model.named_modules()} | {n for n, _ in model.named_parameters()}
        return replace(self, overrides=tuple(o for o in self.overrides if o[0] in known))

    # ------------------------------------------------------------ applying

    def stages(self, model: nn.Module) -> int:
        """How many blocks gradual unfreezing can open (the model's block count)."""
        from ftgui.core.models import classifier_names
        from ftgui.core.models.layers import model_blocks

        return len(model_blocks(model, classifier_names(model)))

    def apply(self, model: nn.Module, unfrozen_blocks: int | None = None) -> None:
        """Set ``requires_grad`` on every parameter. ``unfrozen_blocks``: gradual unfreezing's
        current stage (0 at the start)."""
        from ftgui.core.models import classifier_names
        from ftgui.core.models.layers import freeze_batchnorm, model_blocks, set_trainable, unfreeze_batchnorm

        head = classifier_names(model)
        blocks = model_blocks(model, head)
        if self.strategy == "full":
            for p in model.parameters():
                p.requires_grad_(True)
        else:
            for p in model.parameters():
                p.requires_grad_(False)
            n = {"last": self.blocks, "gradual": unfrozen_blocks or 0}.get(self.strategy, 0)
            set_trainable(model, head, True)
            for block in blocks[len(blocks) - min(n, len(blocks)) :]:
                set_trainable(model, block, True)
        for name, trainable in self.overrides:
            set_trainable(model, [name], trainable)
        if self.train_bn and self.strategy != "full":
            unfreeze_batchnorm(model)
        if self.freeze_bn:
            freeze_batchnorm(model)

    def tree(self, model: nn.Module) -> LayerNode:
        """Apply the plan and return the layer tree with its parameter counts."""
        from ftgui.core.models.layers import layer_tree

        self.apply(model)
        return layer_tree(model)

    def states(self, model: nn.Module) -> dict[str, TrainState]:
        """Per module (by qualified name, "" for the model): 'all' trains, 'partial', 'none'."""
        return {node.name: node.state for node in self.tree(model).walk()}

    def prefixes(self, model: nn.Module) -> list[str]:
        """The fewest module/parameter names that, made trainable alone, give this plan."""
        tree = self.tree(model)
        names: list[str] = []

        def visit(node: LayerNode) -> None:
            if node.state == "all":
                names.append(node.name)
            elif node.state == "partial":
                module = model.get_submodule(node.name)
                own = [n for n, p in module.named_parameters(recurse=False) if p.requires_grad]
                names.extend(f"{node.name}.{n}" if node.name else n for n in own)
                for child in node.children:
                    visit(child)

        visit(tree)
        return names

    # ------------------------------------------------------------ records

    def to_dict(self) -> dict[str, object]:
        return {
            "strategy": self.strategy,
            "blocks": self.blocks,
            "unfreeze_every": self.unfreeze_every,
            "train_bn": self.train_bn,
            "freeze_bn": self.freeze_bn,
            "overrides": [[name, trainable] for name, trainable in self.overrides],
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, object]) -> FreezePlan:
        """The plan a record holds; a damaged record raises ``ModelError`` naming the field."""
        if not isinstance(d, Mapping):
            raise ModelError("'freeze' must be an object")
        strategy = d.get("strategy", "head")
        if strategy not in STRATEGIES:
            raise ModelError(f"'freeze.strategy' must be one of {', '.join(STRATEGIES)} (got {strategy!r})")
        numbers = {}
        for key in ("blocks", "unfreeze_every"):
            v = d.get(key, 1)
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise ModelError(f"'freeze.{key}' must be a whole number of at least 1 (got {v!r})")
            numbers[key] = v
        train_bn, freeze_bn = d.get("train_bn", False), d.get("freeze_bn", False)
        for key, flag in (("train_bn", train_bn), ("freeze_bn", freeze_bn)):
            if not isinstance(flag, bool):
                raise ModelError(f"'freeze.{key}' must be true or false (got {flag!r})")
        raw = d.get("overrides", [])
        if not isinstance(raw, (list, tuple)) or not all(
            isinstance(o, (list, tuple)) and len(o) == 2 and isinstance(o[0], str) and isinstance(o[1], bool)
            for o in raw
        ):
            raise ModelError("'freeze.overrides' must list [layer name, true or false] pairs")
        return cls(
            strategy,  # type: ignore[arg-type]
            blocks=numbers["blocks"],
            unfreeze_every=numbers["unfreeze_every"],
            train_bn=bool(train_bn),
            freeze_bn=bool(freeze_bn),
            overrides=tuple((str(o[0]), bool(o[1])) for o in raw),
        )

    @classmethod
    def from_legacy(cls, config: Mapping[str, object]) -> FreezePlan:
        """A plan from the fields earlier ftgui versions saved (strategy text, trainable names)."""
        train_bn = bool(config.get("train_bn", False))
        every = config.get("unfreeze_every", 1)
        every = every if isinstance(every, int) and not isinstance(every, bool) and every >= 1 else 1
        strategy = str(config.get("strategy", "head"))
        if strategy == "custom":
            names = config.get("trainable", ())
            if not isinstance(names, (list, tuple)) or not all(isinstance(n, str) for n in names):
                raise ModelError("'trainable' must list layer names")
            return cls.exactly(names, train_bn=train_bn)
        return cls.parse(strategy, train_bn=train_bn, unfreeze_every=every)
