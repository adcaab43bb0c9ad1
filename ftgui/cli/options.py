"""The options ftgui-train and ftgui-compare share (one definition, one help text)."""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable
from typing import TYPE_CHECKING

from ftgui import __version__
from ftgui.core.base.options import (
    BN_STATS,
    CACHE_MODES,
    DEVICES,
    EXPORT_FORMATS,
    HEADS,
    MAX_ACCURACY_DROP,
    OPTIMIZERS,
    PRECISIONS,
    SCHEDULES,
    STRATEGY_HELP,
)

if TYPE_CHECKING:
    pass


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1 (got {text})")
    return value


def whole(low: int, high: int | None = None) -> Callable[[str], int]:
    """An argparse type: a whole number from ``low`` (to ``high``), refused at parse time."""
    rule = f"a whole number from {low}" + (f" to {high}" if high is not None else " up")

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be {rule} (got {text!r})") from None
        if value < low or (high is not None and value > high):
            raise argparse.ArgumentTypeError(f"must be {rule} (got {text})")
        return value

    return parse


def number(
    low: float, high: float, rule: str, high_open: bool = False, low_open: bool = False
) -> Callable[[str], float]:
    """An argparse type: a finite number in a range (NaN and infinity refused), said as ``rule``."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be {rule} (got {text!r})") from None
        below = value <= low if low_open else value < low
        above = value >= high if high_open else value > high
        if not math.isfinite(value) or below or above:
            raise argparse.ArgumentTypeError(f"must be {rule} (got {text})")
        return value

    return parse


AUTO_CHECKPOINT_MINUTES = 5


def checkpoint_every(text: str) -> int | None:
    """--checkpoint-every: ``auto`` (None) or a whole number of epochs (0 or more: checked with
    the other numbers, before the scan)."""
    if text.strip().lower() == "auto":
        return None
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be auto or a whole number of epochs (got {text!r})") from None


def learning_rate(text: str) -> float | str:
    if text.strip().lower() == "auto":
        return "auto"
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number or auto (got {text!r})") from None


FOLDS = whole(2, 50)  # cross-validation folds


def run_options(p: argparse.ArgumentParser, train: bool) -> argparse.ArgumentParser:
    """The options of one run; ``train`` adds those only ftgui-train has (strategy, resume, ...)."""
    p.add_argument(
        "data_dir",
        metavar="DATA_DIR",
        nargs="?" if train else None,
        help="image folder: one subfolder per class" + (" (or --data DATA_DIR)" if train else ""),
    )
    if train:
        p.add_argument(
            "--data", dest="data_option", metavar="DATA_DIR", help="the image folder, as an option"
        )
        p.add_argument(
            "--config",
            metavar="JOB",
            help="train the job.json written by the window (File → Export training job…): every "
            "training setting and the split come from it; --data names the dataset here",
        )
    p.add_argument(
        "--out",
        required=not train,  # ftgui-train --reproduce needs none
        metavar="OUT_DIR",
        help="folder for model.safetensors and model.json",
    )
    p.add_argument("--model", default="resnet18", help="torchvision architecture (default: resnet18)")
    p.add_argument(
        "--weights",
        default="default",
        help="'default' (torchvision's best), a weights name (IMAGENET1K_V1), 'none', or a local "
        ".pth/.pt/.safetensors file",
    )
    if train:
        p.add_argument(
            "--strategy",
            default="head",
            help=f"which layers train: {STRATEGY_HELP} (default: head)",
        )
    if train:
        p.add_argument(
            "--unfreeze-every",
            type=positive_int,
            default=1,
            metavar="E",
            help="gradual: unfreeze one more block every E epochs",
        )
    if train:
        p.add_argument(
            "--train-bn", action="store_true", help="keep BatchNorm layers trainable inside frozen blocks"
        )
    if train:
        p.add_argument(
            "--bn-stats",
            choices=BN_STATS,
            default="auto",
            help="frozen BatchNorm layers' statistics: adapt (set to the training images' before the "
            "first epoch, one forward pass; the frozen-layer cache stays), keep (the pretrained "
            "ones), auto (adapt when the images' differ clearly from the pretrained ones; default)",
        )
    if train:
        p.add_argument(
            "--freeze-bn",
            action="store_true",
            help="freeze every BatchNorm layer, in training blocks too (pretrained statistics; the "
            "same result on any number of processes)",
        )
    p.add_argument("--epochs", type=positive_int, default=5)
    p.add_argument("--batch-size", type=positive_int, default=32)
    p.add_argument(
        "--lr",
        type=learning_rate,
        default=None,
        metavar="LR|auto",
        help="learning rate: a number, or 'auto' for a quick range test (head only). Default: the "
        "strategy's own (head 3e-2, last-1 and gradual 3e-3, otherwise 1e-3; see the README)",
    )
    p.add_argument(
        "--lr-decay",
        type=float,
        default=1.0,
        help="discriminative learning rates: each earlier block gets lr × this (default 1 = off)",
    )
    p.add_argument("--optimizer", choices=list(OPTIMIZERS), default="adam")
    p.add_argument("--weight-decay", type=float, default=1e-4)
    p.add_argument("--schedule", choices=list(SCHEDULES), default="cosine")
    p.add_argument(
        "--image-size",
        type=positive_int,
        default=None,
        metavar="N",
        help="input size in pixels (default: the weights' own, e.g. 224)",
    )
    p.add_argument(
        "--head",
        choices=list(HEADS),
        default="auto",
        help="the new classifier: concat (average and max pooling side by side, BatchNorm, one layer: "
        "fastai's; torchvision models that average-pool into one linear classifier), linear (one layer on "
        "average pooling, as torchvision builds it) or auto (default: concat where the model takes it)",
    )
    p.add_argument("--val-fraction", type=float, default=0.2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto", help=f"{' | '.join(DEVICES)} or cuda:N (default: auto)")
    precision_option(p)
    p.add_argument(
        "--augment",
        action=argparse.BooleanOptionalAction,
        default=False,
        help="random resized crops and flips while training",
    )
    p.add_argument(
        "--early-stopping",
        type=int,
        default=0,
        metavar="PATIENCE",
        help="stop after PATIENCE epochs without a better validation loss (0 = off)",
    )
    p.add_argument(
        "--num-workers",
        type=int,
        default=0,
        help="image-loading processes (default 0: decode with one thread per core instead)",
    )
    p.add_argument(
        "--cache",
        choices=list(CACHE_MODES),
        default="auto",
        help="cache what frozen layers compute and decoded images between epochs (default auto)",
    )
    p.add_argument(
        "--cache-memory",
        type=int,
        default=None,
        metavar="MB",
        help="RAM for caches (default: a quarter of the free memory; larger caches go to disk)",
    )
    if train:
        p.add_argument(
            "--sync-bn",
            action="store_true",
            help="under torchrun on GPUs: BatchNorm statistics over all processes' shards "
            "(SyncBatchNorm); for full fine-tuning with small per-GPU batches",
        )
    if train:
        p.add_argument(
            "--checkpoint-every",
            type=checkpoint_every,
            default=None,
            metavar="E",
            help="save OUT_DIR/checkpoint.pt every E epochs (0 = never); default auto: after an epoch "
            f"that ends {AUTO_CHECKPOINT_MINUTES} or more minutes after the last save (a short run "
            "writes none, a crash never costs more than that)",
        )
    if train:
        p.add_argument("--resume", metavar="CHECKPOINT", help="continue a run from its checkpoint.pt")
        p.add_argument(
            "--deterministic",
            action="store_true",
            help="deterministic algorithms: with one process on the same machine, --reproduce gives "
            "bit-identical weights",
        )
        p.add_argument(
            "--reproduce",
            metavar="BUNDLE",
            help="train a bundle's recorded configuration again on its recorded files (refused if they or "
            "the versions changed) and say whether the weights and validation figures match; --data "
            "names the dataset if it moved, --out keeps the new model",
        )
    if train:
        p.add_argument(
            "--find-lr",
            action="store_true",
            help="run a learning-rate range test, print the suggested --lr, and exit without training",
        )
    if train:
        p.add_argument(
            "--export",
            default="",
            metavar="FORMATS",
            help=f"extra formats besides safetensors, comma-separated: {', '.join(EXPORT_FORMATS)} "
            "(each run in its own runtime on the validation images and checked against the model)",
        )
        accuracy_drop_option(p)
    if train:
        p.add_argument(
            "--no-evaluate",
            action="store_true",
            help="skip the confusion matrix and per-class report after training",
        )
    p.add_argument(
        "--tensorboard",
        metavar="DIR",
        help="also log the run's scalars and hyperparameters for TensorBoard, one sub-folder per "
        "run (needs the tensorboard extra)",
    )
    p.add_argument("--quiet", action="store_true", help="only print the summary")
    p.add_argument("--version", action="version", version=f"ftgui {__version__}")

    return p


def precision_option(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--precision",
        choices=list(PRECISIONS),
        default="auto",
        help="auto: bf16 mixed precision where this processor computes bf16 natively and a short "
        "trial finds it faster (on CUDA: the GPU's mixed precision); fp32; or bf16 (default auto)",
    )


def accuracy_drop_option(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--max-accuracy-drop",
        type=number(0, 100, "a number of points from 0 to 100"),
        default=MAX_ACCURACY_DROP,
        metavar="POINTS",
        help="refuse an INT8 export that loses more than this many points of validation accuracy "
        f"against the float model (default {MAX_ACCURACY_DROP:g}; the float formats are kept either way)",
    )
