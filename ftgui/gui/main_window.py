"""The ftgui main window: model, data, training and live plot, around one background trainer."""

from __future__ import annotations

import gc
import sys
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import QSettings, Qt, QTimer, Signal
from PySide6.QtGui import QAction, QCloseEvent, QDragEnterEvent, QDropEvent, QIcon, QKeySequence
from PySide6.QtWidgets import (
    QApplication,
    QFileDialog,
    QLabel,
    QMessageBox,
    QPlainTextEdit,
    QSplitter,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from ftgui import __version__
from ftgui.core.base import report
from ftgui.core.base.text import display_path
from ftgui.core.workflows.session import Session
from ftgui.gui.check_dialog import CheckDataDialog
from ftgui.gui.classify_dialog import ClassifyFolderDialog
from ftgui.gui.compare_panel import ComparePanel
from ftgui.gui.data_panel import DataPanel, folder_from_mime
from ftgui.gui.dialogs import LRFinderDialog, TrainingJobDialog
from ftgui.gui.eval_panel import EvaluationPanel
from ftgui.gui.fix_actions import FileFixes
from ftgui.gui.jobs import JobRunner
from ftgui.gui.model_panel import DEFAULT_ARCH, ModelPanel
from ftgui.gui.model_tools import ModelTools
from ftgui.gui.plot import TrainingPlot
from ftgui.gui.runs_panel import RunsPanel
from ftgui.gui.settings import setting
from ftgui.gui.train_panel import TrainPanel
from ftgui.gui.try_panel import TryPanel

if TYPE_CHECKING:
    from ftgui.core.base.events import Event, Message
    from ftgui.core.bundle.predict import Predictor
    from ftgui.core.data.samples import ScanResult
    from ftgui.core.models.freeze import FreezePlan
    from ftgui.core.training.config import TrainConfig
    from ftgui.core.training.engine import Trainer
    from ftgui.core.workflows.compare import CandidateEvent, Comparison, ComparisonFinished
    from ftgui.core.workflows.job import ClusterSettings
    from ftgui.core.workflows.runs import RunRecord


def _resources() -> Path:
    """resources/ of a source checkout, or the copy a wheel installs under <prefix>/share/ftgui."""
    for folder in (Path(__file__).resolve().parents[2] / "resources", Path(sys.prefix) / "share" / "ftgui"):
        if (folder / "ftgui.desktop").is_file():
            return folder
    return Path(__file__).resolve().parents[2] / "resources"


RESOURCES = _resources()


def app_icon() -> QIcon:
    for name in ("ftgui.svg", "ftgui.png"):
        path = RESOURCES / name
        if path.is_file():
            return QIcon(str(path))
    return QIcon()


class MainWindow(ModelTools):
    torch_ready = Signal()

    def __init__(self, settings: QSettings | None = None, initial_folder: str | None = None) -> None:
        super().__init__()
        self.settings = settings or QSettings("ftgui", "ftgui")
        self.initial_folder = initial_folder
        self.ready = False
        self.last_error_box: QMessageBox | None = None
        self.lr_dialog: LRFinderDialog | None = None
        self._eval_prefers_trainer = True
        self._closing = False
        self.setWindowTitle("ftgui")
        self.setWindowIcon(app_icon())
        # The trainer, a loaded checkpoint, an opened bundle and the running job: the window
        # renders them and runs the session's long operations through one job runner.
        self.setAcceptDrops(True)

        self.session = Session()
        self.jobs = JobRunner(self.session, self)
        self.model_panel = ModelPanel(self.jobs)
        self.data_panel = DataPanel()
        self.train_panel = TrainPanel()
        self.plot = TrainingPlot()
        self.log = QPlainTextEdit()
        self.log.setReadOnly(True)
        self.log.setMaximumBlockCount(5000)

        train_view = QSplitter(Qt.Orientation.Vertical)
        train_view.addWidget(self.data_panel)
        train_view.addWidget(self.plot)
        train_view.setStretchFactor(0, 1)
        train_view.setStretchFactor(1, 1)
        self.eval_panel = EvaluationPanel()
        self.try_panel = TryPanel(self.jobs)
        center = QTabWidget()
        center.addTab(train_view, "Data && training")
        center.addTab(self.eval_panel, "Evaluate")
        center.addTab(self.try_panel, "Try")
        self.compare_panel = ComparePanel()
        center.addTab(self.compare_panel, "Compare")
        self.runs_panel = RunsPanel()
        center.addTab(self.runs_panel, "Runs")
        self.comparison: Comparison | None = None
        self.tabs = center
        log_box = QWidget()
        log_layout = QVBoxLayout(log_box)
        log_layout.setContentsMargins(8, 0, 8, 8)
        log_layout.addWidget(QLabel("<b>Log</b>"))
        log_layout.addWidget(self.log)
        right = QSplitter(Qt.Orientation.Vertical)
        right.addWidget(self.train_panel)
        right.addWidget(log_box)
        right.setStretchFactor(0, 0)
        right.setStretchFactor(1, 1)
        main = QSplitter(Qt.Orientation.Horizontal)
        main.addWidget(self.model_panel)
        main.addWidget(center)
        main.addWidget(right)
        main.setStretchFactor(0, 3)
        main.setStretchFactor(1, 5)
        main.setStretchFactor(2, 2)
        main.setSizes([390, 590, 300])
        self.setCentralWidget(main)
        self.speed_label = QLabel("")
        self.statusBar().addPermanentWidget(self.speed_label)
        self.statusBar().showMessage("Loading PyTorch…")

        self.file_fixes = FileFixes(self.settings, self)
        self.file_fixes.changed.connect(self._on_files_changed)
        self.eval_panel.fixes = self.file_fixes
        self.check_dialog: CheckDataDialog | None = None
        self.classify_dialog: ClassifyFolderDialog | None = None
        self._make_menus()
        self.data_panel.scanned.connect(self._on_data_scanned)
        self.data_panel.verified.connect(self._on_data_verified)
        self.data_panel.scan_failed.connect(self._on_data_scan_failed)
        self.data_panel.logged.connect(self.log_message)
        self.model_panel.error_raised.connect(self.show_error)
        self.model_panel.changed.connect(self._on_model_panel_changed)
        self.train_panel.start_requested.connect(self.start_training)
        self.train_panel.stop_requested.connect(self.stop_training)
        self.train_panel.find_lr_requested.connect(self.find_learning_rate)
        self.eval_panel.evaluate_requested.connect(self.run_evaluation)
        self.eval_panel.heat_maps_requested.connect(self.show_mistake_heat_maps)
        self.compare_panel.start_requested.connect(self.start_comparison)
        self.compare_panel.stop_requested.connect(self.jobs.stop)
        self.compare_panel.use_requested.connect(self.use_candidate)
        self.runs_panel.reopen_requested.connect(self.reopen_run)
        self.try_panel.open_bundle_requested.connect(self._on_open_bundle_triggered)
        self.torch_ready.connect(self._on_torch_ready)
        self.jobs.busy_changed.connect(self._on_busy_changed)
        self.jobs.progressed.connect(self.eval_panel.show_progress)
        self._restore_settings()
        self._update_actions()

    # ------------------------------------------------------------ set-up

    def _make_menus(self) -> None:
        file_menu = self.menuBar().addMenu("&File")
        self.open_action = QAction(
            "&Open dataset…", self, shortcut=QKeySequence(QKeySequence.StandardKey.Open)
        )
        self.example_action = QAction("Open &example dataset", self)
        self.export_action = QAction("&Export model…", self, shortcut=QKeySequence("Ctrl+E"))
        self.save_ckpt_action = QAction(
            "&Save training checkpoint…", self, shortcut=QKeySequence(QKeySequence.StandardKey.Save)
        )
        self.load_ckpt_action = QAction("&Load training checkpoint…", self)
        self.open_bundle_action = QAction("Open exported &model…", self)
        self.export_job_action = QAction("Export training &job…", self)
        self.export_job_action.setToolTip("Train on another machine or a cluster (torchrun, SLURM)")
        self.quit_action = QAction("&Quit", self, shortcut=QKeySequence("Ctrl+Q"))
        for action in (
            self.open_action,
            self.example_action,
            None,
            self.export_action,
            self.save_ckpt_action,
            self.load_ckpt_action,
            self.open_bundle_action,
            None,
            self.export_job_action,
            None,
            self.quit_action,
        ):
            if action is None:
                file_menu.addSeparator()
            else:
                file_menu.addAction(action)
        edit_menu = self.menuBar().addMenu("&Edit")
        self.undo_action = QAction("&Undo", self, shortcut=QKeySequence(QKeySequence.StandardKey.Undo))
        self.undo_action.setToolTip("Undo the latest Move to class or Exclude (also from an earlier session)")
        edit_menu.addAction(self.undo_action)
        data_menu = self.menuBar().addMenu("&Data")
        self.check_action = QAction("&Check data…", self, shortcut=QKeySequence("Ctrl+Shift+K"))
        self.check_action.setToolTip("Find likely wrong labels, duplicates, leaks, outliers and rare classes")
        self.classify_action = QAction("C&lassify a folder…", self)
        self.classify_action.setToolTip("Sort other images with the trained or opened model")
        data_menu.addAction(self.check_action)
        data_menu.addAction(self.classify_action)
        help_menu = self.menuBar().addMenu("&Help")
        self.about_action = QAction("&About ftgui", self)
        help_menu.addAction(self.about_action)
        self.open_action.triggered.connect(self.data_panel.browse)
        self.example_action.triggered.connect(self.open_example)
        self.data_panel.example_button.clicked.connect(self.open_example)
        self.export_action.triggered.connect(self._on_export_triggered)
        self.save_ckpt_action.triggered.connect(self._on_save_checkpoint_triggered)
        self.load_ckpt_action.triggered.connect(self._on_load_checkpoint_triggered)
        self.open_bundle_action.triggered.connect(self._on_open_bundle_triggered)
        self.export_job_action.triggered.connect(self._on_export_job_triggered)
        self.quit_action.triggered.connect(self.close)
        self.about_action.triggered.connect(self.show_about)
        self.undo_action.triggered.connect(self.undo_file_change)
        self.check_action.triggered.connect(self.open_check_data)
        self.classify_action.triggered.connect(self.open_classify_folder)

    def start_background_init(self) -> None:
        """Import torch off the GUI thread, so the window is up and responsive meanwhile."""

        def load() -> None:
            import torch  # noqa: F401
            import torchvision  # noqa: F401

            self.torch_ready.emit()

        threading.Thread(target=load, name="ftgui-import-torch", daemon=True).start()
        folder = self.initial_folder or setting(self.settings, "data/last_folder", "")
        if folder and (self.initial_folder or Path(folder).is_dir()):
            # The folder given on the command line, else the one open when ftgui last closed.
            self.data_panel.load_folder(folder)

    def _on_torch_ready(self) -> None:
        from ftgui.core.compute.device import available_devices

        self.train_panel.set_devices(available_devices())
        self.train_panel.load_settings(self.settings)
        self.model_panel.image_size = self.train_panel.image_size.value() or None
        self.model_panel.populate(setting(self.settings, "model/arch", DEFAULT_ARCH))
        self.model_panel.set_plan(self._saved_plan())
        self.train_panel.image_size.valueChanged.connect(lambda v: self.model_panel.set_image_size(v or None))
        self.train_panel.set_strategy(self.model_panel.strategy_text())
        if self.data_panel.scan is not None:
            self.model_panel.set_num_classes(len(self.data_panel.scan.classes))
        self.ready = True
        # PyTorch, Qt and the window are several hundred thousand objects that live as long as
        # the app. Left to the cycle collector, each full pass walks all of them while holding
        # Python's lock (0.3 s, in whichever thread it falls on), and the window stops for that
        # long. Frozen, they are skipped; objects made later are collected as usual. (Once per
        # process: a later window's start would freeze what earlier ones left to collect.)
        if not gc.get_freeze_count():
            gc.freeze()
        if self.data_panel.scan is None and self.data_panel.folder is None:
            self.statusBar().showMessage("Ready. Drop an image folder onto the window to begin.", 8000)
        else:
            self.statusBar().showMessage("Ready.", 3000)  # a folder is open (or opening) already
        self._update_actions()

    def _saved_plan(self) -> FreezePlan:
        """The freeze plan open when ftgui last closed (custom tree edits included)."""
        import json

        from ftgui.core.base.errors import FtguiError
        from ftgui.core.models.freeze import FreezePlan

        try:
            return FreezePlan.from_dict(json.loads(setting(self.settings, "model/freeze", "{}")))
        except (FtguiError, ValueError):
            return FreezePlan()

    def _on_model_panel_changed(self) -> None:
        if self.model_panel.populated:
            self.train_panel.set_strategy(self.model_panel.strategy_text())

    def _restore_settings(self) -> None:
        geometry = self.settings.value("window/geometry")
        if geometry is not None:
            self.restoreGeometry(geometry)
        else:
            self.resize(1280, 800)
        self.data_panel.val_fraction.setValue(setting(self.settings, "data/val_fraction", 0.2))

    def _save_settings(self) -> None:
        s = self.settings
        s.setValue("window/geometry", self.saveGeometry())
        if self.data_panel.folder:
            s.setValue("data/last_folder", self.data_panel.folder)
        s.setValue("data/val_fraction", self.data_panel.val_fraction.value())
        if self.model_panel.populated:
            import json

            s.setValue("model/arch", self.model_panel.arch)
            s.setValue("model/freeze", json.dumps(self.model_panel.plan.to_dict()))
            self.train_panel.save_settings(s)
        s.sync()

    # ------------------------------------------------------------ drag and drop

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:
        if not self.training and folder_from_mime(event.mimeData()):
            event.acceptProposedAction()

    def dropEvent(self, event: QDropEvent) -> None:
        folder = folder_from_mime(event.mimeData())
        if folder and not self.training:
            event.acceptProposedAction()
            self.data_panel.load_folder(folder)

    # ------------------------------------------------------------ data

    def _on_data_scanned(self, scan: ScanResult) -> None:
        self.setWindowTitle(f"ftgui — {display_path(Path(scan.root).name)}")
        self.log_message(
            "info", f"Opened {scan.root}: {len(scan.samples)} images in {len(scan.classes)} classes"
        )
        self.statusBar().showMessage(
            f"Opened: {len(scan.samples):,} images in {len(scan.classes)} classes", 5000
        )
        self.session.resuming = False
        self.runs_panel.set_dataset(scan.root, list(scan.classes))
        if self.model_panel.populated:
            self.model_panel.set_num_classes(len(scan.classes))
        self.settings.setValue("data/last_folder", scan.root)
        self._update_actions()

    def _on_data_verified(self, scan: ScanResult) -> None:
        """Every header checked: a class whose images all turned out unusable is gone."""
        if self.model_panel.populated and not self.training:
            self.model_panel.set_num_classes(len(scan.classes))
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
            panel.set_weights("none")
            panel.set_strategy("full")
            self.train_panel.image_size.setValue(64)
            self.train_panel.epochs.setValue(max(self.train_panel.epochs.value(), 3))
            self.log_message(
                "info",
                f"Pretrained weights for {panel.arch} are not available offline, so the example trains "
                "it from scratch (full fine-tuning at 64 px), which these simple pictures allow.",
            )

    # ------------------------------------------------------------ checking and fixing the data

    def open_check_data(self) -> CheckDataDialog:
        """The Check data window (one per main window); checks the open dataset when shown."""
        if self.check_dialog is None:
            self.check_dialog = CheckDataDialog(self.jobs, self.file_fixes, self.build_config, self)
        dialog = self.check_dialog
        dialog.show()
        dialog.raise_()
        if dialog.report is None and self.data_panel.scan is not None and not self.busy:
            dialog.start()
        return dialog

    def open_classify_folder(self) -> ClassifyFolderDialog:
        if self.classify_dialog is None:
            self.classify_dialog = ClassifyFolderDialog(self.jobs, self)
        self.classify_dialog.set_predictor(*self._current_predictor())
        self.classify_dialog.show()
        self.classify_dialog.raise_()
        return self.classify_dialog

    def _current_predictor(self) -> tuple[Predictor | None, str]:
        return self.try_panel.predictor, self.try_panel.model_label.text().removeprefix("Model: ")

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
        from ftgui.gui.thumbs import heat_map_pictures

        mistakes = list(ev.worst)
        return self.jobs.start(
            "heat maps",
            lambda job, progress: heat_map_pictures(predictor, ev.root, mistakes, job.cancel, progress),
            on_result=lambda result: self.eval_panel.show_heat_maps(*result),
            on_error=lambda message: self.eval_panel.show_heat_maps({}, message.splitlines()[0]),
        )

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

    def start_training(self) -> None:
        if self.busy:
            return
        if not self.ready:
            self.show_error("Not ready yet", "PyTorch is still loading; try again in a moment.")
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

    # ------------------------------------------------------------ comparing freeze layouts

    def start_comparison(self) -> bool:
        """Train the ticked layouts with the current settings, one after another, in the background."""
        from ftgui.core.workflows.compare import Candidate, Comparison, parse_candidates

        if self.busy or not self.ready:
            return False
        if self.data_panel.scan is None:
            self.show_error(
                "No dataset", "Drop an image folder onto the window (or use File → Open dataset…)."
            )
            return False
        chosen = self.compare_panel.chosen()
        if not chosen:
            self.show_error("Nothing to compare", "Tick at least one layout to compare.")
            return False
        base = self.build_config()
        candidates = (
            parse_candidates(",".join(c for c in chosen if c != "current")) if chosen != ["current"] else []
        )
        if "current" in chosen:
            name = "current tree" if base.freeze.is_custom else f"current ({base.freeze.label})"
            candidates.append(Candidate(name, base.freeze, base.lr))
        comparison = Comparison(base, candidates)
        scan = self.data_panel.scan
        board = self._board_folder(scan.root, "compare")
        self.comparison = comparison
        self.compare_panel.clear()
        self.compare_panel.set_running(True)
        self.log_message("info", f"Comparing {', '.join(c.name for c in candidates)} on {scan.root}")
        return self.jobs.start(
            "compare",
            lambda job, progress: self.session.compare(comparison, scan, job.cancel, board),
            on_yield=self._on_comparison_event,
            on_error=lambda message: self.show_error("Comparison stopped", message),
            on_done=self._on_comparison_done,
        )

    def _on_comparison_event(self, e: CandidateEvent | ComparisonFinished | Message) -> None:
        from ftgui.core.base import events as ev
        from ftgui.core.workflows.compare import CandidateEvent, ComparisonFinished

        if isinstance(e, ev.Message):  # a candidate recorded as a run
            self.log_message(e.level, e.text)
            return
        self.compare_panel.show_event(e)
        if isinstance(e, CandidateEvent) and not isinstance(e.event, ev.BatchEnded):
            line = report.describe(e.event)
            if line is not None:
                self.log_message(line[0], f"[{e.candidate}] {line[1]}")
        elif isinstance(e, ComparisonFinished):
            self.log_message("info", f"Comparison: {e.reason}" + "".join(f"; {n}" for n in e.notes))

    def _board_folder(self, dataset: str, kind: str = "") -> Path | None:
        """Where this run's TensorBoard log goes when the checkbox is on (ftgui's data folder)."""
        if not self.train_panel.tensorboard.isChecked():
            return None
        from ftgui.core.base.paths import data_dir

        name = "-".join(
            p for p in (Path(dataset or "dataset").name, kind, time.strftime("%Y%m%d-%H%M%S")) if p
        )
        return data_dir() / "tensorboard" / name

    def _on_comparison_done(self) -> None:
        self.compare_panel.set_running(False)
        self.runs_panel.refresh()

    def reopen_run(self, record: RunRecord) -> None:
        """A past run: its curves on the training plot, and its exported model for Evaluate and Try."""
        self.plot.clear()
        for h in record.history:
            self.plot.add_epoch(int(h["epoch"]), h.get("val_loss"), h.get("val_accuracy"))
        self.tabs.setCurrentIndex(0)
        label = record.candidate or record.strategy
        if record.bundle and (Path(record.bundle) / "model.json").is_file():
            self.log_message("info", f"Reopened run {record.id} ({record.arch}, {label}); opening its model")
            self.open_bundle(record.bundle)
        else:
            where = f"its model folder {record.bundle} is gone" if record.bundle else "it was not exported"
            self.log_message(
                "info", f"Reopened run {record.id} ({record.arch}, {label}): curves only, {where}"
            )

    def use_candidate(self, name: str) -> None:
        """Make a compared candidate the current model: Evaluate, Try and Export use it."""
        if self.busy or self.comparison is None or name not in self.comparison.trainers:
            return
        trainer = self.comparison.trainers[name]
        if trainer.epoch < 1:
            return
        self.session.trainer, self.session.resuming = trainer, False
        self.plot.clear()
        for record in trainer.history:
            self.plot.add_epoch(int(record["epoch"]), record.get("val_loss"), record.get("val_accuracy"))
        self.log_message("info", f"Using {name} ({trainer.config.strategy}) as the current model")
        self._use_trainer_for_try()
        self._update_actions()
        self.run_evaluation()

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
        self.train_panel.start_button.setEnabled(idle and self.ready)
        self.compare_panel.start_button.setEnabled(idle and self.ready)
        self.train_panel.find_lr_button.setEnabled(idle and self.ready and self.data_panel.scan is not None)
        has_model = (self.trainer is not None and self.trainer.epoch >= 1) or self.bundle is not None
        self.eval_panel.evaluate_button.setEnabled(idle and has_model)

    # ------------------------------------------------------------ checkpoints

    def _on_save_checkpoint_triggered(self) -> None:
        path, _ = QFileDialog.getSaveFileName(
            self, "Save training checkpoint", "checkpoint.pt", "ftgui checkpoint (*.pt)"
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
            on_result=lambda _: self.log_message(
                "info", f"Saved training checkpoint (epoch {trainer.epoch}) to {path}"
            ),
            on_error=lambda message: self.show_error("Could not save checkpoint", message),
        )

    def _on_load_checkpoint_triggered(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Load training checkpoint", "", "ftgui checkpoint (*.pt)")
        if path:
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

    # ------------------------------------------------------------ messages

    def about_text(self) -> str:
        import PySide6
        from PySide6.QtCore import qVersion

        torch_version = tv_version = "not loaded"
        if "torch" in sys.modules:
            torch_version = sys.modules["torch"].__version__
        if "torchvision" in sys.modules:
            tv_version = sys.modules["torchvision"].__version__
        return (
            f"<h3>ftgui {__version__}</h3><p>Fine-tune pretrained torchvision image classifiers.</p>"
            f"<p>PyTorch {torch_version}<br>torchvision {tv_version}<br>Qt {qVersion()} "
            f"(PySide6 {PySide6.__version__})<br>Python {sys.version.split()[0]}</p>"
        )

    def show_about(self) -> None:
        QMessageBox.about(self, "About ftgui", self.about_text())

    # ------------------------------------------------------------ closing

    def confirm(self, title: str, text: str) -> bool:
        answer = QMessageBox.question(
            self,
            title,
            text,
            QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No,
            QMessageBox.StandardButton.No,
        )
        return answer == QMessageBox.StandardButton.Yes

    def closeEvent(self, event: QCloseEvent) -> None:
        if self.training:
            if not self.confirm("Training is running", "Stop training and quit ftgui?"):
                event.ignore()
                return
        self._closing = True
        self.jobs.shutdown()
        self.data_panel.shutdown()
        self._save_settings()
        event.accept()

    def shutdown_training(self) -> None:
        """Cancel the running job (training stops after its batch) and wait for its thread."""
        self.jobs.shutdown()


def run_app(argv: list[str]) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="ftgui", description="Fine-tune pretrained image classifiers.")
    parser.add_argument("folder", nargs="?", help="image folder to open (one subfolder per class)")
    parser.add_argument(
        "--install-desktop",
        action="store_true",
        help="add ftgui to this user's application launcher and desktop, then exit",
    )
    parser.add_argument("--version", action="version", version=f"ftgui {__version__}")
    args = parser.parse_args(argv)
    if args.install_desktop:
        from ftgui.gui.desktop import install_desktop_entry

        for path in install_desktop_entry():
            print(f"installed {path}")
        return 0
    existing = QApplication.instance()
    app = existing if isinstance(existing, QApplication) else QApplication([sys.argv[0]])
    app.setApplicationName("ftgui")
    app.setOrganizationName("ftgui")
    app.setApplicationVersion(__version__)
    app.setWindowIcon(app_icon())
    if hasattr(app, "setDesktopFileName"):
        app.setDesktopFileName("ftgui")
    window = MainWindow(initial_folder=args.folder)
    window.show()
    QTimer.singleShot(0, window.start_background_init)
    return int(app.exec())
