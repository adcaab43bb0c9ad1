"""The window's model tools: export (with verified formats), evaluation, Try, learning-rate finder.

Each long job runs in a ``FunctionWorker`` thread, one at a time, while the window stays usable.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QFileDialog

from .dialogs import ExportDialog, LRFinderDialog, default_export_folder
from .worker import FunctionWorker, start_in_thread, thumbnail_png


class ModelToolsMixin:
    """Mixed into MainWindow; uses its panels, trainer, settings, log and error box."""

    # ------------------------------------------------------------ export and checkpoints

    def _on_export_triggered(self) -> None:
        last = self.settings.value("export/last_folder")
        root = self.trainer.scan.root if self.trainer and self.trainer.scan else None
        dialog = ExportDialog(default_export_folder(str(last) if last else None, root), self)
        if dialog.exec() == ExportDialog.DialogCode.Accepted and dialog.folder.text().strip():
            self.export_to(dialog.folder.text().strip(), dialog.formats())

    def export_to(self, folder: str, formats: tuple[str, ...] = ("safetensors",)) -> bool:
        """Write the bundle, MODEL_CARD.md and the chosen formats, each checked after writing."""
        from PySide6.QtGui import QGuiApplication

        from ..core.errors import FtguiError
        from ..core.export import check_output_folder, export_all, missing_format_packages
        from ..core.layers import count_params

        trainer = self.trainer
        try:
            missing = missing_format_packages(formats)
            if missing:
                raise FtguiError(missing)
            trainable, total = count_params(trainer.model)
            check_output_folder(
                folder, trainer.scan.root if trainer.scan else None, total, 0, False, "Export folder"
            )
        except FtguiError as exc:
            self.show_error("Cannot export there", str(exc))
            return False
        from ..core.files import OutputLock

        QGuiApplication.setOverrideCursor(Qt.CursorShape.WaitCursor)
        try:
            # The same lock as ftgui-train's: never export into a folder a training run writes to.
            with OutputLock(folder).acquire("ftgui window: export"):
                checks = export_all(trainer, folder, formats)
        except (FtguiError, OSError, RuntimeError) as exc:
            self.show_error("Export failed", str(exc))
            return False
        finally:
            QGuiApplication.restoreOverrideCursor()
        self.settings.setValue("export/last_folder", folder)
        self.log_message("info", f"Exported model.safetensors, model.json and MODEL_CARD.md to {folder}")
        for c in checks:
            self.log_message(
                "info",
                f"Wrote {Path(c.path).name}: checked with {c.runtime} at batch sizes 1 and 3, "
                f"largest difference {c.max_difference:.1e}",
            )
        self.statusBar().showMessage(f"Exported to {folder}", 8000)
        return True

    # ------------------------------------------------------------ evaluation, try, learning rate

    def _run_task(self, fn: Any, on_returned: Any, busy_text: str) -> None:
        worker = FunctionWorker(fn)
        worker.returned.connect(on_returned)
        worker.failed.connect(lambda message: self.show_error(busy_text.rstrip("…") + " failed", message))
        worker.progressed.connect(self.eval_panel.show_progress)
        self.task_worker = worker
        self.task_thread = start_in_thread(worker, self)
        self.task_thread.finished.connect(self._on_task_thread_finished)
        self.statusBar().showMessage(busy_text)
        self._set_inputs_enabled(False)
        self._update_actions()

    def _on_task_thread_finished(self) -> None:
        if self.task_thread is not None:
            self.task_thread.wait()
            self.task_thread.deleteLater()
        self.task_thread = None
        self.task_worker = None
        self.eval_panel.set_busy(False)
        self._set_inputs_enabled(True)
        self.statusBar().showMessage("Idle", 3000)
        self._update_actions()

    def run_evaluation(self) -> None:
        """Evaluate the model just trained (or the opened bundle) on the validation images."""
        if self.busy:
            return
        from ..core.evaluate import evaluate_bundle, evaluate_trainer

        trainer, bundle = self.trainer, self.bundle
        use_trainer = (
            trainer is not None and trainer.epoch >= 1 and (bundle is None or self._eval_prefers_trainer)
        )
        if not use_trainer and bundle is None:
            return

        def work(progress: Any, cancelled: Any) -> Any:
            if use_trainer:
                ev = evaluate_trainer(trainer, progress=progress, cancelled=cancelled)
            else:
                ev = evaluate_bundle(bundle, progress=progress, cancelled=cancelled)
            if ev is None:
                return None
            thumbs = {m.path: thumbnail_png(str(Path(ev.root) / m.path), 96) for m in ev.worst}
            return ev, {k: v for k, v in thumbs.items() if v}

        self.eval_panel.set_busy(True)
        self._run_task(work, self._on_evaluation_returned, "Evaluating…")

    def _on_evaluation_returned(self, result: Any) -> None:
        if result is None:
            self.log_message("warning", "Nothing to evaluate: the validation images are not available.")
            return
        from ..core.evaluate import headline

        ev, thumbs = result
        if self._eval_prefers_trainer and self.trainer is not None:
            self.trainer.evaluation = ev
        self.eval_panel.set_evaluation(ev, thumbs)
        wrong = [m for m in ev.per_class if m.recall is not None and m.recall < 1.0]
        self.log_message(
            "info",
            f"Evaluation: {headline(ev)}"
            + (f"; weakest class {min(wrong, key=lambda m: m.recall).name}" if wrong else ""),
        )

    def _on_open_bundle_triggered(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Open an exported model (folder with model.json)")
        if folder:
            self.open_bundle(folder)

    def open_bundle(self, folder: str) -> bool:
        from ..core.errors import FtguiError
        from ..core.predict import Predictor

        try:
            predictor = Predictor.load(folder)
        except FtguiError as exc:
            self.show_error("Cannot open this model", str(exc))
            return False
        self.bundle = predictor
        self._eval_prefers_trainer = False
        meta = predictor.meta
        self.try_panel.set_predictor(
            predictor, f"{meta['arch']} from {folder} ({len(predictor.classes)} classes)"
        )
        self.log_message(
            "info", f"Opened exported model {folder}: {meta['arch']}, classes {', '.join(predictor.classes)}"
        )
        self._update_actions()
        return True

    def _use_trainer_for_try(self) -> None:
        from ..core.predict import Predictor

        t = self.trainer
        if t is None or t.epoch < 1:
            return
        self._eval_prefers_trainer = True
        predictor = Predictor(t.model, list(t.classes), t.preprocess, {})
        self.try_panel.set_predictor(
            predictor, f"{t.built.arch} just trained ({t.epoch} epochs, not yet exported)"
        )

    def find_learning_rate(self) -> None:
        """Range test on the current settings; the result dialog offers the suggestion."""
        if self.busy or self.data_panel.scan is None or not self.ready:
            return
        from ..core.engine import Trainer
        from ..core.lr_finder import find_lr

        trainer = Trainer(self.build_config())
        scan = self.data_panel.scan

        def work(progress: Any, cancelled: Any) -> Any:
            trainer.prepare(scan=scan)
            return find_lr(trainer, progress=progress, cancelled=cancelled)

        self._run_task(work, self._on_lr_found, "Finding a learning rate…")

    def _on_lr_found(self, result: Any) -> None:
        self.log_message(
            "info",
            f"Learning-rate finder: {len(result.lrs)} steps; suggestion "
            + (f"{result.suggestion:.2e}" if result.suggestion else "none"),
        )
        dialog = LRFinderDialog(result, self)
        self.lr_dialog = dialog
        dialog.accepted.connect(lambda: self.use_learning_rate(result.suggestion))
        dialog.open()

    def use_learning_rate(self, lr: float | None) -> None:
        if lr:
            self.train_panel.set_lr_mode("set", float(f"{lr:.1e}"))
            self.log_message("info", f"Learning rate set to {self.train_panel.lr.value():g}")

    def shutdown_task(self) -> None:
        if self.task_worker is not None:
            self.task_worker.stop()
        if self.task_thread is not None:
            self.task_thread.quit()
            self.task_thread.wait()
            self._on_task_thread_finished()
