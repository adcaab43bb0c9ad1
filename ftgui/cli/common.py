"""What every command prints the same way: progress lines, scanning a folder, events, stop signals, output checks."""

from __future__ import annotations

import argparse
import signal
import time
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from ftgui.core.base import events as ev
from ftgui.core.base import report
from ftgui.core.base.errors import FtguiError
from ftgui.core.base.text import printable as display

if TYPE_CHECKING:
    from ftgui.core.data.samples import ScanResult


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


def bundle_missing(model_dir: str) -> str | None:
    """Why ``model_dir`` cannot be an exported model, found before PyTorch loads (seconds), or
    None (the full checks follow). An export interrupted while swapping its files in leaves a
    stage beside or inside the folder, which reading the bundle finishes: not refused here."""
    d = Path(model_dir).expanduser()
    staged = any(d.parent.glob(f".{d.name}.ftgui-stage-*")) or (
        d.is_dir() and any(d.glob(".*.ftgui-stage-*"))
    )
    if staged or (d / "model.json").is_file():
        return None
    if not d.exists():
        return f"{d} does not exist: choose the folder ftgui exported."
    if d.is_dir():
        return f"No model.json in {d}: choose the folder ftgui exported."
    return None  # a file: the bundle's reader says what it is


def scan_data(data_dir: str, out: Progress) -> tuple[ScanResult, str]:
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


def print_event(e: ev.Event, out: Progress) -> None:
    if isinstance(e, ev.BatchEnded):
        out.batch(e)
        return
    if isinstance(e, ev.Preparing):
        out.fraction(report.preparing(e) + ":", e.done, e.total)
        return
    line = report.describe(e)
    if line is not None and not isinstance(e, (ev.Finished, ev.Cancelled, ev.Failed)):
        level, text = line
        out.line(text if level == "info" else f"{level}: {text}")


STOP_SIGNALS = {signal.SIGINT: ("Ctrl+C", 130), signal.SIGTERM: ("SIGTERM", 143)}


def check_out(args: argparse.Namespace, out_dir: Path, arch: str) -> None:
    """--out must be usable before the scan starts: a full disk must cost no training time."""
    from ftgui.core.bundle.export import check_output_folder
    from ftgui.core.models import arch_info

    try:
        params = arch_info(arch).num_params or 0
    except FtguiError:
        params = 0
    check_output_folder(out_dir, args.data_dir, params, params, args.checkpoint_every != 0)


def aligned(lines: list[str]) -> list[str]:
    """A Markdown pipe table (the model card's) with its columns padded for a terminal; other
    lines as they are."""
    rows = [
        [cell.strip() for cell in line.strip().strip("|").split("|")]
        for line in lines
        if line.startswith("|")
    ]
    rows = [r for r in rows if not all(set(c) <= set("-:") for c in r)]
    widths = [
        max(len(r[i]) for r in rows if i < len(r)) for i in range(max((len(r) for r in rows), default=0))
    ]
    out, table_done = [], False
    for line in lines:
        if not line.startswith("|"):
            out.append(line)
        elif not table_done:
            out += ["  ".join(c.replace("`", "").ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]
            table_done = True
    return out


def print_exports(bundle: Path, progress: Progress) -> None:
    """The deployment formats' table of a bundle's model.json, as its MODEL_CARD.md has it."""
    from ftgui.core.bundle.card import deployment_lines
    from ftgui.core.bundle.format import read_metadata

    exports = read_metadata(bundle).get("exports")
    if isinstance(exports, dict) and exports.get("formats"):
        for text in aligned(deployment_lines(exports)):
            progress.line(display(text))


# Exit codes every command uses: 0 done, 1 done with failures (listed), 2 bad input, 3 the
# environment failed (a full disk, a read-only folder, too little memory), 130 Ctrl+C, 143 SIGTERM.
ENVIRONMENT_FAILED = 3
INTERRUPTED = 130


def environment_failure(exc: BaseException) -> str:
    """One line for an OSError or MemoryError met while working: what failed, where, and that
    files already there were kept (every writer replaces files only when complete)."""
    if isinstance(exc, MemoryError):
        return (
            "not enough memory to go on; nothing was written (close other programs, or use a smaller "
            "--batch-size or --image-size)"
        )
    assert isinstance(exc, OSError)
    what = exc.strerror or str(exc) or type(exc).__name__
    where = f": {exc.filename}" if getattr(exc, "filename", None) else ""
    return f"{what}{where}; files that were already there are unchanged"


def failure_exit(prog: str, exc: BaseException) -> int:
    """The one line and exit code of a command ended by Ctrl+C or by the machine (a full disk,
    a read-only folder, too little memory) before it wrote anything."""
    import sys

    if isinstance(exc, KeyboardInterrupt):
        sys.stderr.write(f"{prog}: interrupted; nothing was written\n")
        return INTERRUPTED
    sys.stderr.write(f"{prog}: error: {display(environment_failure(exc))}\n")
    return ENVIRONMENT_FAILED
