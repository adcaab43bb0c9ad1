"""Errors ftgui reports to the user: each carries a message meant to be read as is."""

from __future__ import annotations


class FtguiError(Exception):
    """Base class; ``str(err)`` is a complete, user-facing sentence."""


class DataError(FtguiError):
    """The image folder cannot be used (missing, too few classes, ...)."""


class ModelError(FtguiError):
    """Unknown architecture or a model that cannot be adapted."""


class WeightsError(FtguiError):
    """Pretrained weights are unavailable, unreadable or do not fit the model."""


class CheckpointError(FtguiError):
    """A checkpoint or exported bundle cannot be read or does not fit."""


class TrainingError(FtguiError):
    """Training stopped because of a problem (NaN loss, out of memory, ...)."""
