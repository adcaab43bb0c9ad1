"""File → Export training job…: the window's whole configuration, run elsewhere by ftgui-train."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from PySide6.QtCore import Qt
from safetensors.torch import load_file

from ftgui.cli import train_main
from ftgui.core.bundle.format import read_split
from ftgui.core.data.samples import split_samples
from ftgui.core.training.config import TrainConfig
from ftgui.core.workflows.job import ClusterSettings


@pytest.mark.slow
def test_a_job_from_the_window_trains_exactly_what_start_trains(qtbot, window, image_folder, tmp_path, drop):
    with qtbot.waitSignal(window.data_panel.verified, timeout=30_000):
        assert drop(qtbot, window, image_folder)
    assert window.export_job_action.isEnabled()
    panel = window.model_panel
    panel.set_weights("none")
    panel.set_strategy("last", blocks=1)
    panel.item_for("layer3.1").setCheckState(Qt.CheckState.Checked)  # a custom tree
    panel.item_for("layer4.0.bn1").setCheckState(Qt.CheckState.Unchecked)
    assert panel.strategy_key == "custom"
    window.train_panel.epochs.setValue(2)
    window.train_panel.batch_size.setValue(12)
    window.train_panel.image_size.setValue(32)
    window.data_panel.val_fraction.setValue(0.25)

    job = tmp_path / "job"
    cluster = ClusterSettings(nodes=2, gpus_per_node=4, cpus_per_node=16, time="1-02:30:00", partition="gpu")
    assert window.export_training_job_to(str(job), cluster)
    qtbot.waitUntil(lambda: not window.busy, timeout=60_000)
    assert f"Wrote the training job to {job} (job.json, run.sh, slurm.sbatch)" in window.log.toPlainText()
    record = json.loads((job / "job.json").read_text())
    wanted = window.build_config()
    assert TrainConfig.from_dict(record["training"]).to_dict() == wanted.to_dict()
    assert record["training"]["freeze"]["overrides"] == [["layer3.1", True], ["layer4.0.bn1", False]]
    scan = window.data_panel.scan
    split = split_samples(scan, 0.25, 0)
    assert record["split"] == split.to_dict() and record["classes"] == list(scan.classes)
    assert not any(os.path.isabs(p) for p, _ in record["split"]["train"] + record["split"]["val"])
    sbatch = (job / "slurm.sbatch").read_text()
    for line in (
        "--nodes=2",
        "--gpus-per-node=4",
        "--cpus-per-task=16",
        "--time=1-02:30:00",
        "--partition=gpu",
    ):
        assert f"#SBATCH {line}\n" in sbatch
    assert "--nproc-per-node=4" in sbatch and os.access(job / "run.sh", os.X_OK)

    # The other machine: ftgui-train --config, the dataset under another name.
    moved = tmp_path / "elsewhere"
    moved.symlink_to(image_folder, target_is_directory=True)
    out = tmp_path / "out"
    argv = ["--config", str(job / "job.json"), "--data", str(moved), "--out", str(out), "--no-evaluate"]
    assert train_main(argv) == 0

    # The same settings trained in the window give the same model.
    qtbot.mouseClick(window.train_panel.start_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: window.session.trained and not window.busy, timeout=120_000)
    assert window.export_to(str(tmp_path / "window"))
    qtbot.waitUntil(lambda: not window.busy, timeout=60_000)
    here, there = (json.loads((d / "model.json").read_text()) for d in (tmp_path / "window", out))
    assert {**here["training"], "data_dir": ""} == {**there["training"], "data_dir": ""}
    assert there["training"]["data_dir"] == str(moved)
    split_here, split_there = read_split(tmp_path / "window", here), read_split(out, there)
    assert (split_here["train"], split_here["val"]) == (split_there["train"], split_there["val"])
    assert here["trainable_parameter_names"] == there["trainable_parameter_names"]
    a, b = load_file(tmp_path / "window" / "model.safetensors"), load_file(out / "model.safetensors")
    assert (
        max(float((a[k].double() - b[k].double()).abs().max()) for k in a if a[k].is_floating_point()) < 1e-6
    )

    # The result opens in the window for Evaluate and Try.
    assert window.open_bundle(str(out))
    qtbot.waitUntil(lambda: not window.busy, timeout=60_000)
    assert "resnet18 from" in window.try_panel.model_label.text()


def test_a_job_is_refused_for_settings_that_cannot_run(qtbot, window, image_folder, tmp_path, drop):
    with qtbot.waitSignal(window.data_panel.verified, timeout=30_000):
        assert drop(qtbot, window, image_folder)
    window.last_error_box = None
    assert window.export_training_job_to(str(tmp_path / "job"), ClusterSettings(time="soon"))
    qtbot.waitUntil(lambda: window.last_error_box is not None, timeout=60_000)
    assert "The time limit must read HH:MM:SS" in window.last_error_box.text()
    assert not Path(tmp_path / "job" / "job.json").exists()


def test_the_job_dialog_gives_the_cluster_settings(qtbot):
    from ftgui.gui.dialogs.training_job import TrainingJobDialog

    dialog = TrainingJobDialog("/tmp/job", 0)
    qtbot.addWidget(dialog)
    assert dialog.gpus.text() == "none (CPU nodes)"  # 0 GPUs: CPU nodes
    dialog.nodes.setValue(3)
    dialog.gpus.setValue(8)
    dialog.time.setText(" 12:00:00 ")
    dialog.partition.setText("a100")
    assert dialog.cluster() == ClusterSettings(
        nodes=3, gpus_per_node=8, cpus_per_node=8, time="12:00:00", partition="a100"
    )
