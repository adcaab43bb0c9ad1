"""The ``ftgui`` entry point: opens the window (torch is imported after it is shown)."""

from __future__ import annotations

import sys
from collections.abc import Sequence


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        from ftgui.gui.qt_check import broken_binding_message

        problem = broken_binding_message()
    except ImportError as exc:
        return _missing_dependencies(exc)
    if problem is not None and not {"-h", "--help", "--version", "--install-desktop"} & set(args):
        sys.stderr.write(f"ftgui: {problem}\n")
        _show_refusal(problem)
        return 1
    try:
        from ftgui.gui.launch import run_app
    except ImportError as exc:
        return _missing_dependencies(exc)
    return run_app(args)


def _missing_dependencies(exc: ImportError) -> int:
    sys.stderr.write(
        f"ftgui: the window cannot start: {exc}.\n"
        "Install the desktop dependencies (pip install PySide6-Essentials pyqtgraph), or train from the "
        "command line: ftgui-train DATA_DIR --out OUT_DIR.\n"
    )
    return 1


def _show_refusal(text: str) -> None:
    """The same message in a dialog, for people who started ftgui from a desktop launcher."""
    import os

    if sys.platform.startswith("linux") and not (
        os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY") or os.environ.get("QT_QPA_PLATFORM")
    ):
        return
    from PySide6.QtWidgets import QApplication, QMessageBox

    from ftgui.gui.qt_check import repair_none_references

    before = sys.getrefcount(None)
    app = QApplication.instance() or QApplication([sys.argv[0]])
    box = QMessageBox(QMessageBox.Icon.Critical, "ftgui cannot start", text)
    if os.environ.get("QT_QPA_PLATFORM") != "offscreen":
        box.exec()
    # The faulty binding took references during the dialog too; give them back before exiting.
    repair_none_references(before - sys.getrefcount(None))
    del box, app


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
