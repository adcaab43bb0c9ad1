"""Move to class…, Exclude from training and Edit → Undo in the window (``core/data/fixes.py``).

These are the only actions in ftgui that change a user's files, so each kind asks once for an
explicit confirmation (remembered in the settings); every list of images that offers them (Check
data, a confusion-matrix cell, the worst mistakes) goes through :class:`FileFixes`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from PySide6.QtCore import QObject, QPoint, QSettings, Signal
from PySide6.QtWidgets import QInputDialog, QMenu, QMessageBox, QWidget

from ftgui.core.base.errors import FtguiError
from ftgui.core.base.text import display_path
from ftgui.core.data.fixes import Change, Fixes

FIRST_TIME = {
    "move": (
        "Move images to another class folder?",
        "ftgui will move the chosen files inside your dataset folder, into the class folder you "
        "pick. Nothing is overwritten: a name already taken gets a new one. Every move is "
        "journalled, and Edit → Undo puts the files back exactly as they were, also after a "
        "restart.\n\nMove the files now? (ftgui asks this only once.)",
    ),
    "exclude": (
        "Leave images out of training?",
        "The chosen files stay where they are; ftgui lists them in its own data folder and leaves "
        "them out of every scan and training run. Edit → Undo brings them back.\n\nExclude them "
        "now? (ftgui asks this only once.)",
    ),
}


class FileFixes(QObject):
    """The window's one way to change a dataset's files, with undo."""

    changed = Signal(str)  # the dataset folder whose files changed (moved, excluded, or undone)

    def __init__(self, settings: QSettings, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.settings = settings
        self.fixes = Fixes()

    def _confirmed(self, action: str, parent: QWidget | None) -> bool:
        key = f"fixes/confirmed_{action}"
        if self.settings.value(key, False, type=bool):
            return True
        title, text = FIRST_TIME[action]
        answer = QMessageBox.question(
            parent, title, text,
            QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No, QMessageBox.StandardButton.No,
        )  # fmt: skip
        if answer != QMessageBox.StandardButton.Yes:
            return False
        self.settings.setValue(key, True)
        return True

    def move(
        self, root: str, files: Sequence[str], to_class: str, parent: QWidget | None = None
    ) -> Change | None:
        """Move ``files`` (relative to ``root``) into ``to_class``; None if refused or declined."""
        if not files or not self._confirmed("move", parent):
            return None
        return self._apply(lambda: self.fixes.move(root, files, to_class), parent)

    def exclude(self, root: str, files: Sequence[str], parent: QWidget | None = None) -> Change | None:
        if not files or not self._confirmed("exclude", parent):
            return None
        return self._apply(lambda: self.fixes.exclude(root, files), parent)

    def ask_move(self, root: str, files: Sequence[str], classes: Sequence[str], parent: QWidget | None = None,
                 suggested: str = "") -> Change | None:  # fmt: skip
        """Ask for the class (the model's guess first), then :meth:`move`."""
        if not files:
            return None
        here = {f.split("/")[-2] for f in files if "/" in f}
        choices = [c for c in classes if c not in here] or list(classes)
        if suggested in choices:
            choices.remove(suggested)
            choices.insert(0, suggested)
        n = len(files)
        label = f"Move {n} image{'s' if n != 1 else ''} to the class folder:"
        picked, ok = QInputDialog.getItem(parent, "Move to class", label, choices, 0, False)
        if not ok:
            return None
        return self.move(root, files, picked, parent)

    def undo_text(self) -> str:
        last = self.fixes.last()
        return f"&Undo {last.describe()}" if last else "&Undo"

    def can_undo(self) -> bool:
        return self.fixes.last() is not None

    def undo(self, parent: QWidget | None = None) -> Change | None:
        return self._apply(self.fixes.undo, parent, undo=True)

    def _apply(
        self, work: Callable[[], Change | None], parent: QWidget | None, undo: bool = False
    ) -> Change | None:
        try:
            change = work()
        except (FtguiError, OSError) as exc:
            QMessageBox.warning(
                parent, "Could not undo" if undo else "Nothing was changed", display_path(str(exc))
            )
            return None
        if change is not None:
            self.changed.emit(change.root)
        return change


def fix_menu(
    fixes: FileFixes,
    parent: QWidget,
    root: str,
    files: Sequence[str],
    classes: Sequence[str],
    suggested: str = "",
) -> QMenu:
    """A context menu with Move to class… and Exclude from training for ``files``."""
    menu = QMenu(parent)
    n = len(files)
    what = f"{n} image{'s' if n != 1 else ''}"
    if suggested:
        menu.addAction(f"Move {what} to {display_path(suggested)}").triggered.connect(
            lambda: fixes.move(root, files, suggested, parent)
        )
    menu.addAction(f"Move {what} to class…").triggered.connect(
        lambda: fixes.ask_move(root, files, classes, parent, suggested)
    )
    menu.addAction(f"Exclude {what} from training").triggered.connect(
        lambda: fixes.exclude(root, files, parent)
    )
    return menu


def show_fix_menu(menu: QMenu, widget: QWidget, pos: QPoint) -> None:
    menu.exec(widget.mapToGlobal(pos))
