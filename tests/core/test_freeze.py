"""The freeze plan, without Qt: every architecture on the meta device, against a snapshot."""

import json
import os
from pathlib import Path

import pytest
import torch

from ftgui.core.base.errors import ModelError
from ftgui.core.models import build_model, classifier_names, list_architectures
from ftgui.core.models.freeze import FreezePlan
from ftgui.core.models.layers import count_params, model_blocks, trainable_names
from ftgui.core.training.config import TrainConfig

SNAPSHOT = Path(__file__).parent / "snapshots" / "blocks.json"
PLANS = ("head", "last-1", "last-2", "full")


def _facts(arch):
    """What the snapshot records per architecture: heads, blocks, trainable counts per strategy."""
    model = build_model(arch, 5, weights="none", meta=True).model
    facts = {
        "heads": classifier_names(model),
        "blocks": [block[0] for block in model_blocks(model, classifier_names(model))],
    }
    for text in PLANS:
        plan = FreezePlan.parse(text)
        facts[text] = count_params_after(plan, model)
        names = set(_names_after(plan, model))
        assert facts[text] == sum(p.numel() for n, p in model.named_parameters() if n in names)
    return facts


def count_params_after(plan, model):
    plan.apply(model)
    return count_params(model)[0]


def _names_after(plan, model):
    plan.apply(model)
    return trainable_names(model)


@pytest.mark.slow
def test_every_architecture_matches_the_snapshot():
    """Heads, blocks and what each strategy trains, for all of torchvision's classifiers.

    FTGUI_UPDATE_SNAPSHOT=1 rewrites the snapshot (after a torchvision upgrade, say), for review.
    """
    facts = {arch: _facts(arch) for arch in list_architectures()}
    if os.environ.get("FTGUI_UPDATE_SNAPSHOT"):
        SNAPSHOT.write_text(json.dumps(facts, indent=1, sort_keys=True) + "\n")
    expected = json.loads(SNAPSHOT.read_text())
    assert sorted(facts) == sorted(expected)
    for arch, got in facts.items():
        assert got == expected[arch], arch


def test_plan_states_prefixes_and_edits_on_a_skeleton():
    model = build_model("resnet18", 3, weights="none", meta=True).model
    assert next(model.parameters()).device.type == "meta"
    plan = FreezePlan.parse("last-1")
    states = plan.states(model)
    assert states["fc"] == "all" and states["layer4"] == "all" and states["layer3"] == "none"
    assert states[""] == "partial"
    assert plan.prefixes(model) == ["layer4", "fc"]
    edited = plan.edit("layer3.1", True).edit("layer4.0", False)
    assert edited.label == "custom" and edited.base_label == "last-1"
    assert edited.prefixes(model) == ["layer3.1", "layer4.1", "fc"]
    # A later edit of a parent replaces the earlier edits inside it.
    assert edited.edit("layer4", True).overrides == (("layer3.1", True), ("layer4", True))
    # The prefixes, made trainable alone, give the same parameters.
    assert _names_after(FreezePlan.exactly(edited.prefixes(model)), model) == _names_after(edited, model)


def test_train_bn_and_gradual_stages():
    model = build_model("resnet18", 3, weights="none", meta=True).model
    names = _names_after(FreezePlan(train_bn=True), model)
    assert "layer1.0.bn1.weight" in names and "layer1.0.conv1.weight" not in names
    gradual = FreezePlan.parse("gradual", unfreeze_every=2)
    assert gradual.stages(model) == 5
    gradual.apply(model, 0)
    assert trainable_names(model) == ["fc.weight", "fc.bias"]
    gradual.apply(model, 1)
    assert {n.split(".")[0] for n in trainable_names(model)} == {"layer4", "fc"}


def test_records_round_trip_and_refuse_damage():
    plan = FreezePlan.parse("last-2", train_bn=True).edit("layer1", True)
    assert FreezePlan.from_dict(json.loads(json.dumps(plan.to_dict()))) == plan
    cfg = TrainConfig(freeze=plan)
    assert TrainConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))).freeze == plan
    for bad, field in [
        ({"strategy": "sideways"}, "freeze.strategy"),
        ({"blocks": 0}, "freeze.blocks"),
        ({"unfreeze_every": True}, "freeze.unfreeze_every"),
        ({"train_bn": "yes"}, "freeze.train_bn"),
        ({"overrides": [["fc", 1]]}, "freeze.overrides"),
        ({"overrides": "fc"}, "freeze.overrides"),
    ]:
        with pytest.raises(ModelError, match=field):
            FreezePlan.from_dict(bad)
    with pytest.raises(ModelError, match="Unknown strategy 'last-x'"):
        FreezePlan.parse("last-x")
    model = build_model("resnet18", 3, weights="none", meta=True).model
    with pytest.raises(ModelError, match="No layer named 'layer9'"):
        FreezePlan().edit("layer9", True).apply(model)
    assert FreezePlan().edit("layer9", True).restricted_to(model) == FreezePlan()


def test_earlier_records_still_read():
    """Checkpoints and model.json of earlier versions: strategy text and a custom name list."""
    legacy = TrainConfig.from_dict({"strategy": "custom", "trainable": ["layer2.1", "fc"], "train_bn": False})
    model = build_model("resnet18", 3, weights="none", meta=True).model
    assert legacy.freeze.prefixes(model) == ["layer2.1", "fc"] and legacy.freeze.label == "custom"
    assert TrainConfig.from_dict({"strategy": "last-3", "unfreeze_every": 2}).freeze == FreezePlan(
        "last", blocks=3, unfreeze_every=2
    )


def _googlenet_file_without_aux(tmp_path):
    import torchvision.models as tvm
    from safetensors.torch import save_file

    model = tvm.get_model("googlenet", weights=None, aux_logits=False, init_weights=False)
    path = tmp_path / "googlenet-noaux.safetensors"
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path))
    return path


def test_skeleton_and_real_model_agree_for_a_googlenet_file_without_aux_heads(tmp_path):
    """The layer tree is built like the engine's model: same heads, same counts, edits that exist."""
    path = _googlenet_file_without_aux(tmp_path)
    skeleton = build_model("googlenet", 4, weights=str(path), meta=True)
    real = build_model("googlenet", 4, weights=str(path))
    assert skeleton.model_kwargs == real.model_kwargs and skeleton.model_kwargs["aux_logits"] is False
    assert classifier_names(skeleton.model) == classifier_names(real.model) == ["fc"]
    plan = FreezePlan()
    assert count_params_after(plan, skeleton.model) == count_params_after(plan, real.model) == 1024 * 4 + 4
    edited = plan.edit("inception5b", True)
    assert _names_after(edited, skeleton.model) == _names_after(edited, real.model)
    assert not torch.equal(next(real.model.parameters()), torch.zeros(1))
