import os
import shutil

import pytest
import torch

from ftgui.core.base import events as ev
from ftgui.core.data.stores import choose_storage
from ftgui.core.models import build_model
from ftgui.core.models.freeze import FreezePlan
from ftgui.core.training.cache import plan_cache
from ftgui.core.training.engine import Trainer


def _run(config):
    trainer = Trainer(config)
    events = list(trainer.run())
    assert isinstance(events[-1], ev.Finished), events[-1]
    losses = [e.loss for e in events if isinstance(e, ev.BatchEnded)]
    epochs = [(e.val_loss, e.val_accuracy) for e in events if isinstance(e, ev.EpochEnded)]
    notes = [e.text for e in events if isinstance(e, ev.Message)]
    return trainer, losses, epochs, notes


@pytest.mark.parametrize(
    "arch,strategy",
    [
        ("resnet18", "head"),
        ("resnet18", "last-1"),
        ("mobilenet_v3_small", "head"),  # a Dropout sits between the cache point and the head
        ("efficientnet_b0", "last-1"),
    ],
)
@pytest.mark.slow
def test_cached_and_uncached_training_compute_the_same(tiny_config, arch, strategy):
    tiny_config.arch, tiny_config.freeze, tiny_config.epochs = arch, FreezePlan.parse(strategy), 2
    tiny_config.optimizer = "sgd"
    # Statistics kept (the adaptation pass is the same for both runs anyway): with adapted ones,
    # the two paths' rounding exceeded the tolerance below in one run of efficientnet_b0 last-1
    # (features.8.1.running_mean), though not in others.
    tiny_config.bn_stats = "keep"
    tiny_config.cache = "off"
    plain, plain_losses, plain_epochs, plain_notes = _run(tiny_config)
    tiny_config.cache = "auto"
    cached, cached_losses, cached_epochs, notes = _run(tiny_config)
    assert any("Cached the frozen layers' output" in n for n in notes), notes
    assert not any("frozen layers" in n for n in plain_notes)
    assert cached_losses == pytest.approx(plain_losses, rel=1e-4, abs=1e-5)
    for (lc, ac), (lp, ap) in zip(cached_epochs, plain_epochs):
        assert lc == pytest.approx(lp, rel=1e-4) and ac == ap
    for (name, a), b in zip(cached.model.state_dict().items(), plain.model.state_dict().values()):
        assert torch.allclose(a.float(), b.float(), rtol=1e-3, atol=1e-4), name


def test_no_cache_with_augmentation_or_full_fine_tuning(tiny_config):
    tiny_config.freeze, tiny_config.augment = FreezePlan.parse("head"), True
    _, _, _, notes = _run(tiny_config)
    assert not any("frozen layers" in n for n in notes)
    tiny_config.freeze, tiny_config.augment = FreezePlan.parse("full"), False
    _, _, _, notes = _run(tiny_config)
    assert not any("frozen layers" in n for n in notes)


@pytest.mark.slow
def test_disk_cache_is_reused_and_invalidated_by_changed_files(
    tiny_config, image_folder, tmp_path, monkeypatch
):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    data = tmp_path / "data"
    shutil.copytree(image_folder, data)
    tiny_config.data_dir, tiny_config.freeze, tiny_config.cache_memory_mb = (
        str(data),
        FreezePlan.parse("last-1"),
        0,
    )
    _, first_losses, _, notes = _run(tiny_config)
    assert any("Cached the" in n and "on disk" in n for n in notes), notes
    files = list((tmp_path / "cache" / "ftgui" / "features").glob("*.npy"))
    assert len(files) == 2
    _, again_losses, _, notes = _run(tiny_config)
    assert any("Reused the cached" in n for n in notes), notes
    assert again_losses == pytest.approx(first_losses, rel=1e-5)
    victim = next((data / "circle").iterdir())
    shutil.copyfile(data / "square" / "square_0000.jpg", victim)
    os.utime(victim, ns=(1, 1))
    _, _, _, notes = _run(tiny_config)
    assert any("Cached the" in n for n in notes) and not any("Reused" in n for n in notes)
    tiny_config.freeze = FreezePlan.parse("last-2")
    _, _, _, notes = _run(tiny_config)
    assert any("Cached the" in n and "layer3" in n for n in notes), notes


def test_gradual_unfreezing_rebuilds_the_cache_at_each_stage(tiny_config):
    tiny_config.freeze, tiny_config.epochs = FreezePlan.parse("gradual"), 3
    _, _, _, notes = _run(tiny_config)
    cached = [n for n in notes if "Cached the" in n]
    assert len(cached) == 3
    assert "fc" in cached[0] and "layer4" in cached[1] and "layer3" in cached[2]


@pytest.mark.slow
def test_plans_for_common_architectures():
    x = torch.randn(2, 3, 64, 64)
    for arch, strategy, expected in [
        ("resnet18", "head", "fc"),
        ("resnet18", "last-2", "layer3.0"),
        ("efficientnet_b0", "last-1", "features.8.0"),
        ("densenet121", "last-1", "features.denseblock4"),
        ("vgg11", "head", "classifier.4"),
        ("resnet18", "full", None),
    ]:
        built = build_model(arch, 3, "none", image_size=64)
        FreezePlan.parse(strategy).apply(built.model)
        plan = plan_cache(built.model, x)
        assert (plan.capture_at if plan else None) == expected, (arch, strategy)


def test_storage_choice():
    assert choose_storage(10 << 20, budget=100 << 20) == "ram"
    assert choose_storage(10 << 20, budget=1 << 20) == "disk"
    assert choose_storage(10 << 40, budget=1 << 20) == "none"


@pytest.mark.slow
def test_decoded_image_memo_gives_the_same_run(tiny_config):
    tiny_config.freeze = FreezePlan.parse("full")
    tiny_config.cache = "off"
    _, plain, _, _ = _run(tiny_config)
    tiny_config.cache = "auto"
    trainer, memo, _, _ = _run(tiny_config)
    assert memo == pytest.approx(plain, rel=1e-5)
    assert len(trainer.source.memo["train"]) == 60 and len(trainer.source.memo["val"]) == 20


def test_frozen_prefix_builds_no_autograd_graph_with_augmentation(tiny_config):
    tiny_config.freeze, tiny_config.augment = FreezePlan.parse("last-1"), True
    trainer = Trainer(tiny_config)
    trainer.prepare()
    seen = {}

    def record(name):
        def hook(module, args, output):
            if torch.is_grad_enabled():  # training steps (not the BatchNorm statistics' pass)
                seen.setdefault(name, output.requires_grad)

        return hook

    trainer.model.layer3.register_forward_hook(record("layer3"))
    trainer.model.layer4.register_forward_hook(record("layer4"))
    assert isinstance(list(trainer.run())[-1], ev.Finished)
    assert seen == {"layer3": False, "layer4": True}


@pytest.mark.slow
def test_the_frozen_layer_cache_keeps_no_pixels(tiny_config):
    """Head only: each image is decoded once into the cached features, and its pixels are not
    kept beside them (100k images at 224 px would be 15 GB); without the cache they are."""
    tiny_config.freeze, tiny_config.epochs = FreezePlan.parse("head"), 2
    trainer, _, _, notes = _run(tiny_config)
    assert any("Cached the" in n for n in notes)
    assert not any(trainer.source.memo.values())
    tiny_config.cache = "off"
    trainer, _, _, _ = _run(tiny_config)
    assert not trainer.source.memo  # cache off keeps nothing either
    tiny_config.cache, tiny_config.freeze = "auto", FreezePlan.parse("full")
    trainer, _, _, _ = _run(tiny_config)
    assert len(trainer.source.memo["train"]) == len(trainer.split.train)  # full: kept for epoch 2


def test_the_cache_fill_reports_its_own_progress_and_costs_the_eta_nothing(tiny_config):
    """The fill is its own step (images done of all), before the first batch; the ETA the
    batches report leaves the fill's time out."""
    from ftgui.core.base import events as ev
    from ftgui.core.training.engine import Trainer

    tiny_config.freeze, tiny_config.epochs, tiny_config.bn_stats = FreezePlan.parse("head"), 2, "adapt"
    trainer = Trainer(tiny_config)
    events = list(trainer.run())
    kinds = [type(e).__name__ for e in events]
    first_batch = kinds.index("BatchEnded")
    steps = [e for e in events[:first_batch] if isinstance(e, ev.Preparing)]
    assert {e.what for e in steps} == {"adapting", "caching"}  # BatchNorm statistics, then the cache
    filling = [e for e in steps if e.what == "caching"]
    assert steps[-len(filling) :] == filling
    assert [e.done for e in filling] == sorted(e.done for e in filling)
    assert filling[-1].done == filling[-1].total == len(trainer.split.train) + len(trainer.split.val)
    assert not any(isinstance(e, ev.Preparing) for e in events[first_batch:])  # once, not per epoch


def test_the_eta_leaves_out_the_time_spent_filling_the_cache():
    from ftgui.core.training.step import Clock

    now = [0.0]
    clock = Clock(total=10, start_step=0, now=lambda: now[0])
    now[0] = 30.0  # the fill
    clock.exclude(30.0)
    now[0] = 31.0  # one step of 1 s
    assert clock.eta(1) == pytest.approx(9.0)  # not (31 s per step) x 9 = 4:39
    now[0] = 32.0
    assert clock.eta(2) == pytest.approx(8.0)
