"""Every run is kept: records from ftgui-train, ftgui-compare and the engine, read back."""

import json
import shutil

import pytest

from ftgui.cli import compare_main, train_main
from ftgui.core.base.errors import FtguiError
from ftgui.core.workflows.runs import delete_run, list_runs, runs_dir


@pytest.mark.slow
def test_runs_of_both_commands_are_recorded_and_listed_per_dataset(image_folder, tmp_path, capsys):
    args = [str(image_folder), "--weights", "none", "--image-size", "32", "--epochs", "1", "--no-evaluate"]
    assert train_main([*args, "--out", str(tmp_path / "m"), "--strategy", "last-1"]) == 0
    assert "recorded as run " in capsys.readouterr().err
    cmp_args = [a for a in args if a != "--no-evaluate"]
    assert compare_main([*cmp_args, "--out", str(tmp_path / "cmp"), "--candidates", "head,full"]) == 0
    runs = list_runs(image_folder)
    assert [r.source for r in runs].count("ftgui-compare") == 2 and runs[-1].source == "ftgui-train"
    single = runs[-1]
    assert single.strategy == "last-1" and single.freeze["strategy"] == "last" and single.epochs == 1
    assert single.bundle == str((tmp_path / "m").resolve())
    meta = json.loads((tmp_path / "m" / "model.json").read_text())
    assert single.history == meta["history"] and single.best_val_loss == pytest.approx(
        meta["history"][0]["val_loss"]
    )
    assert {r.candidate for r in runs if r.comparison == "cmp"} == {"head", "full"}
    assert list_runs(tmp_path) == []  # another folder has no runs

    # The dataset moved: its runs still show (same folder name and classes), and still read.
    moved = tmp_path / "elsewhere" / image_folder.name
    shutil.copytree(image_folder, moved)
    assert len(list_runs(moved, classes=single.classes)) == 3
    assert list_runs(moved, classes=["a", "b"]) == []

    delete_run(single.id)
    assert len(list_runs(image_folder)) == 2 and (tmp_path / "m" / "model.json").is_file()
    with pytest.raises(FtguiError, match="No recorded run"):
        delete_run(single.id)
    with pytest.raises(FtguiError, match="No recorded run"):
        delete_run("../../etc/passwd")


def test_a_damaged_record_is_skipped_not_fatal(image_folder, tmp_path):
    runs_dir().mkdir(parents=True, exist_ok=True)
    (runs_dir() / "broken.json").write_text("{not json")
    (runs_dir() / "other.json").write_text(json.dumps({"format": "something else"}))
    assert list_runs() == []


def test_records_whose_fields_have_the_wrong_type_are_skipped(image_folder, tmp_path, ftgui_train_args):
    from ftgui.cli import train_main

    assert train_main(ftgui_train_args(image_folder, tmp_path / "o", "--epochs", "1", "--quiet")) == 0
    [good] = list(runs_dir().glob("*.json"))
    record = json.loads(good.read_text())
    for i, change in enumerate(
        [
            {"created": None},
            {"created": 5},
            {"classes": None},
            {"classes": [1, 2]},
            {"epochs": "3"},
            {"best_val_accuracy": "high"},
            {"history": [1]},
            {"config": []},
            {"epochs": True},
            {"created": "yesterday"},
            {"history": [{"epoch": "1", "val_loss": 0.5}]},
            {"history": [{"epoch": 1, "val_loss": "low", "val_accuracy": 0.5}]},
            {"history": [{"epoch": 1, "val_loss": 0.5, "val_accuracy": [0.5]}]},
        ]
    ):
        (runs_dir() / f"bad{i}.json").write_text(json.dumps({**record, **change}))
    assert [r.id for r in list_runs()] == [record["id"]]
