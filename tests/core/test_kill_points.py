"""A kill -9 at every file-system call of each writer leaves the previous state or the new one,
and the next run settles it: nothing of the user's is lost, no temporary file is left.

The harness (``killpoints.py``) runs in its own process and forks one child per kill point."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from killpoints import SCENARIOS

HARNESS = Path(__file__).with_name("killpoints.py")


@pytest.mark.slow
@pytest.mark.skipif(not hasattr(__import__("os"), "fork"), reason="the harness forks a child per kill point")
@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_a_kill_at_every_file_system_call_loses_nothing(scenario, tmp_path):
    proc = subprocess.run(
        [sys.executable, str(HARNESS), scenario, str(tmp_path)], capture_output=True, text=True, timeout=600
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    assert summary["failures"] == []
    assert summary["kill_points"] >= 4  # the writer was really interrupted, at each of its steps
