"""Check data (cleanlab on the frozen backbone's cached features and a k-fold head): flipped
labels found, an exact copy across train and validation reported as a leak, ftgui-check's list,
--json and --csv, and a trained model's backbone through --bundle."""

from __future__ import annotations

import csv
import json
import random
import shutil
from pathlib import Path

import pytest

pytest.importorskip("cleanlab")

from ftgui.cli.check import check_main  # noqa: E402
from ftgui.core.bundle.export import export_bundle
from ftgui.core.data.example import EXAMPLE_CLASSES, make_example_dataset
from ftgui.core.insight.check import check_data
from ftgui.core.models.freeze import FreezePlan
from ftgui.core.training.config import TrainConfig
from ftgui.core.training.engine import Trainer, run_to_end


def flip_labels(root: Path, fraction: float, seed: int) -> set[str]:
    """Move ``fraction`` of the images into a wrong class folder; their new paths."""
    rng = random.Random(seed)
    files = sorted(p.relative_to(root).as_posix() for p in root.rglob("*.jpg"))
    flipped = set()
    for rel in rng.sample(files, round(fraction * len(files))):
        wrong = rng.choice([c for c in EXAMPLE_CLASSES if c != rel.split("/")[0]])
        (root / rel).rename(root / wrong / Path(rel).name)
        flipped.add(f"{wrong}/{Path(rel).name}")
    return flipped


def config(data: Path, size: int = 64) -> TrainConfig:
    return TrainConfig(data_dir=str(data), arch="resnet18", weights="none", image_size=size, device="cpu")


@pytest.mark.slow
@pytest.mark.parametrize("seed", [1, 4])
def test_most_flipped_labels_are_found_and_most_of_the_list_is_flipped(tmp_path, seed):
    data = make_example_dataset(tmp_path / "shapes", per_class=100, size=64, seed=seed)
    flipped = flip_labels(data, 0.05, seed)
    result = check_data(config(data))
    listed = {f.path for f in result.of_kind("label")}
    found = listed & flipped
    assert len(flipped) == 20
    assert len(found) >= 0.8 * len(flipped), f"found {len(found)} of {len(flipped)} flipped files"
    assert len(found) >= 0.5 * len(listed), f"{len(found)} of the {len(listed)} listed are flipped"
    by_path = {f.path: f for f in result.of_kind("label")}
    some = by_path[sorted(found)[0]]
    assert some.given == some.path.split("/")[0] and some.suggested != some.given
    assert f"In {some.given}, but the model says {some.suggested}" in some.detail
    scores = [f.score for f in result.of_kind("label")]
    assert scores == sorted(scores, reverse=True)  # ranked, surest first


def test_an_exact_copy_across_train_and_validation_is_a_leak(tmp_path):
    for part, seed in (("train", 1), ("val", 2)):
        make_example_dataset(tmp_path / "d" / part, per_class=15, size=32, seed=seed)
    shutil.copy2(tmp_path / "d/train/circle/circle_0003.jpg", tmp_path / "d/val/circle/copy.jpg")
    seen: list[tuple[int, int]] = []
    result = check_data(config(tmp_path / "d", 32), progress=lambda done, total: seen.append((done, total)))
    # One bar over the three steps: it rises, and reaches 100 % only when the check is done
    # (it showed 100 % once the features were computed, long before the heads and cleanlab).
    assert seen[-1] == (100, 100) and all(t == 100 for _, t in seen)
    assert [d for d, _ in seen] == sorted(d for d, _ in seen)
    assert seen.count((100, 100)) == 1 and any(60 < d < 100 for d, _ in seen)  # the k heads
    leaks = result.of_kind("leak")
    assert [(f.path, f.partner) for f in leaks] == [("val/circle/copy.jpg", "train/circle/circle_0003.jpg")]
    assert "identical file in training" in leaks[0].detail
    assert not any({f.path, f.partner} == {"val/circle/copy.jpg", "train/circle/circle_0003.jpg"}
                   for f in result.of_kind("duplicate"))  # fmt: skip


def test_ftgui_check_prints_the_ranked_list_and_writes_json_and_csv(tmp_path, capsys):
    data = make_example_dataset(tmp_path / "shapes", per_class=12, size=32, seed=5)
    shutil.copy2(data / "square/square_0001.jpg", data / "square/again.jpg")
    (data / "triangle" / "triangle_0002.jpg").rename(data / "circle" / "triangle_0002.jpg")
    args = [str(data), "--model", "resnet18", "--weights", "none", "--image-size", "32"]
    code = check_main([*args, "--json", str(tmp_path / "r.json"), "--csv", str(tmp_path / "r.csv")])
    out = capsys.readouterr().out
    assert code == 1  # problems listed
    assert "square/again.jpg" in out or "square/square_0001.jpg" in out
    assert "Checked 49 images in" in out and "out-of-fold accuracy" in out
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["images"] == 49 and report["classes"] == sorted(EXAMPLE_CLASSES)
    rows = list(csv.DictReader((tmp_path / "r.csv").open()))
    assert len(rows) == len(report["findings"]) > 0
    assert {r["kind"] for r in rows} <= {"leak", "label", "duplicate", "outlier", "imbalance"}
    # A copy in the same folder: a duplicate, or a leak where the split put one in validation.
    dup = [f for f in report["findings"] if f["kind"] in ("duplicate", "leak")]
    assert any({f["path"], f["partner"]} == {"square/again.jpg", "square/square_0001.jpg"} for f in dup)


def test_ftgui_check_refuses_bad_input_clearly(tmp_path, capsys):
    assert check_main([str(tmp_path / "nowhere")]) == 2
    assert "ftgui-check: error: Folder not found" in capsys.readouterr().err
    data = make_example_dataset(tmp_path / "s", per_class=1, size=16, seed=0)
    assert check_main([str(data), "--weights", "none", "--image-size", "32"]) == 2
    assert "at least 10 readable images" in capsys.readouterr().err


@pytest.mark.slow
def test_a_trained_models_backbone_and_split_through_bundle(tmp_path, capsys):
    data = make_example_dataset(tmp_path / "shapes", per_class=12, size=32, seed=6)
    cfg = TrainConfig(
        data_dir=str(data), arch="resnet18", weights="none", freeze=FreezePlan.parse("full"),
        epochs=1, batch_size=16, image_size=32, val_fraction=0.25, device="cpu",
    )  # fmt: skip
    run_to_end(trainer := Trainer(cfg))
    export_bundle(trainer.trained(), tmp_path / "m")
    val = sorted(s.path for s in trainer.split.val)
    train = sorted(s.path for s in trainer.split.train)
    shutil.copy2(data / train[0], data / train[0].replace(".jpg", "-copy.jpg"))
    result = check_data(config(data, 32), bundle=tmp_path / "m")
    assert result.features_from.startswith(f"the trained model in {tmp_path / 'm'}")
    leaks = result.of_kind("leak")
    # The copy is not in the bundle's validation files, so it is a plain duplicate, not a leak.
    assert not any(f.path == train[0].replace(".jpg", "-copy.jpg") for f in leaks)
    assert all(f.path in val for f in leaks)


def test_a_class_with_far_fewer_images_is_reported(tmp_path):
    data = make_example_dataset(tmp_path / "shapes", per_class=30, size=32, seed=7)
    for extra in sorted((data / "stripes").glob("*.jpg"))[2:]:
        extra.unlink()  # stripes keeps 2 images
    result = check_data(config(data, 32))
    rare = result.of_kind("imbalance")
    assert [f.path for f in rare] == ["stripes"]
    assert "stripes has 2 images; the median class has 30" in rare[0].detail


@pytest.mark.slow
def test_without_the_insight_extra_check_data_and_heat_maps_say_what_to_install(tmp_path):
    import subprocess
    import sys

    data = make_example_dataset(tmp_path / "shapes", per_class=4, size=16, seed=0)
    code = (
        "import sys; sys.modules['cleanlab'] = None; sys.modules['captum'] = None\n"
        "from ftgui.cli.check import check_main\n"
        "from ftgui.core.insight.cam import captum_missing\n"
        "print(captum_missing())\n"
        f"sys.exit(check_main([{str(data)!r}, '--weights', 'none']))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert (
        "Check data needs cleanlab, which is not installed. Install with: pip install 'ftgui[insight]'"
        in proc.stderr
    )
    assert (
        "Heat maps need Captum, which is not installed. Install with: pip install 'ftgui[insight]'"
        in proc.stdout
    )
