"""``ftgui``: the command line of the window (a folder to open, --install-desktop, --version),
then the application and its main window."""

from __future__ import annotations

import sys

from PySide6.QtWidgets import QApplication

from ftgui import __version__
from ftgui.gui.main_window import MainWindow
from ftgui.gui.resources import app_icon
from ftgui.gui.startup import show_then_start


def run_app(argv: list[str]) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="ftgui", description="Fine-tune pretrained image classifiers.")
    parser.add_argument("folder", nargs="?", help="image folder to open (one subfolder per class)")
    parser.add_argument(
        "--install-desktop",
        action="store_true",
        help="add ftgui to this user's application launcher and desktop, then exit",
    )
    parser.add_argument(
        "--self-check",
        nargs="?",
        const="",
        metavar="OUT",
        help="check this installation: open the example dataset, train a head for one epoch and "
        "export to the folder OUT, printing each step; without OUT, only say how long the window "
        "took to appear. Exits 0 when everything worked",
    )
    parser.add_argument("--version", action="version", version=f"ftgui {__version__}")
    args = parser.parse_args(argv)
    if args.install_desktop:
        from ftgui.gui.desktop import install_desktop_entry

        for path in install_desktop_entry():
            print(f"installed {path}")
        return 0
    existing = QApplication.instance()
    app = existing if isinstance(existing, QApplication) else QApplication([sys.argv[0]])
    app.setApplicationName("ftgui")
    app.setOrganizationName("ftgui")
    app.setApplicationVersion(__version__)
    app.setWindowIcon(app_icon())
    if hasattr(app, "setDesktopFileName"):
        app.setDesktopFileName("ftgui")
    window = MainWindow(initial_folder=args.folder)
    if args.self_check is not None:
        from ftgui.gui.self_check import SelfCheck

        check = SelfCheck(window, args.self_check or None)  # noqa: F841 (kept alive)
    starter = show_then_start(window, window.start_background_init)  # noqa: F841 (kept alive)
    return int(app.exec())
