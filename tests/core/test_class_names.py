"""Class names are single folder names wherever they are read or written: never a path out."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ftgui.core.base.errors import CheckpointError, FtguiError
from ftgui.core.base.text import class_name_problem, printable
from ftgui.core.bundle.predict import Prediction, Predictor
from ftgui.core.deploy.export import export_all
from ftgui.core.insight.classify import copy_into_class_folders
from ftgui.core.training.engine import Trainer


@pytest.mark.parametrize("name", ["../x", "/tmp/x", "..", ".", "a/b", "x\0y", "", "é" * 200])
def test_names_that_are_not_one_folder_name_are_refused(name):
    assert class_name_problem(name)


@pytest.mark.parametrize("name", ["cat", "Grüne Äpfel", "a b", "x.y", "...x", "\\x1b"])
def test_plain_folder_names_pass(name):
    assert class_name_problem(name) is None


def test_escape_codes_are_shown_not_sent():
    assert printable("red\x1b[2Jcircle\nnext\tcol") == "red\\x1b[2Jcircle\nnext\tcol"


def test_a_model_json_whose_class_is_a_path_is_refused_and_copies_never_leave_the_folder(
    tiny_config, tmp_path
):
    trainer = Trainer(tiny_config)
    for _ in trainer.run():
        pass
    out = tmp_path / "bundle"
    export_all(trainer.trained(), out)
    meta = json.loads((out / "model.json").read_text())
    for evil in ("../escaped", str(tmp_path / "absolute")):
        (out / "model.json").write_text(json.dumps({**meta, "classes": [evil, *meta["classes"][1:]]}))
        with pytest.raises(CheckpointError, match="is a path, not a single folder name"):
            Predictor.load(out)
    # Predictions that name such a class (from any source): nothing is copied anywhere.
    image = next(Path(tiny_config.data_dir).rglob("*.jpg"))
    dest = tmp_path / "sorted"
    for evil in ("../escaped", str(tmp_path / "absolute")):
        with pytest.raises(FtguiError, match="Cannot copy into class folders"):
            copy_into_class_folders([Prediction(str(image), ((evil, 0.9),))], dest)
    assert not dest.exists() and not (tmp_path / "escaped").exists() and not (tmp_path / "absolute").exists()
    # And a scan's class names are checked once more where the bundle is written.
    trained = trainer.trained()
    trained.scan.classes[0] = "../escaped"
    with pytest.raises(CheckpointError, match="Cannot write the bundle"):
        export_all(trained, tmp_path / "again")
    assert not (tmp_path / "again").exists()


def test_file_names_with_escape_codes_are_printed_escaped(image_folder, tmp_path, capsys, ftgui_train_args):
    import shutil

    from ftgui.cli import train_main

    data = tmp_path / "data"
    shutil.copytree(image_folder, data)
    (data / "circle" / "clear\x1b[2Jscreen.txt").write_text("not an image")
    assert train_main(ftgui_train_args(data, tmp_path / "out", "--epochs", "1", "--quiet")) == 0
    err = capsys.readouterr().err
    assert "Skipped circle/clear\\x1b[2Jscreen.txt: not an image file extension" in err
    assert "\x1b" not in err
