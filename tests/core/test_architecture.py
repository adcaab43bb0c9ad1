"""The shape of the code: no import cycle anywhere in ftgui (type-hint imports and imports inside
functions included), no module over 400 lines, every core module inside a capability package."""

from pathlib import Path

import pytest

import ftgui

grimp = pytest.importorskip("grimp")  # comes with import-linter (the dev extra)

PACKAGE = Path(ftgui.__file__).parent
MAX_LINES = 400


def _cycles(graph, package: str = "ftgui") -> list[list[str]]:
    """Strongly connected groups of more than one module (Tarjan, iteratively)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    groups: list[list[str]] = []
    for root in sorted(graph.modules):
        if root in index:
            continue
        work = [(root, iter(sorted(graph.find_modules_directly_imported_by(root))))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next((c for c in children if c.startswith(package)), None)
            if child is None:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    group = []
                    while True:
                        top = stack.pop()
                        on_stack.discard(top)
                        group.append(top)
                        if top == node:
                            break
                    if len(group) > 1:
                        groups.append(sorted(group))
            elif child not in index:
                index[child] = low[child] = len(index)
                stack.append(child)
                on_stack.add(child)
                work.append((child, iter(sorted(graph.find_modules_directly_imported_by(child)))))
            elif child in on_stack:
                low[node] = min(low[node], index[child])
    return groups


def test_no_import_cycle_anywhere_not_even_through_type_hints():
    graph = grimp.build_graph("ftgui", exclude_type_checking_imports=False)
    assert len(graph.modules) > 50
    assert _cycles(graph) == []


def test_the_cycle_finder_finds_a_cycle(tmp_path, monkeypatch):
    """The check above can fail: two modules that import each other (in a type hint) are found."""
    pkg = tmp_path / "ringpkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from ringpkg import b\n")
    (pkg / "b.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from ringpkg import a\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    graph = grimp.build_graph("ringpkg", exclude_type_checking_imports=False, cache_dir=None)
    assert _cycles(graph, "ringpkg") == [["ringpkg.a", "ringpkg.b"]]


def test_no_module_over_400_lines():
    long = {
        str(p.relative_to(PACKAGE.parent)): n
        for p in PACKAGE.rglob("*.py")
        if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_LINES
    }
    assert long == {}


def test_every_core_module_lives_in_a_capability_package():
    core = PACKAGE / "core"
    loose = sorted(p.name for p in core.glob("*.py") if p.name != "__init__.py")
    assert loose == []
    packages = sorted(p.name for p in core.iterdir() if (p / "__init__.py").is_file())
    assert packages == [
        "base", "bundle", "compute", "data", "deploy", "evaluation", "insight", "models", "training",
        "workflows",
    ]  # fmt: skip


def test_the_window_and_the_freeze_plan_import_without_torch():
    """The window shows before torch is loaded (in the background): importing the window, or the
    plain-data freeze plan it renders, must not import torch (it did once through a package's
    eager re-exports, and the window took 5 s to appear)."""
    import os
    import subprocess
    import sys

    code = (
        "import sys, ftgui.app, ftgui.gui.launch, ftgui.core.models.freeze, ftgui.core.base.options; "
        "print(sorted(m for m in ('torch', 'torchvision', 'timm') if m in sys.modules))"
    )
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
