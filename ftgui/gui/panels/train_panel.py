"""Training panel: hyper-parameters, Start/Stop, progress with epoch, batch and ETA."""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import QSettings, Signal
from PySide6.QtGui import QKeySequence
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from ftgui.core.base.options import HEAD_TIP, HEADS, OPTIMIZERS, PRECISIONS, SCHEDULES
from ftgui.gui.settings import setting
from ftgui.gui.widgets.rate_box import RateSpinBox, format_rate

SETTINGS_PREFIX = "training/"


def format_duration(seconds: float) -> str:
    s = int(round(max(seconds, 0)))
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}" if s >= 3600 else f"{s // 60}:{s % 60:02d}"


LR_MODES = (("Default", "default"), ("Auto", "auto"), ("Set", "set"))


class TrainPanel(QWidget):
    start_requested = Signal()
    stop_requested = Signal()
    find_lr_requested = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.epochs = QSpinBox()
        self.epochs.setRange(1, 1000)
        self.epochs.setValue(5)
        self.batch_size = QSpinBox()
        self.batch_size.setRange(1, 4096)
        self.batch_size.setValue(32)
        self.lr = RateSpinBox()
        self.lr.setValue(1e-3)
        self.lr.setEnabled(False)
        self.lr.setToolTip("Learning rate: type a number (3e-4 or 0.0003); the arrows step 1, 2, 5, 10, ...")
        self._set_lr = 1e-3  # the user's own number, kept while the box shows another mode's rate
        self.lr_mode = QComboBox()
        for text, key in LR_MODES:
            self.lr_mode.addItem(text, key)
        self.lr_mode.setToolTip(
            "Default: the rate the accuracy benchmark found best for the strategy (a new head alone "
            "takes a higher one). Auto: a quick range test at Start (head only). Set: your own number."
        )
        self.lr_note = QLabel("")
        self.lr_note.setWordWrap(True)
        self.lr_note.setStyleSheet("color: #555;")
        # Room for two lines: the note changes with the strategy and must never be cut off.
        self.lr_note.setMinimumHeight(2 * self.lr_note.fontMetrics().lineSpacing() + 4)
        self.strategy = "head"
        self._running = False
        self.find_lr_button = QPushButton("Find…")
        self.find_lr_button.setToolTip(
            "Learning-rate range test: a short run with a rising learning rate, "
            "then a suggestion (the model is left unchanged)"
        )
        self.find_lr_button.setEnabled(False)
        # The same choices as ftgui-train's --optimizer and --schedule (core/base/options.py).
        self.optimizer = QComboBox()
        for key, label in OPTIMIZERS.items():
            self.optimizer.addItem(label, key)
        self.schedule = QComboBox()
        for key, label in SCHEDULES.items():
            self.schedule.addItem(label, key)
        self.head = QComboBox()
        for key, label in HEADS.items():
            self.head.addItem(label, key)
        self.head.setToolTip(HEAD_TIP)
        self.image_size = QSpinBox()
        self.image_size.setRange(0, 1024)
        self.image_size.setSpecialValueText("weights' default")
        self.image_size.setSingleStep(32)
        self.image_size.setToolTip("Input size in pixels; 0 uses the weights' own preprocessing (e.g. 224)")
        self.augment = QCheckBox("Augmentation")
        self.augment.setToolTip("Random resized crops and horizontal flips while training")
        self.device = QComboBox()
        self.device.addItem("auto")
        self.precision = QComboBox()
        for key, label in PRECISIONS.items():
            self.precision.addItem(label, key)
        self.precision.setToolTip(
            "Auto: bf16 mixed precision where this processor computes bf16 natively (AVX-512 BF16, "
            "AMX) and a short trial on your model finds it faster; fp32 everywhere else. The log "
            "says what each run chose and why. Weights and the exported model stay fp32."
        )
        self.early_stopping = QSpinBox()
        self.early_stopping.setRange(0, 100)
        self.early_stopping.setSpecialValueText("off")
        self.early_stopping.setSuffix(" epochs")
        self.early_stopping.setToolTip("Stop when the validation loss has not improved for this many epochs")

        import importlib.util

        self.tensorboard = QCheckBox("TensorBoard log")
        self.tensorboard.setToolTip(
            "Also write each run's scalars for TensorBoard, to the tensorboard folder in ftgui's data folder"
        )
        if importlib.util.find_spec("tensorboard") is None:  # without importing torch at start-up
            self.tensorboard.setEnabled(False)
            self.tensorboard.setText("TensorBoard log — not installed")
            self.tensorboard.setToolTip("pip install 'ftgui[tensorboard]'")
        self.checkpoint_every_epoch = QCheckBox("Checkpoint every epoch")
        self.checkpoint_every_epoch.setToolTip(
            "Save a resumable training checkpoint after every epoch (File → Load training checkpoint…)"
        )

        self.start_button = QPushButton("Start")
        self.start_button.setDefault(True)
        self.start_button.setShortcut(QKeySequence("Ctrl+Return"))
        self.start_button.setToolTip("Start training (Ctrl+Enter)")
        self.stop_button = QPushButton("Stop")
        self.stop_button.setShortcut(QKeySequence("Ctrl+."))
        self.stop_button.setToolTip("Stop after the current batch, keeping the best epoch so far (Ctrl+.)")
        self.stop_button.setEnabled(False)
        self.progress = QProgressBar()
        self.progress.setRange(0, 1)
        self.progress.setValue(0)
        self.progress.setFormat("Idle")
        self.progress.setTextVisible(True)
        self.eta = QLabel("")

        form = QFormLayout()
        form.addRow("Epochs", self.epochs)
        form.addRow("Batch size", self.batch_size)
        lr_row = QHBoxLayout()
        lr_row.addWidget(self.lr_mode)
        lr_row.addWidget(self.lr, 1)
        lr_row.addWidget(self.find_lr_button)
        form.addRow("Learning rate", lr_row)
        form.addRow("", self.lr_note)
        form.addRow("Optimizer", self.optimizer)
        form.addRow("Schedule", self.schedule)
        form.addRow("Classifier", self.head)
        form.addRow("Image size", self.image_size)
        form.addRow("", self.augment)
        device_row = QHBoxLayout()
        device_row.addWidget(self.device, 1)
        device_row.addWidget(QLabel("Precision"))
        device_row.addWidget(self.precision, 2)
        form.addRow("Device", device_row)
        form.addRow("Early stopping", self.early_stopping)
        form.addRow("", self.checkpoint_every_epoch)
        form.addRow("", self.tensorboard)
        buttons = QHBoxLayout()
        buttons.addWidget(self.start_button)
        buttons.addWidget(self.stop_button)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addLayout(buttons)
        layout.addWidget(self.progress)
        layout.addWidget(self.eta)
        self.start_button.clicked.connect(self.start_requested)
        self.stop_button.clicked.connect(self.stop_requested)
        self.find_lr_button.clicked.connect(self.find_lr_requested)
        self.lr_mode.currentIndexChanged.connect(self._on_lr_mode_changed)
        self.lr.valueChanged.connect(self._on_lr_typed)
        self._inputs = [
            self.epochs,
            self.batch_size,
            self.lr_mode,
            self.optimizer,
            self.schedule,
            self.head,
            self.image_size,
            self.augment,
            self.device,
            self.precision,
            self.early_stopping,
            self.checkpoint_every_epoch,
        ]

    def set_devices(self, devices: list[str]) -> None:
        current = self.device.currentText()
        self.device.clear()
        self.device.addItems(["auto", *devices])
        index = self.device.findText(current)
        self.device.setCurrentIndex(max(index, 0))

    def set_running(self, running: bool) -> None:
        self._running = running
        for w in self._inputs:
            w.setEnabled(not running)
        self.lr.setEnabled(not running and self.lr_mode_key == "set")
        self.start_button.setEnabled(not running)
        self.find_lr_button.setEnabled(not running)
        self.stop_button.setEnabled(running)
        if not running:
            self.eta.setText("")

    def show_batch(self, epoch: int, epochs: int, batch: int, batches: int, eta_s: float) -> None:
        total = epochs * batches
        self.progress.setRange(0, max(total, 1))
        self.progress.setValue(min((epoch - 1) * batches + batch, total))
        self.progress.setFormat(f"Epoch {epoch}/{epochs} · batch {batch}/{batches} · %p%")
        self.eta.setText(f"ETA {format_duration(eta_s)}")

    def show_preparing(self, what: str, done: int, total: int) -> None:
        """A step before the epochs (the frozen-layer cache): its own progress, and no ETA yet
        (epochs on cached features run many times faster than this step)."""
        self.progress.setRange(0, max(total, 1))
        self.progress.setValue(min(done, total))
        self.progress.setFormat(f"{what[:1].upper()}{what[1:]} {done:,}/{total:,} · %p%")  # fits 300 px
        self.eta.setText("ETA once the first batches have run")

    def show_idle(self, text: str) -> None:
        self.progress.setFormat(text)

    def config_fields(self) -> dict[str, Any]:
        return {
            "epochs": self.epochs.value(),
            "batch_size": self.batch_size.value(),
            "lr": self.requested_lr(),
            "optimizer": str(self.optimizer.currentData()),
            "schedule": str(self.schedule.currentData()),
            "head": str(self.head.currentData()),
            "image_size": self.image_size.value() or None,
            "augment": self.augment.isChecked(),
            "device": self.device.currentText(),
            "precision": str(self.precision.currentData()),
            "early_stopping": self.early_stopping.value(),
        }

    # ------------------------------------------------------------ learning rate

    @property
    def lr_mode_key(self) -> str:
        return str(self.lr_mode.currentData())

    def requested_lr(self) -> float | str | None:
        """What TrainConfig.lr gets: None (the strategy's default), 'auto', or the number."""
        mode = self.lr_mode_key
        return self._set_lr if mode == "set" else ("auto" if mode == "auto" else None)

    def set_lr_mode(self, key: str, value: float | None = None) -> None:
        if value is not None:
            self._set_lr = value
        index = self.lr_mode.findData(key)
        self.lr_mode.setCurrentIndex(max(index, 0))
        self._show_lr()

    def set_strategy(self, strategy: str) -> None:
        """The model panel's strategy, for the note on which learning rate Start will use."""
        self.strategy = strategy
        self._show_lr()

    def show_lr_used(self, text: str) -> None:
        self.lr_note.setText(f"This run: {text}")

    def _on_lr_mode_changed(self, *_: object) -> None:
        self.lr.setEnabled(self.lr_mode_key == "set" and not self._running)
        self._show_lr()

    def _on_lr_typed(self, value: float) -> None:
        if self.lr_mode_key == "set":
            self._set_lr = value
        self._update_lr_note()

    def _show_lr(self) -> None:
        """The box shows the rate Start will use: the user's number, or (greyed) the strategy's
        default, never a stale number beside a note that names another."""
        from ftgui.core.training.recipe import default_lr

        shown = self._set_lr if self.lr_mode_key == "set" else default_lr(self.strategy).lr
        self.lr.blockSignals(True)
        self.lr.setValue(shown)
        self.lr.blockSignals(False)
        self._update_lr_note()

    def _update_lr_note(self) -> None:
        from ftgui.core.training.recipe import default_lr

        mode = self.lr_mode_key
        fallback = default_lr(self.strategy)
        if mode == "set":
            self.lr_note.setText(f"Set by you: {format_rate(self._set_lr)}")
        elif mode == "auto" and self.strategy == "head":
            self.lr_note.setText(
                "Auto: a range test at Start picks the rate (a few seconds on cached features); "
                f"without a clear result, the {fallback.reason}."
            )
        elif mode == "auto":
            self.lr_note.setText(f"Auto runs the range test for a head alone; here: the {fallback.reason}.")
        else:
            self.lr_note.setText(f"The {fallback.reason}.")

    def save_settings(self, settings: QSettings) -> None:
        for key, value in self.config_fields().items():
            if key == "lr":
                continue
            settings.setValue(SETTINGS_PREFIX + key, value if value is not None else 0)
        settings.setValue(SETTINGS_PREFIX + "lr_mode", self.lr_mode_key)
        settings.setValue(SETTINGS_PREFIX + "lr", self._set_lr)
        settings.setValue(SETTINGS_PREFIX + "checkpoint_every_epoch", self.checkpoint_every_epoch.isChecked())
        settings.setValue(SETTINGS_PREFIX + "tensorboard", self.tensorboard.isChecked())

    def load_settings(self, settings: QSettings) -> None:
        def get(key: str, default: Any, kind: type) -> Any:
            return setting(settings, SETTINGS_PREFIX + key, kind(default))

        self.epochs.setValue(get("epochs", 5, int))
        self.batch_size.setValue(get("batch_size", 32, int))
        self.set_lr_mode(get("lr_mode", "default", str), get("lr", 1e-3, float))
        self.image_size.setValue(get("image_size", 0, int))
        self.augment.setChecked(get("augment", False, bool))
        self.early_stopping.setValue(get("early_stopping", 0, int))
        self.checkpoint_every_epoch.setChecked(get("checkpoint_every_epoch", False, bool))
        self.tensorboard.setChecked(self.tensorboard.isEnabled() and get("tensorboard", False, bool))
        for combo, key in (
            (self.optimizer, "optimizer"),
            (self.schedule, "schedule"),
            (self.head, "head"),
            (self.precision, "precision"),
        ):
            index = combo.findData(get(key, str(combo.currentData()), str))
            if index >= 0:
                combo.setCurrentIndex(index)
        index = self.device.findText(get("device", self.device.currentText(), str))
        if index >= 0:
            self.device.setCurrentIndex(index)
