import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from ftgui.cli import predict_main, train_main

BIN = Path(sys.executable).parent


@pytest.mark.slow
def test_train_then_predict_with_the_installed_commands(image_folder, tmp_path, ftgui_train):
    out = tmp_path / "model"
    env = {**os.environ}
    run = subprocess.run(
        ftgui_train(image_folder, out, "--epochs", "2", "--batch-size", "16", "--val-fraction", "0.25"),
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr
    assert "Epoch 2/2" in run.stderr and "done: 2 epochs" in run.stderr
    assert (out / "model.safetensors").is_file() and (out / "model.json").is_file()
    assert not (out / "checkpoint.pt").exists()  # a run of seconds writes none unless asked
    meta = json.loads((out / "model.json").read_text())
    assert meta["training"]["epochs"] == 2 and meta["training"]["strategy"] == "full"
    image = image_folder / "circle" / "circle_0003.jpg"
    pred = subprocess.run(
        [str(BIN / "ftgui-predict"), str(out), str(image), "--json", "--topk", "2"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert pred.returncode == 0, pred.stderr
    result = json.loads(pred.stdout)
    assert result[0]["path"] == str(image) and len(result[0]["top"]) == 2
    assert {t["class"] for t in result[0]["top"]} <= set(meta["classes"])
    text = subprocess.run([str(BIN / "ftgui-predict"), str(out), str(image)], capture_output=True, text=True)
    assert text.returncode == 0 and str(image) in text.stdout and "%" in text.stdout


def _one_line_error(capsys, argv, main=train_main):
    code = main(argv)
    err = capsys.readouterr().err.strip().splitlines()
    return code, err


@pytest.mark.parametrize(
    "case,expect",
    [
        ("missing", "Folder not found"),
        ("one_class", "at least 2 class folders"),
        ("unknown_model", "Unknown model 'resnet1000'"),
        ("bad_weights", "Could not read weights file"),
        ("missing_cache", "--weights none"),
        ("bad_strategy", "Unknown strategy"),
    ],
)
def test_bad_input_exits_nonzero_with_one_clear_line(capsys, tmp_path, image_folder, case, expect):
    data, extra = str(image_folder), []
    if case == "missing":
        data = str(tmp_path / "does-not-exist")
    elif case == "one_class":
        (tmp_path / "single" / "cats").mkdir(parents=True)
        Image.new("RGB", (8, 8)).save(tmp_path / "single" / "cats" / "a.png")
        data = str(tmp_path / "single")
    elif case == "unknown_model":
        extra = ["--model", "resnet1000", "--weights", "none"]
    elif case == "bad_weights":
        bad = tmp_path / "w.pth"
        bad.write_text("nope")
        extra = ["--weights", str(bad)]
    elif case == "bad_strategy":
        extra = ["--strategy", "most", "--weights", "none"]
    code, err = _one_line_error(capsys, [data, "--out", str(tmp_path / "o"), *extra, "--image-size", "32"])
    assert code == 2
    assert len(err) == 1 and err[0].startswith("ftgui-train: error:") and expect in err[0], err
    assert not (tmp_path / "o" / "model.safetensors").exists()


def test_predict_errors(capsys, tmp_path):
    code, err = _one_line_error(capsys, [str(tmp_path), "x.jpg"], main=predict_main)
    assert code == 2 and "No model.json" in err[0]


@pytest.mark.slow
def test_resume_from_the_cli(capsys, image_folder, tmp_path, ftgui_train_args):
    out = tmp_path / "m"
    base = ftgui_train_args(image_folder, out, "--batch-size", "32")
    assert train_main([*base, "--epochs", "1", "--checkpoint-every", "1"]) == 0
    assert train_main([*base, "--epochs", "2", "--resume", str(out / "checkpoint.pt")]) == 0
    err = capsys.readouterr().err
    assert "resuming from" in err and "after epoch 1" in err and "Epoch 2/2" in err
    assert json.loads((out / "model.json").read_text())["epochs_completed"] == 2


@pytest.mark.slow
def test_python_dash_m_ftgui_runs():
    run = subprocess.run(
        [sys.executable, "-m", "ftgui", "--version"], capture_output=True, text=True, timeout=60
    )
    assert run.returncode == 0


def test_predict_never_writes_its_outputs_over_an_input(tiny_config, tmp_path, capsys):
    """--csv or --cam naming one of the images (or a hard link to it) is refused before anything
    runs, and a heat map is never written into a folder being classified."""
    import os
    import shutil

    from ftgui.cli.predict import predict_main
    from ftgui.core.bundle.export import export_bundle
    from ftgui.core.training.engine import Trainer, run_to_end

    tiny_config.image_size = 32
    run_to_end(trainer := Trainer(tiny_config))
    export_bundle(trainer.trained(), tmp_path / "m")
    photos = tmp_path / "photos"
    photos.mkdir()
    photo = photos / "victim.jpg"
    shutil.copy(next(Path(tiny_config.data_dir).glob("circle/*.jpg")), photo)
    os.link(photo, tmp_path / "link.jpg")
    before = photo.read_bytes()
    for option in ("--csv", "--cam"):
        for target in (photo, tmp_path / "link.jpg"):
            assert predict_main([str(tmp_path / "m"), str(photo), option, str(target)]) == 2
            assert "never writes over an input" in capsys.readouterr().err
    assert predict_main([str(tmp_path / "m"), str(photos), "--cam", str(photos / "heat.png")]) == 2
    assert "a folder being classified" in capsys.readouterr().err
    assert photo.read_bytes() == before and sorted(p.name for p in photos.iterdir()) == ["victim.jpg"]
    assert predict_main([str(tmp_path / "m"), str(photo), "--csv", str(tmp_path / "out.csv")]) == 0


def test_checkpoints_by_default_only_when_minutes_of_work_are_at_stake(
    image_folder, tmp_path, ftgui_train_args, monkeypatch
):
    """auto: a checkpoint after an epoch that ends AUTO_CHECKPOINT_MINUTES after the last save;
    a run of seconds pays for none, and --checkpoint-every asks for them explicitly."""
    import ftgui.cli.train as train

    out = tmp_path / "m"
    base = ftgui_train_args(image_folder, out, "--batch-size", "32", "--epochs", "1")
    assert train_main(base) == 0
    assert not (out / "checkpoint.pt").exists()
    monkeypatch.setattr(train, "AUTO_CHECKPOINT_MINUTES", 0)  # every epoch ends "minutes" later
    assert train_main(base) == 0
    assert (out / "checkpoint.pt").is_file()
    (out / "checkpoint.pt").unlink()
    assert train_main([*base, "--checkpoint-every", "0"]) == 0
    assert not (out / "checkpoint.pt").exists()
    with pytest.raises(SystemExit):
        train_main([*base, "--checkpoint-every", "often"])


def test_wrong_arguments_and_missing_models_are_answered_before_pytorch_loads(tmp_path):
    """A typo costs a fraction of a second, not the seconds PyTorch takes to import."""
    import subprocess
    import sys

    (tmp_path / "empty").mkdir()
    script = f"""
import sys
from ftgui.cli.export import export_main
from ftgui.cli.predict import predict_main
from ftgui.cli.train import train_main
codes = [
    predict_main([{str(tmp_path / "nowhere")!r}, "x.png"]),
    predict_main([{str(tmp_path / "empty")!r}, "x.png"]),
    export_main([{str(tmp_path / "empty")!r}, "--format", "onnx"]),
]
for main, argv in ((train_main, ["data"]), (predict_main, ["--no-such-option"])):
    try:
        main(argv)
    except SystemExit as exc:
        codes.append(exc.code)
print(codes, "torch" in sys.modules)
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.stdout.strip() == "[2, 2, 2, 2, 2] False", done.stderr
    err = done.stderr
    assert (
        f"ftgui-predict: error: {tmp_path / 'nowhere'} does not exist: choose the folder ftgui exported."
        in err
    )
    assert (
        f"ftgui-export: error: No model.json in {tmp_path / 'empty'}: choose the folder ftgui exported."
        in err
    )
    assert "the following arguments are required: --out" in err
