"""The window's training controls: the run's configuration from the panels, Start and Stop,
engine events rendered as plot, progress and log, training jobs, checkpoints, which actions
are enabled."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QFileDialog,
    QMessageBox,
)

from ftgui.core.base import report
from ftgui.core.base.text import display_path
from ftgui.gui.controllers.compare_controls import CompareControls
from ftgui.gui.dialogs.training_job import TrainingJobDialog
from ftgui.gui.settings import dialog_folder, setting

if TYPE_CHECKING:
    from ftgui.core.base.events import Event
    from ftgui.core.training.config import TrainConfig
    from ftgui.core.training.engine import Trainer
    from ftgui.core.workflows.job import ClusterSettings


START_TIP = "Start training (Ctrl+Enter)"
TORCH_BROKEN = "ftgui cannot train or open models until this installation is repaired (reinstall ftgui): "
WEIGHTS_WAIT = "Start waits for weights that can be had (see Weights)"
WEIGHTS_UNREACHABLE = (
    "The chosen weights are not on this computer and cannot be downloaded now (see the line under "
    "Weights): choose “none (random initialisation)” or a weights file, or put the file in its cache."
)


class TrainingControls(CompareControls):
    """Training and checkpoints; ``MainWindow`` builds the panels and actions they use."""

    # ------------------------------------------------------------ training

    def build_config(self) -> TrainConfig:
        from ftgui.core.training.config import TrainConfig

        scan = self.data_panel.scan
        assert scan is not None, "Start is refused without a dataset"
        return TrainConfig(
            data_dir=scan.root,
            val_fraction=self.data_panel.val_fraction.value(),
            seed=0,
            **self.model_panel.config_fields(),
            **self.train_panel.config_fields(),
        )

    def _on_export_job_triggered(self) -> None:
        from ftgui.core.compute.device import available_devices

        scan = self.data_panel.scan
        if scan is None:
            return
        last = setting(self.settings, "job/last_folder", "")
        folder = str(last) if last else str(Path(scan.root).parent / f"{Path(scan.root).name}-job")
        gpus = 1 if "cuda" in available_devices() else 0
        dialog = TrainingJobDialog(folder, gpus, self)
        if dialog.exec() == TrainingJobDialog.DialogCode.Accepted and dialog.folder.text().strip():
            self.export_training_job_to(dialog.folder.text().strip(), dialog.cluster())

    def export_training_job_to(self, folder: str, cluster: ClusterSettings | None = None) -> bool:
        """Write job.json, run.sh and slurm.sbatch for the current settings, in the background."""
        from ftgui.core.base.errors import FtguiError
        from ftgui.core.data.samples import split_samples
        from ftgui.core.workflows.job import write_job

        scan = self.data_panel.scan
        if self.busy or scan is None:
            return False
        try:
            config = self.build_config()
            config.validate()
        except FtguiError as exc:
            self.show_error("Cannot write the training job", str(exc))
            return False

        def write(job: object, progress: object) -> list[Path]:
            # The split Start would make: the same function, fraction and seed.
            split = split_samples(scan, config.val_fraction, config.seed)
            return write_job(folder, config, list(scan.classes), split, cluster)

        return self.jobs.start(
            "export training job",
            write,
            on_result=lambda paths: self._on_job_exported(folder, paths),
            on_error=lambda message: self.show_error("Cannot write the training job", message),
        )

    def _on_job_exported(self, folder: str, paths: list[Path]) -> None:
        self.settings.setValue("job/last_folder", folder)
        names = ", ".join(p.name for p in paths)
        self.log_message(
            "info",
            f"Wrote the training job to {folder} ({names}). On the machine that trains: "
            "bash run.sh DATA_DIR OUT_DIR (or sbatch slurm.sbatch DATA_DIR OUT_DIR); "
            "then open OUT_DIR with File → Open exported model…",
        )

    def _on_torch_failed(self, why: str) -> None:
        """PyTorch or torchvision would not import: a broken installation, said where it shows."""
        self.show_error("PyTorch would not load", TORCH_BROKEN + why)
        self.statusBar().showMessage("PyTorch would not load: ftgui cannot train (see the log)")
        self.model_panel.arch_combo.setItemText(0, "PyTorch would not load")  # was "Loading PyTorch…"

    def start_training(self) -> None:
        if self.busy:
            return
        if not self.ready:
            self.show_error("Not ready yet", "PyTorch is still loading; try again in a moment.")
            return
        if self.model_panel.weights_state == "offline" and not self.session.resuming:
            self.show_error("Weights out of reach", WEIGHTS_UNREACHABLE)  # Start is greyed; Ctrl+Enter too
            return
        mismatch = self.session.resume_mismatch(self.data_panel.scan)
        if mismatch is not None:  # the folder shown changed under the checkpoint's run
            self.show_error("Checkpoint of another folder", mismatch)
            return
        if self.session.resuming and self.trainer is not None:
            trainer = self.trainer
            trainer.config.epochs = max(self.train_panel.epochs.value(), trainer.epoch + 1)
            self.log_message(
                "info", f"Resuming after epoch {trainer.epoch} to {trainer.config.epochs} epochs"
            )
            scan = None
        else:
            if self.data_panel.scan is None:
                self.show_error(
                    "No dataset", "Drop an image folder onto the window (or use File → Open dataset…)."
                )
                return
            trainer = self.session.new_trainer(self.build_config())
            scan = self.data_panel.scan
            self.plot.clear()
        checkpoint = self.epoch_checkpoint_path(trainer.config)
        if checkpoint and not self._checkpoint_path_usable(checkpoint, trainer.config.arch):
            return
        board = self._board_folder(trainer.config.data_dir)
        self.try_panel.set_predictor(None, "training… (the Try tab works again when training ends)")
        if not self.session.resuming:
            self.eval_panel.clear_results(
                f"<b>{trainer.config.arch} training…</b><br>Its results show here when it ends."
            )
        self.show_model(f"{trainer.config.arch} training ({trainer.config.strategy})…")
        self.jobs.start(
            "train",
            lambda job, progress: self.session.train(trainer, scan, checkpoint, job.cancel, board),
            on_yield=self._on_worker_reported,
            on_error=lambda message: self.show_error("Training stopped", message),
            on_done=self._on_training_done,
        )
        self.train_panel.set_running(True)
        self.train_panel.show_idle("Preparing model…")
        self.statusBar().showMessage("Preparing model…")

    def epoch_checkpoint_path(self, config: TrainConfig) -> str | None:
        """Where 'Checkpoint every epoch' saves: the app's data folder, one file per dataset and model."""
        if not self.train_panel.checkpoint_every_epoch.isChecked():
            return None
        from ftgui.core.base.paths import data_dir

        name = Path(config.data_dir or "dataset").name or "dataset"
        return str(data_dir() / "checkpoints" / f"{name}-{config.arch}.pt")

    def _checkpoint_path_usable(self, path: str, arch: str, title: str = "Cannot save checkpoints") -> bool:
        """Check a checkpoint file's folder before any training time is spent (space, writable)."""
        from ftgui.core.base.errors import FtguiError
        from ftgui.core.base.files import bundle_bytes_needed, check_destination
        from ftgui.core.models import arch_info

        try:
            params = arch_info(arch).num_params or 0
            check_destination(
                path, "Checkpoint file", bundle_bytes_needed(params, params) if params else 0, kind="file"
            )
        except FtguiError as exc:
            self.show_error(title, str(exc))
            return False
        return True

    def stop_training(self) -> None:
        if self.training:
            self.jobs.stop()
            self.train_panel.stop_button.setEnabled(False)
            self.train_panel.show_idle("Stopping…")
            self.log_message("info", "Stop requested; finishing the current batch")

    def _on_worker_reported(self, e: Event) -> None:
        """Render one engine event: plot, progress, log (the sentences ftgui-train prints too)."""
        from ftgui.core.base import events as ev

        if isinstance(e, ev.BatchEnded):
            self.plot.add_batch(e.epoch, e.batch, e.batches, e.loss)
            epochs = self.trainer.config.epochs if self.trainer else e.epoch
            self.train_panel.show_batch(e.epoch, epochs, e.batch, e.batches, e.eta_s)
            self.speed_label.setText(report.batch_status(e))
            return
        if isinstance(e, ev.Preparing):
            self.train_panel.show_preparing(report.preparing(e), e.done, e.total)
            return
        line = report.describe(e)
        if line is not None:
            self.log_message(*line)
        status = report.short_status(e)
        if status is not None:
            self.train_panel.show_idle(status)
        if isinstance(e, ev.EpochEnded):
            self.plot.add_epoch(e.epoch, e.val_loss, e.val_accuracy)
            self._update_actions()
        elif isinstance(e, ev.RunStarted):
            self.statusBar().showMessage(f"Training on {e.device}…")
        elif isinstance(e, ev.Message) and e.text.startswith("Learning rate: "):
            self.train_panel.show_lr_used(e.text.removeprefix("Learning rate: ").rstrip("."))
        elif isinstance(e, ev.Failed):
            self.show_error("Training stopped", e.message.split("\n\n")[0])

    def _on_training_done(self) -> None:
        self.runs_panel.refresh()
        self.train_panel.set_running(False)
        self.speed_label.setText("")
        self.statusBar().showMessage("Idle", 5000)
        self._update_actions()
        if self.session.trained and not self._closing:
            self._use_trainer_for_try()
            self.run_evaluation()  # in the background; the Evaluate tab fills when it is done

    def _on_busy_changed(self, busy: bool) -> None:
        self.model_panel.setEnabled(not busy)
        self.data_panel.setEnabledForScan(not busy)
        if not busy:
            self.eval_panel.set_busy(False)
            if not self._closing:
                self.statusBar().showMessage("Idle", 3000)
        self._update_actions()

    def _update_actions(self) -> None:
        idle = not self.busy
        can_export = idle and self.trainer is not None and self.trainer.epoch >= 1
        self.export_action.setEnabled(can_export)
        self.save_ckpt_action.setEnabled(can_export)
        self.load_ckpt_action.setEnabled(idle and self.ready)
        self.open_bundle_action.setEnabled(idle and self.ready)
        self.export_job_action.setEnabled(idle and self.ready and self.data_panel.scan is not None)
        self.open_action.setEnabled(idle)
        self.undo_action.setText(self.file_fixes.undo_text())
        self.undo_action.setEnabled(idle and self.file_fixes.can_undo())
        self.check_action.setEnabled(idle and self.ready and self.data_panel.scan is not None)
        self.classify_action.setEnabled(self.ready)
        self.example_action.setEnabled(idle)
        has_data = self.data_panel.scan is not None or self.session.resuming
        # Weights known to be out of reach: Start would only fail (a timm model after the hub's
        # retries), so it waits, with the reason, for "none" or a file to be chosen.
        unreachable = self.model_panel.weights_state == "offline"
        start = self.train_panel.start_button
        start.setEnabled(idle and self.ready and has_data and (self.session.resuming or not unreachable))
        waiting = unreachable and not self.session.resuming
        start.setToolTip(WEIGHTS_UNREACHABLE if waiting else START_TIP)
        bar = self.train_panel.progress
        if idle and waiting:
            self.train_panel.show_idle(WEIGHTS_WAIT)  # said where Start is, not only in its tooltip
        elif bar.format() == WEIGHTS_WAIT:
            self.train_panel.show_idle("Idle")
        self.compare_panel.start_button.setEnabled(idle and self.ready and not unreachable)
        self.compare_panel.start_button.setToolTip(WEIGHTS_UNREACHABLE if unreachable else "")
        self.train_panel.find_lr_button.setEnabled(idle and self.ready and self.data_panel.scan is not None)
        has_model = (self.trainer is not None and self.trainer.epoch >= 1) or self.bundle is not None
        self.eval_panel.evaluate_button.setEnabled(idle and has_model)

    # ------------------------------------------------------------ checkpoints

    def _checkpoint_folder(self) -> str:
        """Where checkpoint dialogs open: the folder last used for one, else beside the dataset."""
        return dialog_folder(setting(self.settings, "checkpoint/last_folder", ""), self._dataset_parent())

    def _on_save_checkpoint_triggered(self) -> None:
        root = self.trainer.scan.root if self.trainer and self.trainer.scan else None
        name = (
            f"{Path(root).name}-{self.trainer.config.arch}.pt" if root and self.trainer else "checkpoint.pt"
        )
        start = self._checkpoint_folder()
        path, _ = QFileDialog.getSaveFileName(
            self, "Save training checkpoint", str(Path(start) / name), "ftgui checkpoint (*.pt)"
        )
        if path:
            self.save_checkpoint_to(path)

    def save_checkpoint_to(self, path: str) -> bool:
        """Save the trainer's checkpoint in the background; False if the file cannot be written."""
        trainer = self.trainer
        if self.busy or trainer is None or not trainer.prepared:
            return False
        if not self._checkpoint_path_usable(path, trainer.config.arch, "Could not save checkpoint"):
            return False
        return self.jobs.start(
            "save checkpoint",
            lambda job, progress: trainer.save_checkpoint(path),
            on_result=lambda _: self._on_checkpoint_saved(trainer.epoch, path),
            on_error=lambda message: self.show_error("Could not save checkpoint", message),
        )

    def _on_checkpoint_saved(self, epoch: int, path: str) -> None:
        self.settings.setValue("checkpoint/last_folder", str(Path(path).parent))  # the next opens there
        self.log_message("info", f"Saved training checkpoint (epoch {epoch}) to {path}")

    def _on_load_checkpoint_triggered(self) -> None:
        start = self._checkpoint_folder()
        path, _ = QFileDialog.getOpenFileName(
            self, "Load training checkpoint", start, "ftgui checkpoint (*.pt)"
        )
        if path:
            self.settings.setValue("checkpoint/last_folder", str(Path(path).parent))
            self.load_checkpoint_from(path)

    def load_checkpoint_from(self, path: str) -> bool:
        """Read and check a checkpoint in the background; Start then continues its run."""
        self.statusBar().showMessage("Loading checkpoint…")
        return self.jobs.start(
            "load checkpoint",
            lambda job, progress: self.session.load_checkpoint(path),
            on_result=self._on_checkpoint_loaded,
            on_error=lambda message: self.show_error("Cannot load checkpoint", message),
        )

    def _on_checkpoint_loaded(self, trainer: Trainer) -> None:
        self.plot.clear()
        for record in trainer.history:
            self.plot.add_epoch(int(record["epoch"]), record.get("val_loss"), record.get("val_accuracy"))
        self.train_panel.epochs.setValue(max(self.train_panel.epochs.value(), trainer.epoch + 1))
        root = trainer.config.data_dir or (trainer.scan.root if trainer.scan else "")
        self.setWindowTitle(f"ftgui — {display_path(Path(root).name)}")
        self.log_message(
            "info",
            f"Loaded checkpoint of {trainer.config.arch} after epoch {trainer.epoch} "
            f"({root}); press Start to continue training",
        )
        self._update_actions()
        mismatch = self.session.resume_mismatch(self.data_panel.scan)
        if mismatch is not None:
            self._ask_checkpoint_folder(trainer, mismatch)

    def _ask_checkpoint_folder(self, trainer: Trainer, mismatch: str) -> None:
        """The checkpoint is of another folder than the one shown: open its folder, or leave the
        checkpoint (the window never trains data other than what it shows)."""
        root = trainer.scan.root if trainer.scan else ""
        there = Path(root).is_dir()
        box = QMessageBox(QMessageBox.Icon.Question, "Checkpoint of another folder", display_path(mismatch),
                          QMessageBox.StandardButton.Cancel, self)  # fmt: skip
        open_button = box.addButton("Open its folder", QMessageBox.ButtonRole.AcceptRole)
        open_button.setEnabled(there)
        box.setInformativeText(
            "Open its folder to continue that run, or Cancel to leave the checkpoint and train the "
            "open folder afresh." + ("" if there else f" {display_path(root)} is not there any more.")
        )
        if there:
            box.setDefaultButton(open_button)

        def answered() -> None:
            if box.clickedButton() is open_button:
                self.data_panel.load_folder(root)  # the run resumes once its folder is shown
                return
            self.session.trainer, self.session.resuming = None, False
            self.plot.clear()
            self.log_message("info", "Left the checkpoint; Start trains the open folder afresh.")
            self._update_actions()

        box.finished.connect(lambda _: answered())
        box.setWindowModality(Qt.WindowModality.WindowModal)
        if self.checkpoint_box is not None:
            self.checkpoint_box.deleteLater()
        self.checkpoint_box = box
        box.open()
