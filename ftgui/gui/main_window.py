"""The ftgui main window: the shell that builds the panels, menus and settings around one session.

What the window does lives in its controls, one module per concern, each a base of
``MainWindow``: ``model_tools`` (export, evaluation, Try, the LR finder), ``data_controls``,
``compare_controls`` (Compare and Runs) and ``training_controls``.
"""

from __future__ import annotations

import gc
import sys
import threading
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import QSettings, Qt, Signal
from PySide6.QtGui import QAction, QCloseEvent, QDragEnterEvent, QDropEvent, QKeySequence, QResizeEvent
from PySide6.QtWidgets import QLabel, QMessageBox, QPlainTextEdit, QSplitter, QTabWidget, QVBoxLayout, QWidget

from ftgui import __version__
from ftgui.core.workflows.session import Session
from ftgui.gui.controllers.training_controls import TrainingControls
from ftgui.gui.dialogs.check_data import CheckDataDialog
from ftgui.gui.dialogs.classify_folder import ClassifyFolderDialog
from ftgui.gui.dialogs.lr_finder import LRFinderDialog
from ftgui.gui.file_fixes import FileFixes
from ftgui.gui.jobs import JobRunner
from ftgui.gui.panels.compare_panel import ComparePanel
from ftgui.gui.panels.data_panel import DataPanel
from ftgui.gui.panels.eval_panel import EvaluationPanel
from ftgui.gui.panels.model_panel import DEFAULT_ARCH, ModelPanel
from ftgui.gui.panels.runs_panel import RunsPanel
from ftgui.gui.panels.train_panel import TrainPanel
from ftgui.gui.panels.try_panel import TryPanel
from ftgui.gui.resources import app_icon
from ftgui.gui.settings import remembered_weights, setting, window_size
from ftgui.gui.widgets.drop_zone import folder_from_mime
from ftgui.gui.widgets.plot import TrainingPlot

if TYPE_CHECKING:
    from ftgui.core.models.freeze import FreezePlan
    from ftgui.core.workflows.compare import Comparison


class MainWindow(TrainingControls):
    torch_ready = Signal()
    torch_failed = Signal(str)  # PyTorch (or torchvision) would not load: a broken installation

    def __init__(self, settings: QSettings | None = None, initial_folder: str | None = None) -> None:
        super().__init__()
        self.settings = settings or QSettings("ftgui", "ftgui")
        self.initial_folder = initial_folder
        self.ready = False
        self.last_error_box: QMessageBox | None = None
        self.export_box: QMessageBox | None = None  # the last export's confirmation
        self.export_progress = None  # the last export's progress, and the question before
        self.replace_box = None  # another model's bundle is replaced
        self.checkpoint_box: QMessageBox | None = None  # a checkpoint of another folder was loaded
        self._example_fallback = None  # (example folder, settings before, settings set)
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
        self.train_view = train_view
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
        main.setStretchFactor(0, 1)
        main.setStretchFactor(1, 4)
        main.setStretchFactor(2, 1)
        self.columns = main
        self._columns_moved = False  # by the user: then their widths stay theirs
        main.splitterMoved.connect(self._on_columns_splitter_moved)
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
        self.model_panel.weights_status.state_changed.connect(lambda _: self._update_actions())
        self.train_panel.start_requested.connect(self.start_training)
        self.train_panel.stop_requested.connect(self.stop_training)
        self.train_panel.find_lr_requested.connect(self.find_learning_rate)
        self.eval_panel.evaluate_requested.connect(self.run_evaluation)
        self.eval_panel.heat_maps_requested.connect(self.show_mistake_heat_maps)
        self.eval_panel.heat_maps_unwanted.connect(self.stop_heat_maps)
        self.compare_panel.estimate_wanted.connect(self._estimate_comparison)  # a connection, not a cycle
        self.train_panel.epochs.valueChanged.connect(self.compare_panel.refresh_estimate)
        self.compare_panel.start_requested.connect(self.start_comparison)
        self.compare_panel.stop_requested.connect(self.jobs.stop)
        self.compare_panel.use_requested.connect(self.use_candidate)
        self.compare_panel.backbones_requested.connect(self.rank_backbones)
        self.compare_panel.use_backbone_requested.connect(self.use_backbone)
        self.runs_panel.reopen_requested.connect(self.reopen_run)
        self.try_panel.open_bundle_requested.connect(self._on_open_bundle_triggered)
        self.torch_ready.connect(self._on_torch_ready)
        self.torch_failed.connect(self._on_torch_failed)
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
            try:
                import torch  # noqa: F401
                import torchvision  # noqa: F401
            except Exception as exc:  # noqa: BLE001 (said in the window, which cannot train without them)
                self.torch_failed.emit(f"{type(exc).__name__}: {exc}")
                return
            from ftgui.core.base.extras import importable

            if importable("timm"):
                import timm  # noqa: F401  (here, not on the GUI thread when a timm model is chosen)
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
        self.model_panel.remembered = remembered_weights(setting(self.settings, "model/weights", ""))
        self.model_panel.head_form = str(self.train_panel.head.currentData())  # the tree shows that head
        self.model_panel.populate(setting(self.settings, "model/arch", DEFAULT_ARCH))
        self.model_panel.set_batchnorm(str(setting(self.settings, "model/batchnorm", "auto")))
        self.model_panel.set_plan(self._saved_plan())
        self.train_panel.image_size.valueChanged.connect(lambda v: self.model_panel.set_image_size(v or None))
        self.train_panel.head.currentIndexChanged.connect(
            lambda _: self.model_panel.set_head(str(self.train_panel.head.currentData()))
        )
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
        restored = geometry is not None and self.restoreGeometry(geometry)
        screen = self.screen().availableGeometry()
        size = window_size(
            self.settings.value("window/size") if restored else None,
            self.settings.value("window/screen"),
            screen.size(),
        )
        if size is not None:
            self.resize(size)
            if restored:
                self.move(screen.topLeft())
        self.data_panel.val_fraction.setValue(setting(self.settings, "data/val_fraction", 0.2))

    def _save_settings(self) -> None:
        s = self.settings
        s.setValue("window/geometry", self.saveGeometry())
        s.setValue("window/size", self.size())
        s.setValue("window/screen", self.screen().availableGeometry().size())
        if self.data_panel.folder:
            s.setValue("data/last_folder", self.data_panel.folder)
        s.setValue("data/val_fraction", self.data_panel.val_fraction.value())
        if self.model_panel.populated:
            import json

            s.setValue("model/arch", self.model_panel.arch)
            s.setValue("model/weights", json.dumps(self.model_panel.remembered))
            s.setValue("model/freeze", json.dumps(self.model_panel.plan.to_dict()))
            s.setValue("model/batchnorm", self.model_panel.batchnorm_key)
            self.train_panel.save_settings(s)
        s.sync()

    def resizeEvent(self, event: QResizeEvent) -> None:
        super().resizeEvent(event)
        if not self._columns_moved:
            self._share_columns()

    def _share_columns(self) -> None:
        """Model, middle and settings columns for 1280 px; of any room beyond, the middle (plot,
        tables) gets three quarters, the layer tree a sixth and the settings the rest. (A
        splitter alone scales all three alike, so the settings form grew as much as the plot.)"""
        width = self.columns.width()
        extra = max(width - 1280, 0)
        left, right = 390 + extra // 6, 300 + extra // 12
        self.columns.setSizes([left, max(width - left - right, 0), right])

    def _on_columns_splitter_moved(self, *_: object) -> None:
        self._columns_moved = True

    # ------------------------------------------------------------ drag and drop

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:
        if not self.training and folder_from_mime(event.mimeData()):
            event.acceptProposedAction()

    def dropEvent(self, event: QDropEvent) -> None:
        folder = folder_from_mime(event.mimeData())
        if folder and not self.training:
            event.acceptProposedAction()
            self.data_panel.load_folder(folder)

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
