"""Growth: how ftgui's costs grow with the folder, per image, from 1k to 100k images.

    python benchmarks/bench_growth.py                 # 1k, 10k and 100k images
    python benchmarks/bench_growth.py --sizes 1000,10000 --model resnet18
    python benchmarks/bench_growth.py --cache-memory 64   # caches beyond 64 MB go to disk

For each size a generated folder of small JPEGs (32 px, 100 classes; written once under the
system's temporary folder and kept for later runs) is measured with its own empty cache
folder: opening it cold (listing and every header checked) in one process, then, in a second
process as when the app is opened again, opening it from the header cache, the first epoch of head-only training at 64 px (decoding every image and
caching the frozen layers' output) and a later epoch (the head alone on cached features),
evaluation on the validation split, and the process's peak RSS, also above its RSS before the
folder was opened (with the model built). A third process measures the decoded-pixel memo of
full fine-tuning without the model: a pass that decodes every training image into it, a pass
that reads them back, and its peak RSS. With ``--cache-memory`` below the caches' size, the
features and the pixels live on disk, and going from the second largest size to the largest
may add at most the budget to the peak RSS (the exit status says whether it did). Printed per image (µs), with
the growth of each per-image cost from one size to the next; from 10k to 100k none may grow
by more than 1.3x (the exit status says whether they did). The model has random weights
(nothing is downloaded), so its accuracy means nothing here; the costs do.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from workfolder import add_keep_option, work_folder

LIMIT = 1.3  # most growth of a per-image cost from 10k to 100k
CLASSES = 100
COSTS = ("open_cold", "open_cached", "first_epoch", "later_epoch", "evaluate")


def make_folder(root: Path, n: int) -> Path:
    """n JPEGs of 32 px in CLASSES class folders (a coloured disc per class, with noise)."""
    import numpy as np
    from PIL import Image, ImageDraw

    done = root / ".complete"
    if done.exists():
        return root
    rng = np.random.default_rng(0)
    bases = []
    for _ in range(CLASSES):
        img = Image.new("RGB", (32, 32), tuple(int(v) for v in rng.integers(0, 255, 3)))
        ImageDraw.Draw(img).ellipse((6, 6, 26, 26), fill=tuple(int(v) for v in rng.integers(0, 255, 3)))
        bases.append(np.asarray(img, dtype=np.int16))
    for c in range(CLASSES):
        (root / f"class_{c:03d}").mkdir(parents=True, exist_ok=True)
    for i in range(n):
        c = i % CLASSES
        noisy = np.clip(bases[c] + rng.integers(-20, 21, (32, 32, 3)), 0, 255).astype(np.uint8)
        Image.fromarray(noisy).save(root / f"class_{c:03d}" / f"{i:07d}.jpg", quality=90)
    done.write_text("")
    return root


def open_cold(folder: str) -> dict[str, float]:
    """The first opening, in a fresh process with an empty cache folder."""
    from ftgui.core.data.scan import scan_folder

    t = time.perf_counter()
    scan = scan_folder(folder)
    return {"open_cold": time.perf_counter() - t, "checked": scan.checked}


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def current_rss_mb() -> float:
    import psutil

    return psutil.Process().memory_info().rss / 2**20


def config(folder: str, model: str, cache_memory: int | None) -> Any:
    from ftgui.core.models.freeze import FreezePlan
    from ftgui.core.training.config import TrainConfig

    return TrainConfig(
        data_dir=folder,
        arch=model,
        weights="none",
        freeze=FreezePlan.parse("head"),
        epochs=2,
        batch_size=256,
        lr=1e-2,
        image_size=64,
        val_fraction=0.1,
        seed=0,
        device="cpu",
        cache_memory_mb=cache_memory,
    )


def measure(folder: str, model: str, cache_memory: int | None) -> dict[str, float]:
    """One size, in a second fresh process: seconds of each step and the peak RSS."""
    from ftgui.core.base import events as ev
    from ftgui.core.data.scan import scan_folder
    from ftgui.core.models import build_model
    from ftgui.core.training.engine import Trainer
    from ftgui.core.training.evaluation import evaluate_trainer

    out: dict[str, float] = {}
    build_model(model, CLASSES, "none", 64)  # torch and the model's code loaded: the baseline
    out["base_rss_mb"] = current_rss_mb()
    t = time.perf_counter()
    scan = scan_folder(folder)  # a fresh process, as when the app is opened again
    out["open_cached"] = time.perf_counter() - t
    out["images"] = len(scan.samples)
    out["checked_again"] = scan.checked
    trainer = Trainer(config(folder, model, cache_memory))
    trainer.prepare(scan=scan)
    epochs = []
    start = time.perf_counter()
    for e in trainer.run():
        if isinstance(e, ev.EpochEnded):
            now = time.perf_counter()
            epochs.append(now - start)
            start = now
    out["first_epoch"], out["later_epoch"] = epochs[0], epochs[1]
    t = time.perf_counter()
    evaluation = evaluate_trainer(trainer)
    out["evaluate"] = time.perf_counter() - t
    out["evaluated"] = evaluation.count if evaluation else 0
    out["peak_rss_mb"] = peak_rss_mb()
    assert trainer.prefix is not None and trainer.prefix._active is not None
    out["features_on_disk"] = float(trainer.prefix._active.train.where == "disk")
    return out


def measure_pixels(folder: str, model: str, cache_memory: int | None) -> dict[str, float]:
    """The decoded-pixel memo (what full fine-tuning keeps between epochs), in a fresh process:
    seconds of a pass that decodes every training image into it and of a pass that reads them
    back, and the peak RSS."""
    from ftgui.core.data.samples import split_samples
    from ftgui.core.data.scan import scan_folder
    from ftgui.core.models import build_model
    from ftgui.core.training.batches import BatchSource

    cfg = config(folder, model, cache_memory)
    built = build_model(model, CLASSES, "none", 64)
    base = current_rss_mb()
    scan = scan_folder(folder)
    source = BatchSource(folder, split_samples(scan, cfg.val_fraction, cfg.seed), built.preprocess, cfg)
    out = {"pixels_base_rss_mb": base}
    for key, epoch in (("pixels_first", 0), ("pixels_later", 1)):
        t = time.perf_counter()
        for _ in source.images(train=True, epoch=epoch):
            pass
        out[key] = time.perf_counter() - t
    out["pixels_peak_rss_mb"] = peak_rss_mb()
    out["pixels_on_disk"] = float(source.memo["train"].where == "disk")
    out["pixels_images"] = len(source.split.train)
    return out


def window_lateness(folder: Path, classes: int = 1000) -> list[tuple[str, float, float, float]]:
    """(what, p99 ms, longest ms, seconds) of a 10 ms QTimer's lateness in the real window
    (offscreen) while it opens ``folder`` cold and again, and while its Evaluate tab shows an
    evaluation of ``classes`` classes (heat map, top confusions, per-class table)."""
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    import torch
    from PySide6.QtCore import QSettings
    from PySide6.QtWidgets import QApplication

    from ftgui.core.data.samples import Sample
    from ftgui.core.evaluation.metrics import summarise
    from ftgui.gui.main_window import MainWindow

    sys.path.insert(0, str(Path(__file__).parent))
    from bench_training import timer_lateness

    app = QApplication.instance() or QApplication([])
    window = MainWindow(
        settings=QSettings(str(Path(tempfile.mkdtemp()) / "b.ini"), QSettings.Format.IniFormat)
    )
    window.show()
    window.start_background_init()
    while not window.ready:
        app.processEvents()
        time.sleep(0.01)

    def measure(action: Any, done: Any) -> tuple[float, float, float]:
        start = time.perf_counter()
        finished: list[float] = []

        def over() -> bool:
            if not finished and done():
                finished.append(time.perf_counter() - start)
            return bool(finished)

        delays = timer_lateness(app, over, action)
        return delays[int(0.99 * (len(delays) - 1))], delays[-1], finished[0]

    out = []
    for what in ("open cold (list, then check every header)", "open again (from the cache)"):
        verified: list[object] = []
        window.data_panel.verified.connect(verified.append)
        out.append(
            (what, *measure(lambda: window.data_panel.load_folder(str(folder)), lambda v=verified: bool(v)))
        )
        window.data_panel.verified.disconnect(verified.append)
    gen = torch.Generator().manual_seed(0)
    samples = [Sample(f"c{c}/{i}.png", c) for c in range(classes) for i in range(5)]
    logits = torch.randn(len(samples), classes, generator=gen)
    logits[torch.arange(len(samples)), torch.tensor([s.label for s in samples])] += 4.0
    ev = summarise([f"class_{c:04d}" for c in range(classes)], str(folder), samples, logits)
    window.tabs.setCurrentWidget(window.eval_panel)
    out.append(
        (
            f"Evaluate tab, {classes:,} classes",
            *measure(lambda: window.eval_panel.set_evaluation(ev), lambda: True),
        )
    )
    window.close()
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="1000,10000,100000")
    parser.add_argument("--model", default="mobilenet_v3_small")
    parser.add_argument(
        "--folders", help="make (or reuse) the image folders here and keep them (default: in the work folder)"
    )
    add_keep_option(parser)
    parser.add_argument("--no-window", action="store_true", help="leave out the window's lateness")
    parser.add_argument(
        "--cache-memory", type=int, default=None, metavar="MB",
        help="the caches' RAM budget (default: a quarter of the free RAM); beyond it they go to disk",
    )  # fmt: skip
    parser.add_argument("--pixels", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--cold", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--window", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child and args.window:
        print(json.dumps(window_lateness(Path(args.child))))
        return 0
    if args.child:
        if args.cold:
            result = open_cold(args.child)
        else:
            step = measure_pixels if args.pixels else measure
            result = step(args.child, args.model, args.cache_memory)
        print(json.dumps(result))
        return 0
    with work_folder("bench-growth", args.keep) as work:
        return run(args, Path(args.folders) if args.folders else work / "folders")


def run(args: argparse.Namespace, folders: Path) -> int:
    sizes = [int(s) for s in args.sizes.split(",")]
    rows = {}
    for n in sizes:
        t = time.perf_counter()
        folder = make_folder(folders / f"{n}", n)
        made = time.perf_counter() - t
        with tempfile.TemporaryDirectory(prefix="ftgui-bench-cache-") as cache:
            env = {**os.environ, "XDG_CACHE_HOME": cache}  # no header or feature cache yet
            row: dict[str, float] = {}
            cmd = [sys.executable, __file__, "--child", str(folder), "--model", args.model]
            if args.cache_memory is not None:
                cmd += ["--cache-memory", str(args.cache_memory)]
            for extra in (["--cold"], [], ["--pixels"]):
                proc = subprocess.run(cmd + extra, env=env, capture_output=True, text=True, check=False)
                if proc.returncode:
                    print(proc.stdout + proc.stderr, file=sys.stderr)
                    return 1
                row.update(json.loads(proc.stdout.strip().splitlines()[-1]))
        rows[n] = row
        extra = f" (folder written in {made:.0f} s)" if made > 1 else ""
        print(f"{n:>7,} images measured{extra}", flush=True)

    print(f"\n{args.model}, head only at 64 px, 2 epochs, batches of 256, {os.cpu_count()} cores")
    print("per image (µs):")
    head = f"{'images':>8} " + " ".join(f"{c:>12}" for c in COSTS) + f" {'peak RSS MB':>12}"
    print(head)
    for n, r in rows.items():
        cells = " ".join(f"{1e6 * r[c] / n:12.1f}" for c in COSTS)
        print(f"{n:>8,} {cells} {r['peak_rss_mb']:12.0f}")
    print("seconds:")
    for n, r in rows.items():
        print(f"{n:>8,} " + " ".join(f"{r[c]:12.2f}" for c in COSTS))
    budget = "a quarter of the free RAM" if args.cache_memory is None else f"{args.cache_memory} MB"
    print(f"\nmemory (MB), caches' RAM budget {budget}; RSS above the process's before the folder:")
    print(f"{'images':>8} {'head only':>12} {'features':>9} {'pixel memo':>12} {'pixels':>7} "
          f"{'decode µs':>10} {'reread µs':>10}")  # fmt: skip
    for n, r in rows.items():
        where = ("RAM", "disk")
        print(
            f"{n:>8,} {r['peak_rss_mb'] - r['base_rss_mb']:12.0f} {where[int(r['features_on_disk'])]:>9} "
            f"{r['pixels_peak_rss_mb'] - r['pixels_base_rss_mb']:12.0f} "
            f"{where[int(r['pixels_on_disk'])]:>7} {1e6 * r['pixels_first'] / r['pixels_images']:10.1f} "
            f"{1e6 * r['pixels_later'] / r['pixels_images']:10.1f}"
        )
    if not args.no_window:
        biggest = folders / f"{sizes[-1]}"
        with tempfile.TemporaryDirectory(prefix="ftgui-bench-cache-") as cache:
            env = {**os.environ, "XDG_CACHE_HOME": cache, "QT_QPA_PLATFORM": "offscreen"}
            proc = subprocess.run(
                [sys.executable, __file__, "--child", str(biggest), "--window"],
                env=env, capture_output=True, text=True, check=False,
            )  # fmt: skip
        if proc.returncode:
            print(proc.stdout + proc.stderr, file=sys.stderr)
            return 1
        print(f"\nthe window (offscreen), a 10 ms timer's lateness, {sizes[-1]:,} images:")
        for what, p99, worst, seconds in json.loads(proc.stdout.strip().splitlines()[-1]):
            print(f"  {what:<45} p99 {p99:6.1f} ms, longest {worst:6.1f} ms, done in {seconds:.2f} s")
    ok = True
    if args.cache_memory is not None and len(sizes) > 1:
        # Within the budget plus a constant: ten times the images may add at most the budget.
        # (The constant comes from the size before the largest: the smallest folder's batches
        # are not full, so it runs on less memory than any bigger one.)
        small, big = sizes[-2], sizes[-1]
        for what, peak, base in (("head only", "peak_rss_mb", "base_rss_mb"),
                                 ("pixel memo", "pixels_peak_rss_mb", "pixels_base_rss_mb")):  # fmt: skip
            used = {n: rows[n][peak] - rows[n][base] for n in (small, big)}
            fits = used[big] <= used[small] + args.cache_memory
            ok = ok and fits
            print(f"{what}: {used[big]:.0f} MB above the start at {big:,} images, {used[small]:.0f} MB at "
                  f"{small:,}: {used[big] - used[small]:+.0f} MB (at most the budget, "
                  f"{args.cache_memory} MB): {'ok' if fits else 'TOO MUCH'}")  # fmt: skip
    for a, b in zip(sizes, sizes[1:]):
        growth = [(rows[b][c] / b) / (rows[a][c] / a) for c in COSTS]
        cells = " ".join(f"{g:11.2f}x" for g in growth)
        print(f"growth of the per-image cost {a:,} -> {b:,}: {cells}")
        if a == 10_000 and b == 100_000:
            worst = max(growth)
            ok = worst <= LIMIT
            print(f"largest growth 10k -> 100k: {worst:.2f}x (limit {LIMIT}x): {'ok' if ok else 'TOO MUCH'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
