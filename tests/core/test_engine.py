import math
import os

import pytest
import torch
import torchvision.models as tvm
from safetensors.torch import load_file

from ftgui.core.base import events as ev
from ftgui.core.base.errors import CheckpointError, FtguiError
from ftgui.core.base.events import CancelToken
from ftgui.core.bundle.export import export_bundle
from ftgui.core.bundle.format import read_metadata, read_split
from ftgui.core.bundle.predict import Predictor
from ftgui.core.compute.device import available_devices, select_device
from ftgui.core.models.freeze import FreezePlan
from ftgui.core.training.checkpoint import load_checkpoint
from ftgui.core.training.config import TrainConfig
from ftgui.core.training.engine import Trainer, run_to_end
from ftgui.core.training.optim import lr_factor


def _events(trainer, cancel=None):
    return list(trainer.run(cancel))


@pytest.mark.slow
def test_tiny_fine_tuning_beats_chance(tiny_config):
    tiny_config.epochs = 3
    trainer = Trainer(tiny_config)
    events = _events(trainer)
    final = events[-1]
    assert isinstance(final, ev.Finished), final
    epochs = [e for e in events if isinstance(e, ev.EpochEnded)]
    assert [e.epoch for e in epochs] == [1, 2, 3]
    assert final.best_val_accuracy >= 0.7  # 4 classes: chance is 0.25
    assert epochs[-1].train_loss < epochs[0].train_loss
    batches = [e for e in events if isinstance(e, ev.BatchEnded)]
    assert len(batches) == 3 * 4 and batches[-1].step == 12 and all(b.loss > 0 for b in batches)
    started = (
        events[0]
        if isinstance(events[0], ev.RunStarted)
        else next(e for e in events if isinstance(e, ev.RunStarted))
    )
    assert started.classes == ("circle", "square", "stripes", "triangle")
    assert (started.num_train, started.num_val) == (60, 20)


def test_optimizer_holds_exactly_the_trainable_parameters(tiny_config):
    tiny_config.freeze, tiny_config.lr_decay, tiny_config.optimizer = FreezePlan.parse("last-2"), 0.5, "adamw"
    trainer = Trainer(tiny_config)
    trainer.prepare()
    model, opt = trainer.model, trainer.optimizer
    in_opt = [p for g in opt.param_groups for p in g["params"]]
    assert len(in_opt) == len({id(p) for p in in_opt})
    assert {id(p) for p in in_opt} == {id(p) for p in model.parameters() if p.requires_grad}
    lr_of = {n: g["lr"] for g in opt.param_groups for n in g["names"]}
    wd_of = {n: g["weight_decay"] for g in opt.param_groups for n in g["names"]}
    assert lr_of["fc.1.weight"] == pytest.approx(1e-3) and lr_of["fc.0.weight"] == pytest.approx(1e-3)
    assert lr_of["layer4.0.conv1.weight"] == pytest.approx(5e-4)
    assert lr_of["layer3.0.conv1.weight"] == pytest.approx(2.5e-4)
    assert wd_of["fc.1.weight"] > 0 and wd_of["fc.1.bias"] == 0 and wd_of["layer4.0.bn1.weight"] == 0
    assert wd_of["fc.0.weight"] == 0  # the concat head's BatchNorm: no decay, as every norm


def test_gradual_unfreezing_adds_parameters_and_keeps_optimizer_state(tiny_config):
    tiny_config.freeze, tiny_config.epochs = FreezePlan.parse("gradual", unfreeze_every=1), 2
    trainer = Trainer(tiny_config)
    trainer.prepare()
    assert {n.split(".")[0] for n in _trainable(trainer.model)} == {"fc"}
    events = []
    fc_state_after_epoch1 = None
    for e in trainer.run():
        events.append(e)
        if isinstance(e, ev.EpochEnded) and e.epoch == 1:
            st = trainer.optimizer.state[trainer.model.fc.linear.weight]
            fc_state_after_epoch1 = (int(st["step"]), st["exp_avg"].clone())
    unfrozen = [e for e in events if isinstance(e, ev.BlocksUnfrozen)]
    assert len(unfrozen) == 1 and unfrozen[0].epoch == 2 and unfrozen[0].blocks == ("layer4",)
    st = trainer.optimizer.state[trainer.model.fc.linear.weight]
    assert fc_state_after_epoch1[0] == 4 and int(st["step"]) == 8  # state continued, not reset
    assert {n.split(".")[0] for n in _trainable(trainer.model)} == {"fc", "layer4"}
    assert int(trainer.optimizer.state[trainer.model.layer4[0].conv1.weight]["step"]) == 4


def _trainable(model):
    return [n for n, p in model.named_parameters() if p.requires_grad]


def test_export_reloads_in_plain_torchvision_with_identical_logits(tiny_config, tmp_path):
    tiny_config.head = "linear"  # as torchvision builds it (the concat head: test_head_form.py)
    trainer = Trainer(tiny_config)
    run_to_end(trainer)
    out = export_bundle(trainer.trained(), tmp_path / "export")
    meta = read_metadata(out)
    assert meta["classes"] == ["circle", "square", "stripes", "triangle"]
    assert (meta["input_size"], meta["resize_size"]) == (32, 37)
    assert meta["trainable_parameter_names"][0] == "conv1.weight"
    assert len(read_split(out, meta)["train"]) == 60 and len(meta["history"]) == 1
    assert meta["split"]["counts"] == {"train": 60, "val": 20}
    plain = tvm.get_model(meta["arch"], num_classes=len(meta["classes"]))
    plain.load_state_dict(load_file(str(out / "model.safetensors")), strict=True)
    plain.eval()
    trainer.model.eval()
    x = torch.randn(3, 3, 32, 32)
    with torch.no_grad():
        assert torch.allclose(plain(x), trainer.model(x), rtol=1e-5, atol=1e-6)
    assert not list(out.glob(".*partial"))


@pytest.mark.slow
def test_predict_from_exported_bundle(tiny_config, tmp_path, image_folder):
    tiny_config.epochs = 2
    trainer = Trainer(tiny_config)
    run_to_end(trainer)
    export_bundle(trainer.trained(), tmp_path / "m")
    predictor = Predictor.load(tmp_path / "m")
    val = [os.path.join(str(image_folder), s.path) for s in trainer.split.val]
    preds = predictor.predict(val, topk=3)
    assert all(len(p.top) == 3 and p.top[0][1] >= p.top[1][1] >= p.top[2][1] for p in preds)
    every = predictor.predict(val[:2], topk=10)  # capped at the 4 classes
    assert all(len(p.top) == 4 and abs(sum(v for _, v in p.top) - 1) < 1e-5 for p in every)
    right = sum(p.top[0][0] == trainer.classes[s.label] for p, s in zip(preds, trainer.split.val))
    assert right / len(val) >= 0.7
    missing = predictor.predict([str(tmp_path / "nope.jpg")])[0]
    assert missing.error and not missing.top


@pytest.mark.slow
def test_resume_continues_with_same_optimizer_state_and_same_result(tiny_config, tmp_path):
    tiny_config.epochs, tiny_config.freeze = 2, FreezePlan.parse("last-1")
    straight = Trainer(tiny_config)
    straight_events = _events(straight)

    # The same run, interrupted after its first epoch (the schedule spans both epochs).
    first = Trainer(tiny_config)
    cancel = CancelToken()
    ckpt = tmp_path / "run" / "checkpoint.pt"
    for e in first.run(cancel):
        if isinstance(e, ev.EpochEnded):
            first.save_checkpoint(ckpt)
            cancel.cancel()
    assert first.epoch == 1
    torch.load(ckpt, weights_only=True)  # plain tensors and values only

    resumed = Trainer.from_checkpoint(ckpt)
    assert resumed.epoch == 1 and resumed.state.step == 4
    assert _trainable(resumed.model) == _trainable(first.model)
    assert resumed.split.to_dict() == first.split.to_dict()
    a = first.optimizer.state_dict()
    b = resumed.optimizer.state_dict()
    assert a["param_groups"] == b["param_groups"]
    for k, st in a["state"].items():
        assert torch.equal(st["exp_avg"], b["state"][k]["exp_avg"])
    resumed_events = _events(resumed)
    assert isinstance(resumed_events[-1], ev.Finished) and resumed.epoch == 2
    losses = [e.loss for e in resumed_events if isinstance(e, ev.BatchEnded)]
    expected = [e.loss for e in straight_events if isinstance(e, ev.BatchEnded) and e.epoch == 2]
    assert losses == pytest.approx(expected, rel=1e-5)
    assert len(resumed.history) == 2


def test_checkpoint_errors(tmp_path):
    with pytest.raises(CheckpointError, match="not found"):
        load_checkpoint(tmp_path / "none.pt")
    torch.save({"weights": torch.zeros(1)}, tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match="not an ftgui training checkpoint"):
        load_checkpoint(tmp_path / "other.pt")


def test_cancel_stops_within_a_batch_and_keeps_the_finished_epoch(tiny_config, tiny_model):
    tiny_config.epochs = 3
    trainer = Trainer(tiny_config)
    trainer.prepare(built=tiny_model())
    cancel = CancelToken()
    events = []
    for e in trainer.run(cancel):
        events.append(e)
        if isinstance(e, ev.BatchEnded) and e.epoch == 2 and e.batch == 2:
            cancel.cancel()
    assert isinstance(events[-1], ev.Cancelled) and events[-1].epochs_completed == 1
    after_cancel = [e for e in events if isinstance(e, ev.BatchEnded) and (e.epoch, e.batch) > (2, 2)]
    assert after_cancel == []
    # The model holds the weights of the one finished epoch, not those of the cancelled batches.
    assert trainer.best_epoch == 1 and all(
        torch.equal(v, trainer.state.best_state[k]) for k, v in trainer.model.state_dict().items()
    )


def test_nan_loss_fails_with_a_clear_message(tiny_config, tiny_model):
    trainer = Trainer(tiny_config)
    trainer.prepare(built=tiny_model())
    with torch.no_grad():
        trainer.model.fc.weight.fill_(math.nan)
    final = run_to_end(trainer)
    assert isinstance(final, ev.Failed)
    assert "loss became nan" in final.message.lower() and "lower learning rate" in final.message
    assert "epoch 1, batch 1" in final.message and trainer.epoch == 0


def test_early_stopping(tiny_config, tiny_model):
    # Head only (BatchNorm frozen) at a rate too small to move: the validation loss stays put.
    tiny_config.epochs, tiny_config.lr, tiny_config.early_stopping = 5, 1e-12, 1
    tiny_config.freeze = FreezePlan.parse("head")
    trainer = Trainer(tiny_config)
    trainer.prepare(built=tiny_model())
    final = run_to_end(trainer)
    assert isinstance(final, ev.Finished) and final.stopped_early
    assert final.epochs_completed == 2 and final.best_epoch == 1


def test_unreadable_file_during_training_is_skipped(tiny_config, tmp_path, image_folder, tiny_model):
    import shutil

    data = tmp_path / "copy"
    shutil.copytree(image_folder, data)
    tiny_config.data_dir = str(data)
    trainer = Trainer(tiny_config)
    trainer.prepare(built=tiny_model())
    victim = trainer.split.train[0].path
    (data / victim).write_bytes(b"")  # broken after the scan
    events = _events(trainer)
    skipped = [e for e in events if isinstance(e, ev.FileSkipped)]
    assert [e.path for e in skipped] == [victim]
    assert isinstance(events[-1], ev.Finished)
    assert sum(e.images_per_s > 0 for e in events if isinstance(e, ev.BatchEnded)) == 4


def test_aux_heads_train_googlenet(tiny_config):
    tiny_config.arch, tiny_config.image_size, tiny_config.freeze = "googlenet", 64, FreezePlan.parse("head")
    trainer = Trainer(tiny_config)
    trainer.prepare()
    names = _trainable(trainer.model)
    assert "fc.1.weight" in names and any(n.startswith("aux1.") for n in names)
    assert isinstance(run_to_end(trainer), ev.Finished)


def test_bad_config_raises_readable_errors(tiny_config, tmp_path):
    with pytest.raises(FtguiError, match="Unknown strategy 'sideways': use head, last-N"):
        FreezePlan.parse("sideways")
    with pytest.raises(FtguiError, match="'freeze.strategy' must be one of head, last, full, gradual"):
        TrainConfig.from_dict({**tiny_config.to_dict(), "freeze": {"strategy": "sideways"}})
    tiny_config.freeze, tiny_config.device = FreezePlan.parse("head"), "tpu"
    with pytest.raises(FtguiError, match="Unknown device"):
        Trainer(tiny_config).prepare()


def test_device_selection():
    assert select_device("cpu") == torch.device("cpu")
    mps = getattr(torch.backends, "mps", None)
    has_mps = bool(mps and mps.is_available())
    expected = "cuda" if torch.cuda.is_available() else "mps" if has_mps else "cpu"
    assert select_device("auto").type == expected and select_device("AUTO").type == expected
    assert available_devices()[-1] == "cpu" and available_devices()[0] == expected
    if not torch.cuda.is_available():
        with pytest.raises(FtguiError, match="CUDA was requested but no CUDA GPU is available"):
            select_device("cuda:0")
    if not has_mps:
        with pytest.raises(FtguiError, match="MPS was requested but is not available"):
            select_device("mps")
    with pytest.raises(FtguiError, match="Unknown device 'tpu': use auto, cpu, cuda or mps"):
        select_device("tpu")


@pytest.mark.slow
def test_python_dash_m_ftgui_runs_the_window_entry_point():
    """``python -m ftgui`` is the app: its --help and --version answer without opening a window."""
    import subprocess
    import sys

    from ftgui import __version__

    run = subprocess.run(
        [sys.executable, "-m", "ftgui", "--version"], capture_output=True, text=True, timeout=60
    )
    assert run.returncode == 0 and run.stdout.strip() == f"ftgui {__version__}"
    run = subprocess.run(
        [sys.executable, "-m", "ftgui", "--help"], capture_output=True, text=True, timeout=60
    )
    assert run.returncode == 0 and "--install-desktop" in run.stdout and "folder" in run.stdout


def test_schedules():
    assert lr_factor("constant", 5, 10) == 1
    assert lr_factor("cosine", 0, 11) == 1 and lr_factor("cosine", 10, 11) == pytest.approx(0)
    assert lr_factor("cosine", 5, 11) == pytest.approx(0.5)
    peak = max(range(101), key=lambda s: lr_factor("onecycle", s, 101))
    assert peak == 30 and lr_factor("onecycle", 0, 101) == pytest.approx(1 / 25)
    assert lr_factor("onecycle", 100, 101) == pytest.approx(1e-4)


@pytest.mark.slow
def test_a_checkpoint_of_the_earlier_format_still_resumes(tiny_config, tmp_path):
    """Version 1 stored the strategy as text and the trainable names under 'trainable'."""
    tiny_config.freeze = FreezePlan.parse("last-1")
    trainer = Trainer(tiny_config)
    assert isinstance(run_to_end(trainer), ev.Finished)
    state = trainer.checkpoint_state()
    config = {k: v for k, v in state["config"].items() if k != "freeze"}
    config.update(strategy="last-1", trainable=[], unfreeze_every=1, train_bn=False)
    old = {k: v for k, v in state.items() if k != "trainable_parameter_names"}
    old.update(version=1, config=config, trainable=state["trainable_parameter_names"])
    torch.save(old, tmp_path / "v1.pt")
    resumed = Trainer.from_checkpoint(tmp_path / "v1.pt", epochs=2)
    assert resumed.config.freeze == FreezePlan.parse("last-1")
    names = [n for n, p in resumed.model.named_parameters() if p.requires_grad]
    assert names == state["trainable_parameter_names"]
    final = run_to_end(resumed)
    assert isinstance(final, ev.Finished) and final.epochs_completed == 2
