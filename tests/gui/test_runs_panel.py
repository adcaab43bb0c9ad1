"""The Runs panel opens whatever the run records on disk hold."""

from __future__ import annotations

import json

from ftgui.core.workflows.runs import runs_dir


def test_the_runs_panel_opens_a_dataset_whose_records_hold_wrong_types(image_folder, qtbot):
    """Records the panel would have raised on when the dataset opened (an unparsable time, a
    history figure that is text) are left out of the list, and the good one is drawn."""
    from ftgui.gui.panels.runs_panel import RunsPanel

    good = {
        "format": "ftgui-run", "version": 1, "id": "good", "created": "2026-01-02T03:04:05+00:00",
        "source": "ftgui-train", "dataset": str(image_folder), "classes": ["circle"], "arch": "resnet18",
        "strategy": "head", "freeze": {}, "config": {"epochs": 1}, "epochs": 1, "best_epoch": 1,
        "best_val_accuracy": 0.5, "best_val_loss": 1.0,
        "history": [{"epoch": 1, "val_loss": 1.0, "val_accuracy": 0.5}],
    }  # fmt: skip
    runs_dir().mkdir(parents=True, exist_ok=True)
    (runs_dir() / "good.json").write_text(json.dumps(good))
    (runs_dir() / "a.json").write_text(json.dumps({**good, "id": "a", "created": "not a time"}))
    (runs_dir() / "b.json").write_text(
        json.dumps({**good, "id": "b", "history": [{"epoch": 1, "val_loss": "x"}]})
    )
    panel = RunsPanel()
    qtbot.addWidget(panel)
    panel.set_dataset(str(image_folder), ["circle"])
    assert [r.id for r in panel.records] == ["good"]
    panel.table.selectRow(0)
    assert panel.selected()[0].id == "good"
