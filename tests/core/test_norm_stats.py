"""BatchNorm statistics adapted to the training images before the first epoch (norm_stats.py):
the statistics are the images' own, nothing else changes, and a run records and reports it."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch
from torch import nn

from ftgui.core.base import events as ev
from ftgui.core.base.errors import FtguiError
from ftgui.core.data.images import Batch
from ftgui.core.models.freeze import FreezePlan
from ftgui.core.training.config import TrainConfig
from ftgui.core.training.engine import Trainer, run_to_end
from ftgui.core.training.norm_stats import adapt_batchnorm, batchnorm_layers


def _batches(images: torch.Tensor, size: int) -> list[Batch]:
    return [
        Batch(images[i : i + size], torch.zeros(len(images[i : i + size]), dtype=torch.long),
              torch.arange(i, i + len(images[i : i + size])), [])
        for i in range(0, len(images), size)
    ]  # fmt: skip


def _net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(), nn.LazyLinear(3), nn.BatchNorm1d(3)
    )


def _drain(gen):
    events = []
    while True:
        try:
            events.append(next(gen))
        except StopIteration as stop:
            return events, stop.value


def test_statistics_become_those_of_the_images_and_nothing_else_changes():
    model = _net()
    images = torch.randn(10, 3, 6, 6) * 3 + 5  # far from the initial mean 0, variance 1
    model(images[:2])
    model.eval()
    weights = {
        k: v.clone() for k, v in model.state_dict().items() if "running" not in k and "num_batches" not in k
    }
    events, changed = _drain(
        adapt_batchnorm(model, _batches(images, 4), model, len(images), ev.CancelToken())
    )
    assert changed == 2
    assert [e.done for e in events] == [4, 8, 10] and all(e.what == "adapting" for e in events)
    conv_out = model[0](images)  # what the first BatchNorm layer sees (nothing before it normalises)
    bn = model[1]
    assert torch.allclose(bn.running_mean, conv_out.mean((0, 2, 3)), atol=1e-5)
    assert torch.allclose(bn.running_var, conv_out.transpose(0, 1).reshape(4, -1).var(1), rtol=1e-4)
    assert not model.training and bn.momentum == 0.1  # modes and momentum as they were
    for k, v in model.state_dict().items():
        if k in weights:
            assert torch.equal(v, weights[k]), k


def test_cancel_changes_nothing_and_a_model_without_batchnorm_is_left_alone():
    model = _net()
    model(torch.zeros(2, 3, 6, 6))
    before = copy.deepcopy(model.state_dict())
    token = ev.CancelToken()
    token.cancel()
    _, changed = _drain(adapt_batchnorm(model, _batches(torch.randn(8, 3, 6, 6), 4), model, 8, token))
    assert changed is None
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())
    plain = nn.Sequential(nn.Conv2d(3, 2, 3), nn.Flatten())
    assert batchnorm_layers(plain) == []
    assert (
        _drain(adapt_batchnorm(plain, _batches(torch.randn(4, 3, 6, 6), 2), plain, 4, ev.CancelToken()))[1]
        == 0
    )


def _config(folder: Path, **kw) -> TrainConfig:
    kw.setdefault("bn_stats", "adapt")
    return TrainConfig(
        data_dir=str(folder), arch="resnet18", weights="none", freeze=kw.pop("freeze", FreezePlan.parse("head")),
        epochs=1, batch_size=16, image_size=32, seed=0, device="cpu", **{"val_fraction": 0.25, **kw},
    )  # fmt: skip


def _frozen_stats(trainer: Trainer) -> torch.Tensor:
    """The running means of the backbone's BatchNorm layers (not the concat head's own, which trains)."""
    head = trainer.model.get_submodule(trainer.built.head[0])
    inside = {id(m) for m in head.modules()}
    return torch.cat([m.running_mean for m in batchnorm_layers(trainer.model) if id(m) not in inside])


def test_a_head_only_run_adapts_once_and_says_so(image_folder: Path):
    trainer = Trainer(_config(image_folder))
    trainer.prepare()
    initial = _frozen_stats(trainer).clone()
    events = list(trainer.run())
    assert isinstance(events[-1], ev.Finished), events[-1]
    said = [e.text for e in events if isinstance(e, ev.Message) and "BatchNorm statistics adapted" in e.text]
    assert len(said) == 1 and f"the {len(trainer.split.train)} training images" in said[0]
    assert any(isinstance(e, ev.Preparing) and e.what == "adapting" for e in events)
    adapted = _frozen_stats(trainer)
    assert not torch.allclose(adapted, initial)
    # A second run of the same trainer (more epochs) does not adapt again: training has begun.
    trainer.config.epochs = 2
    again = list(trainer.run())
    assert not any(isinstance(e, ev.Message) and "adapted" in e.text for e in again)
    assert torch.equal(_frozen_stats(trainer), adapted)  # head only: frozen BatchNorm stays put


def test_kept_statistics_when_asked_or_with_frozen_batchnorm(image_folder: Path):
    for cfg in (
        _config(image_folder, bn_stats="keep"),
        _config(image_folder, freeze=FreezePlan.parse("last-1", freeze_bn=True)),
    ):
        trainer = Trainer(cfg)
        trainer.prepare()
        initial = _frozen_stats(trainer).clone()
        events: list[ev.Event] = []
        assert isinstance(run_to_end(trainer, on_event=events.append), ev.Finished)
        assert not any(isinstance(e, ev.Message) and "adapted" in e.text for e in events)
        assert torch.equal(_frozen_stats(trainer), initial)


def test_the_record_says_whether_statistics_were_adapted():
    cfg = TrainConfig(data_dir="x", bn_stats="adapt")
    assert TrainConfig(data_dir="x").bn_stats == "auto"
    assert TrainConfig.from_dict(cfg.to_dict()).bn_stats == "adapt"
    old = cfg.to_dict()
    del old["bn_stats"]  # a model.json or checkpoint of an earlier version: it kept them
    assert TrainConfig.from_dict(old).bn_stats == "keep"
    with pytest.raises(FtguiError, match="--bn-stats"):
        TrainConfig(data_dir="x", bn_stats="sometimes").validate()


def test_the_command_line_keeps_or_adapts(image_folder: Path):
    from ftgui.cli.train import _config as cli_config
    from ftgui.cli.train import train_parser

    base = [str(image_folder), "--out", "unused"]
    assert cli_config(train_parser().parse_args(base)).bn_stats == "auto"
    adapted = cli_config(train_parser().parse_args([*base, "--bn-stats", "adapt"]))
    assert adapted.bn_stats == "adapt" and not adapted.freeze.train_bn


def _said(events: list[ev.Event], words: str) -> list[str]:
    return [e.text for e in events if isinstance(e, ev.Message) and words in e.text]


def test_auto_adapts_only_when_the_images_differ_from_the_pretrained_statistics(
    image_folder: Path, tiny_model
):
    fresh = Trainer(_config(image_folder, bn_stats="auto"))
    fresh.prepare(built=tiny_model())  # untrained BatchNorm: mean 0, variance 1, far from any images'
    events = list(fresh.run())
    assert isinstance(events[-1], ev.Finished)
    assert _said(events, "they differ from the pretrained ones (first layer: mean")
    # A network whose statistics already are these images' keeps them, and says why.
    again = tiny_model()
    again.model.load_state_dict(fresh.model.state_dict())
    before = copy.deepcopy(again.model.state_dict())
    trainer = Trainer(_config(image_folder, bn_stats="auto"))
    trainer.prepare(built=again)
    events = list(trainer.run())
    assert _said(events, "BatchNorm statistics kept: the training images' are close to the pretrained ones")
    assert not _said(events, "adapted")
    assert all(torch.equal(v, before[k]) for k, v in trainer.model.state_dict().items() if "running" in k)


def test_too_few_images_keep_the_statistics(image_folder: Path):
    trainer = Trainer(_config(image_folder, val_fraction=0.9))  # 8 training images
    trainer.prepare()
    initial = _frozen_stats(trainer).clone()
    events = list(trainer.run())
    assert isinstance(events[-1], ev.Finished)
    assert _said(events, f"BatchNorm statistics kept: {len(trainer.split.train)} training images are too few")
    assert torch.equal(_frozen_stats(trainer), initial)
