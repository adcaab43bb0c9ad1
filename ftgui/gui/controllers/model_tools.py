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
from PySide6.QtWidgets import QFileDialog, QLabel, QMessageBox

from ftgui.core.base.text import display_path
from ftgui.gui.controllers.export_controls import ExportControls
from ftgui.gui.dialogs.lr_finder import LRFinderDialog
from ftgui.gui.jobs import Progress
from ftgui.gui.settings import dialog_folder, setting, window_words
from ftgui.gui.widgets.thumbs import thumbnail_png

if TYPE_CHECKING:
    from ftgui.core.bundle.predict import Predictor
    from ftgui.core.evaluation.metrics import Evaluation
    from ftgui.core.training.engine import Trainer
    from ftgui.core.training.lr_finder import LRFinderResult


if TYPE_CHECKING:
    # An evaluation and thumbnails of its worst images, or None when nothing could be read.
    EvaluationResult = tuple[Evaluation, dict[str, bytes]] | None


class ModelTools(ExportControls):
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
        """A window-modal message box that does not block the event loop (in the window's words:
        its controls, not the command line's options)."""
        text = window_words(display_path(text))
        box = QMessageBox(QMessageBox.Icon.Critical, title, text, QMessageBox.StandardButton.Ok, self)
        box.setWindowModality(Qt.WindowModality.WindowModal)
        box.open()
        if self.last_error_box is not None:
            self.last_error_box.deleteLater()  # one box kept, not one per message for hours
        self.last_error_box = box
        self.log_message("error", f"{title}: {text}")

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

        if use_trainer and trainer is not None and trainer.built is not None:
            shown = f"{trainer.built.arch} just trained ({trainer.epoch} epoch{'s' if trainer.epoch != 1 else ''})"
        else:
            meta = bundle.meta if bundle is not None else {}
            shown = f"{meta.get('arch', 'model')} exported to {bundle.folder if bundle else ''}"

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
        self._run_task(work, lambda result: self._on_evaluation_returned(result, shown), "Evaluating…")

    def _on_evaluation_returned(self, result: EvaluationResult, shown: str = "") -> None:
        if result is None:
            self.log_message("warning", "Nothing to evaluate: the validation images are not available.")
            return
        from ftgui.core.evaluation.metrics import headline

        ev, thumbs = result
        if self._eval_prefers_trainer and self.trainer is not None:
            self.trainer.evaluation = ev
        self.eval_panel.set_evaluation(ev, thumbs, shown)
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
        self.show_model(f"{meta['arch']} exported to {folder}")
        if not self.training and self.model_panel.arch != meta["arch"]:
            self.model_panel.set_arch(str(meta["arch"]))  # the model box shows the model shown
        self.plot.clear()  # its own curves, from model.json, not the last run's
        for record in meta.get("history") or []:
            if isinstance(record, dict) and isinstance(record.get("epoch"), int):
                self.plot.add_epoch(record["epoch"], record.get("val_loss"), record.get("val_accuracy"))
        self.eval_panel.clear_results(
            f"<b>{meta['arch']} exported to {display_path(folder)}</b><br>Press Evaluate to see where it is right and wrong."
        )
        self.try_panel.set_predictor(
            predictor, f"{meta['arch']} from {folder} ({len(predictor.classes)} classes)"
        )
        self.log_message(
            "info", f"Opened exported model {folder}: {meta['arch']}, classes {', '.join(predictor.classes)}"
        )
        self._update_actions()

    def show_model(self, text: str) -> None:
        """The status bar's lasting line: which model Evaluate, Try and Export use now."""
        label = self.findChild(QLabel, "shown_model")
        if label is None:
            label = QLabel()
            label.setObjectName("shown_model")
            self.statusBar().addPermanentWidget(label)
        label.setText(f"Model: {display_path(text)}")
        label.setToolTip(display_path(text))

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
        epochs = f"{t.epoch} epoch{'s' if t.epoch != 1 else ''}"
        self.try_panel.set_predictor(predictor, f"{t.built.arch} just trained ({epochs}, {where})")
        self.show_model(f"{t.built.arch} just trained ({t.config.strategy}, {epochs}, {where})")
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
