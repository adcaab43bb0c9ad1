import pytest
import torch

from ftgui.core.base.errors import ModelError
from ftgui.core.models import build_model
from ftgui.core.models.freeze import FreezePlan
from ftgui.core.models.layers import (
    count_params,
    layer_tree,
    model_blocks,
    set_trainable,
    train_mode,
    trainable_names,
)
from ftgui.core.training.engine import Trainer, run_to_end


@pytest.fixture
def resnet():
    return build_model("resnet18", 3, weights="none", image_size=32)


def test_layer_tree_counts_and_states(resnet):
    model = resnet.model
    FreezePlan().apply(model)
    tree = layer_tree(model)
    assert tree.total_params == sum(p.numel() for p in model.parameters()) == 11_178_051
    assert tree.trainable_params == 512 * 3 + 3
    assert tree.state == "partial"
    by_name = {n.name: n for n in tree.walk()}
    assert by_name["fc"].state == "all" and by_name["fc"].own_params == 1539
    assert by_name["layer4"].state == "none"
    assert by_name["layer4.0.bn1"].type_name == "BatchNorm2d"
    assert by_name["relu"].total_params == 0
    assert [c.short_name for c in tree.children][:3] == ["conv1", "bn1", "relu"]


def test_resnet_blocks(resnet):
    assert model_blocks(resnet.model, resnet.head) == [
        ["conv1", "bn1"],
        ["layer1"],
        ["layer2"],
        ["layer3"],
        ["layer4"],
    ]


@pytest.mark.parametrize(
    "text,expected_prefixes",
    [
        ("head", ["fc."]),
        ("last-1", ["fc.", "layer4."]),
        ("last-2", ["fc.", "layer4.", "layer3."]),
        ("full", [""]),
    ],
)
def test_strategies(resnet, text, expected_prefixes):
    model = resnet.model
    FreezePlan.parse(text).apply(model)
    for name, p in model.named_parameters():
        assert p.requires_grad == any(name.startswith(pre) for pre in expected_prefixes), name


def test_custom_freeze_by_name_and_unknown_names(resnet):
    model = resnet.model
    FreezePlan.exactly(["layer2.1", "fc"]).apply(model)
    assert {n.split(".")[0] for n in trainable_names(model)} == {"layer2", "fc"}
    assert all(n.startswith(("layer2.1.", "fc.")) for n in trainable_names(model))
    with pytest.raises(ModelError, match="No layer named 'layer9'"):
        set_trainable(model, ["layer9"], True)
    with pytest.raises(ModelError, match="Unknown strategy"):
        FreezePlan.parse("last-x")


def test_frozen_parts_run_in_eval_mode_after_train(resnet):
    model = resnet.model
    FreezePlan.parse("last-1").apply(model)
    train_mode(model)
    assert not model.layer3.training and not model.bn1.training and not model.layer1[0].bn1.training
    assert model.layer4.training and model.layer4[0].bn1.training and model.fc.training


def test_train_bn_keeps_batchnorm_trainable(resnet):
    model = resnet.model
    FreezePlan(train_bn=True).apply(model)
    assert model.layer1[0].bn1.weight.requires_grad and not model.layer1[0].conv1.weight.requires_grad
    train_mode(model)
    assert model.layer1[0].bn1.training and not model.layer1[0].conv1.training


def _snapshot(model, prefix_filter):
    return {k: v.clone() for k, v in model.state_dict().items() if prefix_filter(k)}


@pytest.mark.parametrize(
    "arch,strategy,frozen",
    [
        ("resnet18", "last-1", lambda k: not k.startswith(("layer4.", "fc."))),
        ("mobilenet_v3_small", "head", lambda k: not k.startswith("classifier.3.")),
    ],
)
def test_frozen_part_bit_identical_after_an_epoch(tiny_config, arch, strategy, frozen):
    tiny_config.arch, tiny_config.freeze = arch, FreezePlan.parse(strategy)
    tiny_config.bn_stats = "keep"  # adaptation sets the statistics once, before training (test_norm_stats)
    trainer = Trainer(tiny_config)
    trainer.prepare()
    before = _snapshot(trainer.model, frozen)
    trainable_before = _snapshot(trainer.model, lambda k: not frozen(k) and "num_batches" not in k)
    assert any("running_mean" in k for k in before)  # BN buffers are part of the check
    final = run_to_end(trainer)
    assert type(final).__name__ == "Finished"
    after = trainer.model.state_dict()
    changed = [k for k, v in before.items() if not torch.equal(v, after[k])]
    assert changed == []
    assert any(not torch.equal(v, after[k]) for k, v in trainable_before.items())


def test_train_bn_option_lets_frozen_batchnorm_statistics_move(tiny_config):
    tiny_config.freeze = FreezePlan.parse("head", train_bn=True)
    trainer = Trainer(tiny_config)
    trainer.prepare()
    before = trainer.model.layer1[0].bn1.running_mean.clone()
    conv_before = trainer.model.layer1[0].conv1.weight.clone()
    run_to_end(trainer)
    assert not torch.equal(before, trainer.model.layer1[0].bn1.running_mean)
    assert torch.equal(conv_before, trainer.model.layer1[0].conv1.weight)


def test_count_params(resnet):
    FreezePlan().apply(resnet.model)
    assert count_params(resnet.model) == (1539, 11_178_051)
