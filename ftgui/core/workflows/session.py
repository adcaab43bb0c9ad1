"""What the window works on, without Qt: the current trainer, a loaded checkpoint, an opened
bundle, and the one job running. The window renders it; the job runner (``gui/jobs.py``) runs
its long operations off the GUI thread.
"""

from __future__ import annotations

import contextlib
import os
import time
import weakref
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from ftgui.core.base import events as ev
from ftgui.core.base.errors import FtguiError
from ftgui.core.base.events import CancelToken

if TYPE_CHECKING:
    from ftgui.core.base.files import OutputLock
    from ftgui.core.bundle.predict import Predictor
    from ftgui.core.data.samples import ScanResult
    from ftgui.core.deploy.export import Watch
    from ftgui.core.deploy.measure import ExportCheck
    from ftgui.core.training.config import TrainConfig
    from ftgui.core.training.engine import Trainer
    from ftgui.core.workflows.compare import Comparison
    from ftgui.core.workflows.repeats import RepeatedComparison
    from ftgui.core.workflows.tensorboard import TensorBoardLog


def _board(folder: Path | None, trainer: Trainer) -> TensorBoardLog | None:
    from ftgui.core.workflows.tensorboard import TensorBoardLog

    return TensorBoardLog(folder, trainer.config) if folder is not None else None


class Busy(FtguiError):
    """Another job is running (one at a time: they share the model and the CPU)."""


@dataclass
class Job:
    name: str
    cancel: CancelToken = field(default_factory=CancelToken)


class Session:
    def __init__(self) -> None:
        self.trainer: Trainer | None = None  # the model trained (or being trained) in this window
        self.resuming = False  # ``trainer`` came from a checkpoint and has not run since
        self._records: weakref.WeakKeyDictionary[Trainer, str] = weakref.WeakKeyDictionary()  # run ids
        self.bundle: Predictor | None = None  # an exported model opened from disk
        self.job: Job | None = None
        self._exported: tuple[Trainer, int, str] | None = None  # (trainer, its epoch, folder)

    # ------------------------------------------------------------ jobs

    @property
    def busy(self) -> bool:
        return self.job is not None

    @property
    def training(self) -> bool:
        return self.job is not None and self.job.name == "train"

    def begin(self, name: str) -> Job:
        if self.job is not None:
            raise Busy(f"Wait for the current job ({self.job.name}) to finish first.")
        self.job = Job(name)
        return self.job

    def end(self) -> None:
        self.job = None

    def stop(self) -> None:
        """Ask the running job to stop (training stops after the current batch)."""
        if self.job is not None:
            self.job.cancel.cancel()

    @property
    def trained(self) -> bool:
        return self.trainer is not None and self.trainer.epoch >= 1

    # ------------------------------------------------------------ operations (run as jobs)

    def new_trainer(self, config: TrainConfig) -> Trainer:
        from ftgui.core.training.engine import Trainer

        self.trainer, self.resuming = Trainer(config), False
        return self.trainer

    def train(
        self,
        trainer: Trainer,
        scan: ScanResult | None,
        checkpoint: str | None,
        cancel: CancelToken,
        board: Path | None = None,
    ) -> Iterator[ev.Event]:
        """Prepare (if needed) and run ``trainer``, saving ``checkpoint`` after every epoch and
        logging to TensorBoard in ``board`` when given."""
        self.resuming = False
        try:
            if not trainer.prepared:
                trainer.prepare(scan=scan)
        except FtguiError as exc:
            yield ev.Failed(str(exc), trainer.epoch)
            return
        from ftgui.core.workflows.runs import how_it_ended

        started = time.perf_counter()
        log = _board(board, trainer)
        for event in trainer.run(cancel):
            if log is not None:
                log(event)
            if isinstance(event, (ev.Finished, ev.Cancelled, ev.Failed)) and trainer.epoch >= 1:
                yield self._record(trainer, time.perf_counter() - started, ended=how_it_ended(event))
            yield event
            if isinstance(event, ev.EpochEnded) and checkpoint:
                # Saved here, between epochs, while the engine waits: a consistent state.
                try:
                    path = trainer.save_checkpoint(checkpoint)
                    yield ev.Message("info", f"Saved checkpoint after epoch {event.epoch}: {path}")
                except OSError as exc:
                    yield ev.Message("warning", f"Could not save the checkpoint: {exc}")
        if log is not None:
            log.close()
            yield ev.Message("info", f"TensorBoard log: {board}")

    def compare(
        self,
        comparison: Comparison | RepeatedComparison,
        scan: ScanResult,
        cancel: CancelToken,
        board: Path | None = None,
    ) -> Iterator[ev.Event]:
        """Run a comparison (or one repeated over folds); every candidate of the first fold that
        finished an epoch is recorded as a run (and, with ``board``, logged to TensorBoard in a
        sub-folder per candidate)."""
        from ftgui.core.workflows.compare import CandidateEvent, ComparisonFinished
        from ftgui.core.workflows.repeats import RepeatedComparison
        from ftgui.core.workflows.tensorboard import CandidateLogs

        repeated = comparison if isinstance(comparison, RepeatedComparison) else None
        first = comparison.first if isinstance(comparison, RepeatedComparison) else comparison
        logs = CandidateLogs(board, first.trainers) if board is not None else None
        events = repeated.run(cancel) if repeated is not None else first.run(cancel, scan)
        for event in events:
            if repeated is not None and repeated.fold > 1:
                yield event  # later folds measure; the first fold's models are the ones kept
                continue
            if logs is not None and isinstance(event, CandidateEvent):
                logs(event.candidate, event.event)
            if isinstance(event, ComparisonFinished):
                if logs is not None and logs.close():
                    yield ev.Message("info", f"TensorBoard logs: {board}")
                for s in event.summaries:
                    if s.name in first.trainers and s.epochs >= 1:
                        yield self._record(
                            first.trainers[s.name], s.seconds, candidate=s.name, ended=s.status
                        )
            yield event

    def _record(
        self, trainer: Trainer, seconds: float, candidate: str | None = None, ended: str = "finished"
    ) -> ev.Message:
        """Keep the run in the runs folder (a failure to write it never fails the run)."""
        from ftgui.core.workflows.runs import record_run

        try:
            comparison = "window comparison" if candidate else None
            record = record_run(
                trainer, "window", seconds=seconds, comparison=comparison, candidate=candidate, ended=ended
            )
        except (OSError, FtguiError) as exc:
            return ev.Message("warning", f"The run could not be recorded in the runs folder: {exc}")
        self._records[trainer] = record.id  # an export later says where it went
        return ev.Message("info", f"Recorded as run {record.id}.")

    def load_checkpoint(self, path: str | os.PathLike[str]) -> Trainer:
        from ftgui.core.training.engine import Trainer

        trainer = Trainer.from_checkpoint(path)
        self.trainer, self.resuming = trainer, True
        return trainer

    def resume_mismatch(self, scan: ScanResult | None) -> str | None:
        """Why the checkpoint loaded for resuming cannot train the folder ``scan`` shows (another
        folder, other classes), or None when it can (or nothing is being resumed)."""
        t = self.trainer
        if not self.resuming or t is None or t.scan is None or scan is None:
            return None
        mine = f"{t.scan.root} ({len(t.scan.classes)} classes: {', '.join(t.scan.classes[:6])})"
        if os.path.realpath(scan.root) != os.path.realpath(t.scan.root):
            return f"The checkpoint belongs to {mine}, not to the open folder {scan.root}."
        if list(scan.classes) != list(t.scan.classes):
            return f"The checkpoint was trained on {mine}; the folder now has {', '.join(scan.classes[:6])}."
        return None

    def open_bundle(self, folder: str | os.PathLike[str]) -> Predictor:
        from ftgui.core.bundle.predict import Predictor

        self.bundle = Predictor.load(folder)
        return self.bundle

    def trainer_predictor(self) -> Predictor | None:
        """A predictor over the model just trained (shares its weights), or None."""
        from ftgui.core.bundle.predict import Predictor

        t = self.trainer
        if t is None or t.epoch < 1 or t.built is None:
            return None
        return Predictor(t.model, list(t.classes), t.preprocess, {"arch": t.built.arch})

    def export(
        self,
        folder: str,
        formats: tuple[str, ...],
        lock: OutputLock,
        watch: Watch | None = None,
        max_drop: float | None = None,
    ) -> list[ExportCheck]:
        """The bundle, MODEL_CARD.md and the chosen formats (each checked), under ``lock``;
        Stop (the job's cancel) leaves the folder as it was."""
        from ftgui.core.deploy.export import export_all

        trainer = self.trainer
        if trainer is None:
            raise FtguiError("There is no trained model to export.")
        try:
            cancel = self.job.cancel if self.job is not None else None
            stop = (lambda: cancel.cancelled) if cancel is not None else None
            checks = export_all(
                trainer.trained(), folder, formats, stop=stop, watch=watch, discard_on_stop=True
            )
        finally:
            lock.release()
        self._exported = (trainer, trainer.epoch, folder)
        if trainer in self._records:  # Runs shows the run as exported, and where
            from ftgui.core.workflows.runs import note_export

            with contextlib.suppress(OSError, FtguiError):
                note_export(self._records[trainer], folder)
        return checks

    def exported_to(self) -> str | None:
        """Where the model just trained was last exported, unless it trained on since."""
        if self._exported is None:
            return None
        trainer, epoch, folder = self._exported
        return folder if trainer is self.trainer and epoch == trainer.epoch else None

    def check_export(self, folder: str, formats: tuple[str, ...]) -> OutputLock:
        """The quick checks before an export starts (packages, folder, space) and the folder's lock."""
        from ftgui.core.base.files import OutputLock
        from ftgui.core.bundle.export import check_output_folder
        from ftgui.core.deploy.registry import missing_format_packages
        from ftgui.core.models.layers import count_params

        trainer = self.trainer
        if trainer is None or trainer.epoch < 1:
            raise FtguiError("There is no trained model to export.")
        missing = missing_format_packages(formats)
        if missing:
            raise FtguiError(missing)
        total = count_params(trainer.model)[1]
        check_output_folder(
            folder, trainer.scan.root if trainer.scan else None, total, 0, False, "Export folder"
        )
        # The same lock as ftgui-train's: never export into a folder a training run writes to.
        return OutputLock(Path(folder)).acquire("ftgui window: export")
