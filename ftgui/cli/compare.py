"""ftgui-compare: the same data and budget for several freeze layouts, ranked."""

from __future__ import annotations

import argparse
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from ftgui.cli.common import STOP_SIGNALS, Progress, check_out, print_event, scan_data
from ftgui.cli.options import FOLDS, run_options
from ftgui.cli.train import _check_tensorboard, _config, _tensorboard_folder
from ftgui.cli.train_end import record_line as _record
from ftgui.core.base import events as ev
from ftgui.core.base.errors import FtguiError
from ftgui.core.base.options import STRATEGY_HELP
from ftgui.core.base.text import printable as display

if TYPE_CHECKING:
    from ftgui.core.data.samples import ScanResult, Split
    from ftgui.core.training.config import TrainConfig
    from ftgui.core.workflows.compare import CandidateSummary, ComparisonFinished
    from ftgui.core.workflows.repeats import RepeatedOutcome


def _repeats(text: str) -> int:
    """--repeats: a number of folds, or 'auto' (0: chosen from the dataset's size)."""
    if text == "auto":
        return 0
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a whole number or auto (got {text!r})") from None
    if not 1 <= value <= 50:
        raise argparse.ArgumentTypeError(f"must be between 1 and 50 (got {value})")
    return value


def compare_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="ftgui-compare",
        description="Train several freeze layouts on the same split, seed and epochs, keep a bundle "
        "of each, and say which to use.",
    )
    run_options(p, train=False)
    p.add_argument(
        "--candidates",
        default="head,last-1,full",
        help=f"comma-separated strategies, each {STRATEGY_HELP} (default: head,last-1,full)",
    )
    p.add_argument(
        "--backbones",
        default=None,
        metavar="MODEL,MODEL",
        help="rank these models (torchvision names or timm:NAME) by a cross-validated linear probe on "
        "their frozen features, in minutes, instead of training candidates",
    )
    p.add_argument(
        "--folds", type=FOLDS, default=5, help="cross-validation folds for --backbones (2 to 50; default 5)"
    )
    p.add_argument(
        "--repeats",
        type=_repeats,
        default=1,
        metavar="N|auto",
        help="train every candidate on N stratified train/validation folds (repeated k-fold) and "
        "report each one's mean with a 95%% interval, and whether each difference from the best is "
        "real; 'auto': 5 below 500 images, 3 below 2,000, else 1 (default: 1, one split)",
    )
    p.add_argument(
        "--max-minutes",
        type=float,
        default=None,
        metavar="M",
        help="with --repeats: start no fold that would end more than M minutes after the first began "
        "(the verdict then says how many folds ran)",
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
        if args.backbones is not None:  # given, even empty: never a strategy comparison instead
            from ftgui.cli.backbones import bake_off_main

            return bake_off_main(args, progress)
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
    ("95% range", "val_range", "{}"),
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
    from ftgui.core.bundle.format import dumps_json
    from ftgui.core.deploy.export import export_all
    from ftgui.core.workflows.compare import CandidateEvent, ComparisonFinished, parse_candidates
    from ftgui.core.workflows.repeats import FoldStarted, RepeatedComparison, RepeatsFinished
    from ftgui.core.workflows.tensorboard import CandidateLogs

    try:
        lrs = [float(x) for x in args.lrs.split(",") if x.strip()]
    except ValueError:
        raise FtguiError(f"--lrs must list numbers, e.g. 1e-3,3e-3 (got {args.lrs!r}).") from None
    candidates = parse_candidates(args.candidates, lrs)
    _check_tensorboard(args)
    cfg = _config(args)
    cfg.validate()
    if args.max_minutes is not None and not 0 < args.max_minutes < 1e7:
        raise FtguiError(f"--max-minutes must be a positive number of minutes (got {args.max_minutes:g}).")
    out_dir = Path(args.out).expanduser()
    args.checkpoint_every = 0
    check_out(args, out_dir, cfg.arch)
    scan, splits = _folds(args, cfg, progress)
    cancel = CancelToken()

    def on_signal(signum: int, frame: object) -> None:
        name, _ = STOP_SIGNALS[signal.Signals(signum)]
        if cancel.cancelled:
            raise KeyboardInterrupt
        progress.line(f"{name}: stopping after this batch; finished candidates are kept...")
        cancel.cancel()

    previous = {sig: signal.signal(sig, on_signal) for sig in STOP_SIGNALS}
    command = " ".join(["ftgui-compare", *sys.argv[1:]])
    lock = OutputLock(out_dir).acquire(command)
    # Each candidate's folder too: a run exporting into OUT/head meanwhile stops at once.
    locks: list[OutputLock] = []
    try:
        for candidate in candidates:
            locks.append(OutputLock(out_dir / candidate.name).acquire(command))
    except FtguiError:
        for held in (*locks, lock):
            held.release()
        raise
    final: ComparisonFinished | None = None
    board_root = _tensorboard_folder(args, out_dir)
    logs: CandidateLogs | None = None
    outcome: RepeatedOutcome | None = None
    try:
        limit = args.max_minutes * 60 if args.max_minutes else None
        repeated = RepeatedComparison(cfg, candidates, scan, splits, time_limit_s=limit)
        comparison = repeated.first  # the first fold's models are exported, logged and recorded
        logs = CandidateLogs(board_root, comparison.trainers) if board_root is not None else None
        for e in repeated.run(cancel):
            if isinstance(e, FoldStarted):
                if e.folds > 1:
                    progress.line(
                        f"=== fold {e.fold} of {e.folds}: {e.train_images} train / {e.val_images} val ==="
                    )
                continue
            if isinstance(e, RepeatsFinished):
                outcome = e.outcome if len(splits) > 1 else None
                continue
            if isinstance(e, ev.Message):
                progress.line(f"{e.level}: {e.text}")
                continue
            if logs is not None and repeated.fold == 1 and isinstance(e, CandidateEvent):
                logs(e.candidate, e.event)
            if isinstance(e, ComparisonFinished):
                final = final or e
                continue
            assert isinstance(e, CandidateEvent)
            if isinstance(e.event, ev.RunStarted):
                progress.line(f"== {e.candidate} ==")
            print_event(e.event, progress)
            if isinstance(e.event, ev.Failed):
                progress.line(f"{e.candidate}: {e.event.message.splitlines()[0]}")
            if isinstance(e.event, ev.Finished) and repeated.fold == 1:
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
                        ended=summary.status,
                    )
            records = [s.to_dict() for s in final.summaries]
            report_data = {
                "candidates": records,
                "recommended": final.recommended,
                "reason": final.reason,
                "notes": list(final.notes),
                "training": cfg.to_dict(),
            }
            if outcome is not None:
                report_data |= {"recommended": outcome.recommended, "reason": outcome.reason}
                report_data["repeats"] = outcome.to_dict(splits)
            atomic_write(out_dir / "comparison.json", lambda fh: fh.write(dumps_json(report_data).encode()))
            text = io.StringIO()
            writer = csv.DictWriter(text, fieldnames=list(records[0]))
            writer.writeheader()
            writer.writerows(records)
            atomic_write(out_dir / "comparison.csv", lambda fh: fh.write(text.getvalue().encode()))
        for held in (*locks, lock):
            held.release()
    assert final is not None
    if outcome is not None:
        print(repeated_table(outcome))
        print(f"recommended: {outcome.reason}")
        return 130 if cancel.cancelled else 0
    print(comparison_table(final.summaries))
    print(f"recommended: {final.reason}" if final.recommended else f"no recommendation: {final.reason}")
    val = max((s.val_images for s in final.summaries), default=0)
    if val:
        print(
            f"note: one split of {val} validation images; --repeats auto says whether these differences are real"
        )
    for note in final.notes:
        print(f"note: {note}")
    if cancel.cancelled:
        return 130
    return 0 if final.recommended else 1


def _folds(
    args: argparse.Namespace, cfg: TrainConfig, progress: Progress
) -> tuple[ScanResult, list[Split | None]]:
    """The dataset, and the splits to compare on: the configuration's own (one), or --repeats folds."""
    from ftgui.core.workflows.repeats import default_repeats, fold_splits, folds_per_repetition

    scan, opened = scan_data(cfg.data_dir, progress)
    progress.line(opened)
    repeats = args.repeats or default_repeats(len(scan.samples))
    if repeats == 1:
        return scan, [None]  # the configuration's own split, as the trainer makes it
    splits = fold_splits(scan, repeats, cfg.val_fraction, cfg.seed)
    k = folds_per_repetition(cfg.val_fraction)
    progress.line(
        f"{repeats} folds of {k}-fold partitions stratified by class ({-(-repeats // k)} repetition(s)): every "
        f"candidate trains {repeats} times on the same folds; the first fold's models are exported"
    )
    return scan, list(splits)


def repeated_table(outcome: RepeatedOutcome) -> str:
    """Each candidate's mean over the folds, its 95% interval and its difference from the best."""
    from ftgui.core.base.intervals import points, span

    rows = [("candidate", "mean val acc", "95% interval", "vs best", "trainable", "time per fold")]
    for c in outcome.candidates:
        d = outcome.differences.get(c.name)
        versus = (
            "best" if c.name == outcome.best else ("-" if d is None else points(d) + ("" if d.real else " ≈"))
        )
        rows.append(
            (
                c.name, f"{100 * c.mean:.1f}%", span(*c.interval(outcome.n_train, outcome.n_val)), versus,
                f"{c.trainable_params:,}", f"{sum(c.seconds) / max(len(c.seconds), 1):.1f}s",
            )
        )  # fmt: skip
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = [
        "  ".join(cell.ljust(w) if i == 0 else cell.rjust(w) for i, (cell, w) in enumerate(zip(r, widths)))
        for r in rows
    ]
    folds = len(outcome.candidates[0].accuracies)
    lines.append(
        f"over {folds} folds of {outcome.n_val} validation images; vs best: the difference in points with "
        "its 95% interval (corrected resampled t-test); ≈: not a real difference on this data"
    )
    return "\n".join(lines)
