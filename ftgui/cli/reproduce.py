"""ftgui-train --reproduce BUNDLE: the recorded run again, and whether it matched."""

from __future__ import annotations

import argparse
import signal
from pathlib import Path

from ftgui.cli.common import STOP_SIGNALS, Progress, print_event
from ftgui.core.base import events as ev
from ftgui.core.base.errors import FtguiError

MISMATCH = 1  # the run finished but did not match what was expected


def reproduce_main(args: argparse.Namespace, progress: Progress) -> int:
    """Check, train, compare; 0 when the result matched what the record leads to expect."""
    from ftgui.core.workflows import reproduce

    given = [
        o for o, v in (("--config", args.config), ("--resume", args.resume), ("--find-lr", args.find_lr)) if v
    ]
    if given:
        raise FtguiError(f"--reproduce trains the bundle's own configuration: leave out {', '.join(given)}.")
    data = args.data_option or args.data_dir
    rep = reproduce.prepare(args.reproduce, data)
    for line in rep.describe():
        progress.line(f"reproduce: {line}")
    out_dir = Path(args.out).expanduser() if args.out else None
    if out_dir is not None:
        from ftgui.cli.common import check_out

        args.data_dir, args.checkpoint_every = rep.config.data_dir, 0
        check_out(args, out_dir, rep.config.arch)
    cancel = ev.CancelToken()

    def on_signal(signum: int, frame: object) -> None:
        if cancel.cancelled:
            raise KeyboardInterrupt
        progress.line("stopping after this batch; a stopped reproduction says nothing")
        cancel.cancel()

    previous = {sig: signal.signal(sig, on_signal) for sig in STOP_SIGNALS}
    outcome: reproduce.Reproduced | None = None
    try:
        for e in reproduce.run(rep, cancel):
            if isinstance(e, reproduce.Reproduced):
                outcome = e
            else:
                print_event(e, progress)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if outcome is None:
        progress.line("reproduce: the run did not finish, so there is nothing to compare")
        return 130 if cancel.cancelled else 1
    for line in outcome.lines:
        progress.line(f"reproduce: {line}")
    if out_dir is not None and rep.trainer is not None:
        from ftgui.core.deploy.export import export_all

        export_all(rep.trainer.trained(), out_dir, ("safetensors",))
        progress.line(f"reproduce: the new model is in {out_dir}")
    print(outcome.verdict)
    return 0 if outcome.matched else MISMATCH
