"""The window's Compare and Runs tabs: comparing freeze layouts in the background, using a
candidate as the current model, reopening a past run."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING

from ftgui.core.base import report
from ftgui.gui.controllers.data_controls import DataControls

if TYPE_CHECKING:
    from collections.abc import Iterator

    from ftgui.core.base.events import Message
    from ftgui.core.workflows.compare import CandidateEvent, Comparison, ComparisonFinished
    from ftgui.core.workflows.repeats import RepeatedComparison
    from ftgui.core.workflows.runs import RunRecord
    from ftgui.core.workflows.session import Job
    from ftgui.gui.jobs import Progress


class CompareControls(DataControls):
    """Comparisons and past runs; ``MainWindow`` builds the panels they render into."""

    _ranked_weights: str | None = None  # the weights the last backbone ranking used
    _fold = 0  # the fold of a comparison over folds now training (0: one split)
    _fold_started = 0.0  # when the comparison started

    # ------------------------------------------------------------ comparing freeze layouts

    def start_comparison(self) -> bool:
        """Train the ticked layouts with the current settings, one after another, in the background."""
        from ftgui.core.base.errors import FtguiError
        from ftgui.core.workflows.compare import Candidate, Comparison, parse_candidates
        from ftgui.core.workflows.repeats import RepeatedComparison, fold_splits

        if self.busy or not self.ready:
            return False
        if self.data_panel.scan is None:
            self.show_error(
                "No dataset", "Drop an image folder onto the window (or use File → Open dataset…)."
            )
            return False
        chosen = self.compare_panel.chosen()
        if not chosen:
            self.show_error("Nothing to compare", "Tick at least one layout to compare.")
            return False
        base = self.build_config()
        candidates = (
            parse_candidates(",".join(c for c in chosen if c != "current")) if chosen != ["current"] else []
        )
        if "current" in chosen:
            name = "current tree" if base.freeze.is_custom else f"current ({base.freeze.label})"
            candidates.append(Candidate(name, base.freeze, base.lr))
        scan = self.data_panel.scan
        folds = self.compare_panel.repeats.value()
        runner: Comparison | RepeatedComparison = Comparison(base, candidates)
        if folds > 1:
            try:
                splits = fold_splits(scan, folds, base.val_fraction, base.seed)
            except FtguiError as exc:
                self.show_error("Cannot make the folds", str(exc))
                return False
            # The estimate shown beside Folds is what Start accepts: no fold starts that would pass it.
            accepted = self.comparison_estimate(chosen, folds)
            runner = RepeatedComparison(base, candidates, scan, splits, time_limit_s=accepted)
            if accepted is not None:
                self.log_message("info", f"{folds} folds, at most the {report.duration(accepted)} estimated")
        comparison = runner.first if isinstance(runner, RepeatedComparison) else runner
        board = self._board_folder(scan.root, "compare")
        self.comparison = comparison
        self._fold_started, self._fold = time.monotonic(), 0
        self.compare_panel.clear()
        self.compare_panel.set_running(True)
        self.log_message("info", f"Comparing {', '.join(c.name for c in candidates)} on {scan.root}")
        return self.jobs.start(
            "compare",
            lambda job, progress: self.session.compare(runner, scan, job.cancel, board),
            on_yield=self._on_comparison_event,
            on_error=lambda message: self.show_error("Comparison stopped", message),
            on_done=self._on_comparison_done,
        )

    def rank_backbones(self) -> bool:
        """The backbone bake-off on the open dataset, in the background (no training)."""
        from ftgui.core.workflows.backbones import BackboneResult, each_backbone, pick, ranked

        names = self.compare_panel.backbone_names()
        if self.busy or not self.ready:
            return False
        if self.data_panel.scan is None or not names:
            self.show_error(
                "Nothing to rank",
                "Open a dataset and type the backbones to rank, separated by commas "
                "(torchvision names or timm:NAME).",
            )
            return False
        base = self.build_config()
        self._ranked_weights = base.weights or "none"  # what "Use this backbone" keeps
        self.compare_panel.set_running(True)
        self.log_message(
            "info", f"Ranking backbones {', '.join(names)} by a linear probe on their frozen features"
        )

        results: list[BackboneResult] = []

        def work(job: Job, progress: Progress) -> Iterator[BackboneResult]:
            return each_backbone(base, names, cancel=job.cancel)  # each shown as it comes

        def measured(result: BackboneResult) -> None:
            results.append(result)
            line = result.error or f"linear probe {result.accuracy:.1%}, {result.latency_ms:.0f} ms per image"
            self.log_message("warning" if result.error else "info", f"[{result.arch}] {line}")

        def done() -> None:
            self.compare_panel.set_running(False)
            if results:
                order = ranked(results)
                best = order[0].arch if order[0].accuracy is not None else None
                self.compare_panel.show_backbones(order, best, pick(order))
                self.log_message("info", f"Backbones: {pick(order)}")

        return self.jobs.start(
            "backbones",
            work,
            on_yield=measured,
            on_error=lambda message: self.show_error("Ranking backbones stopped", message),
            on_done=done,
        )

    def use_backbone(self, arch: str) -> None:
        """The chosen backbone in the model panel: Start and Compare train it."""
        if self.busy:
            return
        self.model_panel.set_arch(arch)
        if self.model_panel.arch != arch:
            return
        if (
            self._ranked_weights == "none"
        ):  # ranked with random weights: trained so, not with unreachable ones
            self.model_panel.set_weights("none")
        weights = (
            "random weights" if self.model_panel.weights == "none" else f"{self.model_panel.weights} weights"
        )
        self.log_message("info", f"Using backbone {arch} ({weights}); Start or Compare trains it")

    def _estimate_comparison(self) -> None:
        panel = self.compare_panel
        panel.show_estimate(self.comparison_estimate(panel.chosen(), panel.repeats.value()))

    def comparison_estimate(self, chosen: list[str], folds: int) -> float | None:
        """Seconds a comparison of ``chosen`` over ``folds`` should take here: each layout's
        newest run on this dataset, per epoch, times the epochs set; None without such runs."""
        from ftgui.core.workflows.runs import list_runs

        scan = self.data_panel.scan
        if scan is None or not chosen or "current" in chosen:
            return None
        runs = [r for r in list_runs(scan.root) if r.epochs and r.seconds]
        total = 0.0
        for strategy in chosen:
            newest = next(
                (r for r in runs if r.strategy == strategy and r.arch == self.model_panel.arch), None
            )
            if newest is None:
                return None
            total += (newest.seconds or 0.0) / newest.epochs * self.train_panel.epochs.value()
        return total * folds

    def _on_comparison_event(self, e: CandidateEvent | ComparisonFinished | Message) -> None:
        from ftgui.core.base import events as ev
        from ftgui.core.workflows.compare import CandidateEvent, ComparisonFinished
        from ftgui.core.workflows.repeats import FoldStarted, RepeatsFinished

        if isinstance(e, ev.Message):  # a candidate recorded as a run
            self.log_message(e.level, e.text)
            return
        if isinstance(e, FoldStarted):
            self._fold = e.fold
            per_fold = (time.monotonic() - self._fold_started) / (e.fold - 1) if e.fold > 1 else None
            remaining = None if per_fold is None else per_fold * (e.folds - e.fold + 1)
            self.compare_panel.show_fold(e.fold, e.folds, remaining)
            if e.fold == 2 and per_fold is not None:
                self.log_message(
                    "info", f"Fold 1 of {e.folds} took {per_fold:.0f} s; {e.folds - 1} more follow"
                )
            return
        if isinstance(e, RepeatsFinished):
            if e.outcome is not None:
                self.compare_panel.show_repeats(e.outcome)
                self.log_message("info", f"Over the folds: {e.outcome.reason}")
            return
        if self._fold > 1:
            return  # the panel shows the first fold's curves and table; later folds only measure
        self.compare_panel.show_event(e)
        if isinstance(e, CandidateEvent) and not isinstance(e.event, ev.BatchEnded):
            line = report.describe(e.event)
            if line is not None:
                self.log_message(line[0], f"[{e.candidate}] {line[1]}")
        elif isinstance(e, ComparisonFinished):
            self.log_message("info", f"Comparison: {e.reason}" + "".join(f"; {n}" for n in e.notes))

    def _board_folder(self, dataset: str, kind: str = "") -> Path | None:
        """Where this run's TensorBoard log goes when the checkbox is on (ftgui's data folder)."""
        if not self.train_panel.tensorboard.isChecked():
            return None
        from ftgui.core.base.paths import data_dir

        name = "-".join(
            p for p in (Path(dataset or "dataset").name, kind, time.strftime("%Y%m%d-%H%M%S")) if p
        )
        return data_dir() / "tensorboard" / name

    def _on_comparison_done(self) -> None:
        self.compare_panel.set_running(False)
        self.runs_panel.refresh()
        self.compare_panel.refresh_estimate()  # the runs just recorded time the next one

    def reopen_run(self, record: RunRecord) -> None:
        """A past run: its curves on the training plot, and its exported model for Evaluate and Try."""
        self.plot.clear()
        for h in record.history:
            self.plot.add_epoch(int(h["epoch"]), h.get("val_loss"), h.get("val_accuracy"))
        self.tabs.setCurrentIndex(0)
        label = record.candidate or record.strategy
        if record.bundle and (Path(record.bundle) / "model.json").is_file():
            self.log_message("info", f"Reopened run {record.id} ({record.arch}, {label}); opening its model")
            self.open_bundle(record.bundle)
        else:
            where = f"its model folder {record.bundle} is gone" if record.bundle else "it was not exported"
            self.log_message(
                "info", f"Reopened run {record.id} ({record.arch}, {label}): curves only, {where}"
            )

    def use_candidate(self, name: str) -> None:
        """Make a compared candidate the current model: Evaluate, Try and Export use it."""
        if self.busy or self.comparison is None or name not in self.comparison.trainers:
            return
        trainer = self.comparison.trainers[name]
        if trainer.epoch < 1:
            return
        self.session.trainer, self.session.resuming = trainer, False
        if trainer.config.arch == self.model_panel.arch:  # the strategy box shows the run used
            self.model_panel.set_plan(trainer.config.freeze)
        self.plot.clear()
        for record in trainer.history:
            self.plot.add_epoch(int(record["epoch"]), record.get("val_loss"), record.get("val_accuracy"))
        self.log_message("info", f"Using {name} ({trainer.config.strategy}) as the current model")
        self._use_trainer_for_try()
        self._update_actions()
        self.run_evaluation()
