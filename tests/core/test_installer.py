"""The installed bundle (installer/): its spec names every program, data file and worker module
the app needs at run time, and the one-executable dispatch runs each of them (no PyInstaller
build here: make bundle-check does that)."""

from __future__ import annotations

import importlib
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from ftgui import frozen

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "installer"))
import plan  # noqa: E402


def _scripts() -> dict[str, str]:
    """pyproject.toml's [project.scripts] and [project.gui-scripts], as installed."""
    from importlib.metadata import distribution

    points = distribution("ftgui").entry_points
    return {e.name: e.value for e in points if e.group in ("console_scripts", "gui_scripts")}


def test_every_entry_point_is_a_program_of_the_bundle():
    programs = {name: target for name, target in frozen.PROGRAMS.items() if name != "ftgui-torchrun"}
    assert programs == _scripts()
    for target in frozen.PROGRAMS.values():  # each one resolves to a callable
        module, _, attr = target.partition(":")
        assert callable(getattr(importlib.import_module(module), attr))


def test_the_spec_takes_its_lists_from_the_plan():
    spec = (ROOT / "installer" / "ftgui.spec").read_text()
    for name in ("HIDDEN_IMPORTS", "data_files()", "EXCLUDES", "QT_EXCLUDES", "QT_MODULES", "DYNAMIC_LIBS",
                 "MODULE_COLLECTION", "link_programs("):  # fmt: skip
        assert f"plan.{name}" in spec, name
    assert "launcher.py" in spec and (ROOT / "installer" / "launcher.py").is_file()
    assert "onefile" not in spec and "exclude_binaries=True" in spec  # one folder, never one file


def test_every_file_the_app_loads_is_in_the_bundle():
    bundled = {Path(src).name for src, dest in plan.DATA_FILES if dest == "resources"}
    assert bundled == {p.name for p in (ROOT / "resources").iterdir()}
    for src, _ in plan.data_files():
        assert Path(src).is_file(), src
    # The names the code opens under RESOURCES are among them.
    code = "\n".join(p.read_text() for p in (ROOT / "ftgui").rglob("*.py"))
    named = set(re.findall(r"RESOURCES / \"([^\"]+)\"", code)) | set(
        re.findall(r"\"(ftgui\.(?:svg|png|desktop))\"", code)
    )
    assert named and named <= bundled


def test_worker_processes_start_through_the_bundle_and_are_hidden_imports():
    for module in {t.split(":")[0] for t in (*frozen.PROGRAMS.values(), *frozen.WORKERS.values())}:
        assert module in plan.HIDDEN_IMPORTS, module
    # No process is started as "python -m ..." except through worker_command.
    for path in (ROOT / "ftgui").rglob("*.py"):
        if path.name != "frozen.py":
            assert 'sys.executable, "-m"' not in path.read_text(), path
    used = set(
        re.findall(
            r"worker_command\(\"(\w+)\"\)", "\n".join(p.read_text() for p in (ROOT / "ftgui").rglob("*.py"))
        )
    )
    assert used and used <= set(frozen.WORKERS)


def test_left_out_packages_are_only_formats_the_dialog_greys():
    from ftgui.core.deploy.registry import FORMAT_PACKAGES

    bundled = {
        "onnx",
        "onnxscript",
        "onnxruntime",
        "tensorboard",
        "captum",
        "cleanlab",
        "timm",
        "torch",
        "torchvision",
    }
    assert not bundled & set(plan.EXCLUDES)
    for fmt in ("openvino", "tflite", "coreml"):
        assert set(FORMAT_PACKAGES[fmt]) <= set(plan.EXCLUDES), fmt


def test_worker_command_is_the_bundle_itself_when_frozen(monkeypatch):
    assert frozen.worker_command("headers") == [sys.executable, "-m", "ftgui.core.data.headers", "--worker"]
    monkeypatch.setattr(sys, "frozen", True, raising=False)
    assert frozen.worker_command("headers") == [sys.executable, "--ftgui-worker", "headers"]
    with pytest.raises(KeyError):
        frozen.worker_command("nothing")


def test_the_program_is_chosen_by_the_name_it_was_started_by(capsys, monkeypatch):
    monkeypatch.setattr(sys, "argv", list(sys.argv))  # main() sets the program's own
    assert frozen.program_name("/usr/bin/ftgui-train") == "ftgui-train"
    assert frozen.program_name(r"ftgui-predict.EXE") == "ftgui-predict"
    with pytest.raises(SystemExit) as ended:
        frozen.main(["/opt/ftgui/ftgui-predict", "--version"])
    assert ended.value.code == 0 and capsys.readouterr().out.startswith("ftgui ")
    # torchrun without --no-python starts "EXECUTABLE -u PROGRAM ARGS": the program runs.
    assert frozen._python_style(["/opt/ftgui/ftgui", "-u", "/usr/bin/ftgui-train", "--x"]) == [
        "/usr/bin/ftgui-train",
        "--x",
    ]
    assert frozen._python_style(["/opt/ftgui/ftgui", "/data/photos"]) is None
    assert frozen.main(["ftgui", "--ftgui-worker", "nothing"]) == 2
    assert "no worker named 'nothing'" in capsys.readouterr().err


def test_a_header_worker_started_as_the_bundle_starts_it_answers(tmp_path):
    """The launcher's worker path in a real process: one JSON line in, the reasons out."""
    from PIL import Image

    Image.new("RGB", (8, 8)).save(tmp_path / "fine.png")
    (tmp_path / "broken.jpg").write_bytes(b"not an image")
    code = "import sys; from ftgui.frozen import main; sys.exit(main())"
    run = subprocess.run(
        [sys.executable, "-c", code, "--ftgui-worker", "headers"],
        input=json.dumps([str(tmp_path), ["fine.png", "broken.jpg"]]) + "\n",
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    fine, broken = json.loads(run.stdout)
    assert fine is None and "not an image" in broken


def test_the_deb_desktop_entry_opens_folders_with_the_installed_program():
    from build_deb import DEPENDS, desktop_entry

    entry = desktop_entry()
    assert "Exec=/opt/ftgui/ftgui %f" in entry and "TryExec=/opt/ftgui/ftgui" in entry
    assert "MimeType=inode/directory;" in entry and "Icon=ftgui" in entry
    assert "libxcb-cursor0" in DEPENDS  # Qt 6.5+'s X11 plugin will not start without it


def test_job_scripts_start_ftgui_train_as_a_program():
    """torchrun --no-python runs ftgui-train whether it is a Python script or the bundle's
    executable; the bundle's own torchrun is preferred when it is beside ftgui-train."""
    from ftgui.core.workflows.job import run_script

    script = run_script("test", "/data")
    assert '--no-python "$train"' in script and "ftgui-torchrun" in script


def test_a_format_left_out_of_the_bundle_says_where_to_get_it(monkeypatch):
    from ftgui.core.deploy.registry import install_hint

    assert install_hint("openvino") == "pip install 'ftgui[openvino]'  (openvino and nncf)"
    monkeypatch.setattr(sys, "frozen", True, raising=False)
    hint = install_hint("openvino")
    assert "in a Python environment" in hint and "this installed ftgui leaves openvino and nncf out" in hint
