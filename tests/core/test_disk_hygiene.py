"""The test suite leaves the disk as it found it: pytest keeps the folders of failed tests only,
of the last run only (the project's own settings, tried on a small suite in a child pytest)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

SUITE = """
import pytest

def test_passes(tmp_path):
    (tmp_path / "big.bin").write_bytes(bytes(1 << 20))

def test_fails(tmp_path):
    (tmp_path / "kept.bin").write_bytes(bytes(1 << 20))
    assert {fail}
"""


def _run_suite(project: Path, temp: Path, fail: bool) -> None:
    (project / "test_suite.py").write_text(SUITE.format(fail="False" if fail else "True"))
    env = {**os.environ, "TMPDIR": str(temp), "PYTEST_ADDOPTS": "", "PYTEST_XDIST_WORKER": ""}
    env.pop("PYTEST_XDIST_WORKER")
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:xdist", str(project)],
        cwd=project, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == (1 if fail else 0), done.stdout + done.stderr


def _kept(temp: Path) -> list[str]:
    return sorted(str(p.relative_to(temp)) for p in temp.rglob("*") if p.is_file())


def test_a_passing_run_leaves_nothing_and_a_failed_test_keeps_its_folder_once(pytestconfig, tmp_path):
    policy = pytestconfig.getini("tmp_path_retention_policy")
    count = pytestconfig.getini("tmp_path_retention_count")
    assert policy == "failed" and int(count) == 1  # the settings this test tries
    project, temp = tmp_path / "project", tmp_path / "temp"
    project.mkdir()
    temp.mkdir()
    (project / "pyproject.toml").write_text(
        f'[tool.pytest.ini_options]\ntmp_path_retention_policy = "{policy}"\n'
        f'tmp_path_retention_count = "{count}"\n'
    )
    _run_suite(project, temp, fail=False)
    assert _kept(temp) == []  # 2 MB written, nothing left

    _run_suite(project, temp, fail=True)
    assert [Path(p).name for p in _kept(temp)] == ["kept.bin"]  # the failed test's file only
    _run_suite(project, temp, fail=True)
    kept = _kept(temp)
    assert [Path(p).name for p in kept] == ["kept.bin"]  # of the last run only

    _run_suite(project, temp, fail=False)
    assert _kept(temp) == kept  # a passing run adds nothing (the last failure stays to be read)
