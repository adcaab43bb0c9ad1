"""ftgui against the plain PyTorch fine-tuning loop, on the same generated data, in one process.

    python benchmarks/bench_training.py            # full run (several minutes on 2 cores)
    python benchmarks/bench_training.py --quick    # under 3 minutes

Prints wall times and ratios (plain / ftgui) for:
1. head only, ResNet18, 224 px; 2. last block (layer4) + head; 3. full fine-tuning;
4. decoding + resizing 12 MP JPEGs; 5. GUI-thread timer delays while training (offscreen);
6. time from starting ftgui to the window being shown; with timm installed, 7. head only on
a timm ViT-S/16 and 8. filling the model picker with timm's list; then the precision rows
(``precision_rows.py``): the same ftgui run in fp32 and in bf16 for ResNet18 (full), ConvNeXt-T
(last-1), a ViT-B/16 head-only cache fill and MobileNet v3 (full), with the share of the
processor's peak each reaches and what ``--precision auto`` chose.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import platform
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("PYQTGRAPH_QT_LIB", "PySide6")

import torch  # noqa: E402
import torchvision  # noqa: E402
from PIL import Image  # noqa: E402
from torch import nn  # noqa: E402
from torchvision import datasets, transforms  # noqa: E402
from workfolder import add_keep_option, work_folder

from ftgui.core.base import events as ev
from ftgui.core.data.example import draw_example
from ftgui.core.data.images import ImageListDataset, decode_threads, threaded_batches
from ftgui.core.data.samples import Sample
from ftgui.core.models import preprocess_for  # noqa: E402
from ftgui.core.models.freeze import FreezePlan
from ftgui.core.training.config import TrainConfig
from ftgui.core.training.engine import Trainer

CLASSES = ("circle", "square", "stripes", "triangle")


# ---------------------------------------------------------------- data


def make_data(root: Path, train_per_class: int, val_per_class: int, big: int) -> tuple[Path, list[Path]]:
    """train/ and val/ folders of 224 px JPEGs, plus ``big`` 12 MP JPEGs (4000 x 3000)."""
    rng = random.Random(0)
    for part, n in (("train", train_per_class), ("val", val_per_class)):
        for cls in CLASSES:
            folder = root / "small" / part / cls
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(n):
                draw_example(cls, 224, rng).save(folder / f"{i:04d}.jpg", quality=90)
    photos = []
    folder = root / "photos" / "all"
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(big):
        small = draw_example(CLASSES[i % 4], 600, rng).resize((4000, 3000), Image.BICUBIC)
        noise = Image.effect_noise((4000, 3000), 20).convert("RGB")
        path = folder / f"photo_{i:03d}.jpg"
        Image.blend(small, noise, 0.1).save(path, quality=92)
        photos.append(path)
    return root / "small", photos


# ---------------------------------------------------------------- measuring


class PeakMemory:
    """Samples this process's resident memory every 10 ms."""

    def __init__(self) -> None:
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    @staticmethod
    def rss() -> int:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")

    def _sample(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self.rss())
            time.sleep(0.01)

    def __enter__(self) -> PeakMemory:
        self.start = self.rss()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def timed(fn: Callable[[], float]) -> tuple[float, float, int]:
    """(seconds, the function's result, peak RSS in bytes)."""
    with PeakMemory() as mem:
        t0 = time.perf_counter()
        result = fn()
        seconds = time.perf_counter() - t0
    return seconds, result, mem.peak


# ---------------------------------------------------------------- the plain loop


def plain_loop(data: Path, strategy: str, epochs: int, batch_size: int = 32, arch: str = "resnet18") -> float:
    """The usual tutorial: ImageFolder, freeze, new fc, model.train(), full forward every epoch
    (``arch`` 'timm:NAME': the same with timm.create_model and reset_classifier)."""
    torch.manual_seed(0)
    tf = transforms.Compose(
        [
            transforms.Resize(256),
            transforms.CenterCrop(224),
            transforms.ToTensor(),
            transforms.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225]),
        ]
    )
    train = datasets.ImageFolder(str(data / "train"), tf)
    val = datasets.ImageFolder(str(data / "val"), tf)
    train_loader = torch.utils.data.DataLoader(train, batch_size=batch_size, shuffle=True)
    val_loader = torch.utils.data.DataLoader(val, batch_size=batch_size)
    if arch.startswith("timm:"):
        import timm

        model = timm.create_model(arch[5:], pretrained=False)
        for p in model.parameters():
            p.requires_grad = False
        model.reset_classifier(len(train.classes))  # a fresh head, trainable
    else:
        model = torchvision.models.resnet18(weights=None)
        for p in model.parameters():
            p.requires_grad = strategy == "full"
        if strategy == "last-1":
            for p in model.layer4.parameters():
                p.requires_grad = True
        model.fc = nn.Linear(model.fc.in_features, len(train.classes))
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=1e-3, momentum=0.9)
    criterion = nn.CrossEntropyLoss()
    accuracy = 0.0
    for _ in range(epochs):
        model.train()
        for x, y in train_loader:
            optimizer.zero_grad()
            loss = criterion(model(x), y)
            loss.backward()
            optimizer.step()
        model.eval()
        correct = 0
        with torch.no_grad():
            for x, y in val_loader:
                correct += int((model(x).argmax(1) == y).sum())
        accuracy = correct / len(val)
    return accuracy


def ftgui_run(
    data: Path, strategy: str, epochs: int, cache: str = "auto", batch_size: int = 32, arch: str = "resnet18"
) -> float:
    cfg = TrainConfig(
        data_dir=str(data),
        arch=arch,
        weights="none",
        freeze=FreezePlan.parse(strategy),
        epochs=epochs,
        batch_size=batch_size,
        lr=1e-3,
        optimizer="sgd",
        schedule="constant",
        seed=0,
        device="cpu",
        cache=cache,
    )
    final = None
    accuracy = 0.0
    for e in Trainer(cfg).run():
        if isinstance(e, ev.EpochEnded):
            accuracy = e.val_accuracy or 0.0
        final = e
    assert isinstance(final, ev.Finished), final
    return accuracy


# ---------------------------------------------------------------- decoding


def decode_plain(paths: list[Path]) -> float:
    root = paths[0].parent.parent
    tf = transforms.Compose([transforms.Resize(256), transforms.CenterCrop(224), transforms.ToTensor()])
    loader = torch.utils.data.DataLoader(datasets.ImageFolder(str(root), tf), batch_size=4)
    n = 0
    for x, _ in loader:
        n += len(x)
    return n


def decode_ftgui(paths: list[Path]) -> float:
    root = paths[0].parent.parent
    samples = [Sample(str(p.relative_to(root)), 0) for p in paths]
    ds = ImageListDataset(str(root), samples, preprocess_for("resnet18"))
    batches = [list(range(i, min(i + 4, len(samples)))) for i in range(0, len(samples), 4)]
    n = 0
    for batch in threaded_batches(ds, batches, decode_threads()):
        n += len(batch.images)
    return n


# ---------------------------------------------------------------- the window


def gui_responsiveness(data: Path, seconds: float) -> tuple[float, float, float, int]:
    """(p99 delay ms, longest delay ms, median ms, timer ticks) of a 10 ms QTimer while training."""
    from PySide6.QtCore import QSettings
    from PySide6.QtWidgets import QApplication

    from ftgui.gui.main_window import MainWindow

    app = QApplication.instance() or QApplication([])
    ini = Path(tempfile.mkdtemp()) / "bench.ini"
    window = MainWindow(settings=QSettings(str(ini), QSettings.Format.IniFormat))
    window.show()
    window.start_background_init()
    deadline = time.monotonic() + 60
    while not window.ready and time.monotonic() < deadline:
        app.processEvents()
        time.sleep(0.01)
    window.data_panel.load_folder(str(data))
    while window.data_panel.scan is None and time.monotonic() < deadline:
        app.processEvents()
        time.sleep(0.01)
    window.model_panel.set_weights("none")
    window.model_panel.set_strategy("full")
    window.train_panel.epochs.setValue(100)
    window.train_panel.batch_size.setValue(16)
    window.train_panel.image_size.setValue(128)
    window.start_training()
    while window.plot.point_count < 2 and time.monotonic() < deadline:
        app.processEvents()
        time.sleep(0.005)
    end = time.monotonic() + seconds
    delays = timer_lateness(app, lambda: time.monotonic() >= end)
    window.shutdown_training()
    window.close()
    p99 = delays[int(0.99 * (len(delays) - 1))]
    return p99, delays[-1], statistics.median(delays), len(delays)


def timer_lateness(app: Any, done: Callable[[], bool], then: Callable[[], None] | None = None) -> list[float]:
    """How late (ms, sorted) a 10 ms QTimer fires while the event loop runs: ``then()`` is
    called once the timer runs, and the loop goes on until ``done()``."""
    from PySide6.QtCore import QElapsedTimer, QTimer

    delays: list[float] = []
    clock = QElapsedTimer()
    clock.start()
    last = [clock.nsecsElapsed()]

    def tick() -> None:
        now = clock.nsecsElapsed()
        delays.append(max((now - last[0]) / 1e6 - 10.0, 0.0))
        last[0] = now

    timer = QTimer()
    timer.setInterval(10)
    timer.timeout.connect(tick)
    timer.start()
    if then is not None:
        then()
    while not done():
        app.processEvents()
        time.sleep(0.001)
    for _ in range(5):  # the ticks that were due when it ended
        app.processEvents()
        time.sleep(0.011)
    timer.stop()
    return sorted(delays) or [0.0]


STARTUP_PROBE = r"""
import sys, time
from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication
from ftgui.gui.main_window import MainWindow, app_icon
app = QApplication([sys.argv[0]])
app.setApplicationName("ftgui"); app.setOrganizationName("ftgui-benchmark")
app.setWindowIcon(app_icon())
window = MainWindow()
window.show()
QTimer.singleShot(0, window.start_background_init)
def shown():
    print("shown", flush=True)
    app.quit()
QTimer.singleShot(0, shown)
app.exec()
"""


def startup_seconds(runs: int) -> float:
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        proc = subprocess.Popen([sys.executable, "-c", STARTUP_PROBE], stdout=subprocess.PIPE, text=True)
        line = proc.stdout.readline() if proc.stdout else ""
        times.append(time.perf_counter() - t0)
        proc.wait(timeout=60)
        assert line.strip() == "shown", line
    return statistics.median(times)


# ---------------------------------------------------------------- report


def picker_seconds() -> float:
    """A fresh process fills the window's model list (torchvision's and timm's), twice: the
    first run keeps timm's list in the cache folder, the second is the one timed."""
    code = (
        "import time, torch, torchvision; from PySide6.QtWidgets import QApplication, QComboBox; "
        "app = QApplication([]); from ftgui.gui.widgets.model_choices import fill_model_choices; "
        "c = QComboBox(); t = time.perf_counter(); fill_model_choices(c); "
        "print(time.perf_counter() - t, c.count())"
    )
    out = ""
    for _ in range(2):
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    return float(out.split()[0])


def machine() -> str:
    from ftgui.core.compute.precision import processor_name

    return (
        f"{processor_name()}, {os.cpu_count()} cores, torch {torch.__version__} ({torch.get_num_threads()} threads), "
        f"torchvision {torchvision.__version__}, Python {platform.python_version()}"
    )


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--quick", action="store_true", help="smaller data and fewer epochs (under 3 minutes)"
    )
    add_keep_option(parser)
    args = parser.parse_args()
    with work_folder("bench-training", args.keep) as tmp:  # no features reused from earlier runs
        return run(args.quick, tmp)


def run(quick: bool, tmp: Path) -> int:
    train_n, val_n, big = (10, 3, 4) if quick else (40, 10, 12)
    epochs_head, epochs_last, epochs_full = (4, 3, 1) if quick else (10, 10, 3)
    print(f"machine: {machine()}")
    t0 = time.perf_counter()
    data, photos = make_data(tmp, train_n, val_n, big)
    print(
        f"data: {4 * train_n} train + {4 * val_n} val JPEGs at 224 px, {big} JPEGs at 12 MP "
        f"(made in {time.perf_counter() - t0:.0f}s)\n"
    )
    rows: list[tuple[str, str, str, str, str]] = []

    def compare(
        name: str,
        target: float,
        plain: Callable[[], float],
        ours: Callable[[], float],
        extra: Callable[[], float] | None = None,
        extra_name: str = "",
    ) -> tuple[float, float, int, int]:
        ps, pacc, pmem = timed(plain)
        fs, facc, fmem = timed(ours)
        ratio = ps / fs
        note = f"acc {100 * pacc:.0f}% / {100 * facc:.0f}%"
        if extra is not None:
            es, _, _ = timed(extra)
            note += f"; {extra_name} {es:.1f}s ({ps / es:.2f}x)"
        rows.append(
            (
                name,
                f"{ps:.1f}s",
                f"{fs:.1f}s",
                f"{ratio:.2f}x {'OK' if ratio >= target else 'MISS'} (target {target:g}x)",
                note,
            )
        )
        print(f"  {name}: plain {ps:.1f}s, ftgui {fs:.1f}s -> {ratio:.2f}x   [{note}]", flush=True)
        return ps, fs, pmem, fmem

    print("training (ResNet18, 224 px, batch 32, SGD; accuracy plain / ftgui):")
    _, _, pmem, fmem = compare(
        f"1. head only, {epochs_head} epochs",
        10,
        lambda: plain_loop(data, "head", epochs_head),
        lambda: ftgui_run(data, "head", epochs_head),
        lambda: ftgui_run(data, "head", epochs_head, cache="off"),
        "ftgui without caches",
    )
    compare(
        f"2. layer4 + head, {epochs_last} epochs",
        2,
        lambda: plain_loop(data, "last-1", epochs_last),
        lambda: ftgui_run(data, "last-1", epochs_last),
        lambda: ftgui_run(data, "last-1", epochs_last, cache="off"),
        "ftgui without caches",
    )
    compare(
        f"3. full fine-tuning, {epochs_full} epochs",
        1.05,
        lambda: plain_loop(data, "full", epochs_full),
        lambda: ftgui_run(data, "full", epochs_full),
        lambda: ftgui_run(data, "full", epochs_full, cache="off"),
        "ftgui without caches",
    )
    if importlib.util.find_spec("timm") is not None:
        vit = "timm:vit_small_patch16_224.augreg_in21k_ft_in1k"
        # The tutorial's 10 epochs (a ViT-S forward pass is 15 images/s on 2 cores in fp32). The
        # cache costs one plain epoch's forward passes, so in fp32 the ratio is bounded by the
        # number of epochs; filled in bf16 (auto, where native) it can pass 10x. The first ftgui
        # run includes auto's precision trial; the second finds it remembered.
        vit_data = data if not quick else make_data(tmp / "vit", 10, 3, 0)[0]
        vit_epochs = 8 if quick else 10
        n_vit = sum(1 for _ in vit_data.rglob("*.jpg"))
        print(f"\ntimm ({vit[5:]}, 22M parameters, 224 px, {n_vit} images; accuracy plain / ftgui):")
        compare(
            f"7. timm ViT head only, {vit_epochs} epochs",
            10,
            lambda: plain_loop(vit_data, "head", vit_epochs, arch=vit),
            lambda: ftgui_run(vit_data, "head", vit_epochs, arch=vit),
            lambda: ftgui_run(vit_data, "head", vit_epochs, arch=vit),
            "again, trial remembered",
        )
        picker = picker_seconds()
        rows.append(
            (
                "8. picker with timm",
                "-",
                f"{picker:.2f}s",
                f"{'OK' if picker <= 0.5 else 'MISS'} (target <= 0.5s)",
                "filling the model list, list cache warm",
            )
        )
        print(f"  model picker filled with timm's list in {picker:.2f}s", flush=True)

    from precision_rows import precision_rows

    print(f"\nprecision (the same ftgui run in fp32 and in bf16, 224 px, {4 * (train_n + val_n)} images):")
    precision_table = precision_rows(data, 4 * train_n, 4 * val_n, lambda line: print(line, flush=True))

    from bench_accuracy import write_digits
    from whole_process import whole_process_rows

    digits = write_digits(tmp / "digits", (5, 6, 7, 8, 9), 32, None)
    print("\nwhole process, ftgui-train at its defaults against the tutorial's script (digits, 32 px):")
    rows += whole_process_rows(digits, tmp, 5, lambda line: print(line, flush=True))

    print("\ndecoding + resizing 12 MP JPEGs to 224 px (one process):")
    ps, n, _ = timed(lambda: decode_plain(photos))
    fs, n2, _ = timed(lambda: decode_ftgui(photos))
    ratio = (n2 / fs) / (n / ps)
    rows.append(
        (
            "4. 12 MP decode",
            f"{n / ps:.2f} img/s",
            f"{n2 / fs:.2f} img/s",
            f"{ratio:.2f}x {'OK' if ratio >= 4 else 'MISS'} (target 4x)",
            "ImageFolder+Resize vs ftgui",
        )
    )
    print(f"  plain {n / ps:.2f} img/s, ftgui {n2 / fs:.2f} img/s -> {ratio:.2f}x", flush=True)

    print("\nwindow responsiveness while training (offscreen):")
    p99, worst, median, ticks = gui_responsiveness(data, 6 if quick else 15)
    rows.append(
        (
            "5. GUI timer delay",
            "-",
            f"p99 {p99:.1f} ms",
            f"{'OK' if p99 <= 50 else 'MISS'} (target p99 <= 50 ms)",
            f"max {worst:.1f} ms, median {median:.1f} ms, {ticks} ticks",
        )
    )
    print(f"  p99 {p99:.1f} ms, max {worst:.1f} ms, median {median:.1f} ms over {ticks} ticks", flush=True)

    print("\nstart-up time to the window being shown:")
    start = startup_seconds(3)
    rows.append(
        (
            "6. start-up",
            "-",
            f"{start:.2f}s",
            f"{'OK' if start <= 1.5 else 'MISS'} (target <= 1.5s)",
            "median of 3 launches",
        )
    )
    print(f"  {start:.2f}s", flush=True)

    print(f"\npeak memory, case 1: plain {pmem / 2**20:.0f} MiB, ftgui {fmem / 2**20:.0f} MiB (process RSS)")
    widths = [max(len(r[i]) for r in rows + [("case", "plain", "ftgui", "ratio", "notes")]) for i in range(5)]
    print()
    for row in [("case", "plain", "ftgui", "ratio", "notes"), *rows]:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths)))
    print("\nprecision rows (fp32 | bf16 | bf16 speed-up | share of peak | what auto chose):")
    for row in precision_table:
        print("  " + " | ".join(row))
    print(f"\ntotal {time.perf_counter() - t0:.0f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
