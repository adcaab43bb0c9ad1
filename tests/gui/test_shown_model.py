"""The window says which model it is showing: Evaluate names it, and another model's results
never stay on screen as if they were this one's."""

from __future__ import annotations

import pytest
from PySide6.QtWidgets import QLabel


@pytest.mark.slow
def test_evaluate_names_the_model_and_forgets_another_models_results(
    qtbot, window, image_folder, tmp_path, train_tiny
):
    train_tiny(qtbot, window, image_folder)
    panel = window.eval_panel
    qtbot.waitUntil(lambda: panel.evaluation is not None and not window.busy, timeout=60_000)
    assert panel.summary.text().startswith("<b>resnet18 just trained (1 epoch)</b><br><b>Validation accuracy")
    shown = window.findChild(QLabel, "shown_model")
    assert shown.text() == "Model: resnet18 just trained (head, 1 epoch, not yet exported)"
    out = tmp_path / "m"
    assert window.export_to(str(out))
    qtbot.waitUntil(lambda: not window.busy, timeout=60_000)
    from ftgui.core.workflows.runs import list_runs

    (run,) = list_runs(str(image_folder), None)
    assert run.bundle == str(out.resolve())  # recorded before the export, told of it after
    window.runs_panel.refresh()
    assert f"exported to {out.resolve()}" in window.runs_panel.table.item(0, 1).toolTip()

    window.model_panel.set_arch("mobilenet_v3_small")  # the next run's choice, before opening
    assert window.open_bundle(str(out))
    qtbot.waitUntil(lambda: not window.busy and window.bundle is not None, timeout=60_000)
    assert panel.evaluation is None and panel.metrics_model.rowCount() == 0 and panel.gallery.count() == 0
    assert shown.text() == f"Model: resnet18 exported to {out}"
    assert window.plot.epoch_x == [1.0]  # the opened model's own history
    assert window.model_panel.arch == "resnet18"  # the model box shows the opened model's
    assert f"resnet18 exported to {out}" in panel.summary.text() and "Press Evaluate" in panel.summary.text()
    window.run_evaluation()
    qtbot.waitUntil(lambda: panel.evaluation is not None and not window.busy, timeout=60_000)
    assert panel.summary.text().startswith(f"<b>resnet18 exported to {out}</b><br>")

    window.start_training()  # a new run: the old results go at once
    assert panel.evaluation is None and "resnet18 training…" in panel.summary.text()
    assert shown.text() == "Model: resnet18 training (head)…"
    qtbot.waitUntil(lambda: not window.busy and panel.evaluation is not None, timeout=120_000)
