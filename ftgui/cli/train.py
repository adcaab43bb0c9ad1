"""ftgui-train: train on a folder (or resume a checkpoint, or run a job), then export."""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from ftgui.cli.common import (
    ENVIRONMENT_FAILED,
    STOP_SIGNALS,
    Progress,
    check_out,
    environment_failure,
    print_event,
    scan_data,
)
from ftgui.cli.options import AUTO_CHECKPOINT_MINUTES, run_options
from ftgui.cli.train_end import find_lr_report, finish
from ftgui.core.base import events as ev
from ftgui.core.base.errors import FtguiError

if TYPE_CHECKING:
    from ftgui.core.base.events import CancelToken
    from ftgui.core.compute.distributed import World
    from ftgui.core.training.config import TrainConfig
    from ftgui.core.training.engine import Trainer


def train_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="ftgui-train",
        description="Fine-tune a pretrained torchvision classifier on a folder of images "
        "(one subfolder per class, or train/ and val/ folders).",
    )
    return run_options(p, train=True)


def train_main(argv: Sequence[str] | None = None) -> int:
    parser = train_parser()
    args = parser.parse_args(argv)
    if not args.out and not args.reproduce:
        parser.error("the following arguments are required: --out (or --reproduce BUNDLE)")
    err = sys.stderr
    progress = Progress(err, args.quiet)
    from ftgui.core.compute.distributed import SINGLE

    world = SINGLE
    aborted = False
    try:
        if args.reproduce:
            from ftgui.cli.reproduce import reproduce_main

            return reproduce_main(args, progress)
        cfg = _train_config(args)
        world = _join(args, cfg, progress)
        code = _train(args, cfg, progress, world)
    except FtguiError as exc:
        progress.error("ftgui-train", str(exc))
        code = 2
    except KeyboardInterrupt:
        err.write(f"ftgui-train: aborted without saving{progress.where}\n")
        code, aborted = 130, True
    except (OSError, MemoryError) as exc:
        progress.error("ftgui-train", environment_failure(exc))
        code = ENVIRONMENT_FAILED
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
        if args.precision != "auto":
            cfg.precision = args.precision
        cfg.sync_bn = cfg.sync_bn or args.sync_bn
        return cfg
    args.job = None
    if args.resume:
        return None
    cfg = _config(args)
    cfg.sync_bn, cfg.deterministic = args.sync_bn, args.deterministic
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
        bn_stats=getattr(args, "bn_stats", "auto"),
        head=args.head,
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
        precision=args.precision,
    )


def _check_tensorboard(args: argparse.Namespace) -> None:
    """--tensorboard needs its package: said before any slow work."""
    if args.tensorboard:
        from ftgui.core.workflows.tensorboard import tensorboard_missing

        missing = tensorboard_missing()
        if missing:
            raise FtguiError(f"--tensorboard: {missing}")


def _train(args: argparse.Namespace, cfg: TrainConfig | None, progress: Progress, world: World) -> int:
    # Heavy imports after argument parsing, so --help is instant.
    from ftgui.core.base.events import CancelToken
    from ftgui.core.base.files import OutputLock
    from ftgui.core.deploy.registry import missing_format_packages, unknown_formats
    from ftgui.core.training.checkpoint import same_run_checkpoint
    from ftgui.core.training.engine import Trainer

    out_dir = Path(args.out).expanduser()
    formats = tuple(f.strip().lower() for f in args.export.split(",") if f.strip())
    unknown = unknown_formats(formats)
    if unknown:
        raise FtguiError(unknown)
    missing = missing_format_packages(formats)
    if missing:
        raise FtguiError(f"--export {args.export}: {missing}")
    _check_tensorboard(args)
    if args.checkpoint_every is not None and args.checkpoint_every < 0:
        raise FtguiError(f"--checkpoint-every must be 0 (never) or more (got {args.checkpoint_every}).")
    if args.checkpoint_every is None and (args.config or world.active):
        args.checkpoint_every = 1  # a job, or a torchrun restart, resumes from the last epoch's
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
        check_out(args, out_dir, arch)
    lock = OutputLock(out_dir)
    if writes:
        lock.acquire(" ".join(["ftgui-train", *sys.argv[1:]]))
    cancel = CancelToken()
    stopped_by: list[int] = []
    first_signal = [0.0]
    exporting = [False]  # training is over: a stop leaves out the formats not begun

    def on_signal(signum: int, frame: object) -> None:
        name, code = STOP_SIGNALS[signal.Signals(signum)]
        if cancel.cancelled:
            # Under torchrun one Ctrl+C arrives twice: from the terminal and from torchrun.
            if world.active and time.monotonic() - first_signal[0] < 5.0:
                return
            raise KeyboardInterrupt
        first_signal[0] = time.monotonic()
        stopped_by.append(code)
        if exporting[0]:
            progress.line(
                f"{name}: no more export formats after this one; the model itself is still written "
                f"({name} again to abort without saving)..."
            )
        else:
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
                scan, opened = scan_data(cfg.data_dir, progress)
                trainer.prepare(scan=scan)
                progress.line(opened)
        if world.active:
            progress.line(
                f"{world.size} processes ({world.backend}), global batch {trainer.config.batch_size} "
                f"(about {-(-trainer.config.batch_size // world.size)} per process)"
            )
        if args.find_lr:
            return find_lr_report(trainer, progress)
        started = time.perf_counter()
        final = _run(trainer, cancel, args, out_dir, progress)
        args.seconds = time.perf_counter() - started
        code = stopped_by[0] if stopped_by else 130
        exporting[0] = True
        try:
            return finish(trainer, final, args, out_dir, formats, progress, code, cancel)
        except KeyboardInterrupt:
            if not (writes and trainer.epoch):
                raise
            # A second Ctrl+C cut a converter short: the trained model itself is still written
            # (a second or two), never only the checkpoint of a finished training.
            from ftgui.core.deploy.export import export_all

            export_all(trainer.trained(), out_dir, ("safetensors",))
            progress.line(f"export aborted; the model alone (no other format) was written to {out_dir}")
            return code
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
    every, saved = args.checkpoint_every, time.monotonic()
    args.checkpoint_written = False
    for e in trainer.run(cancel):
        print_event(e, progress)
        if board is not None:
            board(e)
        due = (
            time.monotonic() - saved >= 60 * AUTO_CHECKPOINT_MINUTES
            if every is None
            else bool(every) and isinstance(e, ev.EpochEnded) and e.epoch % every == 0
        )
        # auto also keeps a stopped run's epochs (Ctrl+C, a scheduler's SIGTERM): it can resume.
        stopped = every is None and isinstance(e, ev.Cancelled) and trainer.epoch > 0
        if main and ((isinstance(e, ev.EpochEnded) and due) or stopped):
            saved = time.monotonic()
            try:
                trainer.save_checkpoint(out_dir / "checkpoint.pt")
                args.checkpoint_written = True
            except OSError as exc:  # a full disk costs this checkpoint, not the run
                going_on = "" if stopped else "training goes on, and "
                progress.line(
                    f"warning: could not save checkpoint.pt after epoch {trainer.epoch} "
                    f"({exc.strerror or exc}); {going_on}the previous checkpoint (if any) is kept"
                )
        final = e
    if board is not None:
        board.close()
        progress.line(f"TensorBoard log: {folder}")
    assert final is not None
    return final


if __name__ == "__main__":  # pragma: no cover
    sys.exit(train_main())
