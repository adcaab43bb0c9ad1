"""``make bundle-deb``: wraps dist/ftgui (``make bundle``) in a Debian package.

It installs the bundle under /opt/ftgui, every program on PATH (/usr/bin links), a desktop entry
that opens a dropped or chosen folder (MIME type inode/directory) and the icons. dpkg's own
triggers (desktop-file-utils, the icon cache) update the menus, so there are no maintainer
scripts, and removing the package removes every file it brought.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from pathlib import Path

from plan import NAME, ROOT

from ftgui import __version__
from ftgui.frozen import PROGRAMS

PREFIX = Path("/opt") / NAME
DESKTOP = Path("usr/share/applications") / f"{NAME}.desktop"
ICONS = {"scalable/apps/ftgui.svg": "resources/ftgui.svg", "256x256/apps/ftgui.png": "resources/ftgui.png"}
# Libraries of the system that the bundled Qt's X11 platform plugin loads and that a minimal
# Debian or Ubuntu desktop might lack (everything else the bundle brings itself).
DEPENDS = [
    "libc6",
    "libgl1",
    "libegl1",
    "libfontconfig1",
    "libfreetype6",
    "libglib2.0-0 | libglib2.0-0t64",
    "libdbus-1-3",
    "libx11-xcb1",
    "libxkbcommon0",
    "libxkbcommon-x11-0",
    "libxcb-cursor0",
    "libxcb-icccm4",
    "libxcb-image0",
    "libxcb-keysyms1",
    "libxcb-randr0",
    "libxcb-render-util0",
    "libxcb-shape0",
    "libxcb-xinerama0",
    "libxcb-xkb1",
]


def desktop_entry() -> str:
    """resources/ftgui.desktop for the installed bundle: its absolute Exec, and folders."""
    text = (ROOT / "resources" / "ftgui.desktop").read_text(encoding="utf-8")
    text = text.replace("Exec=ftgui %f", f"Exec={PREFIX / NAME} %f")
    text = text.replace("StartupWMClass=ftgui", f"StartupWMClass=ftgui\nTryExec={PREFIX / NAME}")
    if "MimeType=" not in text:
        text = text.rstrip("\n") + "\nMimeType=inode/directory;\n"
    return text


def control(installed_kib: int, arch: str) -> str:
    return (
        f"Package: {NAME}\n"
        f"Version: {__version__}\n"
        f"Architecture: {arch}\n"
        "Maintainer: ftgui <ftgui@localhost>\n"
        f"Installed-Size: {installed_kib}\n"
        f"Depends: {', '.join(DEPENDS)}\n"
        "Section: science\n"
        "Priority: optional\n"
        "Description: fine-tune pretrained PyTorch image classifiers on your own pictures\n"
        " ftgui trains torchvision and timm image classifiers on a folder of images (one\n"
        " subfolder per class), with a window and command-line tools, and exports the\n"
        " result with its class names and preprocessing. This package brings its own\n"
        " Python, PyTorch and Qt under /opt/ftgui.\n"
    )


def _size_kib(folder: Path) -> int:
    return sum(p.lstat().st_size for p in folder.rglob("*")) // 1024 + 1


def build(bundle: Path, out_dir: Path) -> Path:
    if not (bundle / NAME).is_file():
        raise SystemExit(f"build_deb: no bundle at {bundle}; run make bundle first")
    arch = subprocess.run(
        ["dpkg", "--print-architecture"], check=True, capture_output=True, text=True
    ).stdout.strip()
    stage = out_dir / f"{NAME}-deb"
    if stage.exists():
        shutil.rmtree(stage)
    opt = stage / PREFIX.relative_to("/")
    opt.parent.mkdir(parents=True)
    shutil.copytree(bundle, opt, symlinks=True)
    usr_bin = stage / "usr" / "bin"
    usr_bin.mkdir(parents=True)
    for name in PROGRAMS:
        (usr_bin / name).symlink_to(PREFIX / name)
    (stage / DESKTOP).parent.mkdir(parents=True)
    (stage / DESKTOP).write_text(desktop_entry(), encoding="utf-8")
    for dest, src in ICONS.items():
        target = stage / "usr/share/icons/hicolor" / dest
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(ROOT / src, target)
    (stage / "DEBIAN").mkdir()
    (stage / "DEBIAN" / "control").write_text(control(_size_kib(stage), arch), encoding="utf-8")
    deb = out_dir / f"{NAME}_{__version__}_{arch}.deb"
    # zstd at a low level: several GB of libraries pack in a minute or two, not a quarter hour.
    subprocess.run(
        ["dpkg-deb", "--root-owner-group", "-Zzstd", "-z3", "--build", str(stage), str(deb)], check=True
    )
    shutil.rmtree(stage)
    return deb


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--bundle", default=str(ROOT / "dist" / NAME), help="the bundle folder (make bundle)")
    p.add_argument("--out", default=str(ROOT / "dist"), help="where the .deb goes")
    args = p.parse_args(argv)
    deb = build(Path(args.bundle), Path(args.out))
    print(f"built {deb} ({deb.stat().st_size / 2**20:.0f} MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
