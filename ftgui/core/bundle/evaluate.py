"""Evaluating an exported bundle on the validation split it records."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from ftgui.core.data.samples import Sample
from ftgui.core.evaluation.metrics import Evaluation
from ftgui.core.evaluation.stream import evaluate_model

if TYPE_CHECKING:
    from ftgui.core.bundle.predict import Predictor


def evaluate_bundle(predictor: Predictor, data_root: str | None = None, **kwargs: Any) -> Evaluation | None:
    """Evaluate an exported bundle on the validation files its split records."""
    split = predictor.split() or {}
    root = data_root or split.get("root", "")
    samples = [Sample(str(p), int(lbl)) for p, lbl in split.get("val", [])]
    if not samples or not os.path.isdir(root):
        return None
    return evaluate_model(predictor.model, predictor.preprocess, predictor.classes, root, samples, **kwargs)
