"""What ftgui-train does once its epochs are over: the evaluation report, the export (formats
left out when stopped), the run's record and the last line, with its exit code."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ftgui.cli.common import Progress, print_exports
from ftgui.core.base import events as ev
from ftgui.core.base import report
from ftgui.core.base.errors import FtguiError
from ftgui.core.base.intervals import proportion, with_range
from ftgui.core.base.text import printable as display
from ftgui.core.workflows.runs import how_it_ended, record_run

if TYPE_CHECKING:
    from ftgui.core.base.events import CancelToken
    from ftgui.core.training.engine import Trainer


def finish(
    trainer: Trainer,
    final: ev.Event,
    args: argparse.Namespace,
    out_dir: Path,
    formats: tuple[str, ...],
    progress: Progress,
    cancel_code: int,
    cancel: CancelToken,
) -> int:
    from ftgui.core.deploy.export import export_all

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
    failed_formats = []
    if trainer.epoch > 0:
        extra = formats if isinstance(final, ev.Finished) else ()
        checks = export_all(
            trainer.trained(),
            out_dir,
            ("safetensors", *extra),
            max_accuracy_drop=args.max_accuracy_drop,
            progress=progress.line if extra else None,
            stop=lambda: cancel.cancelled,
        )
        failed_formats = [c.format for c in checks if c.error]
        if checks:
            print_exports(out_dir, progress)
        seconds = getattr(args, "seconds", None)
        record_line(
            trainer, "ftgui-train", progress, bundle=out_dir, seconds=seconds, ended=how_it_ended(final)
        )
    kept = f"the model of epoch {trainer.best_epoch or trainer.epoch}"
    if isinstance(final, ev.Failed):
        progress.error("ftgui-train", final.message.splitlines()[0])
        if trainer.epoch:
            progress.line(f"{kept} (the best finished one) was written to {out_dir}")
        return 1
    if isinstance(final, ev.Cancelled):
        if trainer.epoch:
            ckpt = " and checkpoint.pt" if getattr(args, "checkpoint_written", False) else ""
            progress.line(f"stopped after {trainer.epoch} epoch(s); {kept}{ckpt} written to {out_dir}")
        else:
            progress.line("stopped before the first epoch ended; nothing was written")
        return cancel_code
    assert isinstance(final, ev.Finished)
    best = f", best epoch {final.best_epoch}" if final.best_epoch else ""
    evaluated = trainer.evaluation
    if final.best_val_accuracy is not None:
        result = f"validation accuracy {proportion(final.best_val_accuracy, final.val_images)}"
        if (
            evaluated is not None
            and evaluated.accuracy is not None
            and evaluated.unreadable
            and report.pct(evaluated.accuracy) != report.pct(final.best_val_accuracy)
        ):
            # Files went missing during the run: say which figure is which, not two numbers.
            result += (
                f" at epoch {final.best_epoch}; "
                f"{with_range(evaluated.accuracy, *(evaluated.accuracy_interval() or (None, None)))} in the report, on the "
                f"{evaluated.count} of {evaluated.requested} validation images still readable at the end"
            )
    elif trainer.split is not None and trainer.split.val:
        result = "no validation image could be read, so there is no validation accuracy"
    else:
        result = "no validation images (validation fraction 0)"
    progress.line(
        f"done: {final.epochs_completed} epochs{best}, {result}; "
        f"wrote {out_dir / 'model.safetensors'} and {out_dir / 'model.json'}"
    )
    if failed_formats:
        progress.error(
            "ftgui-train",
            f"the bundle is complete, but {' and '.join(failed_formats)} could not be exported (see above)",
        )
        return 1
    return cancel_code if cancel.cancelled else 0  # stopped during the export: some formats left out


def record_line(trainer: Trainer, source: str, progress: Progress, **kwargs: Any) -> None:
    """Keep the run in the runs folder (a failure to write it never fails the run)."""
    try:
        record = record_run(trainer, source, **kwargs)
    except (OSError, FtguiError) as exc:
        progress.line(f"warning: the run could not be recorded in the runs folder: {exc}")
        return
    if not progress.quiet:
        progress.line(f"recorded as run {record.id}")


def find_lr_report(trainer: Trainer, progress: Progress) -> int:
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
