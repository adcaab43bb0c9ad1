"""Training jobs for another machine: job.json checked, run.sh and slurm.sbatch really run."""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

import pytest

from ftgui.cli import train_main
from ftgui.core.base.errors import FtguiError
from ftgui.core.bundle.format import read_split
from ftgui.core.data.samples import split_samples
from ftgui.core.data.scan import scan_folder
from ftgui.core.models.freeze import FreezePlan
from ftgui.core.training.config import TrainConfig
from ftgui.core.workflows.job import ClusterSettings, read_job, write_job


def _job(image_folder: Path, folder: Path, cluster: ClusterSettings | None = None) -> TrainConfig:
    config = TrainConfig(
        data_dir=str(image_folder),
        weights="none",
        freeze=FreezePlan.parse("head"),
        epochs=2,
        batch_size=16,
        image_size=32,
        val_fraction=0.25,
    )
    scan = scan_folder(image_folder)
    write_job(folder, config, scan.classes, split_samples(scan, 0.25, 0), cluster)
    return config


def _env(**extra: str) -> dict[str, str]:
    # The scripts find ftgui-train and torchrun on PATH, as in an activated environment.
    return {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}", **extra}


@pytest.mark.slow
def test_run_sh_trains_the_job_with_a_process_per_core(image_folder, tmp_path, run_launcher):
    job, out = tmp_path / "job", tmp_path / "out"
    _job(image_folder, job)
    # NPROC: what nproc prints on this 2-core machine, said explicitly.
    run = run_launcher(["bash", str(job / "run.sh"), str(image_folder), str(out)], env=_env(NPROC="2"))
    assert run.returncode == 0, run.stderr[-3000:]
    meta = json.loads((out / "model.json").read_text())
    assert meta["distributed"]["world_size"] == 2 and meta["epochs_completed"] == 2
    assert read_split(out, meta)["train"] == json.loads((job / "job.json").read_text())["split"]["train"]


@pytest.mark.slow
def test_slurm_script_runs_torchrun_on_the_allocated_node(image_folder, tmp_path, run_launcher):
    """sbatch and a cluster are not here: srun and scontrol stand-ins run the script's own
    torchrun command on this machine as one CPU node of two cores."""
    job, out, bin_dir = tmp_path / "job", tmp_path / "out", tmp_path / "bin"
    _job(image_folder, job, ClusterSettings(nodes=1, gpus_per_node=0, cpus_per_node=2, time="00:10:00"))
    bin_dir.mkdir()
    (bin_dir / "srun").write_text('#!/bin/sh\nwhile [ "${1#--}" != "$1" ]; do shift; done\nexec "$@"\n')
    (bin_dir / "scontrol").write_text("#!/bin/sh\necho 127.0.0.1\n")
    for f in bin_dir.iterdir():
        f.chmod(0o755)
    slurm = {"SLURM_JOB_ID": "7", "SLURM_NNODES": "1", "SLURM_JOB_NODELIST": "node1"}
    slurm |= {"SLURM_CPUS_PER_TASK": "2", "SLURM_SUBMIT_DIR": str(job), "MASTER_PORT": "29731"}
    env = _env(**slurm)
    env["PATH"] = f"{bin_dir}:{env['PATH']}"
    run = run_launcher(
        ["bash", str(job / "slurm.sbatch"), str(image_folder), str(out)], env=env, cwd=tmp_path
    )
    assert run.returncode == 0, run.stderr[-3000:]
    meta = json.loads((out / "model.json").read_text())
    assert meta["distributed"]["world_size"] == 2 and meta["epochs_completed"] == 2


def test_config_needs_the_jobs_files_and_refuses_damaged_jobs(image_folder, tmp_path, capsys):
    job = tmp_path / "job"
    _job(image_folder, job)
    partial = tmp_path / "partial"  # the dataset without its circles
    shutil.copytree(image_folder, partial)
    shutil.rmtree(partial / "circle")
    code = train_main(
        ["--config", str(job / "job.json"), "--data", str(partial), "--out", str(tmp_path / "o")]
    )
    err = capsys.readouterr().err
    assert code == 2 and f"--data: {partial} lacks 20 of the job's 80 images (circle/" in err
    record = json.loads((job / "job.json").read_text())
    for broken, message in [
        ({**record, "format": "ftgui-model"}, "'format' must be 'ftgui-job'"),
        (
            {**record, "split": {"train": [["../secret.jpg", 0]], "val": []}},
            "relative path inside the dataset",
        ),
        ({**record, "split": {"train": [["circle/a.jpg", 9]], "val": []}}, "class index"),
        ({**record, "training": {**record["training"], "epochs": 0}}, "--epochs must be"),
        ({**record, "classes": ["../x", *record["classes"][1:]]}, "is a path, not a single folder name"),
        ({**record, "classes": ["/tmp/x", *record["classes"][1:]]}, "is a path, not a single folder name"),
        (
            {**record, "split": {**record["split"], "val": [record["split"]["train"][0]]}},
            "in both 'split.train' and 'split.val'",
        ),
        (
            {**record, "split": {**record["split"], "train": [record["split"]["train"][0]] * 2}},
            "twice in 'split.train'",
        ),
    ]:
        (tmp_path / "bad.json").write_text(json.dumps(broken))
        with pytest.raises(FtguiError, match=message.replace("(", r"\(")):
            read_job(tmp_path / "bad.json")
    (tmp_path / "deep.json").write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(FtguiError, match="nested too deep"):
        read_job(tmp_path / "deep.json")
    code = train_main(
        ["--config", str(tmp_path / "deep.json"), "--data", str(image_folder), "--out", str(tmp_path / "o")]
    )
    assert code == 2 and "Traceback" not in capsys.readouterr().err
    assert read_job(job).config.to_dict() == read_job(job / "job.json").config.to_dict()


def test_cluster_settings_are_checked_before_anything_is_written(image_folder, tmp_path):
    for bad, message in [
        (ClusterSettings(time="4h"), "HH:MM:SS"),
        (ClusterSettings(nodes=0), "Nodes must be"),
        (ClusterSettings(partition="gpu; rm -rf /"), "characters SLURM does not allow"),
    ]:
        with pytest.raises(FtguiError, match=message):
            _job(image_folder, tmp_path / "job", bad)
    assert not (tmp_path / "job").exists()
