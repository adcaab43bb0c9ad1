"""Model panel: architecture and weights pickers, freeze strategy, and the layer tree.

The tree shows a skeleton of the chosen architecture (built on the meta device: no memory, no
weights) with the dataset's class count; its checkboxes edit which layers will train (the
engine applies the same choice to the real model when training starts)."""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QSignalBlocker, Signal
from PySide6.QtGui import QStandardItem
from PySide6.QtWidgets import (
    QComboBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from ftgui.core.base.options import BATCHNORM, BATCHNORM_TIP, STRATEGIES
from ftgui.core.models.freeze import FreezePlan
from ftgui.gui.jobs import JobRunner
from ftgui.gui.settings import dialog_folder
from ftgui.gui.widgets.layer_tree import LayerTree
from ftgui.gui.widgets.model_choices import fill_model_choices, model_note, searchable, skeleton_for
from ftgui.gui.widgets.weights_status import NONE_WEIGHTS, WeightsStatus, start_index

if TYPE_CHECKING:
    from torch import nn

    from ftgui.core.models import BuiltModel

FROM_FILE = "__file__"
STRATEGY_ITEMS = [
    *((label, key) for key, label in STRATEGIES.items()),
    ("Custom (edited in the tree)", "custom"),
]
DEFAULT_ARCH = "resnet18"


class ModelPanel(QWidget):
    changed = Signal()
    error_raised = Signal(str, str)  # title, text

    def __init__(self, runner: JobRunner | None = None, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.runner = runner  # checks a weights file off the GUI thread
        self.num_classes = 2
        self.skeleton: nn.Module | None = None
        self.plan = FreezePlan()
        self.image_size: int | None = None
        self._weights_file: str | None = None
        self.remembered: dict[str, str] = {}  # the weights last chosen for each model (not files)
        self._skeletons: dict[tuple[str, int, str, int | None, str], nn.Module] = {}
        self.head_form = "linear"  # the classifier the engine will build (the train panel's choice)

        self.arch_combo = QComboBox()
        self.arch_combo.setEditable(True)
        self.arch_combo.setInsertPolicy(QComboBox.InsertPolicy.NoInsert)
        self.arch_combo.setToolTip("Type to search torchvision's classification models")
        self.arch_combo.addItem("Loading PyTorch…")
        self.arch_combo.setEnabled(False)
        self.weights_combo = QComboBox()
        self.weights_status = WeightsStatus()
        self.model_note = QLabel()  # a timm model's size, licence and default input size
        self.model_note.setWordWrap(True)
        self.model_note.setVisible(False)

        self.strategy_combo = QComboBox()
        for label, key in STRATEGY_ITEMS:
            self.strategy_combo.addItem(label, key)
        self.blocks_spin = QSpinBox()
        self.blocks_spin.setRange(1, 99)
        self.blocks_spin.setPrefix("N = ")
        self.every_spin = QSpinBox()
        self.every_spin.setRange(1, 99)
        self.every_spin.setPrefix("every ")
        self.every_spin.setSuffix(" epoch(s)")
        self.batchnorm = QComboBox()
        for key, label in BATCHNORM.items():
            self.batchnorm.addItem(label, key)
        self.batchnorm.setToolTip(BATCHNORM_TIP)

        self.tree = LayerTree()
        self.summary = QLabel("Trainable: –")
        self.summary.setWordWrap(True)  # its length changes with the model: the panel's width does not

        form = QFormLayout()
        form.addRow("Model", self.arch_combo)
        form.addRow("", self.model_note)
        form.addRow("Weights", self.weights_combo)
        form.addRow("", self.weights_status)
        form.addRow("Strategy", self.strategy_combo)
        # N blocks / every N epochs under the combo, not beside it: beside it they made the
        # panel (and the window) wider than a 1280 px screen for some strategies.
        strategy_row = QHBoxLayout()
        strategy_row.setContentsMargins(0, 0, 0, 0)
        strategy_row.addWidget(self.blocks_spin)
        strategy_row.addWidget(self.every_spin)
        strategy_row.addStretch(1)
        form.addRow("", strategy_row)
        form.addRow("", self.batchnorm)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.tree, 1)
        layout.addWidget(self.summary)

        self.arch_combo.activated.connect(self._on_arch_activated)
        self.weights_combo.activated.connect(self._on_weights_activated)
        self.strategy_combo.currentIndexChanged.connect(self._on_strategy_changed)
        self.blocks_spin.valueChanged.connect(self._on_strategy_changed)
        self.every_spin.valueChanged.connect(self._on_every_changed)
        self.batchnorm.currentIndexChanged.connect(self._on_strategy_changed)
        self.tree.toggled.connect(self._on_tree_toggled)
        self._update_strategy_widgets()

    # ------------------------------------------------------------ populating

    def populate(self, arch: str = DEFAULT_ARCH) -> None:
        """Fill the architecture list (torch must be importable; call after the window shows)."""
        fill_model_choices(self.arch_combo)
        searchable(self.arch_combo, self._on_arch_typed)
        self.arch_combo.setEnabled(True)
        self.set_arch(arch if self.arch_combo.findData(arch) >= 0 else DEFAULT_ARCH)

    @property
    def populated(self) -> bool:
        return self.arch_combo.findData(DEFAULT_ARCH) >= 0

    @property
    def arch(self) -> str:
        return str(self.arch_combo.currentData() or DEFAULT_ARCH)

    def set_arch(self, arch: str) -> None:
        index = self.arch_combo.findData(arch)
        if index < 0:
            return
        self.arch_combo.setCurrentIndex(index)
        self._show_start_of_name()
        self._fill_weights()
        self._rebuild()

    def _show_start_of_name(self) -> None:
        """The editable combo shows the start of "name · size · accuracy", not its end."""
        line = self.arch_combo.lineEdit()
        if line is not None:
            line.setCursorPosition(0)

    def set_num_classes(self, k: int) -> None:
        if k != self.num_classes:
            self.num_classes = max(k, 1)
            if self.populated:
                self._rebuild()

    def _on_arch_activated(self, index: int) -> None:
        self._show_start_of_name()
        self._fill_weights()
        self._rebuild()

    def _on_arch_typed(self, index: int | None) -> None:
        """Typing ended in the model box, or a search result was picked: ``index`` chosen."""
        if index is not None:
            self.arch_combo.setCurrentIndex(index)
            self._on_arch_activated(index)
        else:
            self._show_start_of_name()

    # ------------------------------------------------------------ weights

    def _fill_weights(self) -> None:
        from ftgui.core.models import arch_info

        info = arch_info(self.arch)
        self.model_note.setText(model_note(info))
        self.model_note.setVisible(bool(self.model_note.text()))
        self.weights_combo.blockSignals(True)
        self.weights_combo.clear()
        for name in info.weights:
            label = f"{name} (default)" if name == info.default_weights else name
            self.weights_combo.addItem(label, name)
        self.weights_combo.addItem("none (random initialisation)", NONE_WEIGHTS)
        self.weights_combo.addItem("From file…", FROM_FILE)
        self.weights_combo.setCurrentIndex(
            start_index(self.weights_combo, info, self.remembered.get(self.arch))
        )
        self.weights_combo.blockSignals(False)
        self._weights_file = None
        self._check_availability()

    @property
    def weights(self) -> str:
        data = self.weights_combo.currentData()
        if data == FROM_FILE:
            return self._weights_file or NONE_WEIGHTS
        return str(data or NONE_WEIGHTS)

    def set_weights(self, spec: str) -> None:
        index = self.weights_combo.findData(spec)
        if index >= 0:
            self.weights_combo.setCurrentIndex(index)
            self._on_weights_activated(index)
        elif spec and spec not in (NONE_WEIGHTS,):
            self.use_weights_file(spec)

    def _on_weights_activated(self, index: int) -> None:
        if self.weights_combo.itemData(index) == FROM_FILE:
            path, _ = QFileDialog.getOpenFileName(
                self,
                "Choose a weights file",
                dialog_folder(),
                "Weights (*.safetensors *.pth *.pt *.bin);;All files (*)",
            )
            if path:
                self.use_weights_file(path)
                return
            self.weights_combo.setCurrentIndex(0)
        self._weights_file, self.remembered[self.arch] = None, self.weights
        self._check_availability()
        self._rebuild()

    def use_weights_file(self, path: str) -> bool:
        """Select a local weights file: read and checked against the model in the background,
        so a bad file is reported at once and a big one does not freeze the window."""
        from ftgui.core.models import build_model

        self.weights_combo.setCurrentIndex(self.weights_combo.findData(FROM_FILE))
        self.weights_status.setText(f"Checking {path}…")
        arch, k, size, head = self.arch, self.num_classes, self._tree_size(), self.head_form
        if self.runner is None:
            return False
        return self.runner.start(
            "check weights",
            lambda job, progress: build_model(arch, k, path, size, meta=True, head_form=head),
            on_result=lambda built: self._on_weights_file_checked(path, size, built),
            on_error=lambda message: self._on_weights_file_refused(message),
        )

    def _on_weights_file_checked(self, path: str, size: int | None, built: BuiltModel) -> None:
        self._weights_file = path
        self.weights_combo.setItemText(self.weights_combo.currentIndex(), f"File: {path.rsplit('/', 1)[-1]}")
        self.weights_status.show_file(path)
        self._skeletons = {(built.arch, built.num_classes, path, size, self.head_form): built.model}
        self._rebuild()

    def _on_weights_file_refused(self, message: str) -> None:
        self._weights_file = None
        self.weights_combo.setCurrentIndex(0)
        self._check_availability()
        self._rebuild()
        self.weights_status.setText(f"⚠ {message}")
        self.error_raised.emit("Unusable weights file", message)

    def _check_availability(self) -> None:
        self.weights_status.check(self.arch, self.weights)

    @property
    def weights_state(self) -> str:
        """'' while unknown, else 'none', 'cached', 'download' or 'offline'."""
        return self.weights_status.state

    # ------------------------------------------------------------ freeze plan and tree

    @property
    def strategy_key(self) -> str:
        """The combo box's choice: head, last, full, gradual or custom."""
        return str(self.strategy_combo.currentData())

    def set_strategy(self, key: str, blocks: int | None = None) -> None:
        if blocks is not None:
            self.blocks_spin.blockSignals(True)
            self.blocks_spin.setValue(blocks)
            self.blocks_spin.blockSignals(False)
        index = self.strategy_combo.findData(key)
        if index >= 0:
            if index == self.strategy_combo.currentIndex():
                self._on_strategy_changed()
            else:
                self.strategy_combo.setCurrentIndex(index)

    def set_plan(self, plan: FreezePlan) -> None:
        """Show a plan (a saved one, a checkpoint's): strategy widgets, then the tree."""
        for widget, value in (
            (self.blocks_spin, plan.blocks),
            (self.every_spin, plan.unfreeze_every),
        ):
            widget.blockSignals(True)
            widget.setValue(value)
            widget.blockSignals(False)
        self.set_batchnorm("train" if plan.train_bn else self.batchnorm_key.replace("train", "auto"))
        self._select_combo("custom" if plan.is_custom else plan.strategy)
        self.plan = plan.restricted_to(self.skeleton) if self.skeleton is not None else plan
        self._refresh_states()
        self.changed.emit()

    def strategy_text(self) -> str:
        """The plan's name: head, last-N, full, gradual or custom."""
        return self.plan.label

    def _select_combo(self, key: str) -> None:
        self.strategy_combo.blockSignals(True)
        self.strategy_combo.setCurrentIndex(self.strategy_combo.findData(key))
        self.strategy_combo.blockSignals(False)
        self._update_strategy_widgets()

    def _update_strategy_widgets(self) -> None:
        key = self.strategy_key
        self.blocks_spin.setVisible(key == "last")
        self.every_spin.setVisible(key == "gradual" or (key == "custom" and self.plan.strategy == "gradual"))

    def _on_strategy_changed(self, *_: object) -> None:
        """A strategy (or its block count, or train-BN) chosen: a fresh plan without tree edits;
        'Custom' keeps the current plan for editing in the tree."""
        key = self.strategy_key
        if key == "custom":
            self.plan = replace(self.plan, train_bn=self.batchnorm_key == "train")
        else:
            self.plan = FreezePlan(
                key,  # type: ignore[arg-type]
                blocks=self.blocks_spin.value(),
                unfreeze_every=self.every_spin.value(),
                train_bn=self.batchnorm_key == "train",
            )
        self._update_strategy_widgets()
        if self.skeleton is not None:
            self._refresh_states()
        self.changed.emit()

    def _on_every_changed(self, value: int) -> None:
        self.plan = replace(self.plan, unfreeze_every=value)
        self.changed.emit()

    def set_image_size(self, size: int | None) -> None:
        """The input size training will use (a randomly initialised ViT's size changes its shapes)."""
        from ftgui.core.models import quirks

        if size != self.image_size:
            self.image_size = size
            if self.populated and quirks(self.arch).sized:
                self._rebuild()  # other models' layers do not depend on the input size

    def _tree_size(self) -> int | None:
        from ftgui.core.models import quirks, timm_source  # a timm ViT's positions follow the size

        return self.image_size if quirks(self.arch).sized or timm_source.is_timm(self.arch) else None

    def _rebuild(self) -> None:
        """The skeleton the engine would build (same constructor arguments, same heads), then the tree."""
        key = (self.arch, self.num_classes, self.weights, self._tree_size(), self.head_form)
        if key not in self._skeletons:
            self._skeletons = {key: skeleton_for(*key)}
        self.skeleton = self._skeletons[key]
        self.plan = self.plan.restricted_to(self.skeleton)
        self.tree.fill(self.skeleton)
        self._refresh_states()
        self.changed.emit()

    def _refresh_states(self) -> None:
        """Render the plan: check states from ``plan.states``, counts, the summary line."""
        from ftgui.core.models.layers import count_params

        if self.skeleton is None:
            return
        self.tree.show_states(self.plan.states(self.skeleton))
        trainable, total = count_params(self.skeleton)
        pct = 100.0 * trainable / total if total else 0.0
        self.summary.setText(f"Trainable: {trainable:,} of {total:,} parameters ({pct:.2f}%)")

    def _on_tree_toggled(self, name: str, checked: bool) -> None:
        self.plan = self.plan.edit(name, checked)
        if self.strategy_key != "custom":
            self._select_combo("custom")
        self._refresh_states()
        self.changed.emit()

    def set_head(self, form: str) -> None:
        """The classifier form chosen (auto, linear, concat): the tree shows what will train."""
        self.head_form = form
        if self.populated:
            self._rebuild()

    def item_for(self, name: str) -> QStandardItem | None:
        return self.tree.item_for(name)

    batchnorm_key = property(lambda self: str(self.batchnorm.currentData()))

    def set_batchnorm(self, key: str) -> None:
        with QSignalBlocker(self.batchnorm):
            self.batchnorm.setCurrentIndex(max(0, self.batchnorm.findData(key)))

    def config_fields(self) -> dict[str, Any]:
        stats = self.batchnorm_key if self.batchnorm_key != "train" else "auto"
        return {"arch": self.arch, "weights": self.weights, "freeze": self.plan, "bn_stats": stats}
