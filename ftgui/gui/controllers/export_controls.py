"""The window's export: the Export dialog, the question before another model's bundle is
replaced, the progress of each format with Cancel, and what was written (one table, one line
per format, kept, refused or failed)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QMessageBox

from ftgui.core.base.options import MAX_ACCURACY_DROP
from ftgui.core.base.text import display_path
from ftgui.gui.controllers.window_base import WindowBase
from ftgui.gui.dialogs.export import ExportDialog, default_export_folder
from ftgui.gui.dialogs.export_progress import ExportProgress, estimate_seconds, outcome_line
from ftgui.gui.settings import setting

if TYPE_CHECKING:
    from ftgui.core.bundle.replace import OtherBundle
    from ftgui.core.bundle.trained import TrainedModel
    from ftgui.core.deploy.measure import ExportCheck

RATE_KEY = "export/seconds_per_mparam/"  # + format: this computer's measured export speed


class ExportControls(WindowBase):
    """Export model… and what follows it; ``MainWindow`` builds the widgets it uses."""

    export_progress: ExportProgress | None
    replace_box: QMessageBox | None

    def _trained_here(self) -> TrainedModel | None:
        """The model the window would export (TrainedModel), or None before an epoch ends."""
        t = self.session.trainer
        return t.trained() if t is not None and t.built is not None and t.epoch >= 1 else None

    def _mparams(self) -> float:
        from ftgui.core.models.layers import count_params

        t = self.session.trainer
        return count_params(t.model)[1] / 1e6 if t is not None and t.built is not None else 0.0

    def export_estimate(self, formats: tuple[str, ...]) -> float:
        """Seconds an export of ``formats`` should take here (the dialog shows it before Export)."""
        measured = {f: setting(self.settings, RATE_KEY + f, 0.0) for f in formats}
        return estimate_seconds(formats, self._mparams(), measured)

    def _on_export_triggered(self) -> None:
        from ftgui.core.bundle.replace import free_folder, other_bundle

        last = setting(self.settings, "export/last_folder", "")
        root = self.session.trainer.scan.root if self.session.trainer and self.session.trainer.scan else None
        folder = default_export_folder(str(last) if last else None, root)
        trained = self._trained_here()
        if trained is not None and other_bundle(folder, trained) is not None:
            folder = str(free_folder(folder))  # a new run's export goes to a new folder by default
        ticked = [f for f in setting(self.settings, "export/formats", "").split(",") if f]
        split = self.session.trainer.split if self.session.trainer else None
        dialog = ExportDialog(
            folder, self, ticked, self.export_estimate, len(split.val) if split else 0,
            setting(self.settings, "export/max_drop", MAX_ACCURACY_DROP),
        )  # fmt: skip
        if dialog.exec() == ExportDialog.DialogCode.Accepted and dialog.folder.text().strip():
            self.settings.setValue("export/formats", ",".join(dialog.formats()[1:]))
            self.settings.setValue("export/max_drop", dialog.max_drop.value())
            self.export_to(dialog.folder.text().strip(), dialog.formats(), max_drop=dialog.max_drop.value())

    def export_to(
        self,
        folder: str,
        formats: tuple[str, ...] = ("safetensors",),
        replace_other: bool = False,
        max_drop: float = MAX_ACCURACY_DROP,
    ) -> bool:
        """Write the bundle, MODEL_CARD.md and the chosen formats in the background, each checked
        after writing. False (with a message) when the folder or the packages rule it out, or
        when the folder holds another model's bundle: the window asks first (``replace_box``)
        unless ``replace_other``."""
        from ftgui.core.base.errors import FtguiError
        from ftgui.core.bundle.replace import other_bundle

        if self.busy:
            return False
        trained = self._trained_here()
        other = other_bundle(folder, trained) if trained is not None and not replace_other else None
        if other is not None:
            self._ask_replace(other, formats, max_drop)
            return False
        try:
            lock = self.session.check_export(folder, formats)
        except FtguiError as exc:
            self.show_error("Cannot export there", str(exc))
            return False
        self.statusBar().showMessage(f"Exporting to {folder}…")
        dialog = ExportProgress(folder, formats, self.export_estimate(formats), self)
        dialog.cancel_requested.connect(self.jobs.stop)
        if self.export_progress is not None:
            self.export_progress.deleteLater()
        self.export_progress = dialog
        started = self.jobs.start(
            "export",
            lambda job, progress: self.session.export(folder, formats, lock, dialog.changed.emit, max_drop),
            on_result=lambda checks: self._on_exported(folder, checks),
            on_error=lambda message: self._on_export_failed(folder, message),
            on_done=dialog.finish,
        )
        if not started:
            lock.release()
            dialog.finish()
            return False
        dialog.show()
        return True

    def _ask_replace(self, other: OtherBundle, formats: tuple[str, ...], max_drop: float) -> None:
        """Replace another model's bundle, export to a new folder instead, or cancel."""
        from ftgui.core.bundle.replace import free_folder

        instead = free_folder(other.folder)
        box = QMessageBox(
            QMessageBox.Icon.Warning,
            "Replace another model?",
            display_path(other.describe()),
            QMessageBox.StandardButton.Cancel,
            self,
        )
        box.setInformativeText(
            "Exporting there deletes that model's files. The model trained here can go to a new "
            f"folder instead: {display_path(str(instead))}"
        )
        new_button = box.addButton(f"Export to {instead.name}", QMessageBox.ButtonRole.AcceptRole)
        replace_button = box.addButton("Replace it", QMessageBox.ButtonRole.DestructiveRole)
        box.setDefaultButton(new_button)
        box.setWindowModality(Qt.WindowModality.WindowModal)

        def answered() -> None:
            clicked = box.clickedButton()
            if clicked is new_button:
                self.export_to(str(instead), formats, max_drop=max_drop)
            elif clicked is replace_button:
                self.log_message("warning", f"Replacing {other.describe()}")
                self.export_to(str(other.folder), formats, replace_other=True, max_drop=max_drop)

        box.finished.connect(lambda _: answered())
        if self.replace_box is not None:
            self.replace_box.deleteLater()
        self.replace_box = box
        box.open()

    def _on_export_failed(self, folder: str, message: str) -> None:
        if message.startswith("cancelled;"):
            self.log_message("info", f"Export cancelled; {folder} is as it was.")
            self.statusBar().showMessage("Export cancelled", 8000)
            return
        self.show_error("Export failed", message)

    def _on_exported(self, folder: str, checks: list[ExportCheck]) -> None:
        self.settings.setValue("export/last_folder", folder)
        dialog = self.export_progress
        if dialog is not None and dialog.seconds and self._mparams() > 0:
            for fmt, seconds in dialog.seconds.items():  # the next estimate uses this computer's speed
                self.settings.setValue(RATE_KEY + fmt, seconds / self._mparams())
        self.log_message("info", f"Exported model.safetensors, model.json and MODEL_CARD.md to {folder}")
        for c in checks:
            if c.refused:
                self.log_message("warning", f"{Path(c.path).name} was not kept: {c.error}")
            elif c.error:
                self.log_message(
                    "error", f"{Path(c.path).name} was not written: the {c.format} export failed: {c.error}"
                )
            else:
                self.log_message("info", f"Wrote {Path(c.path).name}: {export_summary(c)}")
        self.statusBar().showMessage(f"Exported to {folder}", 8000)
        if self._eval_prefers_trainer:
            self._use_trainer_for_try()  # "exported to FOLDER" in Try and Classify (same model)
        self._confirm_export(folder, checks)

    def _confirm_export(self, folder: str, checks: list[ExportCheck]) -> None:
        """A confirmation that says what was written, with Open folder (not modal: the window
        stays usable behind it)."""
        from PySide6.QtCore import QUrl
        from PySide6.QtGui import QDesktopServices

        kept = [c for c in checks if not c.error]
        left_out = [c for c in checks if c.error]
        files = ["model.safetensors", "model.json", "MODEL_CARD.md", *(Path(c.path).name for c in kept)]
        box = QMessageBox(
            QMessageBox.Icon.Warning if left_out else QMessageBox.Icon.Information,
            "Model exported" if not left_out else f"Model exported; {len(left_out)} format(s) not kept",
            f"Exported to {display_path(folder)}:\n" + ", ".join(files),
            QMessageBox.StandardButton.Ok,
            self,
        )
        if kept or left_out:
            box.setInformativeText(export_table_html(kept, left_out))
            if left_out:  # the whole converter text, for whoever wants it (the log has it too)
                box.setDetailedText("\n\n".join(f"{Path(c.path).name}: {c.error}" for c in left_out))
            # Room for the table's rows on one line each (QMessageBox wraps its labels narrow).
            box.setStyleSheet("QLabel#qt_msgbox_informativelabel { min-width: 600px; }")
        open_button = box.addButton("Open folder", QMessageBox.ButtonRole.ActionRole)
        open_button.clicked.connect(lambda: QDesktopServices.openUrl(QUrl.fromLocalFile(folder)))
        box.setWindowModality(Qt.WindowModality.NonModal)
        box.show()
        if self.export_box is not None:
            self.export_box.deleteLater()
        self.export_box = box


def export_table_html(kept: list[ExportCheck], refused: list[ExportCheck]) -> str:
    """The confirmation's table: one row per format kept (how it compares with the model in its
    runtime), then one plain line per format not kept: refused by the accuracy gate, with its
    reason, or failed, with the first line of the converter's message."""
    from html import escape

    from ftgui.core.bundle.card import size_text

    def cell(text: str, align: str = "right") -> str:
        return f"<td align='{align}' nowrap>{escape(text).replace(' ', '&nbsp;')}</td>"

    columns = (
        ("file", "left"),
        ("agreement", "right"),
        ("accuracy", "right"),
        ("ms&nbsp;per&nbsp;image", "right"),
    )
    head = "".join(f"<th align='{a}' nowrap>{h}</th>" for h, a in (*columns, ("size", "right")))
    rows = []
    for c in kept:
        name, size = cell(Path(c.path).name, "left"), cell(size_text(c.size_bytes) if c.size_bytes else "")
        if c.note:  # written, not run here (Core ML off macOS)
            rows.append(f"<tr>{name}<td colspan='3'>{escape(c.note)}</td>{size}</tr>")
            continue
        change = c.accuracy_change
        agreement = cell(f"{100 * (c.agreement or 0):.1f}%")
        accuracy = cell("" if change is None else f"{change:+.1f} pt")
        latency = cell(f"{c.latency_ms:.2f}" if c.latency_ms else "")
        rows.append(f"<tr>{name}{agreement}{accuracy}{latency}{size}</tr>")
    for c in refused:
        reason = escape(outcome_line(c))
        rows.append(
            f"<tr>{cell(Path(c.path).name, 'left')}<td colspan='4' style='color:#b35900'>{reason}</td></tr>"
        )
    return f"<table cellspacing='0' cellpadding='3'><tr>{head}</tr>{''.join(rows)}</table>"


def export_summary(c: ExportCheck) -> str:
    """One line of what an export format gave in its runtime (the card has the whole table)."""
    if c.note:
        return f"written ({c.converter}); {c.note}"
    change = c.accuracy_change
    return (
        f"{c.runtime}, {100 * (c.agreement or 0):.1f}% top-1 agreement, largest logit difference "
        f"{c.max_difference:.1e}"
        + ("" if change is None else f", accuracy {change:+.1f} points")
        + (f", {c.latency_ms:.2f} ms per image" if c.latency_ms else "")
    )
