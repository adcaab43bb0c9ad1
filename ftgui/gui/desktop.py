"""``ftgui --install-desktop``: a freedesktop launcher entry and icon for the current user."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

from ftgui.gui.resources import RESOURCES


def _ftgui_command() -> str:
    """The absolute path of the ftgui launcher that is running now (or python -m ftgui)."""
    candidate = Path(sys.argv[0])
    if candidate.name == "ftgui" and candidate.exists():
        return str(candidate.resolve())
    found = shutil.which("ftgui") or str(Path(sys.executable).with_name("ftgui"))
    if Path(found).exists():
        return found
    return f"{sys.executable} -m ftgui"


def install_desktop_entry(home: Path | None = None) -> list[Path]:
    """Install ftgui.desktop and the icon under ~/.local/share (and on ~/Desktop if it exists)."""
    if not (RESOURCES / "ftgui.desktop").is_file():
        raise FileNotFoundError(f"ftgui's resources (icon, desktop entry) were not found in {RESOURCES}.")
    home = home or Path.home()
    data = Path(os.environ.get("XDG_DATA_HOME") or home / ".local" / "share")
    icon_dir = data / "icons" / "hicolor"
    written: list[Path] = []
    for size_dir, name in (("scalable/apps", "ftgui.svg"), ("256x256/apps", "ftgui.png")):
        target = icon_dir / size_dir / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(RESOURCES / name, target)
        written.append(target)
    entry = (RESOURCES / "ftgui.desktop").read_text(encoding="utf-8")
    command = _ftgui_command()
    quoted = f'"{command}"' if " " in command and not command.endswith("-m ftgui") else command
    entry = entry.replace("Exec=ftgui %f", f"Exec={quoted} %f")
    entry = entry.replace("Icon=ftgui", f"Icon={icon_dir / '256x256/apps/ftgui.png'}")
    targets = [data / "applications" / "ftgui.desktop"]
    desktop = home / "Desktop"
    if desktop.is_dir():
        targets.append(desktop / "ftgui.desktop")
    for target in targets:
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(entry, encoding="utf-8")
        target.chmod(target.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
        written.append(target)
    if shutil.which("update-desktop-database"):
        subprocess.run(
            ["update-desktop-database", str(data / "applications")], check=False, capture_output=True
        )
    if desktop.is_dir() and shutil.which("gio"):
        # GNOME asks before launching untrusted desktop files; mark ours as trusted.
        subprocess.run(
            ["gio", "set", str(desktop / "ftgui.desktop"), "metadata::trusted", "true"],
            check=False,
            capture_output=True,
        )
    return written


def open_file(path: str) -> bool:
    """Open with the desktop's default application (the file itself is never changed)."""
    from PySide6.QtCore import QUrl
    from PySide6.QtGui import QDesktopServices

    return QDesktopServices.openUrl(QUrl.fromLocalFile(path))
