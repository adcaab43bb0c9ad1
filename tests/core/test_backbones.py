"""The backbone bake-off: frozen features once per backbone, a cross-validated linear probe on
them, a ranked table with latency, size and licence, and a one-line pick."""

from __future__ import annotations

import json

import pytest

from ftgui.core.base.intervals import wilson

pytest.importorskip("cleanlab")
pytest.importorskip("timm")

from ftgui.cli.compare import compare_main  # noqa: E402
from ftgui.core.workflows.backbones import BackboneResult, bake_off, pick  # noqa: E402

VIT = "timm:test_vit.r160_in1k"


@pytest.mark.slow
def test_backbones_are_ranked_by_a_cross_validated_linear_probe(tiny_config):
    tiny_config.image_size = 32
    results = bake_off(tiny_config, ["resnet18", VIT, "timm:no_such_model.x"], folds=3)
    assert [r.arch for r in results][-1] == "timm:no_such_model.x"  # failures last, with the reason
    assert results[-1].accuracy is None and "Unknown timm model" in results[-1].error
    ranked = results[:2]
    assert {r.arch for r in ranked} == {"resnet18", VIT}
    assert ranked[0].accuracy >= ranked[1].accuracy
    by = {r.arch: r for r in ranked}
    # the head's input: resnet18's concat pooling (max and average, 2 x 512), the ViT's token
    assert by["resnet18"].feature_dim == 1024 and by[VIT].feature_dim == 64
    assert by["resnet18"].images == 80 and all(0 <= r.accuracy <= 1 for r in ranked)
    assert all(r.latency_ms > 0 and r.params > 0 for r in ranked)
    assert by[VIT].licence == "apache-2.0"
    assert all(r.random_weights for r in ranked) == (tiny_config.weights == "none")
    assert pick(results).startswith(f"Use {ranked[0].name}:") or "within a point" in pick(results)


def test_the_pick_prefers_the_faster_of_two_within_a_point():
    slow = BackboneResult("big", 0.905, 100, 768, 80.0, 86_000_000, "mit", 10.0)
    fast = BackboneResult("small", 0.90, 100, 384, 12.0, 22_000_000, "mit", 4.0)
    worse = BackboneResult("tiny", 0.70, 100, 192, 3.0, 5_000_000, "mit", 2.0)
    assert pick([slow, fast, worse]).startswith("Use small: 90.0%, within a point of big (90.5%)")
    assert (
        pick([fast, worse])
        == "Use small: 90.0% cross-validated linear-probe accuracy, 20.0 points ahead of tiny."
    )


def test_the_ranking_marks_backbones_the_folds_cannot_tell_from_the_top_one():
    from ftgui.cli.backbones import backbone_table
    from ftgui.core.workflows.backbones import alike, difference_text, versus_best

    top = BackboneResult("big", 0.90, 200, 768, 80.0, 86_000_000, "mit", 10.0,
                         fold_accuracies=[0.90, 0.925, 0.875, 0.90, 0.90])  # fmt: skip
    close = BackboneResult("small", 0.895, 200, 384, 12.0, 22_000_000, "mit", 4.0,
                           fold_accuracies=[0.925, 0.875, 0.90, 0.875, 0.90])  # fmt: skip
    worse = BackboneResult("tiny", 0.70, 200, 192, 3.0, 5_000_000, "mit", 2.0,
                           fold_accuracies=[0.70, 0.725, 0.675, 0.70, 0.70])  # fmt: skip
    old = BackboneResult("old", 0.80, 200, 192, 3.0, 5_000_000, "mit", 2.0)  # no folds recorded
    differences = versus_best([worse, close, top, old])
    assert differences["big"] is None and differences["old"] is None
    assert differences["tiny"].real and differences["tiny"].high < 0
    assert not differences["small"].real and differences["small"].low < 0 < differences["small"].high
    assert alike([worse, close, top]) == ["small"]
    assert difference_text("big", differences) == "best"
    assert difference_text("small", differences).startswith("≈ −0.5 (")
    assert difference_text("tiny", differences).startswith("−20.0 (")
    assert difference_text("old", differences) == "–"
    assert top.interval() == wilson(180, 200)
    line = pick([top, worse])
    assert "not really different" not in line
    table = backbone_table([top, close, worse])
    assert "95% range" in table and "≈ −0.5" in table and "best" in table


def test_a_ranking_of_random_weights_says_so():
    from dataclasses import replace

    fast = BackboneResult("small", 0.90, 100, 384, 12.0, 22_000_000, "mit", 4.0, random_weights=True)
    worse = replace(fast, arch="tiny", accuracy=0.7)
    line = pick([fast, worse])
    assert (
        line.startswith("Use small (random weights): 90.0% cross-validated") and "20.0 points ahead" in line
    )
    assert "These are random weights (none chosen)" in line and "choose pretrained weights" in line
    assert "random" not in pick([replace(fast, random_weights=False), worse])


@pytest.mark.slow
def test_ftgui_compare_backbones_prints_the_table_and_writes_json(image_folder, tmp_path, capsys):
    argv = [str(image_folder), "--backbones", f"resnet18,{VIT}", "--weights", "none", "--image-size", "32"]
    assert compare_main([*argv, "--folds", "3", "--out", str(tmp_path / "b"), "--quiet"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0].split()[:3] == ["backbone", "linear", "probe"]
    assert VIT in out and out.strip().splitlines()[-1].startswith("Use ")
    record = json.loads((tmp_path / "b" / "backbones.json").read_text())
    assert [b["arch"] for b in record["backbones"]] and record["pick"].startswith("Use ")
