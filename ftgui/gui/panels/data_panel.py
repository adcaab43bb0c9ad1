"""Data panel: drop zone, folder scanning in the background, class table, skipped files."""

from __future__ import annotations

import html
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QThreadPool, Signal
from PySide6.QtWidgets import (
    QDoubleSpinBox,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QProgressBar,
    QPushButton,
    QVBoxLayout,
    QWidget,
)
from superqt.utils import WorkerBase

from ftgui.core.base.errors import FtguiError
from ftgui.core.base.text import display_path
from ftgui.gui.jobs import start_worker
from ftgui.gui.widgets.class_table import ClassTable, Counts, class_counts, count_warnings
from ftgui.gui.widgets.drop_zone import DropZone

if TYPE_CHECKING:
    from ftgui.core.data.samples import ScanResult, Split

LOGGED_SKIPPED = 20  # skipped files written to the log at a time (the skipped list has them all)


class DataPanel(QWidget):
    scanned = Signal(object)  # ScanResult: classes and counts, as soon as the folder is listed
    verified = Signal(object)  # ScanResult: every header checked (or the checks cancelled)
    scan_failed = Signal(str)
    logged = Signal(str, str)  # level, text
    _scan_progress = Signal(int, str)  # from the scanning thread
    _verify_progress = Signal(int, int, object)  # done, total, [(path, reason)] found bad since

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.scan: ScanResult | None = None
        self.folder: str | None = None
        self._worker: WorkerBase[Any] | None = None
        self._scan_progress.connect(self._on_scan_progressed)
        self._verify_progress.connect(self._on_verify_progressed)
        self._verifier: WorkerBase[Any] | None = None
        self._verifier_generation = 0
        self._stop_verifying = threading.Event()
        self._generation = 0  # a verification of an earlier folder is ignored

        self.drop_zone = DropZone()
        self.browse_button = QPushButton("Browse…")
        self.example_button = QPushButton("Open example dataset")
        self.example_button.setToolTip(
            "Write a small generated image folder (4 classes of shapes) and open it"
        )
        self.folder_label = QLabel("No dataset yet.")
        self.folder_label.setWordWrap(True)
        self.progress = QProgressBar()
        self.progress.setRange(0, 0)
        self.progress.setVisible(False)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setToolTip(
            "Stop checking the images' headers; the rest are checked as training reads them"
        )
        self.cancel_button.setVisible(False)
        self.cancel_button.clicked.connect(self.cancel_verification)
        self.val_fraction = QDoubleSpinBox()
        self.val_fraction.setRange(0.05, 0.5)
        self.val_fraction.setSingleStep(0.05)
        self.val_fraction.setValue(0.2)
        self.val_fraction.setDecimals(2)
        self.val_fraction.setToolTip(
            "Share of each class kept aside for validation (ignored with train/ and val/ folders)"
        )
        # Class, counts and a picture per class, decoded when its row is on screen.
        self.classes = ClassTable(self)
        self.table, self.thumbnails = self.classes.view, self.classes.thumbnails
        self.warnings = QLabel()
        self.warnings.setWordWrap(True)
        self.warnings.setStyleSheet("color: #a35d00;")
        self.skipped_label = QLabel()
        self.skipped = QListWidget()
        self.skipped.setMaximumHeight(90)

        buttons = QHBoxLayout()
        buttons.addWidget(self.browse_button)
        buttons.addWidget(self.example_button)
        buttons.addStretch(1)
        buttons.addWidget(QLabel("Validation"))
        buttons.addWidget(self.val_fraction)
        layout = QVBoxLayout(self)
        layout.addWidget(self.drop_zone)
        layout.addLayout(buttons)
        layout.addWidget(self.folder_label)
        progress_row = QHBoxLayout()
        progress_row.addWidget(self.progress, 1)
        progress_row.addWidget(self.cancel_button)
        layout.addLayout(progress_row)
        layout.addWidget(self.table, 1)
        layout.addWidget(self.warnings)
        layout.addWidget(self.skipped_label)
        layout.addWidget(self.skipped)
        self.skipped_label.setVisible(False)
        self.skipped.setVisible(False)

        self.drop_zone.dropped.connect(self.load_folder)
        self.browse_button.clicked.connect(self.browse)
        self.val_fraction.valueChanged.connect(self._on_val_fraction_changed)

    # ------------------------------------------------------------ loading

    @property
    def scanning(self) -> bool:
        """Listing the folder (short): classes and counts are not known yet."""
        return self._worker is not None

    @property
    def verifying(self) -> bool:
        """Checking image headers in the background (training may start meanwhile)."""
        return self._verifier is not None

    def browse(self) -> None:
        start = str(Path(self.folder).parent) if self.folder else str(Path.home())
        folder = QFileDialog.getExistingDirectory(self, "Open an image folder", start)
        if folder:
            self.load_folder(folder)

    def open_example(self) -> str:
        """Write the example dataset to the user's data folder (once) and load it."""
        from ftgui.core.base.paths import data_dir
        from ftgui.core.data.example import make_example_dataset

        dest = data_dir() / "example-shapes"
        make_example_dataset(dest, per_class=40, size=96)
        self.load_folder(str(dest))
        return str(dest)

    def load_folder(self, folder: str) -> None:
        """List ``folder`` in the background (``scanned`` or ``scan_failed`` follows), then check
        its images' headers in the background (``verified`` follows)."""
        if self.scanning:
            return
        self.cancel_verification()
        self._generation += 1
        self.folder = folder
        self.folder_label.setText(f"Opening {folder}…")
        self.progress.setRange(0, 0)
        self.progress.setVisible(True)
        self.progress.setFormat("Listing…")
        self.setEnabledForScan(False)
        from ftgui.core.data.scan import scan_folder

        last = [time.monotonic()]

        def progress(count: int, path: str) -> None:
            # At most ten updates a second: each one repaints the panel, and every paint of a
            # Python widget needs Python's lock, which the listing thread holds meanwhile.
            if count % 64 == 0 and (now := time.monotonic()) - last[0] >= 0.1:
                last[0] = now
                self._scan_progress.emit(count, path)  # queued to the GUI thread

        fraction = self.val_fraction.value()

        def scan() -> tuple[ScanResult, Counts]:
            result = scan_folder(folder, progress=progress, verify=False)
            return result, class_counts(result, fraction)  # the split of 100k files: off this thread

        # The same superqt workers as the window's job runner; a scan is not a session job
        # (it may run while PyTorch is still loading, and touches no model).
        worker = start_worker(scan)
        worker.returned.connect(lambda result: self._on_scan_scanned(*result))
        worker.errored.connect(
            lambda exc: self._on_scan_failed(
                str(exc) if isinstance(exc, FtguiError) else f"Could not scan {folder}: {exc}"
            )
        )
        worker.finished.connect(self._on_scan_finished)
        self._worker = worker
        worker.start()

    def setEnabledForScan(self, enabled: bool) -> None:
        for w in (self.browse_button, self.example_button, self.drop_zone, self.val_fraction):
            w.setEnabled(enabled)

    def _on_scan_progressed(self, count: int, path: str) -> None:
        self.folder_label.setText(f"Opening… {count:,} files ({display_path(path)})")

    def _on_scan_finished(self, *_: object) -> None:
        self._worker = None
        if not self.verifying:
            self.progress.setVisible(False)
        self.setEnabledForScan(True)

    def _on_scan_failed(self, message: str) -> None:
        self.folder_label.setText(f"⚠ {message}")
        self.logged.emit("error", message)
        self.scan_failed.emit(message)

    def _on_scan_scanned(self, scan: ScanResult, counts: Counts) -> None:
        self.scan = scan
        self.classes.new_pictures(scan)
        self._show_summary()
        self.val_fraction.setEnabled(scan.presplit is None)
        self._fill_table(counts)
        self.drop_zone.set_compact(True)
        self.skipped.clear()
        self._add_skipped(scan.skipped)
        for w in scan.warnings:
            self.logged.emit("warning", w)
        self.scanned.emit(scan)
        self._start_verification(scan)

    def _show_summary(self) -> None:
        scan = self.scan
        if scan is None:
            return
        kind = "train/ and val/ folders" if scan.presplit else "one folder per class"
        self.folder_label.setText(
            f"<b>{html.escape(display_path(Path(scan.root).name))}</b> — {len(scan.samples):,} images in "
            f"{len(scan.classes)} classes ({kind})"
        )

    def _add_skipped(self, items: list[tuple[str, str]]) -> None:
        self.skipped.addItems([display_path(f"{path}: {reason}") for path, reason in items])
        for path, reason in items[:LOGGED_SKIPPED]:
            self.logged.emit("warning", f"Skipped {path}: {reason}")
        if len(items) > LOGGED_SKIPPED:
            self.logged.emit(
                "warning", f"… and {len(items) - LOGGED_SKIPPED:,} more (all are in the skipped list)"
            )
        n = self.skipped.count()
        self.skipped_label.setText(f"Skipped {n:,} file(s):")
        self.skipped_label.setVisible(bool(n))
        self.skipped.setVisible(bool(n))

    # ------------------------------------------------------------ header checks

    def _start_verification(self, scan: ScanResult) -> None:
        from ftgui.core.data.scan import verify_scan

        generation = self._generation
        stop = self._stop_verifying = threading.Event()
        total = len(scan.pending)
        if total:
            self.progress.setRange(0, total)
            self.progress.setValue(0)
            self.progress.setFormat(f"Checking images… %v of {total:,}")
            self.progress.setVisible(True)
            self.cancel_button.setVisible(True)
            self.cancel_button.setEnabled(True)
        found: list[tuple[str, str]] = []
        last = [0.0]

        def progress(done: int, n: int) -> None:
            now = time.monotonic()
            if now - last[0] >= 0.1 or done == n:
                last[0] = now
                batch = found[:]
                del found[: len(batch)]
                self._verify_progress.emit(done, n, (generation, batch))

        fraction = self.val_fraction.value()

        def verify() -> tuple[int, ScanResult, Counts]:
            new = verify_scan(
                scan,
                progress=progress,
                found_bad=lambda rel, why: found.append((rel, why)),
                should_stop=stop.is_set,
            )
            return generation, new, class_counts(new, fraction)

        worker = start_worker(verify)
        worker.returned.connect(lambda r: self._on_verified(r[0], r[1], r[2]))
        worker.errored.connect(lambda exc: self._on_verify_failed(generation, exc))
        # Not the worker itself: a slot that refers to its own sender is a cycle through Qt,
        # which Python's collector cannot see, and would keep every scan opened alive.
        worker.finished.connect(lambda *_: self._on_verify_finished(generation))
        self._verifier, self._verifier_generation = worker, generation
        worker.start()

    def cancel_verification(self) -> None:
        """Stop checking headers; what was checked is remembered, the rest is checked on use."""
        self._stop_verifying.set()
        self.cancel_button.setEnabled(False)

    def _on_verify_progressed(
        self, done: int, total: int, payload: tuple[int, list[tuple[str, str]]]
    ) -> None:
        generation, bad = payload
        if generation != self._generation:
            return
        self.progress.setValue(done)
        if bad:
            self._add_skipped(bad)

    def _on_verified(self, generation: int, scan: ScanResult, counts: Counts) -> None:
        if generation != self._generation:
            return
        before = self.scan
        self.scan = scan
        if before is not None and before.classes != scan.classes:
            self.classes.new_pictures(scan)
        if before is None or before.samples != scan.samples or before.classes != scan.classes:
            self._show_summary()
            self._fill_table(counts)
        left = len(scan.pending)
        if left:
            self.logged.emit(
                "info",
                f"Stopped checking images: {left:,} not checked yet are checked as training reads them.",
            )
        else:
            new_bad = len(scan.skipped) - (len(before.skipped) if before else 0)
            self.logged.emit(
                "info",
                f"Checked {scan.checked:,} images"
                + (f", {new_bad:,} of them unusable" if new_bad else "")
                + f"; {len(scan.samples) + len(scan.skipped) - scan.checked:,} were known from earlier.",
            )
        self.verified.emit(scan)

    def _on_verify_failed(self, generation: int, exc: BaseException) -> None:
        if generation == self._generation:
            self._on_scan_failed(
                str(exc) if isinstance(exc, FtguiError) else f"Could not check the images: {exc}"
            )

    def _on_verify_finished(self, generation: int) -> None:
        if self._verifier is not None and generation == self._verifier_generation:
            self._verifier = None
            self.cancel_button.setVisible(False)
            if not self.scanning:
                self.progress.setVisible(False)

    # ------------------------------------------------------------ table

    def split(self) -> Split | None:
        from ftgui.core.data.samples import split_samples

        return split_samples(self.scan, self.val_fraction.value(), seed=0) if self.scan else None

    def _fill_table(self, counts: Counts | None = None) -> None:
        """The class table, from ``counts`` when they were counted for the current validation
        fraction (off the GUI thread), else counted now."""
        scan = self.scan
        if scan is None:
            return
        if counts is None or counts[0] != self.val_fraction.value():
            counts = class_counts(scan, self.val_fraction.value())
        self.classes.show_counts(scan, counts)
        notes = count_warnings(scan, counts[1])
        self.warnings.setText("⚠ " + " ".join(notes) if notes else "")
        self.warnings.setVisible(bool(notes))

    def _on_val_fraction_changed(self, value: float) -> None:
        if self.scan is not None:
            self._fill_table()

    def shutdown(self) -> None:
        self._stop_verifying.set()
        self.classes.new_pictures(None)
        if self._worker is not None or self._verifier is not None:
            QThreadPool.globalInstance().waitForDone(60_000)
