"""The line under the weights picker: whether the chosen weights are cached, can be
downloaded, or are out of reach offline, found off the GUI thread."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QComboBox, QLabel, QWidget

NONE_WEIGHTS = "none"
ICONS = {"cached": "✔", "download": "⬇", "offline": "⚠"}


def start_index(combo: QComboBox, info: Any, remembered: str | None) -> int:
    """The weights a model's picker starts on: the user's last choice for that model where it
    is still offered, else the model's default weights, else the first entry."""
    for choice in (remembered, info.default_weights):
        index = combo.findData(choice) if choice else -1
        if index >= 0:
            return index
    return 0


class WeightsStatus(QLabel):
    """``state``: '' while unknown, else 'none', 'cached', 'download', 'offline' or 'file'."""

    _checked = Signal(str, str, str)  # from the checking thread: key, state, message
    state_changed = Signal(str)  # the window's Start follows it (off while weights are out of reach)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWordWrap(True)
        self.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.state = ""
        self._key = ""
        self._checked.connect(self._on_checked)

    def check(self, arch: str, spec: str) -> None:
        """Say where ``arch``'s weights ``spec`` would come from; a network look-up runs in a thread."""
        self._key = f"{arch}:{spec}"
        if spec == NONE_WEIGHTS:
            self.state = "none"
            self.setText("Random initialisation: training starts from scratch.")
            self.state_changed.emit(self.state)
            return
        from ftgui.core.models import resolve_weights, weights_availability, weights_cache_path
        from ftgui.core.models.timm_source import availability, is_timm

        self.state = ""
        self.state_changed.emit(self.state)
        if is_timm(arch):  # the Hugging Face cache on disk, else whether the hub answers
            self._look_up_in_thread(lambda: availability(arch))
            return
        weights = resolve_weights(arch, spec)
        cached = weights_cache_path(weights)
        if cached.is_file():
            self._on_checked(self._key, "cached", f"Cached: {cached}")
            return
        self._look_up_in_thread(lambda: weights_availability(weights))

    def show_file(self, path: str) -> None:
        """A local weights file, read and checked against the model."""
        self._key, self.state = f"file:{path}", "file"
        self.setText(f"Local file: {path}")
        self.state_changed.emit(self.state)

    def _look_up_in_thread(self, look_up: Callable[[], tuple[str, str]]) -> None:
        self.setText("Checking weights…")
        key = self._key

        def run() -> None:
            state, message = look_up()
            self._checked.emit(key, state, message)

        threading.Thread(target=run, daemon=True).start()

    def _on_checked(self, key: str, state: str, message: str) -> None:
        if key != self._key:
            return  # an answer for an earlier choice
        self.setText(f"{ICONS.get(state, '')} {message}")
        self.state = state
        self.state_changed.emit(state)
