"""The drop target for an image folder, and reading a folder from dragged URLs."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QDragEnterEvent, QDropEvent
from PySide6.QtWidgets import (
    QFrame,
    QLabel,
    QVBoxLayout,
    QWidget,
)

if TYPE_CHECKING:
    from PySide6.QtCore import QMimeData
    from PySide6.QtGui import QDragLeaveEvent


def folder_from_mime(mime: QMimeData) -> str | None:
    """The first local folder among dragged URLs (files are not datasets)."""
    if not mime.hasUrls():
        return None
    for url in mime.urls():
        if url.isLocalFile() and Path(url.toLocalFile()).is_dir():
            return url.toLocalFile()
    return None


class DropZone(QFrame):
    """The big dashed 'Drop an image folder here' target."""

    dropped = Signal(str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setAcceptDrops(True)
        self.setObjectName("dropZone")
        self.setMinimumHeight(64)
        self._set_highlight(False)
        self.label = QLabel("Drop an image folder here\n(one subfolder per class)")
        self.label.setAlignment(Qt.AlignmentFlag.AlignCenter)
        layout = QVBoxLayout(self)
        layout.addWidget(self.label)
        self._layout = layout

    def set_compact(self, compact: bool) -> None:
        """One line once a dataset is open: the class table and the plot need the room."""
        self.label.setText(
            "Drop another image folder here to switch"
            if compact
            else "Drop an image folder here\n(one subfolder per class)"
        )
        self.setMinimumHeight(34 if compact else 64)
        self._layout.setContentsMargins(*((6, 4, 6, 4) if compact else (9, 9, 9, 9)))

    def _set_highlight(self, on: bool) -> None:
        color = "#2a82da" if on else "#9a9a9a"
        background = "#eaf3fc" if on else "transparent"
        self.setStyleSheet(
            f"#dropZone {{ border: 2px dashed {color}; border-radius: 8px; background: {background}; }}"
        )

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:
        if folder_from_mime(event.mimeData()):
            self._set_highlight(True)
            event.acceptProposedAction()

    def dragLeaveEvent(self, event: QDragLeaveEvent) -> None:
        self._set_highlight(False)

    def dropEvent(self, event: QDropEvent) -> None:
        self._set_highlight(False)
        folder = folder_from_mime(event.mimeData())
        if folder:
            event.acceptProposedAction()
            self.dropped.emit(folder)
