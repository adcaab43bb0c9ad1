"""The data panel's class table: counts per class for the window's split, a picture per class
made when its row is first shown, and the warnings a folder's counts deserve."""

from __future__ import annotations

from typing import TYPE_CHECKING

from PySide6.QtCore import QObject, QSize
from PySide6.QtGui import QIcon, QImage, QPixmap
from PySide6.QtWidgets import QAbstractItemView

from ftgui.core.base.text import display_path
from ftgui.gui.widgets.rows_model import rows_table
from ftgui.gui.widgets.thumbs import ClassThumbnails

if TYPE_CHECKING:
    from ftgui.core.data.samples import ScanResult

NAMED_CLASSES = 8  # classes named in a warning
FEW_IMAGES = 10  # a class with fewer images than this gets a warning
IMBALANCE = 5.0  # largest/smallest class ratio that gets a warning

Counts = tuple[float, list[int], list[int], list[int]]  # validation fraction; all, train, val


def class_counts(scan: ScanResult, val_fraction: float) -> Counts:
    """Images per class in all, in training and in validation, for the split the window makes."""
    from ftgui.core.data.samples import split_samples

    split = split_samples(scan, val_fraction, seed=0)
    return val_fraction, scan.counts(), scan.counts(split.train), scan.counts(split.val)


def count_warnings(scan: ScanResult, total: list[int]) -> list[str]:
    """The scan's own warnings, then classes with very few images and a strong imbalance."""
    notes = list(scan.warnings)
    few = [c for c, n in zip(scan.classes, total) if n < FEW_IMAGES]
    if few:
        # A few names, not a thousand: the table (sorted by Images) shows them all.
        named = display_path(", ".join(few[:NAMED_CLASSES]))
        more = f" and {len(few) - NAMED_CLASSES:,} more classes" if len(few) > NAMED_CLASSES else ""
        notes.append(f"Very few images (under {FEW_IMAGES}) in: {named}{more}.")
    smallest, largest = (min(total), max(total)) if total else (0, 0)
    if smallest and largest / smallest >= IMBALANCE:
        notes.append(
            f"Strong imbalance: the largest class has {largest / smallest:.0f}× the images of the smallest."
        )
    return notes


class ClassTable(QObject):
    """A sortable model/view table (1,000 classes fill at once) with lazily made pictures."""

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.view, self.model = rows_table(["Class", "Images", "Train", "Val"])
        self.view.setSelectionMode(QAbstractItemView.SelectionMode.NoSelection)
        self.view.setIconSize(QSize(32, 32))
        self.view.verticalHeader().setDefaultSectionSize(36)
        self.model.icon = self._class_icon
        self._icons: dict[int, QIcon | None] = {}  # None: no image of the class decodes
        self.thumbnails = ClassThumbnails(parent=self)
        self.thumbnails.ready.connect(self._on_thumbnails_ready)

    def show_counts(self, scan: ScanResult, counts: Counts) -> None:
        _, total, train, val = counts
        self.model.set_rows(
            [
                [(display_path(name), name.casefold())]
                + [(f"{n:,}", n) for n in (total[r], train[r], val[r])]
                for r, name in enumerate(scan.classes)
            ]
        )

    def new_pictures(self, scan: ScanResult | None) -> None:
        """Forget the pictures made so far; new ones come from ``scan`` (none when None)."""
        self._icons = {}
        self.thumbnails.reset(scan)

    def _class_icon(self, row: int) -> QIcon | None:
        """The picture of class ``row``, asked for the first time the table shows that row."""
        if row in self._icons:
            return self._icons[row]
        self.thumbnails.request(row)
        return None

    def _on_thumbnails_ready(self, generation: int, label: int, png: bytes) -> None:
        if generation != self.thumbnails.generation or label >= self.model.rowCount():
            return
        self._icons[label] = QIcon(QPixmap.fromImage(QImage.fromData(png))) if png else None
        self.model.row_changed(label)
