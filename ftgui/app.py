"""The ``ftgui`` entry point: opens the window (torch is imported after it is shown)."""

from __future__ import annotations

import sys
from collections.abc import Sequence


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        from .gui.main_window import run_app
    except ImportError:
        from . import __version__

        print(
            f"ftgui {__version__}: the desktop window is not part of this build yet.\n"
            "Train from the command line: ftgui-train DATA_DIR --out OUT_DIR (see ftgui-train --help)."
        )
        return 0
    return run_app(args)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
