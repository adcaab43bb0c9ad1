"""Comparing freeze layouts: sharing must not change any candidate's result."""

import json

import pytest
import torch

from ftgui.core.base import events as ev
from ftgui.core.base.errors import FtguiError
from ftgui.core.models.freeze import NOTHING_TRAINS, FreezePlan
from ftgui.core.training.engine import Trainer, run_to_end
from ftgui.core.workflows.compare import (
    Candidate,
    CandidateEvent,
    CandidateSummary,
    Comparison,
    ComparisonFinished,
    parse_candidates,
    recommend,
)


@pytest.mark.slow
def test_each_candidate_gets_exactly_the_result_of_its_own_run(tiny_config):
    tiny_config.epochs = 2
    candidates = parse_candidates("head,last-1,full")
    comparison = Comparison(tiny_config, candidates)
    events = list(comparison.run())
    final = events[-1]
    assert isinstance(final, ComparisonFinished)
    tagged = [e for e in events if isinstance(e, CandidateEvent)]
    assert [e.candidate for e in tagged if isinstance(e.event, ev.RunStarted)] == ["head", "last-1", "full"]
    assert all(s.status == "finished" and s.epochs == 2 for s in final.summaries)
    for candidate in candidates:
        alone = Trainer(comparison.config_for(candidate))
        assert isinstance(run_to_end(alone), ev.Finished)
        shared = comparison.trainers[candidate.name]
        assert shared.config.lr == alone.config.lr  # the strategy's default, the same for both
        for a, b in zip(shared.history, alone.history):
            assert a["val_loss"] == pytest.approx(b["val_loss"], rel=1e-5), candidate.name
            assert a["train_loss"] == pytest.approx(b["train_loss"], rel=1e-5), candidate.name
        for (name, x), y in zip(shared.model.state_dict().items(), alone.model.state_dict().values()):
            assert torch.allclose(x.float(), y.float(), rtol=1e-4, atol=1e-6), (candidate.name, name)
    by_name = {s.name: s for s in final.summaries}
    assert (
        by_name["head"].trainable_params
        < by_name["last-1"].trainable_params
        < by_name["full"].trainable_params
    )
    assert by_name["full"].trainable_params == by_name["full"].total_params
    assert final.recommended in by_name and final.reason.startswith(final.recommended)


def test_a_candidate_with_nothing_to_train_is_refused_before_it_starts(tiny_config):
    nothing = Candidate("frozen", FreezePlan().edit("", False))
    final = list(Comparison(tiny_config, [nothing]).run())[-1]
    (summary,) = final.summaries
    assert summary.status == "refused" and NOTHING_TRAINS in summary.message
    assert final.recommended is None


def test_stop_keeps_the_finished_candidates(tiny_config):
    cancel = ev.CancelToken()
    comparison = Comparison(tiny_config, parse_candidates("head,full"))
    events = []
    for e in comparison.run(cancel):
        events.append(e)
        if isinstance(e, CandidateEvent) and e.candidate == "full" and isinstance(e.event, ev.BatchEnded):
            cancel.cancel()
    status = {s.name: s.status for s in events[-1].summaries}
    assert status == {"head": "finished", "full": "stopped"}


def test_candidates_and_names():
    assert [c.name for c in parse_candidates("head, last-2,full")] == ["head", "last-2", "full"]
    named = parse_candidates("head", [1e-3, 3e-2])
    assert [(c.name, c.lr) for c in named] == [("head@0.001", 1e-3), ("head@0.03", 3e-2)]
    with pytest.raises(FtguiError, match="Unknown strategy 'sideways'"):
        parse_candidates("head,sideways")
    with pytest.raises(FtguiError, match="--candidates names head twice"):
        parse_candidates("head,HEAD")
    with pytest.raises(FtguiError, match="Candidate names must differ"):
        Comparison(None, parse_candidates("head") * 2)


def _s(name, acc, train, seconds, params=1, status="finished"):
    return CandidateSummary(
        name, name, best_val_accuracy=acc, final_train_accuracy=train, gap=None if acc is None else train - acc,
        seconds=seconds, trainable_params=params, status=status,
    )  # fmt: skip


def test_recommendation_sentences():
    pick, reason, notes = recommend([_s("head", 0.930, 0.95, 10), _s("full", 0.934, 1.0, 120, 100)])
    assert pick == "head" and reason == "head: within 0.4 points of full at 1/12 of the time"
    pick, reason, notes = recommend([_s("head", 0.80, 0.82, 10), _s("full", 0.71, 1.0, 120, 100)])
    assert (
        pick == "head" and reason == "head: the best validation accuracy (80.0 %), 9.0 points ahead of full"
    )
    assert notes == ("full overfits: train 100 %, validation 71 %",)
    pick, reason, _ = recommend(
        [_s("last-1", 1.0, 0.99, 1.3, 8), _s("full", 1.0, 1.0, 1.9, 11), _s("head", 0.84, 0.95, 0.4)]
    )
    assert pick == "last-1" and reason == "last-1: as accurate as full (100.0 %) in 68 % of its time"
    pick, reason, _ = recommend([_s("head", None, 0.5, 1, status="failed")])
    assert pick is None and "no candidate finished" in reason


def test_the_engine_refuses_a_plan_that_trains_nothing(tiny_config):
    from ftgui.core.models.freeze import NothingTrains

    tiny_config.freeze = FreezePlan.parse("head").edit("fc", False)
    with pytest.raises(NothingTrains, match="Nothing would train: every layer is frozen"):
        Trainer(tiny_config).prepare()


@pytest.mark.slow
def test_ftgui_compare_writes_a_bundle_per_candidate_and_the_table(image_folder, tmp_path, capsys):
    import csv
    import json

    from ftgui.cli import compare_main
    from ftgui.core.bundle.predict import Predictor

    out = tmp_path / "cmp"
    args = [str(image_folder), "--out", str(out), "--weights", "none", "--image-size", "32", "--epochs", "1"]
    assert compare_main([*args, "--candidates", "head,full"]) == 0
    printed = capsys.readouterr()
    assert printed.out.splitlines()[0].split() == [
        "candidate", "trainable", "best", "epoch", "val", "acc", "95%", "range", "val", "loss", "train", "acc",
        "gap", "time", "images/s", "status",
    ]  # fmt: skip
    assert "recommended: " in printed.out and "== head ==" in printed.err and "== full ==" in printed.err
    assert "--repeats auto says whether these differences are real" in printed.out  # one split says little
    report = json.loads((out / "comparison.json").read_text())
    assert [c["name"] for c in report["candidates"]] == ["head", "full"]
    assert report["recommended"] in ("head", "full") and report["reason"].startswith(report["recommended"])
    rows = list(csv.DictReader((out / "comparison.csv").open()))
    assert [r["name"] for r in rows] == ["head", "full"] and rows[0][
        "trainable_params"
    ] == "6148"  # the concat head
    for name in ("head", "full"):
        assert (out / name / "MODEL_CARD.md").is_file()
        assert Predictor.load(out / name).classes == ["circle", "square", "stripes", "triangle"]
    assert compare_main([*args, "--candidates", "head,sideways"]) == 2
    assert "Unknown strategy 'sideways'" in capsys.readouterr().err


@pytest.mark.slow
def test_candidates_with_the_same_frozen_prefix_share_its_output(tiny_config):
    """head at two rates, then gradual (whose first epoch trains the head alone): the frozen
    layers run once for all three, and each result is still its own run's."""
    tiny_config.freeze, tiny_config.epochs = FreezePlan.parse("head"), 2
    candidates = [*parse_candidates("head", [1e-3, 3e-2]), Candidate("gradual", FreezePlan.parse("gradual"))]
    comparison = Comparison(tiny_config, candidates)
    events = list(comparison.run())
    cached = [
        (e.candidate, e.event.text.split(" frozen")[0])
        for e in events
        if isinstance(e, CandidateEvent)
        and isinstance(e.event, ev.Message)
        and "frozen layers' output" in e.event.text
    ]
    assert cached[:3] == [
        ("head@0.001", "Cached the"),
        ("head@0.03", "Reused the cached"),
        ("gradual", "Reused the cached"),
    ]
    for candidate in candidates:
        alone = Trainer(comparison.config_for(candidate))
        run_to_end(alone)
        shared = comparison.trainers[candidate.name]
        assert [h["val_loss"] for h in shared.history] == pytest.approx(
            [h["val_loss"] for h in alone.history], rel=1e-5
        )


def _scalars(folder):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(folder))
    acc.Reload()
    return {tag: [e.value for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}


@pytest.mark.slow
def test_tensorboard_logs_read_back(image_folder, tmp_path, capsys):
    pytest.importorskip("tensorboard", reason="the tensorboard extra is not installed")
    from ftgui.cli import compare_main, train_main

    args = [
        str(image_folder),
        "--weights",
        "none",
        "--image-size",
        "32",
        "--epochs",
        "2",
        "--batch-size",
        "32",
    ]
    assert train_main([*args, "--out", str(tmp_path / "m"), "--tensorboard", str(tmp_path / "tb")]) == 0
    (run,) = (tmp_path / "tb").iterdir()
    assert run.name.startswith("m-")
    scalars = _scalars(run)
    meta = json.loads((tmp_path / "m" / "model.json").read_text())
    assert len(scalars["loss/batch"]) == 2 * 2  # 64 training images, batches of 32, 2 epochs
    assert scalars["loss/val"] == pytest.approx([h["val_loss"] for h in meta["history"]])
    assert scalars["accuracy/val"] == pytest.approx([h["val_accuracy"] for h in meta["history"]])
    assert scalars["learning_rate"][0] == pytest.approx(3e-2)  # head's default, cosine from the top
    assert "TensorBoard log: " in capsys.readouterr().err

    out = tmp_path / "cmp"
    assert (
        compare_main(
            [*args, "--out", str(out), "--candidates", "head,full", "--tensorboard", str(tmp_path / "tb2")]
        )
        == 0
    )
    (root,) = (tmp_path / "tb2").iterdir()
    assert sorted(p.name for p in root.iterdir()) == ["full", "head"]
    report = json.loads((out / "comparison.json").read_text())
    for row in report["candidates"]:
        best = _scalars(root / row["name"])["loss/val"][row["best_epoch"] - 1]
        assert best == pytest.approx(row["best_val_loss"])


@pytest.mark.slow
def test_tensorboard_without_its_package_says_what_to_install(image_folder, tmp_path):
    import subprocess
    import sys

    code = (
        "import sys; sys.modules['tensorboard'] = None\n"  # as if the extra were not installed
        "from ftgui.cli import train_main\n"
        f"sys.exit(train_main([{str(image_folder)!r}, '--out', {str(tmp_path / 'm')!r}, '--tensorboard', 'tb']))"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert run.returncode == 2
    assert (
        "--tensorboard: TensorBoard logs need the tensorboard package: pip install 'ftgui[tensorboard]'"
        in run.stderr
    )
    assert not (tmp_path / "m").exists()  # said before any work


@pytest.mark.slow
def test_ctrl_c_stops_ftgui_compare_and_keeps_the_finished_candidates(image_folder, tmp_path):
    import signal
    import subprocess
    import sys
    from pathlib import Path

    exe = str(Path(sys.executable).parent / "ftgui-compare")
    out = tmp_path / "cmp"
    cmd = [exe, str(image_folder), "--out", str(out), "--weights", "none", "--image-size", "32",
           "--epochs", "30", "--batch-size", "8", "--candidates", "head,full"]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    seen = []
    for line in proc.stderr:
        seen.append(line)
        if line.startswith("Epoch 1/30") and any(s.startswith("== full ==") for s in seen):
            break
    proc.send_signal(signal.SIGINT)
    stdout, rest = proc.communicate(timeout=120)
    assert proc.returncode == 130, "".join(seen) + rest
    assert "stopping after this batch" in rest and "Traceback" not in rest
    report = json.loads((out / "comparison.json").read_text())
    assert {c["name"]: c["status"] for c in report["candidates"]} == {"head": "finished", "full": "stopped"}
    assert (out / "head" / "model.safetensors").is_file() and not (out / "full").exists()
    assert stdout.splitlines()[0].startswith("candidate")
