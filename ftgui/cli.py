"""ftgui-train and ftgui-predict: thin command lines over ``ftgui.core``."""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from ftgui import __version__
from ftgui.core.base import events as ev
from ftgui.core.base import report
from ftgui.core.base.errors import FtguiError
from ftgui.core.base.options import CACHE_MODES, DEVICES, EXPORT_FORMATS, OPTIMIZERS, SCHEDULES, STRATEGY_HELP
from ftgui.core.base.text import display_path as display

if TYPE_CHECKING:
    from ftgui.core.base.events import CancelToken
    from ftgui.core.bundle.predict import Prediction, Predictor
    from ftgui.core.compute.distributed import World
    from ftgui.core.data.samples import ScanResult
    from ftgui.core.training.config import TrainConfig
    from ftgui.core.training.engine import Trainer
    from ftgui.core.workflows.compare import CandidateSummary


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1 (got {text})")
    return value


def _learning_rate(text: str) -> float | str:
    if text.strip().lower() == "auto":
        return "auto"
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number or auto (got {text!r})") from None


def _run_options(p: argparse.ArgumentParser, train: bool) -> argparse.ArgumentParser:
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
        "--out", required=True, metavar="OUT_DIR", help="folder for model.safetensors and model.json"
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
            type=_positive_int,
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
            "--freeze-bn",
            action="store_true",
            help="freeze every BatchNorm layer, in training blocks too (pretrained statistics; the "
            "same result on any number of processes)",
        )
    p.add_argument("--epochs", type=_positive_int, default=5)
    p.add_argument("--batch-size", type=_positive_int, default=32)
    p.add_argument(
        "--lr",
        type=_learning_rate,
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
        type=_positive_int,
        default=None,
        metavar="N",
        help="input size in pixels (default: the weights' own, e.g. 224)",
    )
    p.add_argument("--val-fraction", type=float, default=0.2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto", help=f"{' | '.join(DEVICES)} or cuda:N (default: auto)")
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
            type=int,
            default=1,
            metavar="E",
            help="save OUT_DIR/checkpoint.pt every E epochs (0 = never; default 1)",
        )
    if train:
        p.add_argument("--resume", metavar="CHECKPOINT", help="continue a run from its checkpoint.pt")
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
            "(each loaded back and checked against the model)",
        )
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


def train_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="ftgui-train",
        description="Fine-tune a pretrained torchvision classifier on a folder of images "
        "(one subfolder per class, or train/ and val/ folders).",
    )
    return _run_options(p, train=True)


class Progress:
    """A one-line progress bar on a terminal; plain lines otherwise. Under torchrun only rank 0
    prints (``silent`` on the others); every rank prints its own errors (``error``)."""

    def __init__(self, stream: TextIO, quiet: bool = False) -> None:
        self.stream = stream
        self.tty = stream.isatty()
        self.quiet = quiet
        self.silent = False
        self.where = ""  # " (rank R of N)" under torchrun
        self._last = 0.0

    def error(self, prog: str, text: str) -> None:
        self.stream.write(f"{prog}: error{self.where}: {display(text)}\n")
        self.stream.flush()

    def line(self, text: str) -> None:
        if self.silent:
            return
        if self.tty:
            self.stream.write("\r\033[K")
        self.stream.write(display(text) + "\n")
        self.stream.flush()

    def fraction(self, what: str, done: int, total: int) -> None:
        """``what done/total`` in place on a terminal, at most ten times a second."""
        if self.quiet or self.silent or not self.tty:
            return
        now = time.monotonic()
        if now - self._last < 0.1 and done != total:
            return
        self._last = now
        self.stream.write(f"\r\033[K{what} {done:,}/{total:,} ({100 * done / max(1, total):.0f}%)")
        self.stream.flush()

    def batch(self, e: ev.BatchEnded) -> None:
        if self.quiet or self.silent or not self.tty:
            return
        now = time.monotonic()
        if now - self._last < 0.1 and e.batch != e.batches:
            return
        self._last = now
        width = 24
        filled = int(width * e.batch / e.batches)
        bar = "#" * filled + "." * (width - filled)
        self.stream.write(
            f"\r\033[Kepoch {e.epoch} [{bar}] {e.batch}/{e.batches}  loss {e.loss:.4f}  "
            f"lr {e.lr:.2g}  {e.images_per_s:.0f} img/s  ETA {report.duration(e.eta_s)}"
        )
        self.stream.flush()


def _scan(data_dir: str, out: Progress) -> tuple[ScanResult, str]:
    """The folder, with progress while new or changed images' headers are checked, and a line
    on what was found (printed once the run is set up: a bad run prints only its error)."""
    from ftgui.core.data.scan import scan_folder

    started = time.perf_counter()
    total = [0]

    def checking(done: int, n: int) -> None:
        if not total[0]:
            total[0] = n
            if n >= 2_000:  # worth a line; a folder that fails still gets one line: its error
                out.line(f"checking {n:,} new or changed images (known ones are remembered)")
        out.fraction("checked", done, n)

    scan = scan_folder(data_dir, checking=checking)
    listed = len(scan.samples) + len(scan.skipped) + len(scan.excluded)
    seconds = time.perf_counter() - started
    return scan, (
        f"{listed:,} files in {len(scan.classes)} classes in {seconds:.1f} s "
        f"({scan.checked:,} checked now, {listed - scan.checked:,} known from earlier)"
    )


def _print_event(e: ev.Event, out: Progress) -> None:
    if isinstance(e, ev.BatchEnded):
        out.batch(e)
        return
    line = report.describe(e)
    if line is not None and not isinstance(e, (ev.Finished, ev.Cancelled, ev.Failed)):
        level, text = line
        out.line(text if level == "info" else f"{level}: {text}")


STOP_SIGNALS = {signal.SIGINT: ("Ctrl+C", 130), signal.SIGTERM: ("SIGTERM", 143)}


def train_main(argv: Sequence[str] | None = None) -> int:
    args = train_parser().parse_args(argv)
    err = sys.stderr
    progress = Progress(err, args.quiet)
    from ftgui.core.compute.distributed import SINGLE

    world = SINGLE
    aborted = False
    try:
        cfg = _train_config(args)
        world = _join(args, cfg, progress)
        code = _train(args, cfg, progress, world)
    except FtguiError as exc:
        progress.error("ftgui-train", str(exc))
        code = 2
    except KeyboardInterrupt:
        err.write(f"ftgui-train: aborted without saving{progress.where}\n")
        code, aborted = 130, True
    except Exception as exc:
        from ftgui.core.compute.distributed import collective_message, is_collective_failure

        if not (world.active and is_collective_failure(exc)):
            raise
        progress.error("ftgui-train", collective_message(exc, world))
        code = 1
    finished = not aborted and code in (0, *(c for _, c in STOP_SIGNALS.values()))
    return _leave(world, code, stopped=finished)


def _leave(world: World, code: int, stopped: bool) -> int:
    """Under torchrun: a rank that finished (or stopped with the others) waits for rank 0 to
    write, then leaves the group; a failing rank exits at once, so torchrun ends the job."""
    if not world.active:
        return code
    from ftgui.core.compute.distributed import stop_world

    if stopped:
        stop_world(world)
        return code
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)  # no collective and no destructor can hold a failing rank back


def _join(args: argparse.Namespace, cfg: TrainConfig | None, progress: Progress) -> World:
    """Under torchrun: join the job's process group; rank 0 alone prints."""
    from ftgui.core.compute.distributed import start_world

    world = start_world(cfg.device if cfg is not None else args.device)
    if world.active:
        progress.where = f" ({world.describe()})"
        progress.silent = not world.main
    return world


def _train_config(args: argparse.Namespace) -> TrainConfig | None:
    """The run's configuration: from the options, or from --config's job (None to --resume)."""
    data = args.data_option or args.data_dir
    if args.data_option and args.data_dir and args.data_option != args.data_dir:
        raise FtguiError("Give the dataset once: as DATA_DIR or as --data, not both.")
    if not data and not args.resume:
        raise FtguiError("Which images? Give the dataset folder: ftgui-train DATA_DIR --out OUT_DIR.")
    args.data_dir = data
    if args.config:
        from ftgui.core.workflows.job import read_job

        job = read_job(args.config)
        args.job = job
        cfg = job.config
        cfg.data_dir = str(data)
        if args.device != "auto":
            cfg.device = args.device
        cfg.sync_bn = cfg.sync_bn or args.sync_bn
        return cfg
    args.job = None
    if args.resume:
        return None
    cfg = _config(args)
    cfg.sync_bn = args.sync_bn
    cfg.validate()
    return cfg


def _config(args: argparse.Namespace) -> TrainConfig:
    from ftgui.core.models.freeze import FreezePlan
    from ftgui.core.training.config import TrainConfig

    return TrainConfig(
        data_dir=args.data_dir,
        arch=args.model,
        weights=args.weights,
        freeze=FreezePlan.parse(
            getattr(args, "strategy", "head"),
            train_bn=getattr(args, "train_bn", False),
            unfreeze_every=getattr(args, "unfreeze_every", 1),
            freeze_bn=getattr(args, "freeze_bn", False),
        ),
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        lr_decay=args.lr_decay,
        optimizer=args.optimizer,
        weight_decay=args.weight_decay,
        schedule=args.schedule,
        image_size=args.image_size,
        val_fraction=args.val_fraction,
        seed=args.seed,
        device=args.device,
        augment=args.augment,
        early_stopping=args.early_stopping,
        num_workers=args.num_workers,
        cache=args.cache,
        cache_memory_mb=args.cache_memory,
    )


def _check_tensorboard(args: argparse.Namespace) -> None:
    """--tensorboard needs its package: said before any slow work."""
    if args.tensorboard:
        from ftgui.core.workflows.tensorboard import tensorboard_missing

        missing = tensorboard_missing()
        if missing:
            raise FtguiError(f"--tensorboard: {missing}")


def _check_out(args: argparse.Namespace, out_dir: Path, arch: str) -> None:
    """--out must be usable before the scan starts: a full disk must cost no training time."""
    from ftgui.core.bundle.export import check_output_folder
    from ftgui.core.models import arch_info

    try:
        params = arch_info(arch).num_params or 0
    except FtguiError:
        params = 0
    check_output_folder(out_dir, args.data_dir, params, params, args.checkpoint_every > 0)


def _train(args: argparse.Namespace, cfg: TrainConfig | None, progress: Progress, world: World) -> int:
    # Heavy imports after argument parsing, so --help is instant.
    from ftgui.core.base.events import CancelToken
    from ftgui.core.base.files import OutputLock
    from ftgui.core.bundle.formats import missing_format_packages
    from ftgui.core.training.checkpoint import same_run_checkpoint
    from ftgui.core.training.engine import Trainer

    out_dir = Path(args.out).expanduser()
    formats = tuple(f.strip().lower() for f in args.export.split(",") if f.strip())
    bad = [f for f in formats if f not in (*EXPORT_FORMATS, "safetensors")]
    if bad:
        raise FtguiError(f"Unknown export format {', '.join(bad)}: use {', '.join(EXPORT_FORMATS)}.")
    missing = missing_format_packages(formats)
    if missing:
        raise FtguiError(f"--export {args.export}: {missing}")
    _check_tensorboard(args)
    if args.checkpoint_every < 0:
        raise FtguiError(f"--checkpoint-every must be 0 (never) or more (got {args.checkpoint_every}).")
    resume = args.resume
    if not resume and cfg is not None and world.active and not args.find_lr:
        # A torchrun restart (or a requeued job) finds its own checkpoint in OUT and resumes.
        ckpt = out_dir / "checkpoint.pt"
        resume = world.broadcast(str(ckpt) if world.main and same_run_checkpoint(ckpt, cfg) else None)
    if resume:
        from ftgui.core.training.checkpoint import load_checkpoint

        arch = str(load_checkpoint(resume).get("arch", ""))
    else:
        assert cfg is not None
        arch = cfg.arch
    writes = world.main and not args.find_lr
    if writes:
        _check_out(args, out_dir, arch)
    lock = OutputLock(out_dir)
    if writes:
        lock.acquire(" ".join(["ftgui-train", *sys.argv[1:]]))
    cancel = CancelToken()
    stopped_by: list[int] = []
    first_signal = [0.0]

    def on_signal(signum: int, frame: object) -> None:
        name, code = STOP_SIGNALS[signal.Signals(signum)]
        if cancel.cancelled:
            # Under torchrun one Ctrl+C arrives twice: from the terminal and from torchrun.
            if world.active and time.monotonic() - first_signal[0] < 5.0:
                return
            raise KeyboardInterrupt
        first_signal[0] = time.monotonic()
        stopped_by.append(code)
        progress.line(f"{name}: stopping after this batch ({name} again to abort without saving)...")
        cancel.cancel()

    previous = {sig: signal.signal(sig, on_signal) for sig in STOP_SIGNALS}
    try:
        if resume:
            trainer = Trainer.from_checkpoint(
                resume,
                data_dir=args.data_dir,
                epochs=cfg.epochs if cfg is not None else args.epochs,
                device=cfg.device if cfg is not None else args.device,
                world=world,
            )
            why = "" if args.resume else " (its own checkpoint: same configuration)"
            progress.line(f"resuming from {resume} after epoch {trainer.epoch}{why}")
        else:
            assert cfg is not None
            trainer = Trainer(cfg, world=world)
            if args.job is not None:
                from ftgui.core.workflows.job import job_dataset

                trainer.prepare(scan=job_dataset(args.job, cfg.data_dir), split=args.job.split)
            else:
                scan, opened = _scan(cfg.data_dir, progress)
                trainer.prepare(scan=scan)
                progress.line(opened)
        if world.active:
            progress.line(
                f"{world.size} processes ({world.backend}), global batch {trainer.config.batch_size} "
                f"(about {-(-trainer.config.batch_size // world.size)} per process)"
            )
        if args.find_lr:
            return _find_lr(trainer, progress)
        started = time.perf_counter()
        final = _run(trainer, cancel, args, out_dir, progress)
        args.seconds = time.perf_counter() - started
        code = stopped_by[0] if stopped_by else 130
        return _finish(trainer, final, args, out_dir, formats, progress, code)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        lock.release()


def _tensorboard_folder(args: argparse.Namespace, out_dir: Path) -> Path | None:
    """DIR/<output folder>-<date-time>: one TensorBoard run per ftgui run."""
    if not args.tensorboard:
        return None
    return Path(args.tensorboard).expanduser() / f"{out_dir.name}-{time.strftime('%Y%m%d-%H%M%S')}"


def _run(
    trainer: Trainer, cancel: CancelToken, args: argparse.Namespace, out_dir: Path, progress: Progress
) -> ev.Event:
    from ftgui.core.workflows.tensorboard import TensorBoardLog

    main = trainer.world.main  # under torchrun only rank 0 writes
    folder = _tensorboard_folder(args, out_dir) if main else None
    board = TensorBoardLog(folder, trainer.config) if folder else None
    final: ev.Event | None = None
    for e in trainer.run(cancel):
        _print_event(e, progress)
        if board is not None:
            board(e)
        every = args.checkpoint_every
        if main and isinstance(e, ev.EpochEnded) and every and e.epoch % every == 0:
            trainer.save_checkpoint(out_dir / "checkpoint.pt")
        final = e
    if board is not None:
        board.close()
        progress.line(f"TensorBoard log: {folder}")
    assert final is not None
    return final


def _finish(
    trainer: Trainer,
    final: ev.Event,
    args: argparse.Namespace,
    out_dir: Path,
    formats: tuple[str, ...],
    progress: Progress,
    cancel_code: int,
) -> int:
    from ftgui.core.bundle.export import export_all

    if trainer.epoch > 0 and not args.no_evaluate and isinstance(final, ev.Finished):
        from ftgui.core.evaluation.metrics import format_report
        from ftgui.core.training.evaluation import evaluate_trainer

        trainer.evaluation = evaluate_trainer(trainer)  # under torchrun: every rank, rank 0 reports
        if trainer.evaluation is not None and not args.quiet:
            progress.line("\n" + display(format_report(trainer.evaluation)) + "\n")
    if not trainer.world.main:  # other ranks write nothing and say only why they failed
        if isinstance(final, ev.Failed):
            progress.error("ftgui-train", final.message.splitlines()[0])
            return 1
        return cancel_code if isinstance(final, ev.Cancelled) else 0
    if trainer.epoch > 0:
        extra = formats if isinstance(final, ev.Finished) else ()
        for check in export_all(trainer.trained(), out_dir, ("safetensors", *extra)):
            progress.line(
                f"wrote {check.path} ({check.runtime}; max difference at batch 1 and 3: "
                f"{check.max_difference:.1e})"
            )
        _record(trainer, "ftgui-train", progress, bundle=out_dir, seconds=getattr(args, "seconds", None))
    kept = f"the model of epoch {trainer.best_epoch or trainer.epoch}"
    if isinstance(final, ev.Failed):
        progress.error("ftgui-train", final.message.splitlines()[0])
        if trainer.epoch:
            progress.line(f"{kept} (the best finished one) was written to {out_dir}")
        return 1
    if isinstance(final, ev.Cancelled):
        if trainer.epoch:
            ckpt = " and checkpoint.pt" if args.checkpoint_every else ""
            progress.line(f"stopped after {trainer.epoch} epoch(s); {kept}{ckpt} written to {out_dir}")
        else:
            progress.line("stopped before the first epoch ended; nothing was written")
        return cancel_code
    assert isinstance(final, ev.Finished)
    best = f", best epoch {final.best_epoch}" if final.best_epoch else ""
    if final.best_val_accuracy is not None:
        result = f"validation accuracy {report.pct(final.best_val_accuracy)}"
    elif trainer.split is not None and trainer.split.val:
        result = "no validation image could be read, so there is no validation accuracy"
    else:
        result = "no validation images (validation fraction 0)"
    progress.line(
        f"done: {final.epochs_completed} epochs{best}, {result}; "
        f"wrote {out_dir / 'model.safetensors'} and {out_dir / 'model.json'}"
    )
    return 0


def _record(trainer: Trainer, source: str, progress: Progress, **kwargs: Any) -> None:
    """Keep the run in the runs folder (a failure to write it never fails the run)."""
    from ftgui.core.workflows.runs import record_run

    try:
        record = record_run(trainer, source, **kwargs)
    except (OSError, FtguiError) as exc:
        progress.line(f"warning: the run could not be recorded in the runs folder: {exc}")
        return
    if not progress.quiet:
        progress.line(f"recorded as run {record.id}")


def _find_lr(trainer: Trainer, progress: Progress) -> int:

    result = trainer.find_lr()
    progress.line("learning rate   smoothed loss")
    step = max(1, len(result.lrs) // 15)
    for lr, loss in list(zip(result.lrs, result.losses))[::step]:
        progress.line(f"  {lr:10.2e}    {loss:8.4f}  {'#' * max(1, int(30 * min(loss, 5) / 5))}")
    if result.suggestion is None:
        progress.line("no clear suggestion: the loss did not fall over the range tried")
        return 1
    if trainer.world.main:
        print(f"suggested learning rate: {result.suggestion:.2e}  (use --lr {result.suggestion:.1e})")
    return 0


def compare_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="ftgui-compare",
        description="Train several freeze layouts on the same split, seed and epochs, keep a bundle "
        "of each, and say which to use.",
    )
    _run_options(p, train=False)
    p.add_argument(
        "--candidates",
        default="head,last-1,full",
        help=f"comma-separated strategies, each {STRATEGY_HELP} (default: head,last-1,full)",
    )
    p.add_argument(
        "--lrs",
        default="",
        metavar="LR,LR",
        help="train every candidate at each of these learning rates (default: each strategy's own)",
    )
    return p


def compare_main(argv: Sequence[str] | None = None) -> int:
    args = compare_parser().parse_args(argv)
    progress = Progress(sys.stderr, args.quiet)
    try:
        return _compare(args, progress)
    except FtguiError as exc:
        sys.stderr.write(f"ftgui-compare: error: {display(str(exc))}\n")
        return 2
    except KeyboardInterrupt:
        sys.stderr.write("ftgui-compare: aborted; finished candidates are kept\n")
        return 130


COMPARE_COLUMNS = (
    ("candidate", "name", "{}"),
    ("trainable", "trainable_params", "{:,}"),
    ("best epoch", "best_epoch", "{}"),
    ("val acc", "best_val_accuracy", "{:.1%}"),
    ("val loss", "best_val_loss", "{:.4f}"),
    ("train acc", "final_train_accuracy", "{:.1%}"),
    ("gap", "gap", "{:+.1%}"),
    ("time", "seconds", "{:.1f}s"),
    ("images/s", "images_per_s", "{:.0f}"),
    ("status", "status", "{}"),
)


def comparison_table(summaries: Sequence[CandidateSummary]) -> str:
    """The summary as aligned text columns (what ftgui-compare prints)."""
    rows = [[h for h, _, _ in COMPARE_COLUMNS]]
    for s in summaries:
        d = s.to_dict()
        rows.append(["-" if d[key] is None else fmt.format(d[key]) for _, key, fmt in COMPARE_COLUMNS])
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join(
        "  ".join(cell.ljust(w) if i == 0 else cell.rjust(w) for i, (cell, w) in enumerate(zip(r, widths)))
        for r in rows
    )


def _compare(args: argparse.Namespace, progress: Progress) -> int:
    import csv
    import io

    from ftgui.core.base.events import CancelToken
    from ftgui.core.base.files import OutputLock, atomic_write
    from ftgui.core.bundle.export import export_all
    from ftgui.core.bundle.format import dumps_json
    from ftgui.core.workflows.compare import CandidateEvent, Comparison, ComparisonFinished, parse_candidates
    from ftgui.core.workflows.tensorboard import CandidateLogs

    try:
        lrs = [float(x) for x in args.lrs.split(",") if x.strip()]
    except ValueError:
        raise FtguiError(f"--lrs must list numbers, e.g. 1e-3,3e-3 (got {args.lrs!r}).") from None
    candidates = parse_candidates(args.candidates, lrs)
    _check_tensorboard(args)
    cfg = _config(args)
    cfg.validate()
    out_dir = Path(args.out).expanduser()
    args.checkpoint_every = 0
    _check_out(args, out_dir, cfg.arch)
    cancel = CancelToken()

    def on_signal(signum: int, frame: object) -> None:
        name, _ = STOP_SIGNALS[signal.Signals(signum)]
        if cancel.cancelled:
            raise KeyboardInterrupt
        progress.line(f"{name}: stopping after this batch; finished candidates are kept...")
        cancel.cancel()

    previous = {sig: signal.signal(sig, on_signal) for sig in STOP_SIGNALS}
    lock = OutputLock(out_dir).acquire(" ".join(["ftgui-compare", *sys.argv[1:]]))
    final: ComparisonFinished | None = None
    board_root = _tensorboard_folder(args, out_dir)
    logs: CandidateLogs | None = None
    try:
        comparison = Comparison(cfg, candidates)
        logs = CandidateLogs(board_root, comparison.trainers) if board_root is not None else None
        for e in comparison.run(cancel):
            if logs is not None and isinstance(e, CandidateEvent):
                logs(e.candidate, e.event)
            if isinstance(e, ComparisonFinished):
                final = e
                continue
            assert isinstance(e, CandidateEvent)
            if isinstance(e.event, ev.RunStarted):
                progress.line(f"== {e.candidate} ==")
            _print_event(e.event, progress)
            if isinstance(e.event, ev.Failed):
                progress.line(f"{e.candidate}: {e.event.message.splitlines()[0]}")
            if isinstance(e.event, ev.Finished):
                export_all(comparison.trainers[e.candidate].trained(), out_dir / e.candidate)
                progress.line(f"{e.candidate}: wrote {out_dir / e.candidate}")
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if logs is not None and logs.close():
            progress.line(f"TensorBoard logs: {board_root}")
        if final is not None:
            for summary in final.summaries:
                if summary.status in ("finished", "stopped") and summary.epochs >= 1:
                    _record(
                        comparison.trainers[summary.name],
                        "ftgui-compare",
                        progress,
                        bundle=out_dir / summary.name if summary.status == "finished" else None,
                        seconds=summary.seconds,
                        comparison=out_dir.name,
                        candidate=summary.name,
                    )
            records = [s.to_dict() for s in final.summaries]
            report_data = {
                "candidates": records,
                "recommended": final.recommended,
                "reason": final.reason,
                "notes": list(final.notes),
                "training": cfg.to_dict(),
            }
            atomic_write(out_dir / "comparison.json", lambda fh: fh.write(dumps_json(report_data).encode()))
            text = io.StringIO()
            writer = csv.DictWriter(text, fieldnames=list(records[0]))
            writer.writeheader()
            writer.writerows(records)
            atomic_write(out_dir / "comparison.csv", lambda fh: fh.write(text.getvalue().encode()))
        lock.release()
    assert final is not None
    print(comparison_table(final.summaries))
    print(f"recommended: {final.reason}" if final.recommended else f"no recommendation: {final.reason}")
    for note in final.notes:
        print(f"note: {note}")
    if cancel.cancelled:
        return 130
    return 0 if final.recommended else 1


def predict_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="ftgui-predict",
        description="Classify images, or whole folders (recursively), with a model exported by ftgui.",
    )
    p.add_argument("model_dir", metavar="MODEL_DIR", help="folder with model.safetensors and model.json")
    p.add_argument("images", metavar="IMAGE_OR_FOLDER", nargs="+", help="image files and folders of images")
    p.add_argument("--topk", type=_positive_int, default=5, help="how many classes to show (default 5)")
    p.add_argument("--json", action="store_true", help="print JSON for scripts")
    p.add_argument(
        "--csv",
        metavar="FILE",
        help="also write FILE: path, the top-k classes and probabilities, and the error of each image",
    )
    p.add_argument("--batch-size", type=_positive_int, default=64, help="images per batch (default 64)")
    p.add_argument("--device", default="cpu", help="cpu (default), cuda or mps")
    p.add_argument(
        "--cam",
        metavar="PNG",
        help="one image: also write PNG, the picture with a heat map of where the evidence for the "
        "predicted class lies (Grad-CAM; needs the insight extra)",
    )
    p.add_argument("--version", action="version", version=f"ftgui {__version__}")
    return p


def predict_main(argv: Sequence[str] | None = None) -> int:
    args = predict_parser().parse_args(argv)
    from ftgui.core.bundle.predict import Predictor
    from ftgui.core.insight.classify import find_images, predictions_csv

    try:
        if args.csv:
            from ftgui.core.base.files import check_destination

            check_destination(args.csv, "--csv", kind="file")
        predictor = Predictor.load(args.model_dir, device=args.device)
        paths = find_images(args.images)
        progress = Progress(sys.stderr)
        many = len(paths) > args.batch_size

        def show(done: int, total: int) -> None:
            if many:
                progress.line(f"classified {done} of {total} images")

        preds = list(predictor.predict_batches(paths, args.topk, args.batch_size, progress=show))
        if args.cam:
            _write_cam(predictor, paths, preds, args.cam)
        if args.csv:
            from ftgui.core.base.files import atomic_write

            text = predictions_csv(preds, min(args.topk, len(predictor.classes))).encode("utf-8")
            atomic_write(Path(args.csv).expanduser(), lambda fh: fh.write(text))
    except FtguiError as exc:
        sys.stderr.write(f"ftgui-predict: error: {display(str(exc))}\n")
        return 2
    if args.json:
        from ftgui.core.bundle.format import dumps_json

        # Always valid JSON: names that are not UTF-8 escaped, no NaN.
        sys.stdout.write(dumps_json([p.to_dict() for p in preds]) + "\n")
    elif not args.csv or len(preds) <= 20:
        for p in preds:
            print(display(p.path))
            if p.error:
                print(f"  error: {display(p.error)}")
            width = max((len(display(c)) for c, _ in p.top), default=0)
            for cls, prob in p.top:
                print(f"  {display(cls):<{width}}  {100 * prob:5.1f}%")
    failed = sum(1 for p in preds if p.error)
    if args.csv:
        sys.stderr.write(
            f"wrote {display(args.csv)}: {len(preds) - failed} images classified"
            + (f", {failed} could not be read (listed with the reason)" if failed else "")
            + "\n"
        )
    return 1 if failed else 0


def _write_cam(predictor: Predictor, paths: list[str], preds: list[Prediction], target: str) -> None:
    from ftgui.core.base.files import atomic_write, check_destination
    from ftgui.core.insight.cam import image_heat_map

    if len(paths) != 1:
        raise FtguiError(f"--cam draws the heat map of one image; {len(paths)} were given.")
    if preds[0].error:
        raise FtguiError(f"--cam: {preds[0].error}")
    check_destination(target, "--cam", kind="file")
    picture, heat = image_heat_map(predictor, paths[0])

    def save(fh: Any) -> None:
        picture.save(fh, format="PNG")

    atomic_write(Path(target).expanduser(), save)
    sys.stderr.write(
        f"wrote {display(target)}: where the evidence for {display(predictor.classes[heat.targets[0]])} "
        f"lies (Grad-CAM on {heat.layer})\n"
    )


if __name__ == "__main__":  # pragma: no cover
    sys.exit(train_main())
