"""ftgui-check: likely wrong labels, duplicates, train/validation leaks, outliers and class
imbalance in an image folder (``ftgui.core.insight.check``). Changes no file."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from ftgui import __version__
from ftgui.cli.common import Progress, failure_exit
from ftgui.cli.options import FOLDS, positive_int, precision_option, whole
from ftgui.core.base.errors import FtguiError
from ftgui.core.base.text import printable as display


def check_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="ftgui-check",
        description="Find likely mislabeled images, near-duplicates, duplicates across train and "
        "validation, outliers and class imbalance in a folder of images (one subfolder per class), "
        "from a model's view of them. Changes no file. Exit status: 0 nothing found, 1 problems "
        "listed, 2 an error.",
    )
    p.add_argument("data_dir", metavar="DATA_DIR", help="image folder: one subfolder per class")
    p.add_argument("--model", default="resnet18", help="torchvision architecture (default: resnet18)")
    p.add_argument(
        "--weights",
        default="default",
        help="'default' (torchvision's best), a weights name, 'none', or a local weights file",
    )
    p.add_argument("--image-size", type=positive_int, default=None, metavar="N", help="input size in pixels")
    p.add_argument(
        "--bundle",
        metavar="MODEL_DIR",
        help="use a model trained by ftgui (its backbone, and its split for train/validation leaks) "
        "instead of --model/--weights",
    )
    p.add_argument("--folds", type=FOLDS, default=5, help="k of the k-fold head (2 to 50; default 5)")
    p.add_argument("--val-fraction", type=float, default=0.2, help="the split the leak check uses")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--batch-size", type=positive_int, default=32)
    p.add_argument("--device", default="auto", help="cpu | cuda | mps | auto (default)")
    precision_option(p)
    p.add_argument("--cache-memory", type=int, default=None, metavar="MB", help="RAM for the feature cache")
    p.add_argument("--json", metavar="FILE", help="also write every finding to FILE as JSON")
    p.add_argument("--csv", metavar="FILE", help="also write every finding to FILE as CSV")
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="let --json and --csv replace an existing file that ftgui did not write",
    )
    p.add_argument(
        "--limit", type=whole(0), default=20, help="findings printed per kind (default 20; 0 = all)"
    )
    p.add_argument("--version", action="version", version=f"ftgui {__version__}")
    return p


def check_main(argv: Sequence[str] | None = None) -> int:
    args = check_parser().parse_args(argv)
    from ftgui.core.insight.check import KIND_NAMES, KINDS, Finding, check_data
    from ftgui.core.training.config import TrainConfig

    progress = Progress(sys.stderr)
    try:
        from ftgui.core.base.outputs import check_output_file, first_line, json_with_keys

        signatures = {
            "--json": (args.json, json_with_keys("root", "classes", "findings", "features_from")),
            "--csv": (args.csv, first_line(",".join(Finding.__dataclass_fields__))),
        }
        for option, (target, signature) in signatures.items():
            if target:
                check_output_file(target, option, signature, args.overwrite, [args.data_dir])
        config = TrainConfig(
            data_dir=args.data_dir, arch=args.model, weights=args.weights, image_size=args.image_size,
            batch_size=args.batch_size, val_fraction=args.val_fraction, seed=args.seed,
            device=args.device, cache_memory_mb=args.cache_memory, precision=args.precision,
        )  # fmt: skip
        config.validate()
        result = check_data(config, bundle=args.bundle, folds=args.folds, note=progress.line)
        for target, text in ((args.json, result.to_json), (args.csv, result.to_csv)):
            if target:
                _write(Path(target).expanduser(), text().encode("utf-8"))
    except FtguiError as exc:
        sys.stderr.write(f"ftgui-check: error: {display(str(exc))}\n")
        return 2
    except (KeyboardInterrupt, OSError, MemoryError) as exc:
        return failure_exit("ftgui-check", exc)
    for kind in KINDS:
        found = result.of_kind(kind)
        if not found:
            continue
        print(f"{KIND_NAMES[kind]} ({len(found)}):")
        shown = found if args.limit <= 0 else found[: args.limit]
        for f in shown:
            print(f"  {f.score:5.2f}  {display(f.path)}")
            print(f"         {display(f.detail)}")
        if len(shown) < len(found):
            print(f"  … and {len(found) - len(shown)} more (--limit 0 prints all, --json/--csv write all)")
    print(result.summary())
    print(f"Features: {display(result.features_from)}.")
    for target in (args.json, args.csv):
        if target:
            sys.stderr.write(f"wrote {display(target)}\n")
    return 1 if result.findings else 0


def _write(path: Path, data: bytes) -> None:
    from ftgui.core.base.files import atomic_write

    atomic_write(path, lambda fh: fh.write(data))


if __name__ == "__main__":  # pragma: no cover
    sys.exit(check_main())
