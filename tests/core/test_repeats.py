"""--repeats: the folds (stratified, disjoint, the same for every candidate) and the verdicts."""

from __future__ import annotations

from collections import Counter

import pytest

from ftgui.core.base.errors import FtguiError
from ftgui.core.data.samples import Sample, ScanResult
from ftgui.core.workflows.repeats import Repeated, decide, default_repeats, fold_splits, folds_per_repetition


def _scan(per_class: dict[str, int]) -> ScanResult:
    classes = sorted(per_class)
    samples = [
        Sample(f"{c}/{i:03d}.png", label) for label, c in enumerate(classes) for i in range(per_class[c])
    ]
    return ScanResult("/data", classes, samples)


def test_folds_are_stratified_disjoint_and_cover_every_image():
    scan = _scan({"a": 30, "b": 12, "c": 8})
    splits = fold_splits(scan, 5, val_fraction=0.2, seed=0)
    assert len(splits) == 5 and folds_per_repetition(0.2) == 5
    vals = [set(s.val) for s in splits]
    for i, v in enumerate(vals):
        for w in vals[i + 1 :]:
            assert not v & w  # one repetition: disjoint validation sets
        assert not v & set(splits[i].train) and len(v) + len(splits[i].train) == 50
    assert set().union(*vals) == set(scan.samples)
    for s in splits:  # each class is dealt evenly: 30 -> 6 per fold, 12 -> 2 or 3, 8 -> 1 or 2
        counts = Counter(x.label for x in s.val)
        assert counts[0] == 6 and counts[1] in (2, 3) and counts[2] in (1, 2)
    # The same arguments give the same folds (every candidate trains on them); another seed does not.
    assert fold_splits(scan, 5, 0.2, 0) == splits and fold_splits(scan, 5, 0.2, 1) != splits


def test_more_repeats_than_folds_start_a_new_shuffle():
    scan = _scan({"a": 10, "b": 10})
    splits = fold_splits(scan, 7, val_fraction=0.25, seed=3)  # 4 folds a repetition
    assert len(splits) == 7
    assert set().union(*(set(s.val) for s in splits[:4])) == set(scan.samples)
    assert splits[4].val != splits[0].val  # the second repetition is shuffled anew


def test_folds_refuse_what_they_cannot_do():
    with pytest.raises(FtguiError, match="at least 2 images"):
        fold_splits(_scan({"a": 10, "b": 1}), 3, 0.2, 0)
    presplit = _scan({"a": 4, "b": 4})
    presplit.presplit = {"train": presplit.samples[:6], "val": presplit.samples[6:]}
    with pytest.raises(FtguiError, match="train/ and val/"):
        fold_splits(presplit, 3, 0.2, 0)
    with pytest.raises(FtguiError, match="between 1 and 50"):
        fold_splits(_scan({"a": 4}), 0, 0.2, 0)


def test_the_default_repeats_follow_the_dataset_size():
    assert [default_repeats(n) for n in (160, 499, 500, 1999, 2000)] == [5, 5, 3, 3, 1]


def test_a_real_difference_picks_the_best_and_no_real_difference_the_cheapest():
    head = Repeated("head", 2_000, [0.80, 0.83, 0.79, 0.82, 0.81], [1.0] * 5, [40] * 5)
    last = Repeated("last-2", 8_000_000, [0.82, 0.81, 0.83, 0.80, 0.84], [5.0] * 5, [40] * 5)
    full = Repeated("full", 11_000_000, [0.93, 0.95, 0.94, 0.92, 0.96], [9.0] * 5, [40] * 5)
    out = decide([head, last, full], n_train=160, n_val=40)
    assert out.best == "full" and out.recommended == "full"
    assert out.differences["head"].real and out.differences["head"].high < 0
    assert out.reason.startswith("full: the best mean over 5 folds (94.0%)")
    out = decide([head, last], n_train=160, n_val=40)  # 1.0 point apart over noisy folds
    assert out.best == "last-2" and not out.differences["head"].real
    assert out.recommended == "head"
    assert "not a real difference on this data, and head is cheaper (2,000 trainable" in out.reason
    low, high = head.interval(160, 40)
    assert low < head.mean < high
    record = out.to_dict([])
    assert (
        record["differences"]["head"]["real"] is False
        and record["candidates"]["head"]["accuracies"][0] == 0.80
    )


@pytest.mark.slow
def test_ftgui_compare_repeats_trains_every_candidate_on_the_same_folds(image_folder, tmp_path, capsys):
    import json

    from ftgui.cli.compare import compare_main

    out = tmp_path / "cmp"
    args = [str(image_folder), "--out", str(out), "--weights", "none", "--image-size", "32", "--epochs", "1"]
    assert compare_main([*args, "--candidates", "head,full", "--repeats", "2"]) == 0
    printed = capsys.readouterr()
    assert "=== fold 2 of 2:" in printed.err
    header, *rows = printed.out.splitlines()[:3]
    assert header.split()[:4] == ["candidate", "mean", "val", "acc"] and "95% interval" in header
    assert {r.split()[0] for r in rows} == {"head", "full"}
    record = json.loads((out / "comparison.json").read_text())
    folds = record["repeats"]["folds"]
    assert len(folds) == 2 and not set(folds[0]["val"]) & set(folds[1]["val"])
    assert all(len(c["accuracies"]) == 2 for c in record["repeats"]["candidates"].values())
    assert record["recommended"] == record["repeats"]["recommended"] in ("head", "full")
    assert (out / "head" / "model.json").is_file()  # the first fold's models are exported


def test_repeats_takes_a_number_or_auto(capsys):
    from ftgui.cli.compare import compare_parser

    parser = compare_parser()
    assert parser.parse_args(["data", "--out", "o", "--repeats", "auto"]).repeats == 0
    assert parser.parse_args(["data", "--out", "o", "--repeats", "7"]).repeats == 7
    for bad in ("0", "51", "five"):
        with pytest.raises(SystemExit):
            parser.parse_args(["data", "--out", "o", "--repeats", bad])
    assert "--repeats" in capsys.readouterr().err


@pytest.mark.slow
def test_no_fold_starts_that_would_pass_the_time_accepted(image_folder, tmp_path, capsys):
    import json

    from ftgui.cli.compare import compare_main

    out = tmp_path / "cmp"
    args = [str(image_folder), "--out", str(out), "--weights", "none", "--image-size", "32", "--epochs", "1"]
    # 0.001 minutes: fold 1 always runs, and no other fits after it.
    assert (
        compare_main([*args, "--candidates", "head,last-1", "--repeats", "3", "--max-minutes", "0.001"]) == 0
    )
    printed = capsys.readouterr()
    assert "Stopped after 1 of 3 folds" in printed.err and "=== fold 2 of 3" not in printed.err
    record = json.loads((out / "comparison.json").read_text())["repeats"]
    assert record["folds_planned"] == 3
    assert all(len(c["accuracies"]) == 1 for c in record["candidates"].values())
    assert "1 of 3 folds: the others would have run past the time accepted" in record["reason"]
    assert compare_main([*args, "--repeats", "3", "--max-minutes", "0"]) == 2
    assert "--max-minutes must be a positive number" in capsys.readouterr().err
