"""What the main window is made of, declared once for the controls that make up ``MainWindow``.

``MainWindow.__init__`` builds every widget and action named here; the controls
(``model_tools``, ``data_controls``, ``compare_controls``, ``training_controls``) are its bases
and use them. Declaring them here lets each control be type-checked on its own.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from PySide6.QtWidgets import QMainWindow

if TYPE_CHECKING:
    from PySide6.QtCore import QSettings
    from PySide6.QtGui import QAction
    from PySide6.QtWidgets import QLabel, QMessageBox, QPlainTextEdit, QSplitter, QTabWidget

    from ftgui.core.training.config import TrainConfig
    from ftgui.core.workflows.compare import Comparison
    from ftgui.core.workflows.session import Session
    from ftgui.gui.dialogs.check_data import CheckDataDialog
    from ftgui.gui.dialogs.classify_folder import ClassifyFolderDialog
    from ftgui.gui.dialogs.lr_finder import LRFinderDialog
    from ftgui.gui.file_fixes import FileFixes
    from ftgui.gui.jobs import JobRunner
    from ftgui.gui.panels.compare_panel import ComparePanel
    from ftgui.gui.panels.data_panel import DataPanel
    from ftgui.gui.panels.eval_panel import EvaluationPanel
    from ftgui.gui.panels.model_panel import ModelPanel
    from ftgui.gui.panels.runs_panel import RunsPanel
    from ftgui.gui.panels.train_panel import TrainPanel
    from ftgui.gui.panels.try_panel import TryPanel
    from ftgui.gui.widgets.plot import TrainingPlot


class WindowBase(QMainWindow):
    """The main window's parts; ``MainWindow`` builds them."""

    session: Session
    jobs: JobRunner
    settings: QSettings
    ready: bool
    _closing: bool
    _eval_prefers_trainer: bool
    # panels and tabs
    model_panel: ModelPanel
    data_panel: DataPanel
    train_panel: TrainPanel
    eval_panel: EvaluationPanel
    try_panel: TryPanel
    compare_panel: ComparePanel
    runs_panel: RunsPanel
    plot: TrainingPlot
    tabs: QTabWidget
    train_view: QSplitter  # the data panel above the plot
    log: QPlainTextEdit
    speed_label: QLabel
    # dialogs, file changes, the comparison running or done
    last_error_box: QMessageBox | None
    export_box: QMessageBox | None
    checkpoint_box: QMessageBox | None
    _example_fallback: tuple[str, tuple[str, object, int, int], tuple[str, object, int, int]] | None
    lr_dialog: LRFinderDialog | None
    check_dialog: CheckDataDialog | None
    classify_dialog: ClassifyFolderDialog | None
    file_fixes: FileFixes
    comparison: Comparison | None
    # menu actions
    open_action: QAction
    example_action: QAction
    export_action: QAction
    save_ckpt_action: QAction
    load_ckpt_action: QAction
    open_bundle_action: QAction
    export_job_action: QAction
    undo_action: QAction
    check_action: QAction
    classify_action: QAction

    if TYPE_CHECKING:  # defined by the training controls, used by every control

        def build_config(self) -> TrainConfig: ...

        def _update_actions(self) -> None: ...

        # defined by the model tools, used by the export controls beneath them
        @property
        def busy(self) -> bool: ...

        def log_message(self, level: str, text: str) -> None: ...

        def show_error(self, title: str, text: str) -> None: ...

        def _use_trainer_for_try(self) -> None: ...
