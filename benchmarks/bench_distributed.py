"""One process against several under torchrun (DistributedDataParallel), the same training.

    python benchmarks/bench_distributed.py            # CPU: 1 vs 2 processes, 1 thread each
    python benchmarks/bench_distributed.py --quick    # fewer images and epochs
    python benchmarks/bench_distributed.py --gpus     # on a GPU machine: 1 GPU vs all of them

Both sides run ``ftgui-train`` on the same generated folder with the same settings and global
batch (ResNet18 from random initialisation, nothing downloaded); the several-process side is
``torchrun --nproc-per-node=N ftgui-train ...``. Training throughput is the training images
over the epochs' times after the first (which includes start-up, the cache and most image
decoding; each process decodes only the images of its shards). Prints the
images/s of each side, their ratio, and both sides' validation accuracy, which must agree for
the strategies with frozen BatchNorm (the full fine-tuning case normalises per process).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from workfolder import add_keep_option, work_folder

from ftgui.core.data.example import make_example_dataset

CASES = {
    "last-1, BatchNorm frozen": ("--strategy", "last-1", "--freeze-bn"),
    "full fine-tuning": ("--strategy", "full"),
}


def train(
    data: Path, out: Path, nproc: int, options: tuple[str, ...], common: list[str], device: str
) -> dict:
    bin_dir = Path(sys.executable).parent
    train_cmd = [str(bin_dir / "ftgui-train"), str(data), "--out", str(out), *options, *common]
    env = {**os.environ}
    if device == "cpu":
        env["OMP_NUM_THREADS"] = "1"  # one core per process on both sides
    if nproc > 1 or device == "cuda":
        launcher = [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            f"--nproc-per-node={nproc}",
        ]
        cmd = [*launcher, *train_cmd]
    else:
        cmd = train_cmd
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, capture_output=True, env=env)
    wall = time.perf_counter() - t0
    meta = json.loads((out / "model.json").read_text())
    later = meta["history"][1:] or meta["history"]
    images = len(meta["split"]["train"]) * len(later)
    return {
        "images_per_s": images / sum(h["seconds"] for h in later),
        "wall": wall,
        "val_accuracy": meta["history"][-1]["val_accuracy"],
        "world": meta["distributed"]["world_size"],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="2 epochs, 40 images per class")
    parser.add_argument("--gpus", action="store_true", help="1 GPU against every GPU of this machine")
    add_keep_option(parser)
    args = parser.parse_args()
    device = "cuda" if args.gpus else "cpu"
    if args.gpus:
        import torch

        many = torch.cuda.device_count()
        if many < 1:
            print("--gpus: no CUDA GPU here")
            return 2
    else:
        many = 2
    epochs, per_class, size = (2, 40, 64) if args.quick else (4, 60, 128)
    if args.gpus:
        per_class, size = per_class * 10, 128
    with work_folder("bench-distributed", args.keep) as work:
        data = make_example_dataset(work / "shapes", per_class=per_class, size=96, seed=5)
        common = [
            "--weights",
            "none",
            "--image-size",
            str(size),
            "--epochs",
            str(epochs),
            "--batch-size",
            "32",
        ]
        common += ["--device", device, "--no-evaluate", "--quiet", "--checkpoint-every", "0"]
        print(f"{4 * per_class} images at {size} px, {epochs} epochs, global batch 32, on {device}")
        print(f"{'case':<26} {'1 process':>12} {f'{many} processes':>13} {'ratio':>7}  val acc 1 / {many}")
        for name, options in CASES.items():
            one = train(data, work / f"{name}-1", 1, options, common, device)
            several = train(data, work / f"{name}-{many}", many, options, common, device)
            assert several["world"] == many
            ratio = several["images_per_s"] / one["images_per_s"]
            print(
                f"{name:<26} {one['images_per_s']:>8.1f} i/s {several['images_per_s']:>9.1f} i/s {ratio:>6.2f}x"
                f"  {one['val_accuracy']:.1%} / {several['val_accuracy']:.1%}"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
