"""The window's model tools: export (with verified formats), evaluation, Try, learning-rate finder.

Each long job runs on the window's job runner (``jobs.py``), one at a time, while the window
stays usable; the quick checks before a job (folder, space, packages) answer at once.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QFileDialog, QMessageBox

from ftgui.core.base.text import display_path
from ftgui.gui.controllers.window_base import WindowBase
from ftgui.gui.dialogs.export import ExportDialog, default_export_folder
from ftgui.gui.dialogs.lr_finder import LRFinderDialog
from ftgui.gui.jobs import Progress
from ftgui.gui.settings import dialog_folder, setting
from ftgui.gui.widgets.thumbs import thumbnail_png

if TYPE_CHECKING:
    from ftgui.core.bundle.predict import Predictor
    from ftgui.core.deploy.measure import ExportCheck
    from ftgui.core.evaluation.metrics import Evaluation
    from ftgui.core.training.engine import Trainer
    from ftgui.core.training.lr_finder import LRFinderResult


if TYPE_CHECKING:
    # An evaluation and thumbnails of its worst images, or None when nothing could be read.
    EvaluationResult = tuple[Evaluation, dict[str, bytes]] | None


class ModelTools(WindowBase):
    """The window's model tools and messages; ``MainWindow`` extends it and builds what it uses."""

    @property
    def trainer(self) -> Trainer | None:
        """The model trained (or being trained) here, or loaded from a checkpoint."""
        return self.session.trainer

    @property
    def bundle(self) -> Predictor | None:
        """An exported model opened from disk (Try, Evaluate)."""
        return self.session.bundle

    @property
    def training(self) -> bool:
        return self.session.training

    @property
    def busy(self) -> bool:
        """Training, evaluating, exporting, loading or finding a learning rate: one job at a time."""
        return self.session.busy

    def log_message(self, level: str, text: str) -> None:
        stamp = time.strftime("%H:%M:%S")
        prefix = {"warning": "⚠ ", "error": "✖ "}.get(level, "")
        self.log.appendPlainText(f"{stamp}  {prefix}{display_path(text)}")

    def show_error(self, title: str, text: str) -> None:
        """A window-modal message box that does not block the event loop."""
        text = display_path(text)
        box = QMessageBox(QMessageBox.Icon.Critical, title, text, QMessageBox.StandardButton.Ok, self)
        box.setWindowModality(Qt.WindowModality.WindowModal)
        box.open()
        if self.last_error_box is not None:
            self.last_error_box.deleteLater()  # one box kept, not one per message for hours
        self.last_error_box = box
        self.log_message("error", f"{title}: {text}")

    # ------------------------------------------------------------ export and checkpoints

    def _on_export_triggered(self) -> None:
        last = setting(self.settings, "export/last_folder", "")
        root = self.trainer.scan.root if self.trainer and self.trainer.scan else None
        dialog = ExportDialog(default_export_folder(str(last) if last else None, root), self)
        if dialog.exec() == ExportDialog.DialogCode.Accepted and dialog.folder.text().strip():
            self.export_to(dialog.folder.text().strip(), dialog.formats())

    def export_to(self, folder: str, formats: tuple[str, ...] = ("safetensors",)) -> bool:
        """Write the bundle, MODEL_CARD.md and the chosen formats in the background, each checked
        after writing. False (with a message) when the folder or the packages rule it out."""
        from ftgui.core.base.errors import FtguiError

        if self.busy:
            return False
        try:
            lock = self.session.check_export(folder, formats)
        except FtguiError as exc:
            self.show_error("Cannot export there", str(exc))
            return False
        self.statusBar().showMessage(f"Exporting to {folder}…")
        started = self.jobs.start(
            "export",
            lambda job, progress: self.session.export(folder, formats, lock),
            on_result=lambda checks: self._on_exported(folder, checks),
            on_error=lambda message: self.show_error("Export failed", message),
        )
        if not started:
            lock.release()
        return started

    def _on_exported(self, folder: str, checks: list[ExportCheck]) -> None:
        self.settings.setValue("export/last_folder", folder)
        self.log_message("info", f"Exported model.safetensors, model.json and MODEL_CARD.md to {folder}")
        failed = [c for c in checks if c.error and not c.refused]
        refused = [c for c in checks if c.refused]
        for c in failed:
            self.log_message(
                "error", f"{Path(c.path).name} was not written: the {c.format} export failed: {c.error}"
            )
        for c in refused:
            self.log_message("warning", f"{Path(c.path).name} was not kept: {c.error}")
        if failed:
            self.show_error(
                "Export incomplete",
                "The model was exported, but "
                + "; ".join(f"the {c.format} export failed: {c.error}" for c in failed)
                + "".join(f"; {Path(c.path).name} was not kept: {c.error}" for c in refused)
                + ".",
            )
        for c in checks:
            if c.error:
                continue
            self.log_message("info", f"Wrote {Path(c.path).name}: {export_summary(c)}")
        self.statusBar().showMessage(f"Exported to {folder}", 8000)
        if self._eval_prefers_trainer:
            self._use_trainer_for_try()  # "exported to FOLDER" in Try and Classify (same model)
        if not failed:
            self._confirm_export(folder, checks)

    def _confirm_export(self, folder: str, checks: list[ExportCheck]) -> None:
        """A confirmation that says what was written, with Open folder (not modal: the window
        stays usable behind it)."""
        from PySide6.QtCore import QUrl
        from PySide6.QtGui import QDesktopServices

        kept = [c for c in checks if not c.error]
        refused = [c for c in checks if c.refused]
        files = ["model.safetensors", "model.json", "MODEL_CARD.md", *(Path(c.path).name for c in kept)]
        box = QMessageBox(
            QMessageBox.Icon.Warning if refused else QMessageBox.Icon.Information,
            "Model exported",
            f"Exported to {display_path(folder)}:\n" + ", ".join(files),
            QMessageBox.StandardButton.Ok,
            self,
        )
        if kept or refused:
            box.setInformativeText(export_table_html(kept, refused))
            # Room for the table's rows on one line each (QMessageBox wraps its labels narrow).
            box.setStyleSheet("QLabel#qt_msgbox_informativelabel { min-width: 600px; }")
        open_button = box.addButton("Open folder", QMessageBox.ButtonRole.ActionRole)
        open_button.clicked.connect(lambda: QDesktopServices.openUrl(QUrl.fromLocalFile(folder)))
        box.setWindowModality(Qt.WindowModality.NonModal)
        box.show()
        if self.export_box is not None:
            self.export_box.deleteLater()
        self.export_box = box

    # ------------------------------------------------------------ evaluation, try, learning rate

    def _run_task(
        self,
        fn: Callable[[Progress, Callable[[], bool]], Any],
        on_returned: Callable[[Any], None],
        busy_text: str,
    ) -> None:
        self.statusBar().showMessage(busy_text)
        self.jobs.start(
            busy_text.rstrip("…"),
            lambda job, progress: fn(progress, lambda: job.cancel.cancelled),
            on_result=on_returned,
            on_error=lambda message: self.show_error(busy_text.rstrip("…") + " failed", message),
        )

    def run_evaluation(self) -> None:
        """Evaluate the model just trained (or the opened bundle) on the validation images."""
        if self.busy:
            return
        from ftgui.core.bundle.evaluate import evaluate_bundle
        from ftgui.core.training.evaluation import evaluate_trainer

        trainer, bundle = self.trainer, self.bundle
        use_trainer = (
            trainer is not None and trainer.epoch >= 1 and (bundle is None or self._eval_prefers_trainer)
        )
        if not use_trainer and bundle is None:
            return

        def work(progress: Progress, cancelled: Callable[[], bool]) -> EvaluationResult:
            if use_trainer and trainer is not None:
                ev = evaluate_trainer(trainer, progress=progress, cancelled=cancelled)
            elif bundle is not None:
                ev = evaluate_bundle(bundle, progress=progress, cancelled=cancelled)
            if ev is None:
                return None
            thumbs = {m.path: thumbnail_png(str(Path(ev.root) / m.path), 96) for m in ev.worst}
            return ev, {k: v for k, v in thumbs.items() if v}

        self.eval_panel.set_busy(True)
        self._run_task(work, self._on_evaluation_returned, "Evaluating…")

    def _on_evaluation_returned(self, result: EvaluationResult) -> None:
        if result is None:
            self.log_message("warning", "Nothing to evaluate: the validation images are not available.")
            return
        from ftgui.core.evaluation.metrics import headline

        ev, thumbs = result
        if self._eval_prefers_trainer and self.trainer is not None:
            self.trainer.evaluation = ev
        self.eval_panel.set_evaluation(ev, thumbs)
        wrong = [m for m in ev.per_class if m.recall is not None and m.recall < 1.0]
        self.log_message(
            "info",
            f"Evaluation: {headline(ev)}"
            + (f"; weakest class {min(wrong, key=lambda m: m.recall or 0.0).name}" if wrong else ""),
        )

    def _on_open_bundle_triggered(self) -> None:
        start = dialog_folder(setting(self.settings, "export/last_folder", ""), self._dataset_parent())
        folder = QFileDialog.getExistingDirectory(
            self, "Open an exported model (folder with model.json)", start
        )
        if folder:
            self.open_bundle(folder)

    def open_bundle(self, folder: str) -> bool:
        """Load an exported model in the background, for Try and Evaluate."""
        self.statusBar().showMessage("Opening the exported model…")
        return self.jobs.start(
            "open model",
            lambda job, progress: self.session.open_bundle(folder),
            on_result=lambda predictor: self._on_bundle_opened(folder, predictor),
            on_error=lambda message: self.show_error("Cannot open this model", message),
        )

    def _on_bundle_opened(self, folder: str, predictor: Predictor) -> None:
        self._eval_prefers_trainer = False
        meta = predictor.meta
        self.try_panel.set_predictor(
            predictor, f"{meta['arch']} from {folder} ({len(predictor.classes)} classes)"
        )
        self.log_message(
            "info", f"Opened exported model {folder}: {meta['arch']}, classes {', '.join(predictor.classes)}"
        )
        self._update_actions()

    def _dataset_parent(self) -> str | None:
        """The folder holding the open dataset (where file dialogs start), if one is open."""
        scan = self.data_panel.scan
        return str(Path(scan.root).parent) if scan is not None else None

    def _current_predictor(self) -> tuple[Predictor | None, str]:
        """Try's model and its description (Classify a folder uses the same)."""
        return self.try_panel.predictor, self.try_panel.model_label.text().removeprefix("Model: ")

    def _use_trainer_for_try(self) -> None:
        predictor = self.session.trainer_predictor()
        if predictor is None:
            return
        self._eval_prefers_trainer = True
        t = self.trainer
        assert t is not None and t.built is not None  # a predictor exists only for a trained model
        folder = self.session.exported_to()
        where = f"exported to {folder}" if folder else "not yet exported"
        self.try_panel.set_predictor(predictor, f"{t.built.arch} just trained ({t.epoch} epochs, {where})")
        if self.classify_dialog is not None:
            self.classify_dialog.set_predictor(*self._current_predictor())

    def find_learning_rate(self) -> None:
        """Range test on the current settings; the result dialog offers the suggestion."""
        if self.busy or self.data_panel.scan is None or not self.ready:
            return
        from ftgui.core.training.engine import Trainer

        trainer = Trainer(self.build_config())
        scan = self.data_panel.scan

        def work(progress: Progress, cancelled: Callable[[], bool]) -> LRFinderResult:
            trainer.prepare(scan=scan)
            return trainer.find_lr(progress=progress, cancelled=cancelled)

        self._run_task(work, self._on_lr_found, "Finding a learning rate…")

    def _on_lr_found(self, result: LRFinderResult) -> None:
        self.log_message(
            "info",
            f"Learning-rate finder: {len(result.lrs)} steps; steepest fall "
            + (f"{result.suggestion:.2e}" if result.suggestion else "none"),
        )
        dialog = LRFinderDialog(result, self, self.train_panel.strategy)
        if self.lr_dialog is not None:
            self.lr_dialog.deleteLater()
        self.lr_dialog = dialog
        dialog.accepted.connect(lambda: self.use_learning_rate(dialog.chosen_lr))
        dialog.open()

    def use_learning_rate(self, lr: float | None) -> None:
        if lr:
            self.train_panel.set_lr_mode("set", float(f"{lr:.1e}"))
            from ftgui.gui.widgets.rate_box import format_rate

            self.log_message("info", f"Learning rate set to {format_rate(self.train_panel.lr.value())}")


def export_table_html(kept: list[ExportCheck], refused: list[ExportCheck]) -> str:
    """The confirmation's table: one row per format kept (how it compares with the model in its
    runtime), then one per INT8 format the accuracy gate refused, with its reason."""
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
        reason = escape(c.error.removeprefix("refused: "))
        rows.append(
            f"<tr>{cell(Path(c.path).name, 'left')}<td colspan='4' style='color:#b35900'>not kept: {reason}</td></tr>"
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
