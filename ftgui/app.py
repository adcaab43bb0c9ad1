"""The ``ftgui`` entry point: opens the window (torch is imported after it is shown)."""

from __future__ import annotations

import sys
from collections.abc import Sequence


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        from .gui.main_window import run_app
    except ImportError as exc:
        sys.stderr.write(
            f"ftgui: the window cannot start: {exc}.\n"
            "Install the desktop dependencies (pip install PySide6-Essentials pyqtgraph), or train from the "
            "command line: ftgui-train DATA_DIR --out OUT_DIR.\n"
        )
        return 1
    return run_app(args)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
