import os
import shutil
from pathlib import Path

import pytest
from PIL import Image
from torchvision.datasets import ImageFolder

from ftgui.core.base.errors import DataError
from ftgui.core.data.headers import check_image
from ftgui.core.data.images import load_rgb
from ftgui.core.data.samples import split_samples
from ftgui.core.data.scan import scan_folder


def _img(path: Path, size=(12, 10), color=(200, 30, 30), mode="RGB", fmt=None, **save):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new(mode, size, color if mode in ("RGB", "RGBA", "CMYK") else 128).save(path, fmt, **save)
    return path


@pytest.fixture
def messy(tmp_path):
    root = tmp_path / "pets"
    for cls in ("dog", "Cat", "bird"):
        for i in range(3):
            _img(root / cls / f"{i}.jpg")
    _img(root / "Cat" / "UPPER.PNG")
    _img(root / "dog" / "nested" / "deeper" / "n.png")
    _img(root / "bird" / "x.webp")
    return root


def test_same_classes_and_files_as_imagefolder(messy):
    ref = ImageFolder(str(messy))
    scan = scan_folder(messy)
    assert scan.classes == ref.classes == ["Cat", "bird", "dog"]
    assert scan.class_to_idx == ref.class_to_idx
    ours = [(os.path.join(scan.root, s.path), s.label) for s in scan.samples]
    assert ours == [(os.path.normpath(p), t) for p, t in ref.samples]


def test_hidden_unreadable_and_unknown_files_are_skipped_with_reasons(messy):
    _img(messy / ".ipynb_checkpoints" / "a.jpg")
    _img(messy / "__MACOSX" / "dog" / "a.jpg")
    _img(messy / "dog" / ".hidden.jpg")
    (messy / "dog" / ".DS_Store").write_bytes(b"\0\1")
    (messy / "dog" / "notes.txt").write_text("hi")
    (messy / "dog" / "empty.jpg").write_bytes(b"")
    (messy / "dog" / "page.jpg").write_text("<html>not a picture</html>")
    scan = scan_folder(messy)
    assert scan.classes == ["Cat", "bird", "dog"]
    reasons = dict(scan.skipped)
    assert reasons["dog/notes.txt"] == "not an image file extension"
    assert reasons["dog/empty.jpg"] == "empty file (0 bytes)"
    assert "not an image" in reasons["dog/page.jpg"]
    assert not any(".hidden" in s.path or "DS_Store" in p for s in scan.samples for p, _ in scan.skipped)
    assert len(scan.samples) == 12


def test_empty_class_is_left_out_with_a_warning(messy):
    (messy / "empty_class").mkdir()
    (messy / "broken").mkdir()
    (messy / "broken" / "x.jpg").write_bytes(b"garbage")
    scan = scan_folder(messy)
    assert scan.classes == ["Cat", "bird", "dog"]
    assert any("broken" in w and "empty_class" in w for w in scan.warnings)
    assert {s.label for s in scan.samples} == {0, 1, 2}


def test_fewer_than_two_classes_and_missing_folder(tmp_path):
    _img(tmp_path / "one" / "only" / "a.jpg")
    with pytest.raises(DataError, match="at least 2 class folders"):
        scan_folder(tmp_path / "one")
    with pytest.raises(DataError, match="Folder not found"):
        scan_folder(tmp_path / "nope")
    (tmp_path / "file.txt").write_text("x")
    with pytest.raises(DataError, match="Not a folder"):
        scan_folder(tmp_path / "file.txt")


def test_train_val_folders_are_used_as_the_split(tmp_path):
    for part, n in (("train", 4), ("val", 2)):
        for cls in ("a", "b"):
            for i in range(n):
                _img(tmp_path / part / cls / f"{i}.png")
    scan = scan_folder(tmp_path)
    split = split_samples(scan, val_fraction=0.5)
    assert scan.classes == ["a", "b"]
    assert len(split.train) == 8 and len(split.val) == 4
    assert all(s.path.startswith("train/") for s in split.train)
    assert all(s.path.startswith("val/") for s in split.val)


def test_stratified_seeded_split(image_folder):
    scan = scan_folder(image_folder)
    a = split_samples(scan, 0.25, seed=0)
    b = split_samples(scan, 0.25, seed=0)
    c = split_samples(scan, 0.25, seed=1)
    assert a.to_dict() == b.to_dict() and a.to_dict() != c.to_dict()
    assert scan.counts(a.val) == [5, 5, 5, 5] and scan.counts(a.train) == [15, 15, 15, 15]
    assert not {s.path for s in a.train} & {s.path for s in a.val}


def test_modes_are_converted_to_rgb(tmp_path):
    gray = _img(tmp_path / "g.png", mode="L")
    cmyk = _img(tmp_path / "c.jpg", mode="CMYK", color=(0, 255, 255, 0))
    rgba = tmp_path / "t.png"
    Image.new("RGBA", (4, 4), (255, 0, 0, 0)).save(rgba)
    pal = tmp_path / "p.png"
    Image.new("RGB", (4, 4), (0, 0, 255)).convert("P").save(pal)
    sixteen = tmp_path / "s.png"
    Image.new("I;16", (4, 4), 65535).save(sixteen)
    for p in (gray, cmyk, rgba, pal, sixteen):
        assert load_rgb(p).mode == "RGB", p
    assert load_rgb(rgba).getpixel((0, 0)) == (255, 255, 255)  # transparent -> white
    assert load_rgb(sixteen).getpixel((0, 0)) == (255, 255, 255)
    r, g, b = load_rgb(cmyk).getpixel((1, 1))
    assert r > 200 and g < 60 and b < 60  # C=0 M=Y=255 is red


def test_exif_orientation_is_honoured(tmp_path):
    im = Image.new("RGB", (40, 20), (255, 0, 0))
    exif = im.getexif()
    exif[0x0112] = 6  # rotate 90° clockwise to display
    path = tmp_path / "phone.jpg"
    im.save(path, exif=exif.tobytes())
    assert Image.open(path).size == (40, 20)
    assert load_rgb(path).size == (20, 40)


def test_truncated_jpeg_detected_when_decoding(tmp_path):
    path = _img(tmp_path / "full.jpg", size=(64, 64))
    data = path.read_bytes()
    cut = tmp_path / "cut.jpg"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(OSError):
        load_rgb(cut)


def test_decompression_bomb_is_refused(tmp_path):
    path = tmp_path / "bomb.png"
    Image.new("1", (12000, 12000)).save(path)  # 144 MP: over Pillow's limit, tiny on disk
    assert "too large" in check_image(path)


def test_scan_never_modifies_the_folder(messy):
    before = {p: p.stat().st_mtime_ns for p in messy.rglob("*")}
    scan_folder(messy)
    assert {p: p.stat().st_mtime_ns for p in messy.rglob("*")} == before


def test_symlink_loops_are_cut(messy):
    os.symlink(messy / "dog", messy / "dog" / "nested" / "loop")
    scan = scan_folder(messy)
    assert len([s for s in scan.samples if s.path.startswith("dog/")]) == 4
    shutil.rmtree(messy / "dog" / "nested")


def test_high_bit_depth_images_keep_their_brightness(tmp_path):
    """A 32-bit integer TIFF holding 8-bit values is not stretched by its own maximum."""
    import numpy as np

    values = np.tile(np.arange(0, 77, dtype=np.int32), (4, 1))  # a dark picture: 0 to 76
    dark = tmp_path / "dark.tif"
    Image.fromarray(values, "I").save(dark)
    assert Image.open(dark).mode == "I"
    assert load_rgb(dark).getpixel((76, 0)) == (76, 76, 76)
    sixteen = tmp_path / "mid.tif"
    Image.fromarray((values * 257).astype(np.int32), "I").save(sixteen)  # 16-bit values in a 32-bit file
    assert load_rgb(sixteen).getpixel((76, 0)) == (76, 76, 76)
    fraction = tmp_path / "f.tif"
    Image.fromarray((values / 255).astype(np.float32), "F").save(fraction)  # floats in 0-1
    assert load_rgb(fraction).getpixel((76, 0)) == (76, 76, 76)
