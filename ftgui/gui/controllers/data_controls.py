"""The window's data controls: opening a folder (and the example), Check data, Classify a folder,
heat maps of the worst mistakes, and the user's file changes with Undo."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import QTimer

from ftgui.core.base.text import display_path
from ftgui.gui.controllers.model_tools import ModelTools
from ftgui.gui.dialogs.check_data import CheckDataDialog
from ftgui.gui.dialogs.classify_folder import ClassifyFolderDialog

if TYPE_CHECKING:
    from ftgui.core.bundle.predict import Predictor
    from ftgui.core.bundle.trained import TrainedModel
    from ftgui.core.data.samples import ScanResult


class DataControls(ModelTools):
    """What the window does with the open dataset; ``MainWindow`` builds the widgets it uses."""

    # ------------------------------------------------------------ data

    def _on_data_scanned(self, scan: ScanResult) -> None:
        self.setWindowTitle(f"ftgui — {display_path(Path(scan.root).name)}")
        self.log_message(
            "info", f"Opened {scan.root}: {len(scan.samples)} images in {len(scan.classes)} classes"
        )
        self.statusBar().showMessage(
            f"Opened: {len(scan.samples):,} images in {len(scan.classes)} classes", 5000
        )
        if self.session.resume_mismatch(scan) is not None:
            self.session.resuming = False  # another folder: Start trains it afresh
        self._undo_example_fallback(scan.root)
        self.try_panel.start_folder = scan.root
        if self.classify_dialog is not None:
            self.classify_dialog.start_folder = self._dataset_parent()
        self.runs_panel.set_dataset(scan.root, list(scan.classes))
        if self.model_panel.populated:
            self.model_panel.set_num_classes(len(scan.classes))
        self.settings.setValue("data/last_folder", scan.root)
        self._update_actions()
        QTimer.singleShot(0, self._share_train_view)

    def _share_train_view(self) -> None:
        """Room in the class table for every class up to 6 (it scrolls beyond), the plot the
        rest (at 1280 x 800 the table showed 3 1/2 of 5 classes)."""
        view, sizes = self.data_panel.table, self.train_view.sizes()
        total = sum(sizes)
        if total <= 0 or len(sizes) != 2:
            return
        fixed = sizes[0] - view.viewport().height()  # everything of the panel but the rows
        rows = min(max(view.model().rowCount(), 2), 6) * view.verticalHeader().defaultSectionSize()
        data = min(fixed + rows + 4, total - 300)  # the plot keeps 300 px
        self.train_view.setSizes([data, total - data])

    def _on_data_verified(self, scan: ScanResult) -> None:
        """Every header checked: a class whose images all turned out unusable is gone."""
        from ftgui.core.workflows.repeats import default_repeats

        if self.model_panel.populated and not self.training:
            self.model_panel.set_num_classes(len(scan.classes))
        if not self.busy:  # more folds for a small set, where one split says least
            self.compare_panel.repeats.setValue(1 if scan.presplit else default_repeats(len(scan.samples)))
            self.compare_panel.refresh_estimate()
        self._update_actions()

    def open_example(self) -> None:
        """Open the generated example folder, with settings that work offline on the default model."""
        if self.training:
            return
        folder = self.data_panel.open_example()
        self.log_message("info", f"Example dataset: 4 classes of generated shapes in {folder}")
        if not self.ready:
            return
        panel = self.model_panel
        if panel.weights != "none" and panel.weights_state not in ("cached", "download"):
            before = self._example_fields()
            panel.set_weights("none")
            panel.set_strategy("full")
            self.train_panel.image_size.setValue(64)
            self.train_panel.epochs.setValue(max(self.train_panel.epochs.value(), 3))
            # the user's own settings come back with the next folder (unless changed meanwhile)
            self._example_fallback = (folder, before, self._example_fields())
            self.log_message(
                "info",
                f"Pretrained weights for {panel.arch} are not available offline, so the example trains "
                "it from scratch (full fine-tuning at 64 px), which these simple pictures allow.",
            )

    def _example_fields(self) -> tuple[str, object, int, int]:
        panel, train = self.model_panel, self.train_panel
        return panel.weights, panel.plan, train.image_size.value(), train.epochs.value()

    def _undo_example_fallback(self, root: str) -> None:
        """Another folder opened after the example: the settings the example's fallback changed
        go back to the user's own, where the user has not changed them since."""
        if self._example_fallback is None or Path(root) == Path(self._example_fallback[0]):
            return
        _, before, applied = self._example_fallback
        self._example_fallback = None
        if self._example_fields() != applied or self.training:
            return  # changed by the user meanwhile: theirs now
        weights, plan, size, epochs = before
        self.model_panel.set_weights(weights)
        self.model_panel.set_plan(plan)  # type: ignore[arg-type]
        self.train_panel.image_size.setValue(size)
        self.train_panel.epochs.setValue(epochs)
        self.log_message(
            "info", "Back to the settings from before the example dataset (weights, strategy, image size)."
        )

    # ------------------------------------------------------------ checking and fixing the data

    def open_check_data(self) -> CheckDataDialog:
        """The Check data window (one per main window); checks the open dataset when shown."""
        if self.check_dialog is None:
            self.check_dialog = CheckDataDialog(
                self.jobs, self.file_fixes, self.build_config, self, self._trained_on_open_folder
            )
        dialog = self.check_dialog
        dialog.show()
        dialog.raise_()
        if dialog.report is None and self.data_panel.scan is not None and not self.busy:
            dialog.start()
        return dialog

    def _trained_on_open_folder(self) -> TrainedModel | None:
        """The model just trained, when it was trained on the folder the window shows."""
        t, scan = self.trainer, self.data_panel.scan
        if t is None or t.epoch < 1 or t.built is None or t.scan is None or scan is None or self.training:
            return None
        same = Path(t.scan.root).resolve() == Path(scan.root).resolve() and list(t.scan.classes) == list(
            scan.classes
        )
        return t.trained() if same else None

    def open_classify_folder(self) -> ClassifyFolderDialog:
        if self.classify_dialog is None:
            self.classify_dialog = ClassifyFolderDialog(self.jobs, self)
            self.classify_dialog.start_folder = self._dataset_parent()
        self.classify_dialog.set_predictor(*self._current_predictor())
        self.classify_dialog.show()
        self.classify_dialog.raise_()
        return self.classify_dialog

    def _evaluated_predictor(self) -> Predictor | None:
        """The model the Evaluate tab shows: the one just trained, or the opened bundle."""
        if self._eval_prefers_trainer or self.bundle is None:
            return self.session.trainer_predictor() or self.bundle
        return self.bundle

    def show_mistake_heat_maps(self) -> bool:
        """Heat maps of the worst mistakes (predicted and true class), in the background."""
        ev, predictor = self.eval_panel.evaluation, self._evaluated_predictor()
        if ev is None or predictor is None:
            return False
        from ftgui.gui.widgets.thumbs import heat_map_pictures

        mistakes = list(ev.worst)
        started = self.jobs.start(
            "heat maps",
            lambda job, progress: heat_map_pictures(predictor, ev.root, mistakes, job.cancel, progress),
            on_result=lambda result: self.eval_panel.show_heat_maps(*result),
            on_error=lambda message: self.eval_panel.show_heat_maps({}, message.splitlines()[0]),
        )
        if started:  # its own progress; unticking Heat maps stops it
            self.eval_panel.set_busy(True, "Heat maps of the mistakes: %v of %m (untick Heat maps to stop)")
        return started

    def stop_heat_maps(self) -> None:
        job = self.session.job
        if job is not None and job.name == "heat maps":
            self.jobs.stop()

    def undo_file_change(self) -> None:
        change = self.file_fixes.undo(self)
        if change is not None:
            self.log_message("info", f"Undone: {change.describe()} ({change.root})")

    def _on_files_changed(self, root: str) -> None:
        last = self.file_fixes.fixes.last()
        if last is not None and last.root == root:
            self.log_message("info", f"{last.describe()} in {root} (Edit → Undo puts it back)")
        scan = self.data_panel.scan
        if scan is not None and Path(scan.root).resolve() == Path(root) and not self.training:
            self.data_panel.load_folder(scan.root)  # the class table and counts, at once
        self._update_actions()

    def _on_data_scan_failed(self, message: str) -> None:
        self.show_error("Cannot use this folder", message)
