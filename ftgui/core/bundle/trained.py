"""A trained model and what its bundle records: what export, model cards and run records read.

The trainer makes one (``Trainer.trained()``); nothing here knows the trainer, so the bundle
sits below training in the layers and a bundle can be written from any source of weights.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any

from torch import nn

from ftgui.core.data.fingerprint import DataFingerprint, fingerprint
from ftgui.core.data.samples import ScanResult, Split
from ftgui.core.models.build import BuiltModel
from ftgui.core.models.preprocess import Preprocess

if TYPE_CHECKING:
    from ftgui.core.evaluation.metrics import Evaluation


@dataclass(frozen=True)
class TrainedModel:
    """The model (not a copy: it is read while exporting) and the run's plain-value record."""

    built: BuiltModel
    scan: ScanResult
    split: Split | None
    training: dict[str, Any]  # the run's configuration, TrainConfig.to_dict()
    distributed: dict[str, Any]  # processes and batch sizes (metadata.distributed_record)
    epochs_completed: int = 0
    best_epoch: int | None = None
    weights_from: str = ""  # which epoch's weights the model holds, and why
    history: list[dict[str, Any]] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)  # relative path -> reason
    evaluation: Evaluation | None = None  # the latest evaluation of this model, if any
    run_id: str = ""  # the training run (TrainerState.run_id): tells another run's export apart
    reproducibility: dict[str, Any] = field(default_factory=dict)  # seeds, precision, versions, machine

    @cached_property
    def data(self) -> DataFingerprint | None:
        """The files trained and validated on, hashed: taken when a bundle is written (hashes of
        the files the run read come from the fingerprint memo), not by every call that only
        asks which model this is."""
        return fingerprint(self.scan.root, [*self.split.train, *self.split.val]) if self.split else None

    @property
    def model(self) -> nn.Module:
        return self.built.model

    @property
    def preprocess(self) -> Preprocess:
        return self.built.preprocess

    @property
    def classes(self) -> list[str]:
        return list(self.scan.classes)
