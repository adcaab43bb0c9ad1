from __future__ import annotations

import warnings

import pytest
from PySide6.QtCore import QSettings

from ftgui.gui.main_window import MainWindow


@pytest.fixture(scope="session", autouse=True)
def healthy_qt_binding():
    """Window tests on a binding that loses None references would abort the whole session."""
    from ftgui.gui.qt_check import broken_binding_message

    problem = broken_binding_message()
    if problem:
        pytest.exit(problem, returncode=3)


@pytest.fixture
def settings(tmp_path):
    return QSettings(str(tmp_path / "ftgui.ini"), QSettings.Format.IniFormat)


@pytest.fixture
def window(qtbot, settings):
    """The real main window, shown offscreen, with torch loaded in the background as in the app."""
    w = MainWindow(settings=settings)
    w.show()
    w.start_background_init()
    qtbot.waitUntil(lambda: w.ready, timeout=60_000)
    yield w
    # Like napari's conftest: no test may leave a training thread behind. The window is closed
    # here, after its jobs (not by qtbot, whose close would ask "Stop training?" in a test that
    # failed mid-run and wait for an answer).
    w.jobs.shutdown()
    assert not w.busy
    w.close()
    w.deleteLater()


@pytest.fixture
def train_tiny():
    return train_tiny_in_window


def train_tiny_in_window(qtbot, window, folder) -> None:
    """Open ``folder``, train one epoch from scratch at 32 px with the window's controls, wait."""
    with qtbot.waitSignal(window.data_panel.verified, timeout=60_000):
        window.data_panel.load_folder(str(folder))
    window.model_panel.set_weights("none")
    window.train_panel.epochs.setValue(1)
    window.train_panel.image_size.setValue(32)
    window.start_training()
    qtbot.waitUntil(lambda: not window.busy and window.export_action.isEnabled(), timeout=120_000)


@pytest.fixture
def drop():
    return drop_folder


def drop_folder(qtbot, widget, folder):
    """A real drag-enter + drop of a file-manager folder (file:// URL) onto ``widget``."""
    from PySide6.QtCore import QMimeData, QPoint, QPointF, Qt, QUrl
    from PySide6.QtGui import QDragEnterEvent, QDropEvent
    from PySide6.QtWidgets import QApplication

    mime = QMimeData()
    paths = folder if isinstance(folder, (list, tuple)) else [folder]
    mime.setUrls([QUrl.fromLocalFile(str(p)) for p in paths])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # the QPoint constructor is the only one bound
        enter = QDragEnterEvent(
            QPoint(10, 10),
            Qt.DropAction.CopyAction,
            mime,
            Qt.MouseButton.LeftButton,
            Qt.KeyboardModifier.NoModifier,
        )
    QApplication.sendEvent(widget, enter)
    accepted = enter.isAccepted()
    drop = QDropEvent(
        QPointF(10, 10),
        Qt.DropAction.CopyAction,
        mime,
        Qt.MouseButton.LeftButton,
        Qt.KeyboardModifier.NoModifier,
    )
    QApplication.sendEvent(widget, drop)
    return accepted
