"""``make bundle-check``: the .deb of ``make bundle-deb``, installed and used as a user would.

As root on a Debian or Ubuntu machine: installs the package (apt resolves its Depends), checks
its desktop entry with desktop-file-validate, then, with no environment but a fresh HOME, PATH
and a virtual screen (Xvfb), starts the window by its desktop entry's Exec line (start-up time,
twice: right after installing and warm) and runs ``--self-check`` through it (open the example
dataset, train a head for one epoch, export). Then the bundled command-line programs: predict
on the export (PyTorch, ONNX Runtime, a Grad-CAM heat map), a training on a folder big enough for
the header-check worker processes with DataLoader worker processes and TensorBoard logging, a
training job's run.sh (torchrun, two processes), and Check data (cleanlab). Last, it removes the
package and checks that nothing of it is left. Exits 1 when anything failed.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from plan import NAME, ROOT

DESKTOP = Path("/usr/share/applications") / f"{NAME}.desktop"
PROGRAMS = ("ftgui", "ftgui-train", "ftgui-predict", "ftgui-compare", "ftgui-check", "ftgui-export")
STARTUP_GOAL_S = 3.0


class Checks:
    def __init__(self) -> None:
        self.failed: list[str] = []

    def run(self, name: str, cmd: list[str], env: dict[str, str], ok: tuple[int, ...] = (0,), **kw) -> str:
        started = time.monotonic()
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, **kw)
        took = time.monotonic() - started
        passed = proc.returncode in ok
        print(f"[{'PASS' if passed else 'FAIL'}] {name} ({took:.1f} s)  $ {shlex.join(cmd)}", flush=True)
        if not passed:
            print(f"       exit status {proc.returncode}\n{_indent(proc.stdout + proc.stderr)}", flush=True)
            self.failed.append(name)
        return proc.stdout + proc.stderr

    def expect(self, name: str, passed: bool, detail: str = "") -> None:
        print(f"[{'PASS' if passed else 'FAIL'}] {name}{'  ' + detail if detail else ''}", flush=True)
        if not passed:
            self.failed.append(name)


def _indent(text: str, lines: int = 40) -> str:
    return "\n".join("       " + line for line in text.strip().splitlines()[-lines:])


def _apt(*args: str) -> None:
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "-q", "-y", *args], check=True, env=env, stdout=subprocess.DEVNULL)


def _tools() -> None:
    missing = [
        pkg
        for tool, pkg in (("Xvfb", "xvfb"), ("desktop-file-validate", "desktop-file-utils"))
        if not shutil.which(tool)
    ]
    if missing:
        print(f"installing {', '.join(missing)} (apt-get)", flush=True)
        _apt("install", "--no-install-recommends", *missing)


def _xvfb() -> tuple[subprocess.Popen[bytes], str]:
    read, write = os.pipe()
    proc = subprocess.Popen(
        ["Xvfb", "-displayfd", str(write), "-screen", "0", "1280x800x24", "-nolisten", "tcp"],
        pass_fds=(write,),
        stderr=subprocess.DEVNULL,
    )
    os.close(write)
    with os.fdopen(read) as f:
        number = f.readline().strip()
    return proc, f":{number}"


def exec_line(desktop: Path) -> list[str]:
    """The desktop entry's Exec command, without its field codes (%f and the like)."""
    for line in desktop.read_text(encoding="utf-8").splitlines():
        if line.startswith("Exec="):
            return [w for w in shlex.split(line[5:]) if not re.fullmatch(r"%[a-zA-Z]", w)]
    raise SystemExit(f"no Exec line in {desktop}")


def _startup(out: str) -> float | None:
    m = re.search(r"window visible ([0-9.]+) s after start", out)
    return float(m.group(1)) if m else None


def _installed_files() -> list[str]:
    found = [str(p) for p in (Path("/opt") / NAME, DESKTOP) if p.exists()]
    found += [str(Path("/usr/bin") / p) for p in PROGRAMS if (Path("/usr/bin") / p).is_symlink()]
    found += [str(p) for p in Path("/usr/share/icons/hicolor").glob(f"*/apps/{NAME}.*")]
    return found


def _big_folder(root: Path, per_class: int) -> Path:
    """Two classes of small real pictures, enough files for the header-check processes."""
    from PIL import Image, ImageDraw

    for c, name in enumerate(("bars", "rings")):
        folder = root / name
        folder.mkdir(parents=True)
        for i in range(per_class):
            img = Image.new("RGB", (24, 24), (i % 200, 40 + c * 120, 90))
            draw = ImageDraw.Draw(img)
            if c == 0:
                draw.rectangle((4 + i % 8, 2, 10 + i % 8, 21), fill=(250, 250, 250))
            else:
                draw.ellipse((3, 3 + i % 5, 19, 19), outline=(250, 250, 250), width=3)
            img.save(folder / f"{i:05d}.png")
    return root


def _write_job(data: Path, folder: Path) -> None:
    from ftgui.core.data.samples import split_samples
    from ftgui.core.data.scan import scan_folder
    from ftgui.core.models.freeze import FreezePlan
    from ftgui.core.training.config import TrainConfig
    from ftgui.core.workflows.job import write_job

    config = TrainConfig(
        data_dir=str(data), weights="none", freeze=FreezePlan.parse("head"), epochs=1, image_size=32
    )
    scan = scan_folder(data)
    write_job(folder, config, scan.classes, split_samples(scan, config.val_fraction, 0))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--deb", help="the package (default: the newest dist/ftgui_*.deb)")
    p.add_argument("--keep", action="store_true", help="leave the package installed afterwards")
    args = p.parse_args(argv)
    if os.geteuid() != 0:
        print("bundle-check installs a package: run it as root", file=sys.stderr)
        return 2
    debs = sorted((ROOT / "dist").glob(f"{NAME}_*.deb"), key=lambda d: d.stat().st_mtime)
    deb = Path(args.deb) if args.deb else (debs[-1] if debs else None)
    if deb is None or not deb.is_file():
        print("bundle-check: no .deb; run make bundle-deb first", file=sys.stderr)
        return 2
    _tools()
    checks = Checks()
    bundle = ROOT / "dist" / NAME
    if bundle.is_dir():
        size = sum(p.lstat().st_size for p in bundle.rglob("*"))
        print(
            f"bundle: {bundle} {size / 2**30:.2f} GB; package: {deb.name} {deb.stat().st_size / 2**30:.2f} GB"
        )
    if Path("/opt", NAME).exists() or DESKTOP.exists():
        _apt("purge", NAME)
    started = time.monotonic()
    _apt("install", "--no-install-recommends", str(deb.resolve()))
    checks.expect(
        "install the .deb (apt-get install)",
        Path("/opt", NAME, NAME).is_file(),
        f"{time.monotonic() - started:.0f} s",
    )
    checks.run(
        "desktop-file-validate accepts the desktop entry",
        ["desktop-file-validate", str(DESKTOP)],
        dict(os.environ),
    )
    screen, display = _xvfb()
    work = Path(tempfile.mkdtemp(prefix="ftgui-bundle-check-"))
    home = work / "home"
    home.mkdir()
    env = {"HOME": str(home), "PATH": "/usr/bin:/bin", "DISPLAY": display, "LANG": "C.UTF-8"}
    try:
        window = exec_line(DESKTOP)
        times = []
        for when in ("just installed", "warm"):
            out = checks.run(
                f"the window starts from the desktop entry ({when})", [*window, "--self-check"], env
            )
            times.append(_startup(out))
        warm = times[-1]
        print(
            f"start-up to a visible window: {times[0]} s just installed, {warm} s warm (goal <= {STARTUP_GOAL_S} s)"
        )
        checks.expect(
            "warm start-up within the goal", warm is not None and warm <= STARTUP_GOAL_S, f"{warm} s"
        )
        export = work / "export"
        out = checks.run(
            "self-check: example dataset, head for one epoch, export",
            [*window, "--self-check", str(export)],
            env,
        )
        print(_indent(out, 20))
        example = home / ".local" / "share" / NAME / "example-shapes"
        image = next(iter(sorted(example.glob("circle/*"))), None) if example.is_dir() else None
        checks.expect("the example dataset was written", image is not None, str(example))
        if image is not None:
            out = checks.run("ftgui-predict on the export", ["ftgui-predict", str(export), str(image)], env)
            print(_indent(out, 5))
            checks.run(
                "ftgui-predict --runtime onnx",
                ["ftgui-predict", str(export), str(image), "--runtime", "onnx"],
                env,
            )
            cam = work / "cam.png"
            checks.run(
                "ftgui-predict --cam (Captum)",
                ["ftgui-predict", str(export), str(image), "--cam", str(cam)],
                env,
            )
            checks.expect("the heat map was written", cam.is_file())
            checks.run(
                "ftgui-check --bundle (cleanlab)",
                ["ftgui-check", str(example), "--bundle", str(export)],
                env,
                ok=(0, 1),
            )
            job = work / "job"
            _write_job(example, job)
            run_env = {**env, "NPROC": "2"}
            checks.run(
                "a training job's run.sh (torchrun, 2 processes)",
                ["bash", str(job / "run.sh"), str(example), str(work / "job-out")],
                run_env,
            )
            meta = work / "job-out" / "model.json"
            world = json.loads(meta.read_text())["distributed"]["world_size"] if meta.is_file() else None
            checks.expect("the job trained on 2 processes", world == 2, f"world size {world}")
        worker = subprocess.run(
            ["/opt/ftgui/ftgui", "--ftgui-worker", "headers"],
            input=json.dumps([str(ROOT / "resources"), ["ftgui.png", "ftgui.desktop"]]) + "\n",
            capture_output=True, text=True, env=env,
        )  # fmt: skip
        answer = json.loads(worker.stdout or "null")
        checks.expect(
            "a header-check worker process answers",
            isinstance(answer, list) and answer[0] is None and bool(answer[1]),
        )
        big = _big_folder(work / "big", 2100)
        board = work / "board"
        checks.run(
            "ftgui-train on 4,200 images (header-check and DataLoader worker processes, TensorBoard)",
            ["ftgui-train", str(big), "--out", str(work / "big-out"), "--weights", "none", "--strategy", "head",
             "--epochs", "1", "--image-size", "32", "--num-workers", "2", "--tensorboard", str(board)],
            env,
        )  # fmt: skip
        checks.expect("TensorBoard events were written", any(board.rglob("events.out.tfevents.*")))
    finally:
        screen.terminate()
        screen.wait()
        shutil.rmtree(work, ignore_errors=True)
    if not args.keep:
        _apt("purge", NAME)
        left = _installed_files()
        checks.expect("removing the package leaves nothing behind", not left, ", ".join(left))
    print(f"bundle-check: {'FAILED: ' + '; '.join(checks.failed) if checks.failed else 'every check passed'}")
    return 1 if checks.failed else 0


if __name__ == "__main__":
    sys.exit(main())
