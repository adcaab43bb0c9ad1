"""One program under several names: the installed bundle (``make bundle``) holds a single
executable, ``ftgui``, and links to it named after every entry point (``ftgui-train``,
``ftgui-predict``, ...), as busybox does. The name it was started by picks the entry point.

The same program also serves the processes ftgui starts itself, which a frozen application
cannot start as ``python -m ...``: multiprocessing's spawned workers (DataLoader decoding),
the header-check workers (``--ftgui-worker headers``) and torchrun's training processes (the
bundle's ``ftgui-torchrun``). Imports stay light here: a worker must not load torch or Qt.
"""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Callable, Sequence

# Every program of the bundle: the names of pyproject.toml's [project.scripts] and
# [project.gui-scripts] (a test keeps them equal), and torchrun for jobs on the bundled torch.
PROGRAMS: dict[str, str] = {
    "ftgui": "ftgui.app:main",
    "ftgui-train": "ftgui.cli.train:train_main",
    "ftgui-predict": "ftgui.cli.predict:predict_main",
    "ftgui-compare": "ftgui.cli.compare:compare_main",
    "ftgui-check": "ftgui.cli.check:check_main",
    "ftgui-export": "ftgui.cli.export:export_main",
    "ftgui-torchrun": "torch.distributed.run:main",
}

WORKER_FLAG = "--ftgui-worker"
# Worker processes ftgui starts with its own executable: name -> entry point.
WORKERS: dict[str, str] = {"headers": "ftgui.core.data.headers:serve_worker"}


def is_frozen() -> bool:
    """Whether this is the installed bundle (PyInstaller) rather than Python with ftgui installed."""
    return bool(getattr(sys, "frozen", False))


def worker_command(name: str) -> list[str]:
    """The command that starts the worker ``name``: the bundle's own executable when frozen,
    ``python -m MODULE --worker`` otherwise."""
    if name not in WORKERS:
        raise KeyError(f"no worker named {name!r}")
    if is_frozen():
        return [sys.executable, WORKER_FLAG, name]
    module = WORKERS[name].split(":")[0]
    return [sys.executable, "-m", module, "--worker"]


def _load(target: str) -> Callable[..., object]:
    module, _, attr = target.partition(":")
    return getattr(importlib.import_module(module), attr)


def program_name(argv0: str) -> str:
    """``/usr/bin/ftgui-train`` -> ``ftgui-train`` (``.exe`` dropped on Windows)."""
    name = os.path.basename(argv0)
    return name[:-4] if name.lower().endswith(".exe") else name


def _python_style(argv: list[str]) -> list[str] | None:
    """torchrun without ``--no-python`` starts ``sys.executable -u SCRIPT ARGS``: with the
    bundle, SCRIPT is one of its programs. Returns the program's own argv, or None."""
    args = argv[1:]
    while args and args[0] in ("-u", "-B", "-E", "-s"):
        args = args[1:]
    if args and program_name(args[0]) in PROGRAMS and args != argv[1:]:
        return args
    return None


def main(argv: Sequence[str] | None = None) -> int:
    import multiprocessing

    multiprocessing.freeze_support()  # a spawned worker runs its task here and exits
    args = list(sys.argv if argv is None else argv)
    if args[1:2] == [WORKER_FLAG]:
        name = args[2] if len(args) > 2 else ""
        if name not in WORKERS:
            sys.stderr.write(f"ftgui: no worker named {name!r} (known: {', '.join(WORKERS)})\n")
            return 2
        _load(WORKERS[name])()
        return 0
    args = _python_style(args) or args
    name = program_name(args[0]) if args else "ftgui"
    if name not in PROGRAMS:
        name = "ftgui"  # a renamed copy of the window's executable opens the window
    sys.argv = [args[0] if args else name, *args[1:]]
    result = _load(PROGRAMS[name])(*(() if name == "ftgui-torchrun" else (args[1:],)))
    return int(result) if isinstance(result, int) else 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
