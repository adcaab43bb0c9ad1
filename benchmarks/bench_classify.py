"""Classifying a folder: ftgui-predict's batched path against a plain torchvision loop.

    python benchmarks/bench_classify.py            # 400 photos of 1280 x 960
    python benchmarks/bench_classify.py --quick    # 160 photos

Both sides use the same exported bundle (ResNet18 at 224 px, random weights: nothing is
downloaded) and the same files. The plain loop is what a notebook does: open each file with
PIL, torchvision's Resize/CenterCrop/ToTensor/Normalize, batches of 64, ``model(x)`` under
``inference_mode``. ftgui: ``Predictor.predict_batches`` (a decoding thread per core, JPEGs
decoded at reduced size, channels-last). Prints images/s of each and the ratio, and checks
that both give the same top class for every image.
"""

from __future__ import annotations

import argparse
import random
import sys
import time

import torch
from PIL import Image
from torchvision import transforms
from workfolder import add_keep_option, work_folder

from ftgui.core.bundle.export import export_bundle
from ftgui.core.bundle.predict import Predictor
from ftgui.core.data.example import draw_example, make_example_dataset
from ftgui.core.insight.classify import find_images
from ftgui.core.models.freeze import FreezePlan
from ftgui.core.training.config import TrainConfig
from ftgui.core.training.engine import Trainer


def plain_loop(predictor: Predictor, paths: list[str], batch: int = 64) -> list[int]:
    pre = predictor.preprocess
    tf = transforms.Compose(
        [
            transforms.Resize(pre.resize_size),
            transforms.CenterCrop(pre.crop_size),
            transforms.ToTensor(),
            transforms.Normalize(pre.mean, pre.std),
        ]
    )
    model = predictor.model.to(memory_format=torch.contiguous_format)
    out: list[int] = []
    for i in range(0, len(paths), batch):
        x = torch.stack([tf(Image.open(p).convert("RGB")) for p in paths[i : i + batch]])
        with torch.inference_mode():
            out.extend(model(x).argmax(1).tolist())
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="160 photos")
    add_keep_option(parser)
    args = parser.parse_args()
    n = 160 if args.quick else 400
    with work_folder("bench-classify", args.keep) as work:
        data = make_example_dataset(work / "shapes", per_class=10, size=64, seed=1)
        cfg = TrainConfig(
            data_dir=str(data), weights="none", image_size=224, epochs=1, freeze=FreezePlan.parse("head")
        )
        trainer = Trainer(cfg)
        trainer.prepare()
        export_bundle(trainer.trained(), work / "model")
        rng = random.Random(0)
        photos = work / "photos"
        photos.mkdir()
        for i in range(n):
            shape = rng.choice(("circle", "square", "stripes", "triangle"))
            draw_example(shape, 960, rng).resize((1280, 960)).save(photos / f"{i:04d}.jpg", quality=90)
        paths = find_images([photos])
        predictor = Predictor.load(work / "model")
        list(predictor.predict_batches(paths[:64]))  # warm-up for both sides
        t0 = time.perf_counter()
        plain = plain_loop(Predictor.load(work / "model"), paths)
        t_plain = time.perf_counter() - t0
        t0 = time.perf_counter()
        ours = list(predictor.predict_batches(paths))
        t_ours = time.perf_counter() - t0
        same = sum(predictor.classes[a] == b.top[0][0] for a, b in zip(plain, ours))
        print(
            f"{n} JPEGs of 1280 x 960, ResNet18 at 224 px, batches of 64, {torch.get_num_threads()} threads"
        )
        print(f"plain torchvision loop  {n / t_plain:7.1f} images/s")
        print(f"ftgui-predict           {n / t_ours:7.1f} images/s   ratio {t_plain / t_ours:.2f}x")
        print(f"same top class for {same} of {n} images")
    return 0


if __name__ == "__main__":
    sys.exit(main())
