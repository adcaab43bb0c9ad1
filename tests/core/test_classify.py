"""Classifying whole folders: found recursively, predicted in batches, written as CSV, and
unreadable files listed with their reason instead of ending the run."""

from __future__ import annotations

import csv
import io
import shutil

import pytest

from ftgui.cli import predict_main
from ftgui.core.bundle.export import export_bundle
from ftgui.core.bundle.predict import Predictor
from ftgui.core.insight.classify import find_images
from ftgui.core.models.freeze import FreezePlan
from ftgui.core.training.config import TrainConfig
from ftgui.core.training.engine import Trainer, run_to_end


@pytest.fixture(scope="module")
def bundle(module_tmp, image_folder):
    out = module_tmp / "m"
    cfg = TrainConfig(
        data_dir=str(image_folder), weights="none", image_size=32, epochs=2, freeze=FreezePlan.parse("full")
    )
    run_to_end(trainer := Trainer(cfg))
    export_bundle(trainer.trained(), out)
    return out


@pytest.fixture
def photos(tmp_path, image_folder):
    """Nested folders of good pictures, a truncated JPEG, a text file named .jpg, a note and
    hidden files (skipped)."""
    root = tmp_path / "to sort"
    (root / "2024" / "june").mkdir(parents=True)
    (root / ".thumbnails").mkdir()
    for i, src in enumerate(sorted(image_folder.rglob("*.jpg"))[::10]):
        shutil.copy(src, root / ("2024/june" if i % 2 else "2024") / f"photo{i:02d}.jpg")
    good = next(image_folder.rglob("*.jpg")).read_bytes()
    (root / "2024" / "cut.jpg").write_bytes(good[: len(good) // 3])
    (root / "fake.jpg").write_text("not a picture")
    (root / "notes.txt").write_text("no image")
    shutil.copy(next(image_folder.rglob("*.jpg")), root / ".thumbnails" / "t.jpg")
    shutil.copy(next(image_folder.rglob("*.jpg")), root / ".hidden.jpg")
    return root


def test_folders_are_searched_recursively_skipping_hidden_files_and_other_files(photos):
    found = [p.replace(str(photos) + "/", "") for p in find_images([photos])]
    assert found == [  # each folder's files in name order, then its subfolders
        "fake.jpg",
        "2024/cut.jpg",
        *(f"2024/photo{i:02d}.jpg" for i in (0, 2, 4, 6)),
        *(f"2024/june/photo{i:02d}.jpg" for i in (1, 3, 5, 7)),
    ]
    image = str(photos / "2024" / "photo00.jpg")
    assert find_images([image, photos / "2024" / "june"])[0] == image  # files as given


def test_batched_predictions_equal_one_by_one(bundle, photos):
    predictor = Predictor.load(bundle)
    paths = find_images([photos])
    batched = list(predictor.predict_batches(paths, topk=4, batch_size=3))
    single = [next(predictor.predict_batches([p], topk=4)) for p in paths]
    assert [p.path for p in batched] == paths
    for a, b in zip(batched, single):
        assert a.error == b.error
        assert [c for c, _ in a.top] == [c for c, _ in b.top]
        assert [v for _, v in a.top] == pytest.approx([v for _, v in b.top], abs=1e-5)


def test_predict_a_folder_to_csv_lists_broken_files_with_their_reason(bundle, photos, tmp_path, capsys):
    out = tmp_path / "sorted.csv"
    assert predict_main([str(bundle), str(photos), "--csv", str(out), "--topk", "2"]) == 1  # some unreadable
    rows = list(csv.DictReader(io.StringIO(out.read_text())))
    assert list(rows[0]) == ["path", "class_1", "probability_1", "class_2", "probability_2", "error"]
    by_name = {r["path"].rsplit("/", 1)[-1]: r for r in rows}
    assert len(rows) == 10
    assert by_name["cut.jpg"]["error"].startswith("unreadable image: ")
    assert by_name["fake.jpg"]["error"].startswith("unreadable image: ")
    assert by_name["cut.jpg"]["class_1"] == ""
    predictor = Predictor.load(bundle)
    classes = set(predictor.classes)
    for r in rows:
        if not r["error"]:
            assert r["class_1"] in classes and r["class_2"] in classes
            assert 1 >= float(r["probability_1"]) >= float(r["probability_2"]) >= 0
    one = next(r for r in rows if not r["error"])
    expected = predictor.predict([one["path"]], topk=2)[0]
    assert one["class_1"] == expected.top[0][0]
    assert float(one["probability_1"]) == pytest.approx(expected.top[0][1], abs=1e-5)
    err = capsys.readouterr().err
    assert f"wrote {out}: 8 images classified, 2 could not be read (listed with the reason)" in err


def test_a_folder_without_images_and_a_missing_file_are_reported(bundle, tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    assert predict_main([str(bundle), str(empty), str(tmp_path / "gone.jpg"), "--json"]) == 1
    import json

    result = json.loads(capsys.readouterr().out)
    assert [r["error"] for r in result] == ["this folder holds no image files", "file not found"]


def test_csv_destination_is_checked_before_any_work(bundle, tmp_path, capsys):
    (tmp_path / "a folder").mkdir()
    assert predict_main([str(bundle), str(tmp_path), "--csv", str(tmp_path / "a folder")]) == 2
    assert "--csv" in capsys.readouterr().err
    assert not list(tmp_path.glob("*.csv"))
