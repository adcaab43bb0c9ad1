"""Opening a folder in the window: classes at once, header checks in the background."""

from __future__ import annotations

import shutil
import threading

import pytest
from PySide6.QtCore import Qt

from ftgui.core.data import headers
from ftgui.gui.widgets.rows_model import cell_text


@pytest.fixture
def held_checks(monkeypatch):
    """The real header checks, each chunk waiting until the test lets it go (so a test sees
    the window while they run)."""
    gate = threading.Event()
    real = headers._check_paths

    def held(root, chunk):
        gate.wait(60)
        return real(root, chunk)

    monkeypatch.setattr(headers, "_check_paths", held)
    yield gate
    gate.set()


@pytest.fixture
def folder_with_a_broken_file(tmp_path, image_folder):
    data = tmp_path / "shapes"
    shutil.copytree(image_folder, data)
    first = sorted((data / "circle").iterdir())[0]
    (data / "circle" / "zz-broken.jpg").write_bytes(first.read_bytes()[:120])
    return data


def _counts(table):
    return {cell_text(table, r, 0): cell_text(table, r, 1) for r in range(table.model().rowCount())}


def test_training_starts_while_the_images_are_checked(
    qtbot, window, drop, held_checks, folder_with_a_broken_file
):
    panel = window.data_panel
    with qtbot.waitSignal(panel.scanned, timeout=30_000):
        assert drop(qtbot, window, folder_with_a_broken_file)
    # Classes and counts are there at once; the checks go on with progress and Cancel.
    assert _counts(panel.table) == {"circle": "21", "square": "20", "triangle": "20", "stripes": "20"}
    assert panel.verifying and panel.progress.isVisible() and panel.cancel_button.isVisible()
    assert panel.progress.maximum() == 81 and "Checking images" in panel.progress.format()
    window.model_panel.set_weights("none")
    window.train_panel.epochs.setValue(1)
    window.train_panel.image_size.setValue(32)
    window.data_panel.val_fraction.setValue(0.05)
    assert window.train_panel.start_button.isEnabled()

    qtbot.mouseClick(window.train_panel.start_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: window.session.trained and not window.busy, timeout=120_000)
    assert panel.verifying  # training finished before the checks did
    log = window.log.toPlainText()
    assert "circle/zz-broken.jpg" in log  # skipped by the training, with its reason

    with qtbot.waitSignal(panel.verified, timeout=30_000):
        held_checks.set()
    items = [panel.skipped.item(i).text() for i in range(panel.skipped.count())]
    assert items == ["circle/zz-broken.jpg: truncated image file (it ends before the image data does)"]
    # The progress goes when the checking job has ended, a signal after its result.
    qtbot.waitUntil(lambda: not panel.progress.isVisible(), timeout=5_000)
    assert panel.skipped.isVisible() and not panel.cancel_button.isVisible()
    assert _counts(panel.table)["circle"] == "20" and len(panel.scan.samples) == 80
    assert "Checked 81 images, 1 of them unusable" in window.log.toPlainText()


def test_cancel_keeps_what_was_checked(qtbot, window, drop, held_checks, folder_with_a_broken_file):
    panel = window.data_panel
    with qtbot.waitSignal(panel.scanned, timeout=30_000):
        assert drop(qtbot, window, folder_with_a_broken_file)
    assert panel.cancel_button.isEnabled()
    with qtbot.waitSignal(panel.verified, timeout=30_000) as verified:
        qtbot.mouseClick(panel.cancel_button, Qt.MouseButton.LeftButton)
        assert not panel.cancel_button.isEnabled()
        held_checks.set()
    scan = verified.args[0]
    assert 0 < scan.checked < 81 and len(scan.pending) == 81 - scan.checked
    assert "Stopped checking images" in window.log.toPlainText()
    assert not panel.cancel_button.isVisible()

    # Opening it again checks only what was left, and finds the broken file.
    with qtbot.waitSignal(panel.verified, timeout=30_000) as again:
        assert drop(qtbot, window, folder_with_a_broken_file)
    assert again.args[0].checked == 81 - scan.checked and not again.args[0].pending
    assert [p for p, _ in again.args[0].skipped] == ["circle/zz-broken.jpg"]


def test_opening_again_frees_the_folder_opened_before(qtbot, window, drop, image_folder):
    """A window open for hours re-opens folders: each listing (100k samples for a big folder)
    must go when the next one comes, not stay behind in a finished worker."""
    import gc
    import weakref

    panel = window.data_panel
    listed, checked = [], []

    def remember(into):
        return lambda scan: into.append(weakref.ref(scan))

    panel.scanned.connect(remember(listed))
    panel.verified.connect(remember(checked))
    for n in range(1, 4):
        assert drop(qtbot, window, image_folder)
        qtbot.waitUntil(lambda n=n: len(checked) == n and not panel.verifying and not panel.scanning)

    def freed():
        gc.collect()
        return not any(ref() is not None for ref in listed[:2] + checked[:2])

    # The workers' last queued signals, and a picture thread still busy with the last folder.
    qtbot.waitUntil(freed, timeout=5_000)
    assert checked[-1]() is panel.scan


def test_class_pictures_are_made_for_the_rows_on_screen(qtbot, window, drop, tmp_path):
    from PIL import Image

    data = tmp_path / "many"
    for c in range(150):
        (data / f"class_{c:03d}").mkdir(parents=True)
        for i in range(2):
            Image.new("RGB", (8, 8), (c, 100 * i, 50)).save(data / f"class_{c:03d}" / f"{i}.png")
    panel = window.data_panel
    with qtbot.waitSignal(panel.verified, timeout=30_000):
        assert drop(qtbot, window, data)
    model = panel.table.model()
    # Every class has too few images: the warning names a few, not 150.
    assert panel.warnings.text().endswith("class_007 and 142 more classes.")

    def pictured(row):
        return model.index(row, 0).data(Qt.ItemDataRole.DecorationRole) is not None

    qtbot.waitUntil(lambda: pictured(0))
    first = panel.thumbnails.requested
    assert 0 in first and 149 not in first and len(first) < 40, sorted(first)
    panel.table.scrollToBottom()
    qtbot.waitUntil(lambda: pictured(149))
    assert len(panel.thumbnails.requested) < 80
    # Sorted the other way, the view's rows are other classes: their pictures come too.
    panel.table.sortByColumn(0, Qt.SortOrder.DescendingOrder)
    panel.table.scrollToTop()
    assert cell_text(panel.table, 0, 0) == "class_149"
    qtbot.waitUntil(lambda: pictured(0))


def _evaluation(k=300, per_class=3):
    """An evaluation of k classes from real logits: image 0 of each class right, image 1 taken
    for the next class, image 2 for the class after that one (class 7's: 8 and 9)."""
    import torch

    from ftgui.core.data.samples import Sample
    from ftgui.core.evaluation.metrics import summarise

    samples, logits = [], torch.zeros(k * per_class, k)
    for c in range(k):
        for i in range(per_class):
            n = len(samples)
            samples.append(Sample(f"class_{c:03d}/{i}.png", c))
            logits[n, (c + i) % k] = 5.0
    return summarise([f"class_{c:03d}" for c in range(k)], "/nowhere", samples, logits)


def test_confusion_heat_map_with_300_classes(qtbot, window):
    from PySide6.QtCore import QPoint, QPointF, QRectF
    from PySide6.QtGui import QWheelEvent
    from PySide6.QtWidgets import QApplication

    ev = _evaluation()
    panel = window.eval_panel
    panel.set_evaluation(ev)
    window.tabs.setCurrentWidget(panel)
    heat = panel.heat_map
    qtbot.waitUntil(lambda: heat.isVisible() and heat.plot.viewport().height() > 50)
    assert panel.matrix_stack.currentWidget() is heat and panel.confusion.rowCount() == 0
    assert heat.image.image.shape == (300, 300)
    # The top confusions: 600 mistakes of one image each, listed largest (then first) first.
    assert heat.top.count() == 100 and heat.top.item(0).text().startswith("1  class_000 → class_001")

    def at(true, predicted):
        return heat.plot.mapFromScene(heat.scene_position(true, predicted))

    box = heat.plot.getPlotItem().getViewBox()

    def zoom(x, y):  # zoomed in, a cell is many pixels wide (at 300 classes, about one)
        box.setRange(QRectF(x, y, 20, 20), padding=0)
        qtbot.wait(50)  # the view's new transform is applied from the event loop

    zoom(0, 0)
    qtbot.mouseMove(heat.plot.viewport(), at(7, 8))
    qtbot.waitUntil(lambda: "true class_007 (#7), predicted class_008 (#8): 1 of 3" in heat.readout.text())
    qtbot.mouseClick(heat.plot.viewport(), Qt.MouseButton.LeftButton, pos=at(7, 9))
    assert [panel.cell_images.item(i).text() for i in range(panel.cell_images.count())] == ["class_007/2.png"]
    assert "1 image(s) of class_007 predicted as class_009" in panel.cell_label.text()
    zoom(240, 240)
    qtbot.mouseClick(heat.plot.viewport(), Qt.MouseButton.LeftButton, pos=at(250, 250))
    assert [panel.cell_images.item(i).text() for i in range(panel.cell_images.count())] == ["class_250/0.png"]

    # The wheel zooms in around the cursor; "Whole matrix" zooms back out.
    heat.show_all()
    before = box.viewRange()[0][1] - box.viewRange()[0][0]
    pos = QPointF(at(150, 150))
    wheel = QWheelEvent(
        pos, QPointF(heat.plot.viewport().mapToGlobal(pos.toPoint())), QPoint(0, 0), QPoint(0, 480),
        Qt.MouseButton.NoButton, Qt.KeyboardModifier.NoModifier, Qt.ScrollPhase.NoScrollPhase, False,
    )  # fmt: skip
    QApplication.sendEvent(heat.plot.viewport(), wheel)
    zoomed = box.viewRange()[0][1] - box.viewRange()[0][0]
    assert zoomed < before / 2
    qtbot.mouseClick(heat.reset_button, Qt.MouseButton.LeftButton)
    assert box.viewRange()[0][1] - box.viewRange()[0][0] >= 300

    # A pick from the top-confusions list lists that cell.
    heat.top.setCurrentRow(2)
    assert "1 image(s) of class_001 predicted as class_002" in panel.cell_label.text()
    assert [panel.cell_images.item(i).text() for i in range(panel.cell_images.count())] == ["class_001/1.png"]

    # Back to a few classes: the table again.
    panel.set_evaluation(_evaluation(k=4))
    assert panel.matrix_stack.currentWidget() is panel.confusion and panel.confusion.rowCount() == 4
