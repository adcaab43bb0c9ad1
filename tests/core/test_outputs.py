"""Every output file an ftgui command writes (ftgui-predict --csv and --cam, ftgui-check --json
and --csv, a training job's files) replaces only a file ftgui wrote, or any file with --overwrite;
never one in a model folder or a dataset's class folder. Refused before any work, nothing changed."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from ftgui.cli import predict_main
from ftgui.cli.check import check_main
from ftgui.core.base.errors import FtguiError
from ftgui.core.bundle.export import export_bundle
from ftgui.core.data.samples import split_samples
from ftgui.core.data.scan import scan_folder
from ftgui.core.training.config import TrainConfig
from ftgui.core.training.engine import Trainer, run_to_end
from ftgui.core.workflows.job import write_job

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def trained(module_tmp, image_folder):
    """A dataset of its own (its class folders are written into by these tests' refusals) and a
    bundle trained on it."""
    data = module_tmp / "data"
    shutil.copytree(image_folder, data)
    out = module_tmp / "bundle"
    run_to_end(trainer := Trainer(TrainConfig(data_dir=str(data), weights="none", image_size=32, epochs=1)))
    export_bundle(trainer.trained(), out)
    return out, data


def _snapshot(*folders: Path) -> dict[str, bytes]:
    return {str(p): p.read_bytes() for f in folders for p in sorted(f.rglob("*")) if p.is_file()}


def _predict(capsys, *argv: str) -> tuple[int, str]:
    code = predict_main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.err


@pytest.mark.parametrize("victim", ["model.safetensors", "model.json", "checkpoint.pt", "evaluation.json"])
@pytest.mark.parametrize("option", ["--csv", "--cam"])
def test_an_output_pointed_into_the_bundle_is_refused_even_with_overwrite(trained, capsys, option, victim):
    bundle, data = trained
    image = next((data / "circle").iterdir())
    before = _snapshot(bundle, data)
    for extra in ([], ["--overwrite"]):
        code, err = _predict(capsys, bundle, image, option, bundle / victim, *extra)
        assert code == 2, err
        assert f"{option} {bundle / victim} is inside {bundle.resolve()}, an ftgui model folder" in err
    assert _snapshot(bundle, data) == before


@pytest.mark.parametrize("option", ["--csv", "--cam"])
def test_an_output_in_a_class_folder_of_the_models_dataset_is_refused(trained, capsys, option):
    bundle, data = trained
    image = next((data / "square").iterdir())
    before = _snapshot(data)
    for target in (data / "circle" / "new.png", next((data / "circle").iterdir())):  # new, and a photo
        code, err = _predict(capsys, bundle, image, option, target, "--overwrite")
        assert code == 2 and "inside a class folder of the dataset" in err, err
    assert _snapshot(data) == before


def test_a_users_file_is_replaced_only_with_overwrite_and_ftgui_output_without(trained, capsys, tmp_path):
    bundle, data = trained
    image = next((data / "circle").iterdir())
    notes, picture = tmp_path / "notes.csv", tmp_path / "holiday.png"
    notes.write_text("my own table\n")
    shutil.copy(image, picture)  # a picture of the user's, not ftgui's
    for option, target in (("--csv", notes), ("--cam", picture)):
        kept = target.read_bytes()
        code, err = _predict(capsys, bundle, image, option, target)
        assert code == 2 and "already exists and ftgui did not write it" in err and "--overwrite" in err
        assert target.read_bytes() == kept
        code, err = _predict(capsys, bundle, image, option, target, "--overwrite")
        assert code == 0, err
        assert target.read_bytes() != kept
        # What ftgui wrote, the same command may write again without asking.
        code, err = _predict(capsys, bundle, image, option, target)
        assert code == 0, err
    assert notes.read_text().startswith("path,class_1,probability_1")


def test_an_output_that_is_not_a_regular_file_is_refused(trained, capsys, tmp_path):
    import os

    bundle, data = trained
    image = next((data / "circle").iterdir())
    fifo, link = tmp_path / "pipe.csv", tmp_path / "link.csv"
    os.mkfifo(fifo)
    (tmp_path / "real.csv").write_text("mine\n")
    link.symlink_to(tmp_path / "real.csv")
    for target in (fifo, link):
        code, err = _predict(capsys, bundle, image, "--csv", target, "--overwrite")
        assert code == 2 and "is not a regular file" in err, err
    assert (tmp_path / "real.csv").read_text() == "mine\n"


def test_ftgui_check_outputs_keep_the_users_files(trained, capsys, tmp_path):
    bundle, data = trained
    report, table = tmp_path / "report.json", tmp_path / "table.csv"
    report.write_text('{"mine": true}')
    table.write_text("a,b\n")
    args = [str(data), "--weights", "none", "--image-size", "32", "--folds", "2"]
    assert check_main([*args, "--json", str(report)]) == 2
    assert "already exists and ftgui did not write it" in capsys.readouterr().err
    assert check_main([*args, "--csv", str(data / "circle" / "findings.csv")]) == 2
    assert "inside a class folder of the dataset" in capsys.readouterr().err
    assert check_main([*args, "--csv", str(bundle / "model.json"), "--overwrite"]) == 2
    assert "an ftgui model folder" in capsys.readouterr().err
    assert report.read_text() == '{"mine": true}' and table.read_text() == "a,b\n"
    assert check_main([*args, "--json", str(report), "--csv", str(table), "--overwrite"]) in (0, 1)
    assert check_main([*args, "--json", str(report), "--csv", str(table)]) in (0, 1)  # ftgui's own now
    assert '"findings"' in report.read_text() and table.read_text().startswith("kind,path,score")


def test_a_training_job_never_replaces_the_users_scripts(trained, tmp_path):
    _, data = trained
    scan = scan_folder(data)
    config = TrainConfig(data_dir=str(data), weights="none", image_size=32, epochs=1)
    split = split_samples(scan, config.val_fraction, config.seed)
    out = tmp_path / "job"
    out.mkdir()
    (out / "run.sh").write_text("#!/bin/sh\necho my own script\n")
    with pytest.raises(FtguiError, match="already holds run.sh, which ftgui did not write"):
        write_job(out, config, scan.classes, split)
    assert (out / "run.sh").read_text() == "#!/bin/sh\necho my own script\n"
    assert sorted(p.name for p in out.iterdir()) == ["run.sh"]
    with pytest.raises(FtguiError, match="inside the dataset"):
        write_job(data / "circle", config, scan.classes, split)
    (out / "run.sh").unlink()
    write_job(out, config, scan.classes, split)
    write_job(out, config, scan.classes, split)  # its own files: replaced
    assert sorted(p.name for p in out.iterdir()) == ["job.json", "run.sh", "slurm.sbatch"]


def test_an_export_never_replaces_bundle_named_files_that_are_not_ftguis(trained, tmp_path, capsys):
    """--out holding someone's model.onnx or model.json (no ftgui model beside them) is refused
    before training; a folder with ftgui's bundle, even one whose model.json was damaged, is
    exported into as before."""
    from ftgui.cli import train_main

    bundle, data = trained
    args = ["--weights", "none", "--image-size", "32", "--epochs", "1", "--quiet"]
    theirs = tmp_path / "theirs"
    theirs.mkdir()
    (theirs / "model.onnx").write_bytes(b"someone's network")
    (theirs / "model.json").write_text('{"name": "not ftgui"}')
    assert train_main([str(data), "--out", str(theirs), *args]) == 2
    err = capsys.readouterr().err
    assert "already holds model.json, model.onnx, which ftgui did not write" in err, err
    assert (theirs / "model.onnx").read_bytes() == b"someone's network"
    ours = tmp_path / "ours"
    shutil.copytree(bundle, ours)
    (ours / "model.json").write_text("{damaged")
    assert train_main([str(data), "--out", str(ours), *args]) == 0, capsys.readouterr().err
    assert (ours / "model.json").read_text().startswith("{")
    assert '"format": "ftgui-model"' in (ours / "model.json").read_text()
