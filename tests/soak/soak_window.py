"""Drive the real ftgui window for a long time and report memory and None references.

Run it by hand (it is not part of the test suite, whose regression test runs a short version):

    QT_QPA_PLATFORM=offscreen .venv/bin/python tests/soak/soak_window.py --minutes 30

Each cycle: open a small 4-class folder, train head-only with batch size 1 (one GUI update per
batch), press Stop part-way and Start again, let the evaluation run, export; then open a
100-class folder, train one epoch and let its evaluation (a 100 x 100 confusion heat map) fill the
Evaluate tab. Between the two: Check data on the small folder, a Move to class and its Undo, the
worst mistakes' heat maps, a backbone ranking, Classify a folder over the small folder, and the
opening of a folder of ``--big`` images whose header cache is deleted first, so that every cycle
checks it in worker processes. The caches' RAM budget is ``--cache-memory`` (0: every cache is a file on disk, as
with a big folder). Every ``--report-every`` seconds it prints the resident memory, the open
file descriptors and ``sys.getrefcount(None)``; the last line is a JSON summary. A Qt binding that loses references
to None (PySide6 6.12.0 on Python < 3.12) aborts the process long before the end.
"""

from __future__ import annotations

import argparse
import gc
import importlib.util
import json
import os
import random
import sys
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("PYQTGRAPH_QT_LIB", "PySide6")
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
from workfolder import add_keep_option, work_folder  # noqa: E402


def make_many_classes(root: Path, classes: int, per_class: int = 3, size: int = 32) -> Path:
    """``classes`` folders of small flat-colour PNGs (a colour per class, a little noise)."""
    from PIL import Image

    rng = random.Random(0)
    for c in range(classes):
        folder = root / f"class{c:03d}"
        folder.mkdir(parents=True, exist_ok=True)
        base = (rng.randrange(256), rng.randrange(256), rng.randrange(256))
        for i in range(per_class):
            color = tuple(max(0, min(255, v + rng.randint(-10, 10))) for v in base)
            Image.new("RGB", (size, size), color).save(folder / f"img{i}.png")  # type: ignore[arg-type]
    return root


def rss_mb() -> float:
    import psutil

    return psutil.Process().memory_info().rss / 2**20


def open_files() -> int:
    """Open file descriptors (handles on Windows): a cache file left open per run adds up."""
    import psutil

    process = psutil.Process()
    return process.num_fds() if hasattr(process, "num_fds") else process.num_handles()


def none_refs() -> int:
    gc.collect()
    return sys.getrefcount(None)


class Soak:
    def __init__(self, args: argparse.Namespace, workdir: Path) -> None:
        from PySide6.QtCore import QSettings, QTimer

        from ftgui.core.data.example import make_example_dataset
        from ftgui.gui.main_window import MainWindow

        self.args = args
        self.workdir = workdir
        self.small = make_example_dataset(workdir / "shapes", per_class=40, size=32, seed=1)
        self.large = make_many_classes(workdir / "many", args.eval_classes)
        self.big = make_many_classes(workdir / "big", 10, per_class=max(1, args.big // 10), size=8)
        self.big_opened = 0
        settings = QSettings(str(workdir / "ftgui.ini"), QSettings.Format.IniFormat)
        settings.setValue("fixes/confirmed_move", True)  # asked once; a soak has no one to answer
        self.window = MainWindow(settings=settings)
        self.window.show()
        self.window.start_background_init()
        self.started = time.monotonic()
        self.batches = 0
        self.evaluations = 0
        self.largest_confusion = 0
        self.exports = 0
        self.checks = 0
        self.undos = 0
        self.heat_maps = 0
        self.rankings = 0
        self.classified = 0
        self.stops = 0
        self.cycles = 0
        self.step = "wait-ready"
        self.refs_start: int | None = None
        self.rss_start: float | None = None
        self.fds_start: int | None = None
        self.samples: list[dict[str, float]] = []
        self.failure: str | None = None
        self.timer = QTimer()
        self.timer.setInterval(50)
        self.timer.timeout.connect(self._tick)
        self.reporter = QTimer()
        self.reporter.setInterval(int(args.report_every * 1000))
        self.reporter.timeout.connect(self.report)

    # ------------------------------------------------------------ helpers

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def done(self) -> bool:
        return self.elapsed >= self.args.minutes * 60 and self.batches >= self.args.min_batches

    def _count(self, event: object) -> None:
        from ftgui.core.base import events as ev

        if isinstance(event, ev.BatchEnded):
            self.batches += 1
        elif isinstance(event, ev.Failed):
            self.failure = event.message

    def _train(self, folder: Path, epochs: int, batch: int) -> None:
        w = self.window
        w.model_panel.set_weights("none")
        w.model_panel.set_strategy("head")
        w.train_panel.image_size.setValue(32)
        w.train_panel.epochs.setValue(epochs)
        w.train_panel.batch_size.setValue(batch)
        w.start_training()
        assert w.training and w.jobs.worker is not None, "Start did not start training"
        w.jobs.worker.yielded.connect(self._count)

    def report(self) -> None:
        sample = {
            "minute": round(self.elapsed / 60, 2),
            "rss_mb": round(rss_mb(), 1),
            "open_files": open_files(),
            "none_refs": sys.getrefcount(None),
            "batches": self.batches,
            "evaluations": self.evaluations,
            "exports": self.exports,
            "checks": self.checks,
        }
        self.samples.append(sample)
        print(
            f"{sample['minute']:6.2f} min  RSS {sample['rss_mb']:7.1f} MB  files {sample['open_files']:>4}  "
            f"None refs {sample['none_refs']:>9,}  "
            f"batches {self.batches:>7,}  evaluations {self.evaluations:>4}  exports {self.exports:>4}  "
            f"stops {self.stops:>3}  checks {self.checks:>3}  undos {self.undos:>3}  ranks {self.rankings:>3}  "
            f"classified {self.classified:>6}",
            flush=True,
        )

    # ------------------------------------------------------------ the scenario

    def _tick(self) -> None:  # noqa: C901 - one small state machine
        from PySide6.QtWidgets import QApplication

        w = self.window
        if self.failure:
            print(f"training failed: {self.failure}", flush=True)
            QApplication.instance().exit(3)
            return
        if self.step == "wait-ready":
            if w.ready:
                self.step = "open-small"
        elif self.step == "open-small":
            w.data_panel.load_folder(str(self.small))
            self.step = "scan-small"
        elif self.step == "scan-small":
            if w.data_panel.scan is not None and w.data_panel.scan.root == str(self.small) and not w.busy:
                if self.refs_start is None:
                    self.refs_start, self.rss_start, self.fds_start = none_refs(), rss_mb(), open_files()
                self._train(self.small, self.args.epochs, 1)
                self.stop_at = self.batches + self.args.stop_after
                self.step = "train-small"
        elif self.step == "train-small":
            if w.training and self.batches >= self.stop_at:
                w.stop_training()
                self.stops += 1
                self.step = "restart-small"
        elif self.step == "restart-small":
            if not w.busy:
                self._train(self.small, self.args.epochs, 1)
                self.step = "finish-small"
        elif self.step == "finish-small":
            if not w.busy:
                self._evaluated(w)
                # Each cycle's run replaces an older run's export: the answer "Replace it" gives.
                w.export_to(str(self.workdir / f"export-{self.cycles % 3}"), replace_other=True)
                self.exports += 1
                self.step = "check"
        elif self.step == "check":
            if not w.busy:
                dialog = w.open_check_data()
                if dialog.report is not None:
                    dialog.start()
                self.step = "checked"
        elif self.step == "checked":
            dialog = w.check_dialog
            if not w.busy and dialog is not None and dialog.report is not None:
                self.checks += 1
                found = [f for f in dialog.report.findings if f.kind != "imbalance"]
                if found:
                    other = next(c for c in dialog.report.classes if c != found[0].given)
                    if w.file_fixes.move(dialog.report.root, [found[0].path], other) is not None:
                        w.undo_file_change()
                        self.undos += 1
                w.show_mistake_heat_maps()
                self.step = "heat"
        elif self.step == "heat":
            if not w.busy and not w.data_panel.scanning and not w.data_panel.verifying:
                self.heat_maps += 1
                # The backbone bake-off: frozen features of two models, a cross-validated probe each.
                timm = importlib.util.find_spec("timm") is not None
                w.compare_panel.backbones.setText(
                    "resnet18, " + ("timm:test_vit.r160_in1k" if timm else "mobilenet_v3_small")
                )
                w.compare_panel.backbone_table.setRowCount(0)
                w.rank_backbones()
                self.step = "rank"
        elif self.step == "rank":
            if not w.busy and w.compare_panel.backbone_table.rowCount():
                self.rankings += 1
                w.open_classify_folder().classify(str(self.small))
                self.step = "classify"
        elif self.step == "classify":
            dialog = w.classify_dialog
            if not w.busy and dialog is not None and not dialog.stop_button.isEnabled():
                self.classified += len(dialog.predictions)
                from ftgui.core.data.headers import _cache_path

                _cache_path(str(self.big)).unlink(missing_ok=True)  # checked again, in processes
                w.data_panel.load_folder(str(self.big))
                self.step = "check-big"
        elif self.step == "check-big":
            panel = w.data_panel
            if panel.scan is not None and panel.scan.root == str(self.big) and not panel.scanning:
                if not panel.verifying and not panel.scan.pending:
                    self.big_opened += 1
                    w.data_panel.load_folder(str(self.large))
                    self.step = "scan-large"
        elif self.step == "scan-large":
            if w.data_panel.scan is not None and w.data_panel.scan.root == str(self.large) and not w.busy:
                self._train(self.large, 1, 32)
                self.step = "finish-large"
        elif self.step == "finish-large":
            if not w.busy:
                self._evaluated(w)
                self.cycles += 1
                if self.done():
                    self.finish()
                else:
                    self.step = "open-small"

    def _evaluated(self, w: object) -> None:
        panel = self.window.eval_panel
        if panel.matrix_stack.currentWidget() is panel.heat_map:  # more than 20 classes
            cells = int(panel.heat_map.counts.size)
        else:
            cells = panel.confusion.rowCount() * panel.confusion.columnCount()
        if cells:
            self.evaluations += 1
            self.largest_confusion = max(self.largest_confusion, cells)

    def finish(self) -> None:
        from PySide6.QtWidgets import QApplication

        self.timer.stop()
        self.reporter.stop()
        self.report()
        refs_end, rss_end = none_refs(), rss_mb()
        summary = {
            "python": sys.version.split()[0],
            "minutes": round(self.elapsed / 60, 2),
            "cycles": self.cycles,
            "batches": self.batches,
            "evaluations": self.evaluations,
            "largest_confusion_cells": self.largest_confusion,
            "exports": self.exports,
            "stops": self.stops,
            "checks": self.checks,
            "undos": self.undos,
            "heat_map_rounds": self.heat_maps,
            "backbone_rankings": self.rankings,
            "classified": self.classified,
            "big_folder_checks": self.big_opened,
            "big_folder_images": len(list(self.big.rglob("*.png"))),
            "open_files_start": self.fds_start,
            "open_files_end": open_files(),
            "none_refs_start": self.refs_start,
            "none_refs_end": refs_end,
            "none_refs_drift": refs_end - (self.refs_start or refs_end),
            "rss_start_mb": round(self.rss_start or 0, 1),
            "rss_end_mb": round(rss_end, 1),
        }
        print("SUMMARY " + json.dumps(summary), flush=True)
        self.window.close()
        QApplication.instance().exit(0)

    def run(self) -> int:
        from PySide6.QtWidgets import QApplication

        self.timer.start()
        self.reporter.start()
        self.report()
        return int(QApplication.instance().exec())


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--minutes", type=float, default=30.0, help="keep cycling at least this long")
    p.add_argument("--min-batches", type=int, default=0, help="and until this many batches have run")
    p.add_argument("--epochs", type=int, default=12, help="epochs per run on the small folder")
    p.add_argument("--stop-after", type=int, default=300, help="press Stop after this many batches")
    p.add_argument("--eval-classes", type=int, default=100, help="classes of the large folder")
    p.add_argument("--report-every", type=float, default=60.0, help="seconds between report lines")
    p.add_argument("--big", type=int, default=4500, help="images of the folder checked in processes")
    p.add_argument("--cache-memory", type=int, default=0, metavar="MB", help="the caches' RAM budget")
    add_keep_option(p)
    args = p.parse_args(argv)

    from PySide6.QtWidgets import QApplication

    app = QApplication.instance() or QApplication([sys.argv[0]])
    app.setApplicationName("ftgui-soak")
    with work_folder("soak", args.keep) as tmp:  # run records and caches in it too
        os.environ["FTGUI_CACHE_MEMORY_MB"] = str(args.cache_memory)
        soak = Soak(args, tmp)
        return soak.run()


if __name__ == "__main__":
    sys.exit(main())
