"""What goes into the installed bundle: read by ftgui.spec (PyInstaller), by build_deb.py and by
the tests, so the three cannot disagree. Plain Python: nothing here needs PyInstaller."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ftgui.frozen import PROGRAMS, WORKERS  # noqa: E402

NAME = "ftgui"  # the folder under dist/ and under /opt, and the one real executable in it

# The files the app reads at run time, as (source, folder in the bundle). ftgui.gui.resources
# finds resources/ beside the ftgui package, which is the bundle's own folder once frozen.
DATA_FILES: list[tuple[str, str]] = [
    ("resources/ftgui.svg", "resources"),
    ("resources/ftgui.png", "resources"),
    ("resources/ftgui.desktop", "resources"),
]

# Modules that are imported by name (ftgui.frozen's tables) and that an import scan cannot see.
HIDDEN_IMPORTS: list[str] = sorted(
    {target.split(":")[0] for target in (*PROGRAMS.values(), *WORKERS.values())}
    | {"ftgui.gui.launch", "torch.distributed.elastic.multiprocessing"}
)

# Packages whose shared libraries are loaded by path (torch.ops.load_library), which an import
# scan does not see: torchvision's operators (nms, roi_align) and its image decoders.
DYNAMIC_LIBS: list[str] = ["torchvision"]

# Packages that read their own source at run time (inspect.getsource): onnxscript compiles the
# functions of torch's ONNX exporter from their source, so its .py files go in beside the archive.
MODULE_COLLECTION: dict[str, str] = {"onnxscript": "pyz+py"}

# The export formats whose converters are left out (a few hundred MB each, and LiteRT and Core ML
# converters bring their own copies of large runtimes); the Export dialog greys them with the
# reason. The bundled extras: ONNX (onnx, onnxscript, onnxruntime), TensorBoard, Captum, cleanlab
# and timm. Test and development tools, and libraries nothing in ftgui imports, stay out too.
EXCLUDES: list[str] = [
    "openvino",
    "nncf",
    "coremltools",
    "litert_torch",
    "ai_edge_litert",
    "ai_edge_torch",
    "tensorflow",
    "jax",
    "jaxlib",
    "transformers",  # optional in timm and the converters; ftgui never needs it
    "torchao",  # the LiteRT INT8 quantizer (LiteRT is left out)
    "triton",  # torch.compile's GPU kernels; ftgui does not compile
    "fastai",
    "lightning",
    "pytorch_lightning",
    "tkinter",
    "IPython",
    "jupyter_client",
    "notebook",
    "pytest",
    "_pytest",
    "pytestqt",
    "mypy",
    "ruff",
    "sphinx",
    "pyqtgraph.examples",
    "pyqtgraph.opengl",
    "pyqtgraph.jupyter",
]

# Qt modules the window uses (PyInstaller's PySide6 hooks add what each needs); any other Qt
# module an import scan finds (pyqtgraph's optional ones) is left out.
# QtSvg: the SVG icon's image plugin; QtOpenGL and QtOpenGLWidgets: pyqtgraph imports them when
# it loads (its RawImageWidget), though the window draws without OpenGL.
QT_MODULES = ["QtCore", "QtGui", "QtWidgets", "QtSvg", "QtOpenGL", "QtOpenGLWidgets"]
QT_EXCLUDES = [
    f"PySide6.{m}"
    for m in (
        "QtNetwork",
        "QtQml",
        "QtQuick",
        "QtQuickWidgets",
        "QtWebEngineCore",
        "QtWebEngineWidgets",
        "QtMultimedia",
        "Qt3DCore",
        "QtCharts",
        "QtDataVisualization",
        "QtPdf",
        "QtDesigner",
        "QtSql",
        "QtBluetooth",
        "QtPositioning",
        "QtSerialPort",
        "QtRemoteObjects",
        "QtSensors",
        "QtWebSockets",
        "QtHelp",
        "QtUiTools",
        "QtTest",
    )
]


def data_files(root: Path = ROOT) -> list[tuple[str, str]]:
    """DATA_FILES with absolute sources, as PyInstaller's Analysis takes them."""
    return [(str(root / src), dest) for src, dest in DATA_FILES]


def link_programs(folder: Path) -> list[Path]:
    """Every program of PROGRAMS beside the real executable: a symbolic link on Linux and macOS,
    a copy on Windows (where the executable has an .exe suffix)."""
    exe_suffix = ".exe" if os.name == "nt" else ""
    real = folder / f"{NAME}{exe_suffix}"
    made = []
    for name in PROGRAMS:
        if name == NAME:
            continue
        target = folder / f"{name}{exe_suffix}"
        if target.exists() or target.is_symlink():
            target.unlink()
        if os.name == "nt":
            shutil.copy2(real, target)
        else:
            target.symlink_to(real.name)
        made.append(target)
    return made
