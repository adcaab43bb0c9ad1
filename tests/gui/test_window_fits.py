"""The window fits a 1280x800 screen with every tab, strategy and dialog, and a bigger screen's
room goes to the plot and the tables in the middle."""

from __future__ import annotations

import pytest
from PySide6.QtWidgets import QApplication

from ftgui.core.training.lr_finder import LRFinderResult
from ftgui.gui.dialogs.check_data import CheckDataDialog
from ftgui.gui.dialogs.classify_folder import ClassifyFolderDialog
from ftgui.gui.dialogs.export import ExportDialog
from ftgui.gui.dialogs.lr_finder import LRFinderDialog
from ftgui.gui.dialogs.training_job import TrainingJobDialog

SCREEN = (1280, 800)
MAX_HEIGHT = 760  # the screen less a panel or task bar


def _fits(widget) -> tuple[int, int]:
    QApplication.processEvents()
    hint = widget.minimumSizeHint().expandedTo(widget.minimumSize())
    return hint.width(), hint.height()


@pytest.fixture
def opened(qtbot, window, image_folder):
    window.data_panel.load_folder(str(image_folder))
    qtbot.waitUntil(
        lambda: window.data_panel.scan is not None and not window.data_panel.verifying, timeout=30_000
    )
    return window


def test_every_tab_and_strategy_fits_1280x760(opened):
    window = opened
    sizes = {}
    for i in range(window.tabs.count()):
        window.tabs.setCurrentIndex(i)
        sizes[window.tabs.tabText(i)] = _fits(window)
    for key in ("head", "last", "full", "gradual", "custom", "head"):
        window.model_panel.set_strategy(key)
        sizes[f"strategy {key}"] = _fits(window)
    too_big = {k: s for k, s in sizes.items() if s[0] > SCREEN[0] or s[1] > MAX_HEIGHT}
    assert too_big == {}, sizes
    # gradual unfreezing used to widen the window to 1343 px, and it stayed wide afterwards
    assert sizes["strategy gradual"][0] == sizes["Data && training"][0]


def test_the_dialogs_fit_1280x760(opened):
    window = opened
    dialogs = {
        "export": ExportDialog("/tmp/model", window),
        "training job": TrainingJobDialog("/tmp/job", 2, window),
        "learning rate": LRFinderDialog(
            LRFinderResult(
                [1e-5 * 1.2**i for i in range(40)], [2.0 - 0.02 * i for i in range(40)], 1e-3, False
            ),
            window,
        ),
        "check data": CheckDataDialog(window.jobs, window.file_fixes, window.build_config, window),
        "classify": ClassifyFolderDialog(window.jobs, window),
    }
    sizes = {}
    for name, dialog in dialogs.items():
        dialog.show()
        sizes[name] = _fits(dialog)
        dialog.close()
    too_big = {k: s for k, s in sizes.items() if s[0] > SCREEN[0] or s[1] > MAX_HEIGHT}
    assert too_big == {}, sizes


def test_a_bigger_screen_gives_its_room_to_the_plot_and_tables(qtbot, opened):
    window = opened
    window.tabs.setCurrentIndex(0)

    def measure(width: int, height: int) -> dict[str, tuple[int, int]]:
        window.resize(width, height)
        qtbot.waitUntil(lambda: window.width() == width and window.height() == height, timeout=5_000)
        QApplication.processEvents()
        return {
            "plot": window.plot.size().toTuple(),
            "classes": window.data_panel.table.size().toTuple(),
            "tree": window.model_panel.tree.size().toTuple(),
            "settings": window.train_panel.size().toTuple(),
        }

    small, big = measure(1280, 800), measure(1920, 1080)
    gained = {k: (big[k][0] - small[k][0], big[k][1] - small[k][1]) for k in small}
    # of 640 more pixels, the plot and the class table in the middle take most
    assert gained["plot"][0] >= 400 and gained["classes"][0] >= 400, gained
    assert gained["plot"][1] > 100 and gained["classes"][1] > 50, gained
    assert gained["settings"][0] <= 100, gained  # the settings form has nothing to do with more width
    assert 0 < gained["tree"][0] < gained["plot"][0], gained


def test_a_window_comes_back_at_a_size_that_fits_this_screen():
    from PySide6.QtCore import QSize

    from ftgui.gui.settings import window_size

    screen = QSize(1280, 770)  # a 1280 x 800 screen less its panel
    assert window_size(None, None, screen) == QSize(1280, 770)  # first start: the default, fitted
    # saved on 1920 x 1080: as much of this screen as it had
    assert window_size(QSize(1860, 1000), QSize(1920, 1050), screen) == QSize(1280, 770)
    # it filled an 800 x 600 screen (1183 x 573, names cut): the default here
    assert window_size(QSize(1183, 573), QSize(800, 600), screen) == QSize(1280, 770)
    # made small by the user on a screen like this one: theirs
    assert window_size(QSize(1000, 640), QSize(1280, 770), screen) is None
    assert window_size(QSize(1000, 640), QSize(1920, 1050), screen) is None


def test_at_1280x760_the_tables_show_every_class_and_the_mistakes_a_row_of_pictures(qtbot, opened):
    """The class table showed 3 1/2 of 5 classes, Evaluate's per-class table 2 of 5 and the
    mistakes strip 90 px."""
    window = opened
    window.resize(SCREEN[0], MAX_HEIGHT)
    qtbot.waitUntil(lambda: window.height() == MAX_HEIGHT, timeout=5_000)
    window.data_panel.load_folder(window.data_panel.folder)  # as opened at this size
    qtbot.waitUntil(lambda: not window.busy and window.data_panel.scan is not None, timeout=30_000)
    QApplication.processEvents()
    table = window.data_panel.table
    qtbot.waitUntil(
        lambda: table.viewport().height() >= 4 * table.verticalHeader().defaultSectionSize(), timeout=5_000
    )
    window.model_panel.set_weights("none")
    window.train_panel.epochs.setValue(1)
    window.train_panel.image_size.setValue(32)
    window.start_training()
    qtbot.waitUntil(lambda: window.eval_panel.evaluation is not None and not window.busy, timeout=120_000)
    window.tabs.setCurrentWidget(window.eval_panel)
    QApplication.processEvents()
    panel = window.eval_panel
    rows = panel.metrics_model.rowCount()
    assert rows == 4
    assert panel.metrics.viewport().height() >= rows * panel.metrics.verticalHeader().defaultSectionSize()
    assert panel.gallery.viewport().height() >= panel.gallery.gridSize().height()
