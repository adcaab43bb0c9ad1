"""ftgui-export: deployment formats for an existing bundle, each measured on its validation images."""

from __future__ import annotations

import argparse
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

from ftgui import __version__
from ftgui.cli.common import INTERRUPTED, STOP_SIGNALS, Progress, bundle_missing, failure_exit, print_exports
from ftgui.cli.options import accuracy_drop_option
from ftgui.core.base.errors import FtguiError
from ftgui.core.base.options import EXPORT_FORMATS, QUANTIZED_FORMATS
from ftgui.core.base.text import printable as display


def export_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="ftgui-export",
        description="Write deployment formats into a bundle exported by ftgui, in one atomic swap with "
        "its model.json and MODEL_CARD.md. Each format is run in its own runtime on the bundle's "
        "validation images (from split.json.gz) and compared with the trained model; INT8 formats are "
        "calibrated on its training images and refused when they lose too much accuracy. Exit status: "
        "0 every format written, 1 some format failed or was refused, 2 an error.",
    )
    p.add_argument("model_dir", metavar="MODEL_DIR", help="folder with model.safetensors and model.json")
    p.add_argument(
        "--format",
        required=True,
        metavar="FORMATS",
        help=f"comma-separated: {', '.join(EXPORT_FORMATS)} (INT8: {', '.join(QUANTIZED_FORMATS)})",
    )
    accuracy_drop_option(p)
    p.add_argument(
        "--data",
        metavar="DATA_DIR",
        help="the dataset's folder, when it is no longer where the model was trained on it",
    )
    p.add_argument("--version", action="version", version=f"ftgui {__version__}")
    return p


def export_main(argv: Sequence[str] | None = None) -> int:
    args = export_parser().parse_args(argv)
    missing = bundle_missing(args.model_dir)  # answered before PyTorch loads
    if missing:
        sys.stderr.write(f"ftgui-export: error: {display(missing)}\n")
        return 2
    from ftgui.core.deploy.export import ExportStopped, export_into_bundle

    progress = Progress(sys.stderr)
    formats = [f.strip().lower() for f in args.format.split(",") if f.strip()]
    stopped: list[int] = []

    def on_signal(signum: int, frame: object) -> None:
        name, code = STOP_SIGNALS[signal.Signals(signum)]
        if stopped:
            raise KeyboardInterrupt
        stopped.append(code)  # a converter is never interrupted half-way: it stops between formats
        progress.line(
            f"{name}: stopping after this format; the bundle stays as it was ({name} again to abort)"
        )

    previous = {sig: signal.signal(sig, on_signal) for sig in STOP_SIGNALS}
    try:
        checks, _ = export_into_bundle(
            args.model_dir,
            formats,
            args.max_accuracy_drop,
            args.data,
            lambda text: progress.line(text + "…"),
            stop=lambda: bool(stopped),
        )
    except ExportStopped as exc:
        sys.stderr.write(f"ftgui-export: {display(str(exc))}\n")
        return stopped[0] if stopped else INTERRUPTED
    except FtguiError as exc:
        sys.stderr.write(f"ftgui-export: error: {display(str(exc))}\n")
        return 2
    except KeyboardInterrupt:
        sys.stderr.write(f"ftgui-export: aborted; {args.model_dir} is unchanged\n")
        return INTERRUPTED
    except (OSError, MemoryError) as exc:
        return failure_exit("ftgui-export", exc)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    out = Path(args.model_dir).expanduser()
    print_exports(out, Progress(sys.stdout))
    failed = [Path(c.path).name for c in checks if c.error]
    if failed:
        sys.stderr.write(f"ftgui-export: not kept: {', '.join(failed)} (the reasons are listed above)\n")
    return 1 if failed else 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(export_main())
