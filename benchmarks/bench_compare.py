"""One comparison against separate ftgui-train runs: what sharing between candidates saves.

    python benchmarks/bench_compare.py            # head + last-1 + full, 5 epochs each
    python benchmarks/bench_compare.py --quick    # 2 epochs, fewer images

Both sides train the same candidates on the same generated folder with the same settings
(ResNet18 from random initialisation, so nothing is downloaded); the separate runs are three
``ftgui-train`` processes, as a user would start them one after another. Prints wall times,
the ratio (separate / comparison) and each side's validation accuracies, which must agree.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

from workfolder import add_keep_option, work_folder

from ftgui.core.data.example import make_example_dataset

CANDIDATES = ("head", "last-1", "full")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="2 epochs, 30 images per class")
    add_keep_option(parser)
    args = parser.parse_args()
    epochs, per_class, size = (2, 30, 64) if args.quick else (5, 60, 64)
    bin_dir = Path(sys.executable).parent
    with work_folder("bench-compare", args.keep) as work:
        data = make_example_dataset(work / "shapes", per_class=per_class, size=96, seed=3)
        common = ["--weights", "none", "--image-size", str(size), "--epochs", str(epochs), "--seed", "0"]

        t0 = time.perf_counter()
        for name in CANDIDATES:
            subprocess.run(
                [str(bin_dir / "ftgui-train"), str(data), "--out", str(work / "separate" / name),
                 "--strategy", name, "--no-evaluate", "--quiet", *common],
                check=True, capture_output=True,
            )  # fmt: skip
        separate = time.perf_counter() - t0

        t0 = time.perf_counter()
        subprocess.run(
            [str(bin_dir / "ftgui-compare"), str(data), "--out", str(work / "compared"),
             "--candidates", ",".join(CANDIDATES), "--quiet", *common],
            check=True, capture_output=True,
        )  # fmt: skip
        compared = time.perf_counter() - t0

        report = json.loads((work / "compared" / "comparison.json").read_text())
        print(f"{len(CANDIDATES)} candidates ({', '.join(CANDIDATES)}), {epochs} epochs each, "
              f"{4 * per_class} images at {size} px, ResNet18 from scratch")  # fmt: skip
        print(f"{'candidate':<10} {'separate val acc':>17} {'comparison val acc':>19}")
        for row in report["candidates"]:
            meta = json.loads((work / "separate" / row["name"] / "model.json").read_text())
            alone = meta["history"][meta["best_epoch"] - 1]["val_accuracy"]
            print(f"{row['name']:<10} {100 * alone:16.1f}% {100 * row['best_val_accuracy']:18.1f}%")
        print(f"separate ftgui-train runs: {separate:.1f}s")
        print(f"one ftgui-compare:         {compared:.1f}s")
        print(f"ratio (separate / comparison): {separate / compared:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
