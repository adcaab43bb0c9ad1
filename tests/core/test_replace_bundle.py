"""Before an export: another model's bundle is told from this run's own earlier export; a
cancelled export leaves the folder exactly as it was; the run's identity survives a checkpoint."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from ftgui.core.bundle.replace import free_folder, other_bundle
from ftgui.core.deploy.export import ExportStopped, export_all
from ftgui.core.training.engine import Trainer


def _files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}


def test_another_run_architecture_or_classes_is_another_model_and_a_re_export_is_not(
    trained, tiny_config, tmp_path
):
    out = tmp_path / "m"
    assert other_bundle(out, trained.trained()) is None  # nothing there yet
    export_all(trained.trained(), out)
    run_id = json.loads((out / "model.json").read_text())["run_id"]
    assert run_id == trained.state.run_id and len(run_id) == 32
    assert other_bundle(out, trained.trained()) is None  # this run's own export: replaced freely

    second = Trainer(tiny_config)  # the same data, architecture and settings: another run
    for _ in second.run():
        pass
    other = other_bundle(out, second.trained())
    assert other is not None and other.why == "another training run"
    assert other.arch == "resnet18" and other.classes == trained.trained().classes
    assert "model.safetensors" in other.files and str(out) in other.describe()
    assert other.describe().endswith(": its weights and description.")  # no deployment formats there

    first = second.trained()
    renamed = dataclasses.replace(
        first, scan=dataclasses.replace(first.scan, classes=["x", *first.classes[1:]])
    )
    assert other_bundle(out, renamed).why == "other classes"  # type: ignore[union-attr]
    meta = json.loads((out / "model.json").read_text())
    (out / "model.json").write_text(json.dumps({**meta, "arch": "mobilenet_v3_small"}))
    assert other_bundle(out, trained.trained()).why == "another architecture"  # type: ignore[union-attr]


def test_a_resumed_run_keeps_its_identity(trained, tmp_path):
    ckpt = trained.save_checkpoint(tmp_path / "run.pt")
    restored = Trainer.from_checkpoint(ckpt)
    assert restored.state.run_id == trained.state.run_id
    assert Trainer(trained.config).state.run_id != trained.state.run_id


def test_a_cancelled_export_leaves_the_folder_as_it_was(trained, tmp_path):
    out = tmp_path / "m"
    export_all(trained.trained(), out)
    (out / "notes.txt").write_text("mine")
    before = _files(out)
    seen: list[tuple[str, bool]] = []
    with pytest.raises(ExportStopped, match="as it was"):
        export_all(
            trained.trained(),
            out,
            ("safetensors", "onnx", "torchscript"),
            stop=lambda: bool(seen),  # Cancel pressed while the first format is written
            watch=lambda fmt, check: seen.append((fmt, check is not None)),
            discard_on_stop=True,
        )
    assert seen == [("onnx", False), ("onnx", True)]  # torchscript never began
    assert _files(out) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m"]  # no stage left beside it


def test_a_new_folder_name_is_free(tmp_path):
    assert free_folder(tmp_path / "model") == tmp_path / "model"
    (tmp_path / "model").mkdir()
    assert free_folder(tmp_path / "model") == tmp_path / "model"  # empty: free
    (tmp_path / "model" / "model.json").write_text("{}")
    (tmp_path / "model-2").mkdir()
    (tmp_path / "model-2" / "x").write_text("")
    assert free_folder(tmp_path / "model") == tmp_path / "model-3"
