"""Images whose shape would explode when resized are refused with the reason, before decoding."""

from __future__ import annotations

import resource
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from ftgui.core.data.headers import check_image
from ftgui.core.data.images import ImageShapeError, load_rgb


@pytest.fixture
def strip(tmp_path) -> Path:
    path = tmp_path / "strip.png"
    Image.new("RGB", (1, 1_000_000), (200, 10, 10)).save(path)  # 4 KB on disk, within the 1 Mpx check
    return path


def test_an_extreme_aspect_ratio_is_refused_by_the_scan_and_by_decoding(strip, tmp_path):
    reason = (
        "1 x 1,000,000 px: an aspect ratio of 1,000,000:1 is too extreme to resize (ftgui takes up to 100:1)"
    )
    assert check_image(strip) == reason
    with pytest.raises(ImageShapeError, match="too extreme"):
        load_rgb(strip, 256)
    from ftgui.gui.widgets.thumbs import thumbnail_png

    assert thumbnail_png(str(strip)) is None  # the class table shows no picture, nothing explodes
    wide = tmp_path / "wide.png"
    Image.new("RGB", (3000, 40), (0, 0, 0)).save(wide)  # 75:1 is fine at 256 px...
    assert check_image(wide) is None and load_rgb(wide, 256).size == (3000, 40)
    with pytest.raises(ImageShapeError, match="would become 4,096 x 307,200 px"):
        load_rgb(wide, 4096)  # ...but not at 4096 px


@pytest.mark.slow
def test_predict_under_a_memory_limit_answers_for_the_other_images(strip, tmp_path, tiny_config):
    from ftgui.core.deploy.export import export_all
    from ftgui.core.training.engine import Trainer

    trainer = Trainer(tiny_config)
    for _ in trainer.run():
        pass
    export_all(trainer.trained(), tmp_path / "m")
    good = next(Path(tiny_config.data_dir).rglob("*.jpg"))

    def limit() -> None:  # 4 GB of address space: resizing the strip would need about 7.6 GB
        resource.setrlimit(resource.RLIMIT_AS, (4 << 30, 4 << 30))

    exe = Path(sys.executable).parent / "ftgui-predict"
    done = subprocess.run(
        [str(exe), str(tmp_path / "m"), str(strip), str(good), "--csv", str(tmp_path / "p.csv")],
        capture_output=True,
        text=True,
        preexec_fn=limit,
        timeout=300,
        env={"OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"},
    )
    assert (tmp_path / "p.csv").is_file(), done.stderr
    rows = (tmp_path / "p.csv").read_text().splitlines()
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr
    assert "too extreme to resize" in rows[1] and rows[2].split(",")[1] in trainer.classes
