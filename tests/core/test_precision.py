"""bf16 mixed precision: which runs use it (auto, fp32, bf16), and what it must leave alone
(fp32 weights and optimizer state, frozen layers bit-identical, an fp32 export that agrees)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from ftgui.core.base.errors import FtguiError
from ftgui.core.compute import precision as pr
from ftgui.core.compute.precision import FP32, MIN_GAIN, Precision, RunShape, choose_precision
from ftgui.core.models.freeze import FreezePlan
from ftgui.core.training.engine import Trainer, run_to_end
from ftgui.core.training.step import TrainStep

CPU = torch.device("cpu")
BF16 = Precision(torch.bfloat16, torch.bfloat16, "bf16 (asked for)")


@pytest.fixture
def measured(monkeypatch: pytest.MonkeyPatch):
    """auto decides from trials here (the suite's FTGUI_PRECISION=fp32 unset), on a processor
    said to have native bf16; returns the trials run, by key."""
    monkeypatch.delenv("FTGUI_PRECISION", raising=False)
    monkeypatch.setattr(pr, "native_bf16", lambda: "AVX-512 BF16")
    runs: list[str] = []
    real = pr.time_trial

    def counted(trial: pr.Trial, steps: int = pr.TRIAL_STEPS) -> dict[str, float]:
        runs.append(trial.key)
        return real(trial, steps)

    monkeypatch.setattr(pr, "time_trial", counted)
    return runs


def _small_trial() -> pr.Trial:
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.Flatten(), torch.nn.LazyLinear(2))
    model(torch.zeros(1, 3, 8, 8))
    return RunShape("tiny", 8, 4, "full", False).trial(model)


def _remember(key: str, train: float, infer: float) -> None:
    """What an earlier trial on this machine found for ``key`` (the cache ``auto`` reads)."""
    path = pr.gain_cache_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    full = f"{key}|{pr.processor_name()}|torch {torch.__version__}"
    path.write_text(json.dumps({full: {"train": train, "infer": infer}}))


def test_asked_for_formats_need_no_trial(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv("FTGUI_PRECISION", raising=False)

    def no_trial() -> pr.Trial:
        raise AssertionError("no trial for a format asked for")

    fp32 = choose_precision("fp32", CPU, True, no_trial)
    assert (fp32.train, fp32.infer) == (None, None) and "asked for" in fp32.note
    bf16 = choose_precision("bf16", CPU, True, no_trial)
    assert (bf16.train, bf16.infer) == (torch.bfloat16, torch.bfloat16)
    monkeypatch.setenv("FTGUI_PRECISION", "bf16")
    forced = choose_precision("auto", CPU, True, no_trial)
    assert forced.train == torch.bfloat16 and "FTGUI_PRECISION" in forced.note


def test_without_native_bf16_auto_is_fp32_and_bf16_warns(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv("FTGUI_PRECISION", raising=False)
    monkeypatch.setattr(pr, "native_bf16", lambda: None)
    auto = choose_precision("auto", CPU, True, _small_trial)
    assert (auto.train, auto.infer) == (None, None)
    assert auto.note == "fp32: this processor has no native bf16"
    asked = choose_precision("bf16", CPU, True, _small_trial)
    assert asked.train == torch.bfloat16 and "emulated and likely slower" in asked.note and asked.slower


def test_auto_keeps_bf16_only_where_the_trial_found_it_faster(measured: list[str]):
    key = _small_trial().key
    _remember(key, train=MIN_GAIN - 0.3, infer=MIN_GAIN + 0.5)  # like MobileNet v3 here
    mixed = choose_precision("auto", CPU, True, _small_trial)
    assert (mixed.train, mixed.infer) == (None, torch.bfloat16)
    assert "fp32 for training: bf16 0.80× the speed" in mixed.note
    assert "bf16 for the frozen layers and evaluation: 1.60× faster" in mixed.note
    assert mixed.label == "fp32 training, bf16 inference"
    _remember(key, train=MIN_GAIN - 0.05, infer=1.0)  # faster, but not by the margin
    assert choose_precision("auto", CPU, True, _small_trial).train is None
    _remember(key, train=1.9, infer=1.8)
    assert choose_precision("auto", CPU, True, _small_trial).label == "bf16"
    assert measured == []  # every answer came from what was remembered


def test_a_trial_runs_once_per_shape_and_is_remembered(measured: list[str]):
    first = choose_precision("auto", CPU, True, _small_trial)
    second = choose_precision("auto", CPU, True, _small_trial)
    assert measured == [_small_trial().key]  # the second call read the first's result
    assert first == second
    remembered = json.loads(pr.gain_cache_file().read_text())
    (gains,) = remembered.values()
    assert set(gains) == {"train", "infer"} and all(g > 0 for g in gains.values())
    other = RunShape("tiny", 8, 4, "head", False)
    assert other.trial(_small_trial().model).key != _small_trial().key  # the strategy counts


def test_a_damaged_trial_file_is_measured_again(measured: list[str]):
    pr.gain_cache_file().parent.mkdir(parents=True, exist_ok=True)
    pr.gain_cache_file().write_text("[not, json")
    choose_precision("auto", CPU, True, _small_trial)
    assert len(measured) == 1
    assert json.loads(pr.gain_cache_file().read_text())  # rewritten whole


def test_a_trial_leaves_the_model_untouched():
    trial = _small_trial()
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4), torch.nn.Flatten())
    before = {k: v.clone() for k, v in model.state_dict().items()}
    pr.time_trial(pr.Trial(model, trial.example, "k"))
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)  # BatchNorm statistics too
    assert all(p.grad is None for p in model.parameters())


def test_a_bf16_step_trains_in_fp32_and_leaves_frozen_layers_bit_identical():
    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Conv2d(3, 8, 3), torch.nn.ReLU(), torch.nn.Conv2d(8, 8, 3), torch.nn.Flatten(),
        torch.nn.Linear(8 * 12 * 12, 3),
    )  # fmt: skip
    for p in model[0].parameters():
        p.requires_grad_(False)
    frozen = {n: p.detach().clone() for n, p in model[0].named_parameters()}
    trainable = {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    step = TrainStep(model, opt, CPU, BF16)
    result = step(torch.randn(6, 3, 16, 16), torch.tensor([0, 1, 2, 0, 1, 2]))
    assert torch.isfinite(torch.tensor(result.loss))
    for n, p in model[0].named_parameters():
        assert torch.equal(p, frozen[n]) and p.grad is None
    for n, p in model.named_parameters():
        assert p.dtype == torch.float32
        if p.requires_grad:
            assert not torch.equal(p, trainable[n]), n
            assert p.grad is None or p.grad.dtype == torch.float32
    states = [t for s in opt.state.values() for t in s.values() if torch.is_tensor(t) and t.dim()]
    assert states and all(t.dtype == torch.float32 for t in states)


def test_config_refuses_an_unknown_precision(tiny_config):
    tiny_config.precision = "fp16"
    with pytest.raises(FtguiError, match="--precision must be auto, fp32, bf16"):
        tiny_config.validate()


def test_a_bf16_run_records_it_and_its_export_agrees_with_fp32_inference(
    tiny_config, tmp_path: Path, monkeypatch
):
    monkeypatch.setattr(pr, "native_bf16", lambda: "AVX-512 BF16")  # the note as on such a processor
    from ftgui.core.bundle.predict import Predictor
    from ftgui.core.deploy.export import export_all

    tiny_config.precision = "bf16"
    tiny_config.freeze = FreezePlan.parse("last-1")
    tiny_config.epochs = 2
    trainer = Trainer(tiny_config)
    events = []
    end = run_to_end(trainer, on_event=events.append)
    assert type(end).__name__ == "Finished", end
    said = [e.text for e in events if type(e).__name__ == "Message" and e.text.startswith("Precision")]
    assert said == ["Precision: bf16 (asked for)."]
    assert trainer.precision.train == torch.bfloat16
    assert all(p.dtype == torch.float32 for p in trainer.model.parameters())
    export_all(trainer.trained(), tmp_path / "m", formats=("safetensors", "onnx"))
    meta = json.loads((tmp_path / "m" / "model.json").read_text())
    assert meta["training"]["precision"] == "bf16"
    assert meta["training"]["precision_note"] == "bf16 (asked for)"
    assert "bf16" in (tmp_path / "m" / "MODEL_CARD.md").read_text()
    predictor = Predictor.load(tmp_path / "m")
    assert predictor.precision == FP32  # the export runs in fp32 unless asked
    paths = sorted(str(p) for p in Path(tiny_config.data_dir).rglob("*.jpg"))[:24]
    images = predictor.load_images(paths)
    trainer.model.eval()
    with torch.inference_mode():
        reference = trainer.model(images).float()
    torch.testing.assert_close(predictor.logits(images), reference, rtol=1e-4, atol=1e-4)
    from ftgui.core.deploy.runtimes import load_runtime

    onnx = torch.from_numpy(load_runtime("onnx", tmp_path / "m").run(images.numpy()))
    torch.testing.assert_close(onnx, reference, rtol=1e-3, atol=1e-3)
    predictor.use_precision("bf16")
    mixed = predictor.logits(images)
    assert (mixed.argmax(1) == reference.argmax(1)).float().mean() >= 0.9


def test_features_cached_in_bf16_are_not_reused_for_fp32(tiny_config):
    tiny_config.freeze = FreezePlan.parse("head")
    tiny_config.cache_memory_mb = 0  # on disk, where a later run finds it
    said: dict[str, list[str]] = {}
    for precision in ("bf16", "fp32", "bf16"):
        tiny_config.precision = precision
        trainer = Trainer(tiny_config)
        events = []
        run_to_end(trainer, on_event=events.append)
        said.setdefault(precision, []).extend(
            e.text.split(" ")[0]
            for e in events
            if type(e).__name__ == "Message" and "frozen layers' output" in e.text
        )
    assert said == {"bf16": ["Cached", "Reused"], "fp32": ["Cached"]}


def test_the_command_lines_take_precision(image_folder: Path, tmp_path: Path, capsys, monkeypatch):
    monkeypatch.setattr(pr, "native_bf16", lambda: "AVX-512 BF16")  # the note as on such a processor
    from ftgui.cli.predict import predict_main
    from ftgui.cli.train import train_main

    out = tmp_path / "m"
    args = [str(image_folder), "--out", str(out), "--model", "resnet18", "--weights", "none"]
    args += ["--image-size", "32", "--epochs", "1", "--strategy", "last-1", "--precision", "bf16"]
    assert train_main(args) == 0
    assert "Precision: bf16 (asked for)." in capsys.readouterr().err
    assert json.loads((out / "model.json").read_text())["training"]["precision"] == "bf16"
    image = str(next(image_folder.rglob("*.jpg")))
    assert predict_main([str(out), image, "--precision", "bf16", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)
    monkeypatch.setattr(pr, "native_bf16", lambda: None)
    assert predict_main([str(out), image, "--precision", "bf16", "--json"]) == 0
    assert "warning: bf16 (asked for; this processor has no native bf16" in capsys.readouterr().err
    assert predict_main([str(out), image, "--precision", "bf16", "--runtime", "onnx"]) == 2
    assert "--precision bf16 applies to --runtime torch" in capsys.readouterr().err
    with pytest.raises(SystemExit) as refused:
        train_main([*args[:-1], "fp16"])
    assert refused.value.code == 2
    assert "invalid choice: 'fp16'" in capsys.readouterr().err


def test_a_job_carries_its_precision(image_folder: Path, tmp_path: Path):
    from ftgui.core.data.samples import split_samples
    from ftgui.core.data.scan import scan_folder
    from ftgui.core.training.config import TrainConfig
    from ftgui.core.workflows.job import read_job, write_job

    scan = scan_folder(image_folder)
    config = TrainConfig(data_dir=str(image_folder), weights="none", image_size=32, precision="bf16")
    config.precision_note = "bf16 (asked for)"  # what this machine chose; the job's machine decides again
    write_job(tmp_path / "job", config, scan.classes, split_samples(scan, 0.25, 0))
    training = json.loads((tmp_path / "job" / "job.json").read_text())["training"]
    assert training["precision"] == "bf16" and "precision_note" not in training
    assert read_job(tmp_path / "job" / "job.json").config.precision == "bf16"
    training["precision"] = "fp16"
    record = json.loads((tmp_path / "job" / "job.json").read_text())
    (tmp_path / "job" / "job.json").write_text(json.dumps({**record, "training": training}))
    with pytest.raises(FtguiError, match="precision"):
        read_job(tmp_path / "job" / "job.json")


def test_a_trial_that_cannot_run_leaves_the_run_in_fp32(measured: list[str]):
    class Fails(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.w = torch.nn.Parameter(torch.ones(1))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            raise RuntimeError("this layer cannot run in bf16\nsecond line")

    chosen = choose_precision("auto", CPU, True, lambda: RunShape("odd", 8, 1, "full", False).trial(Fails()))
    assert (chosen.train, chosen.infer) == (None, None)
    assert chosen.note == "fp32: the bf16 trial could not run (this layer cannot run in bf16)"
    assert RunShape("odd", 8, 1, "full", False).trial(Fails()).example.shape[0] == 2  # BatchNorm needs 2
