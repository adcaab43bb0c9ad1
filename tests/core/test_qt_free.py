import subprocess
import sys

import pytest


@pytest.mark.slow
def test_core_never_imports_qt():
    code = (
        "import sys, ftgui.cli, ftgui.core.training.engine, ftgui.core.bundle.export, ftgui.core.bundle.predict, ftgui.core.data.example;"
        "bad = [m for m in sys.modules if m.startswith(('PySide6', 'PyQt', 'pyqtgraph'))];"
        "print(bad); sys.exit(1 if bad else 0)"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stdout + run.stderr
