"""Shared fixtures: tiny generated image folders and an isolated torch hub cache."""

from __future__ import annotations

import getpass
import os
import shutil
import signal
import subprocess
import tempfile

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("PYQTGRAPH_QT_LIB", "PySide6")
# auto precision means fp32 here, with no timing trial: a test's numbers must not depend on how
# fast bf16 was at that moment. The tests of the choice itself (test_precision.py) unset it.
os.environ.setdefault("FTGUI_PRECISION", "fp32")

from pathlib import Path  # noqa: E402

import pytest  # noqa: E402
import torch  # noqa: E402

from ftgui.core.data.example import make_example_dataset
from ftgui.core.models.freeze import FreezePlan
from ftgui.core.training.config import TrainConfig


@pytest.fixture(scope="session", autouse=True)
def private_temporary_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Whatever the tests and their subprocesses put in the system's temporary folder lands in
    one folder of pytest's own (removed with it), where ``nothing_left_in_temp`` sees it."""
    folder = tmp_path_factory.mktemp("temp")
    os.environ["TMPDIR"] = str(folder)
    tempfile.tempdir = str(folder)
    return folder


# Written once per process, whatever it does, and never more: onnxruntime's session id (51 bytes,
# at import) and torch's compile cache folder (empty; made when torchvision is imported).
PER_PROCESS = {".ses", f"torchinductor_{getpass.getuser()}"}
# torchrun's own log folders (one per launch, never removed by it): removed here, not ftgui's.
LAUNCHERS = ("torchelastic_",)


@pytest.fixture(autouse=True)
def nothing_left_in_temp(private_temporary_folder: Path):
    """A test that leaves files in the temporary folder (``mkdtemp`` never removed, a converter's
    scratch folder) fails: on a user's machine they would pile up until the disk is full."""
    yield
    left = sorted(e for e in private_temporary_folder.iterdir() if e.name not in PER_PROCESS)
    for entry in left:
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            entry.unlink(missing_ok=True)
    left = [e for e in left if not e.name.startswith(LAUNCHERS)]
    if left:
        pytest.fail(f"this test left {[e.name for e in left]} in the temporary folder")


@pytest.fixture(autouse=True)
def isolated_app_folders(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch):
    """Run records, window checkpoints and the example folder go to a test's own data folder, and
    header, feature and pixel caches to its own cache folder (removed after the test)."""
    home = tmp_path_factory.mktemp("xdg")
    monkeypatch.setenv("XDG_DATA_HOME", str(home / "data"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(home / "cache"))
    yield home
    shutil.rmtree(home, ignore_errors=True)


@pytest.fixture(autouse=True)
def isolated_torch_home(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch):
    """Never touch (or download into) the real hub cache."""
    home = tmp_path_factory.mktemp("torch_home")
    monkeypatch.setenv("TORCH_HOME", str(home))
    torch.hub.set_dir(str(home / "hub"))
    yield home
    shutil.rmtree(home, ignore_errors=True)


@pytest.fixture(scope="module")
def module_tmp(tmp_path_factory: pytest.TempPathFactory):
    """A folder shared by one module's tests (a bundle trained once), removed after the last."""
    folder = tmp_path_factory.mktemp("module")
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def folder_bytes(folder: Path) -> int:
    """The bytes of the files under ``folder`` (links not followed)."""
    total = 0
    for root, _dirs, files in os.walk(folder):
        for name in files:
            try:
                total += os.lstat(os.path.join(root, name)).st_size
            except OSError:
                pass
    return total


@pytest.fixture(autouse=True)
def record_written_bytes(
    request: pytest.FixtureRequest, isolated_app_folders: Path, isolated_torch_home: Path
):
    """With FTGUI_TEST_BYTES=FILE, the bytes each test left at its end in its tmp_path, data and
    cache folders and hub cache are appended to FILE (``sort -n FILE | tail`` names the largest)."""
    record = os.environ.get("FTGUI_TEST_BYTES")
    if not record:
        yield
        return
    folders = [isolated_app_folders, isolated_torch_home]
    if "tmp_path" in request.fixturenames:  # set up here, so torn down (removed) after this
        folders.append(request.getfixturevalue("tmp_path"))
    yield
    with open(record, "a", encoding="utf-8") as fh:
        fh.write(f"{sum(folder_bytes(f) for f in folders)}\t{request.node.nodeid}\n")


def fingerprint(folder: Path) -> dict[str, tuple[int, int, bytes]]:
    """Every entry under ``folder``: its size, modification time and a digest of its bytes."""
    import hashlib

    found = {}
    for path in sorted(folder.rglob("*")):
        st = path.lstat()
        digest = hashlib.sha1(path.read_bytes()).digest() if path.is_file() else b""
        found[str(path.relative_to(folder))] = (st.st_size, st.st_mtime_ns, digest)
    return found


_SHARED: dict[Path, dict[str, tuple[int, int, bytes]]] = {}


@pytest.fixture(scope="session")
def image_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """4 classes x 20 JPEGs of 32 px: shapes in distinct colours (learnable from scratch).
    Shared by every test in a worker, so no test may change it (``shared_folders_unchanged``)."""
    folder = make_example_dataset(tmp_path_factory.mktemp("data") / "shapes", per_class=20, size=32, seed=1)
    _SHARED[folder] = fingerprint(folder)
    return folder


@pytest.fixture(autouse=True)
def shared_folders_unchanged():
    """A test that adds, removes or rewrites anything in a session-wide folder fails: the tests
    after it in the same worker would otherwise read other data than they were written for."""
    yield
    for folder, before in _SHARED.items():
        after = fingerprint(folder)
        if after != before:
            changed = sorted(k for k in before.keys() | after.keys() if before.get(k) != after.get(k))
            _SHARED[folder] = after  # report it once, in the test that did it
            pytest.fail(f"this test changed the shared folder {folder}: {changed[:10]}")


@pytest.fixture
def tiny_config(image_folder: Path) -> TrainConfig:
    return TrainConfig(
        data_dir=str(image_folder),
        arch="resnet18",
        weights="none",
        freeze=FreezePlan.parse("full"),
        epochs=1,
        batch_size=16,
        lr=1e-3,
        image_size=32,
        val_fraction=0.25,
        seed=0,
        device="cpu",
    )


@pytest.fixture
def trained(tiny_config):
    """A resnet18 trained one epoch from scratch on the shared image folder (full, 32 px)."""
    from ftgui.core.training.engine import Trainer

    trainer = Trainer(tiny_config)
    for _ in trainer.run():
        pass
    return trainer


class TinyNet(torch.nn.Module):
    """Two convolutional blocks and a head (about 1,000 parameters) for the engine's mechanics."""

    def __init__(self, num_classes: int) -> None:
        super().__init__()
        nn = torch.nn
        self.features = nn.Sequential(
            nn.Conv2d(3, 8, 3, stride=2, padding=1),
            nn.BatchNorm2d(8),
            nn.ReLU(),
            nn.Conv2d(8, 8, 3, stride=2, padding=1),
            nn.BatchNorm2d(8),
            nn.ReLU(),
        )
        self.fc = nn.Linear(8, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.features(x).mean((2, 3)))


@pytest.fixture
def tiny_model():
    """``trainer.prepare(built=tiny_model())``: cancel, NaN, early stopping and skipped files do
    not need a torchvision model (export and checkpoints do: they rebuild the architecture)."""
    from ftgui.core.models import BuiltModel, Preprocess

    def make(num_classes: int = 4) -> BuiltModel:
        torch.manual_seed(0)
        return BuiltModel(TinyNet(num_classes), "tinynet", num_classes, ["fc"], Preprocess(32, 32), "none")

    return make


def train_args(data: Path, out: Path, *options: str) -> list[str]:
    """ftgui-train arguments for a tiny folder: no pretrained weights, 32 px."""
    return [str(data), "--out", str(out), "--weights", "none", "--image-size", "32", *options]


def train_command(data: Path, out: Path, *options: str) -> list[str]:
    """The installed ftgui-train on a tiny folder, full fine-tuning."""
    import sys

    exe = str(Path(sys.executable).parent / "ftgui-train")
    return [exe, *train_args(data, out, "--strategy", "full", *options)]


@pytest.fixture
def ftgui_train():
    return train_command


@pytest.fixture
def tmpfs(tmp_path):
    """A small tmpfs mounted under tmp_path (another file system); skipped without the right."""
    mounts: list[Path] = []

    def mount(path: Path) -> Path:
        path.mkdir(parents=True, exist_ok=True)
        done = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(path)], capture_output=True
        )
        if done.returncode != 0:
            pytest.skip("mounting a tmpfs needs root")
        mounts.append(path)
        return path

    yield mount
    for path in reversed(mounts):
        subprocess.run(["umount", str(path)], check=False)


@pytest.fixture
def ftgui_train_args():
    return train_args


class CodePayload:
    """Pickles as a call to open(target, "w"): loading it unsafely would create ``target``."""

    def __init__(self, target: str) -> None:
        self.target = target

    def __reduce__(self):
        return (open, (self.target, "w"))


@pytest.fixture
def code_payload():
    return CodePayload


def launch(cmd: list[str], timeout: float = 300, **kwargs) -> subprocess.CompletedProcess[str]:
    """Run a launcher (torchrun, a job script) in a session of its own: a hang fails the test
    after ``timeout`` and takes the worker processes with it, instead of leaving them behind."""
    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True, **kwargs
    )
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        pytest.fail(f"{cmd[:4]} did not end within {timeout} s:\n{err[-3000:]}")
    return subprocess.CompletedProcess(cmd, proc.returncode, out, err)


@pytest.fixture
def run_launcher():
    return launch
