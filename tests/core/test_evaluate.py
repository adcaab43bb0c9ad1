import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from ftgui.cli import train_main
from ftgui.core.bundle.evaluate import evaluate_bundle
from ftgui.core.bundle.predict import Predictor
from ftgui.core.data.samples import Sample
from ftgui.core.deploy.export import export_all
from ftgui.core.evaluation.metrics import metrics_from_confusion, summarise
from ftgui.core.models.freeze import FreezePlan
from ftgui.core.training.engine import Trainer, run_to_end
from ftgui.core.training.evaluation import evaluate_trainer
from ftgui.core.training.lr_finder import suggest

BIN = Path(sys.executable).parent


def test_metrics_match_hand_computed_values():
    # rows: true class, columns: predicted
    confusion = [[3, 1, 0], [0, 2, 2], [1, 0, 1]]
    m = metrics_from_confusion(confusion, ["a", "b", "c"])
    # a: TP 3, FP 1 (c->a), FN 1 (a->b), TN 5
    assert m[0].precision == pytest.approx(3 / 4) and m[0].recall == pytest.approx(3 / 4)
    assert m[0].f1 == pytest.approx(0.75) and m[0].accuracy == pytest.approx(8 / 10)
    # b: TP 2, FP 1, FN 2, TN 5
    assert m[1].precision == pytest.approx(2 / 3) and m[1].recall == pytest.approx(1 / 2)
    assert m[1].f1 == pytest.approx(2 * (2 / 3) * 0.5 / (2 / 3 + 0.5)) and m[1].accuracy == pytest.approx(
        7 / 10
    )
    # c: TP 1, FP 2, FN 1, TN 6
    assert m[2].precision == pytest.approx(1 / 3) and m[2].recall == pytest.approx(1 / 2)
    assert m[2].accuracy == pytest.approx(7 / 10) and [x.support for x in m] == [4, 4, 2]
    never = metrics_from_confusion([[2, 0], [1, 0]], ["x", "y"])
    assert never[1].precision is None and never[1].recall == 0.0


def test_summary_from_logits_on_a_tiny_labelled_set():
    samples = [Sample("a/1.jpg", 0), Sample("a/2.jpg", 0), Sample("b/1.jpg", 1), Sample("b/2.jpg", 1)]
    logits = torch.tensor([[3.0, 0.0], [0.0, 2.0], [0.0, 1.0], [0.0, 5.0]])
    ev = summarise(["a", "b"], "/data", samples, logits)
    assert ev.confusion == [[1, 1], [0, 2]]
    assert ev.accuracy == pytest.approx(0.75)
    expected_losses = torch.nn.functional.cross_entropy(logits, torch.tensor([0, 0, 1, 1]), reduction="none")
    assert ev.loss == pytest.approx(float(expected_losses.mean()))
    assert ev.worst[0].path == "a/2.jpg" and ev.worst[0].predicted == 1
    assert ev.worst[0].confidence == pytest.approx(float(torch.softmax(logits[1], 0)[1]))
    assert ev.paths_in_cell(0, 1) == ["a/2.jpg"] and ev.paths_in_cell(1, 1) == ["b/1.jpg", "b/2.jpg"]


@pytest.mark.slow
def test_evaluation_of_a_trained_model_and_of_its_bundle(tiny_config, tmp_path):
    tiny_config.epochs = 2
    trainer = Trainer(tiny_config)
    run_to_end(trainer)
    ev = evaluate_trainer(trainer)
    assert ev.count == 20 and sum(map(sum, ev.confusion)) == 20
    assert ev.accuracy == pytest.approx(trainer.history[-1]["val_accuracy"])
    trainer.evaluation = ev
    export_all(trainer.trained(), tmp_path / "m")
    meta = json.loads((tmp_path / "m" / "model.json").read_text())
    full = json.loads((tmp_path / "m" / "evaluation.json").read_text())
    assert full["confusion"] == ev.confusion and meta["evaluation"]["file"] == "evaluation.json"
    assert meta["evaluation"]["accuracy"] == ev.accuracy
    # Each epoch records what its accuracy was measured on, and model.json its 95% range.
    assert trainer.history[-1]["val_images"] == 20
    low, high = meta["evaluation"]["accuracy_ci_low"], meta["evaluation"]["accuracy_ci_high"]
    assert low <= ev.accuracy <= high and high - low > 0.2  # 20 images: a wide range
    again = evaluate_bundle(Predictor.load(tmp_path / "m"))
    assert again.confusion == ev.confusion


@pytest.mark.slow
def test_lr_finder_restores_everything_bit_identically(tiny_config):
    tiny_config.freeze, tiny_config.optimizer = FreezePlan.parse("last-1"), "adamw"
    trainer = Trainer(tiny_config)
    trainer.prepare()
    run_to_end(trainer)  # optimizer state exists
    tiny_config.epochs = 2
    before = {k: v.clone() for k, v in trainer.model.state_dict().items()}
    opt_before = trainer.optimizer.state_dict()
    opt_before = {k: {n: t.clone() for n, t in v.items()} for k, v in opt_before["state"].items()}
    rng = torch.get_rng_state()
    result = trainer.find_lr(steps=40)
    assert len(result.lrs) >= 10 and result.lrs == sorted(result.lrs)
    assert result.suggestion is None or result.lrs[0] <= result.suggestion <= result.lrs[-1]
    after = trainer.model.state_dict()
    assert all(torch.equal(v, after[k]) for k, v in before.items())
    state = trainer.optimizer.state_dict()["state"]
    assert all(torch.equal(t, state[k][n]) for k, v in opt_before.items() for n, t in v.items())
    assert torch.equal(rng, torch.get_rng_state())
    assert trainer.epoch == 1


def test_lr_suggestion_is_the_steepest_descent():
    lrs = list(np.logspace(-6, 0, 30))
    losses = [2.0] * 10 + [2.0 - 0.15 * i for i in range(10)] + [0.6 + 0.5 * i for i in range(10)]
    s = suggest(lrs, losses)
    assert lrs[10] <= s <= lrs[19]


@pytest.mark.slow
def test_onnx_and_torchscript_round_trips(tiny_config, tmp_path):
    pytest.importorskip("onnxscript", reason="the onnx extra is not installed")
    pytest.importorskip("onnxruntime", reason="the onnx extra is not installed")
    trainer = Trainer(tiny_config)
    run_to_end(trainer)
    checks = export_all(trainer.trained(), tmp_path / "out", ("safetensors", "onnx", "torchscript"))
    assert {c.format for c in checks} == {"onnx", "torchscript"}
    for c in checks:
        # Run on every validation image (5 per class) at batch 1 and as one batch.
        assert c.max_difference <= 1e-3 and c.batch_sizes == (1, 20) and c.images == 20
        assert c.agreement == 1.0 and c.accuracy == c.reference_accuracy and c.latency_ms > 0
    import onnxruntime as ort

    session = ort.InferenceSession(str(tmp_path / "out" / "model.onnx"), providers=["CPUExecutionProvider"])
    x = torch.randn(5, 3, 32, 32)
    trainer.model.eval()
    with torch.no_grad():
        expected = trainer.model(x).numpy()
    got = session.run(None, {session.get_inputs()[0].name: x.numpy()})[0]
    assert got.shape == (5, 4) and np.abs(got - expected).max() < 1e-3  # the batch size is dynamic
    scripted = torch.jit.load(str(tmp_path / "out" / "model.torchscript.pt"))
    assert torch.allclose(scripted(x), torch.from_numpy(expected), atol=1e-4)
    card = (tmp_path / "out" / "MODEL_CARD.md").read_text()
    for text in (
        "# resnet18 fine-tuned on shapes",
        "| 0 | circle | 15 | 5 |",
        "Which layers trained: full;",
        "learning rate 0.001",
        "centre crop 32×32",
        "model.onnx",
        "onnxruntime",
    ):
        assert text in card, text


@pytest.mark.slow
def test_cli_find_lr_and_export(image_folder, tmp_path):
    pytest.importorskip("onnxscript", reason="the onnx extra is not installed")
    pytest.importorskip("onnxruntime", reason="the onnx extra is not installed")
    base = [
        str(BIN / "ftgui-train"),
        str(image_folder),
        "--out",
        str(tmp_path / "m"),
        "--weights",
        "none",
        "--image-size",
        "32",
        "--batch-size",
        "16",
    ]
    found = subprocess.run(
        [*base, "--find-lr", "--strategy", "head"], capture_output=True, text=True, timeout=300
    )
    assert found.returncode in (0, 1), found.stderr
    assert "learning rate   smoothed loss" in found.stderr
    assert not (tmp_path / "m" / "model.safetensors").exists()  # the range test trains nothing
    run = subprocess.run(
        [*base, "--epochs", "1", "--export", "onnx,torchscript"], capture_output=True, text=True, timeout=300
    )
    assert run.returncode == 0, run.stderr
    assert "confusion matrix" in run.stderr and "model.onnx" in run.stderr
    assert (tmp_path / "m" / "model.torchscript.pt").is_file() and (
        tmp_path / "m" / "MODEL_CARD.md"
    ).is_file()


def test_unknown_export_format(capsys, image_folder, tmp_path):
    assert (
        train_main(
            [str(image_folder), "--out", str(tmp_path / "x"), "--weights", "none", "--export", "tensorrt"]
        )
        == 2
    )
    assert "Unknown export format tensorrt" in capsys.readouterr().err


def test_evaluation_streams_three_numbers_per_image(image_folder, tiny_model):
    """Evaluation keeps (predicted, probability, loss) per image, never the logits, and reports
    exactly what the logits would give."""
    from ftgui.core.data.images import ImageListDataset
    from ftgui.core.data.scan import scan_folder
    from ftgui.core.evaluation.stream import evaluate_model, evaluate_outcomes
    from ftgui.core.models import Preprocess

    scan = scan_folder(image_folder)
    classes = [f"c{i}" for i in range(1000)]
    built = tiny_model(1000)
    pre = Preprocess(32, 32)
    kept, rows = evaluate_outcomes(built.model, pre, scan.root, scan.samples, batch_size=16)
    assert rows.shape == (len(scan.samples), 3) and kept == list(range(len(scan.samples)))
    ev = evaluate_model(built.model, pre, classes, scan.root, scan.samples, batch_size=16)

    ds = ImageListDataset(scan.root, scan.samples, pre)
    built.model.eval()
    with torch.inference_mode():
        logits = built.model(torch.stack([ds[i][0] for i in range(len(ds))]))
    want = summarise(classes, scan.root, scan.samples, logits)
    assert ev.confusion == want.confusion and ev.predictions == want.predictions
    assert ev.accuracy == pytest.approx(want.accuracy) and ev.loss == pytest.approx(want.loss, rel=1e-5)
    assert [m.path for m in ev.worst] == [m.path for m in want.worst]


def test_evaluation_on_cached_features_equals_evaluation_on_the_images(tiny_config, monkeypatch):
    """Head only: the validation features are cached, so evaluation runs only the head on them
    (no image decoded again) and reports what running the whole model on the images reports."""
    from ftgui.core.data import images as data_module
    from ftgui.core.evaluation.stream import evaluate_model

    tiny_config.freeze, tiny_config.epochs, tiny_config.cache_memory_mb = FreezePlan.parse("last-1"), 2, 0
    trainer = Trainer(tiny_config)
    run_to_end(trainer)
    assert trainer.prefix.matches_model()
    decoded = []
    real = data_module.load_rgb
    monkeypatch.setattr(data_module, "load_rgb", lambda *a, **k: decoded.append(a) or real(*a, **k))
    seen = []
    cached = evaluate_trainer(trainer, progress=lambda done, total: seen.append((done, total)))
    assert decoded == [] and seen[-1] == (20, 20)
    full = evaluate_model(
        trainer.model, trainer.preprocess, trainer.classes, trainer.scan.root, trainer.split.val
    )
    assert len(decoded) == 20
    assert cached.confusion == full.confusion and cached.count == full.count == 20
    assert cached.loss == pytest.approx(full.loss, rel=1e-4)
    assert [m.path for m in cached.worst] == [m.path for m in full.worst]
    # Weights of the frozen part changed (another model loaded): the cache no longer says what
    # the model computes, and evaluation decodes the images again.
    with torch.no_grad():
        trainer.model.conv1.weight.mul_(0.5)
    assert not trainer.prefix.matches_model()
    decoded.clear()
    evaluate_trainer(trainer)
    assert len(decoded) == 20


@pytest.mark.parametrize("strategy", ["full", "head"])  # images through the model; cached features
def test_the_report_after_training_is_the_kept_epochs_own_validation_pass(tiny_config, strategy):
    tiny_config.freeze = FreezePlan.parse(strategy)
    tiny_config.epochs = 2
    trainer = Trainer(tiny_config)
    run_to_end(trainer)
    kept = trainer.kept_outcomes
    assert kept is not None and len(kept.positions) == len(trainer.split.val)
    reused = evaluate_trainer(trainer)
    trainer.kept_outcomes = None
    fresh = evaluate_trainer(trainer)
    assert reused.confusion == fresh.confusion and reused.predictions == fresh.predictions
    assert reused.loss == pytest.approx(fresh.loss, rel=1e-5)
    assert reused.requested == fresh.requested and reused.count == fresh.count
    # Outcomes are used only while the model holds the weights they came from.
    changed = type(kept)(kept.positions, torch.zeros_like(kept.rows), kept.digest)  # all "class 0"
    trainer.kept_outcomes = changed
    assert evaluate_trainer(trainer).predictions == [(p, t, 0) for p, t, _ in fresh.predictions]
    with torch.no_grad():
        next(p for p in trainer.model.parameters() if p.requires_grad).add_(0.5)
    perturbed = evaluate_trainer(trainer)  # the digest differs: a real evaluation
    trainer.kept_outcomes = None
    assert perturbed.predictions == evaluate_trainer(trainer).predictions
    assert perturbed.loss == pytest.approx(evaluate_trainer(trainer).loss, rel=1e-6)
