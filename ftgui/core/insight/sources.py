"""Where Check data and the bake-off take their features from: the configured model (its
weights, perhaps none), an exported bundle, or the model just trained (a copy of it)."""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING, Any

from ftgui.core.models.build import BuiltModel

if TYPE_CHECKING:
    from ftgui.core.bundle.trained import TrainedModel
    from ftgui.core.training.config import TrainConfig


def features_source(
    cfg: TrainConfig, bundle: str | None, trained: TrainedModel | None
) -> tuple[BuiltModel | None, dict[str, Any] | None, str]:
    """The model to build the features with (None: ``cfg``'s own), the split it recorded (its
    validation files stay validation files), and a description. With a bundle or a trained
    model, ``cfg`` takes its architecture and keeps its BatchNorm statistics (adapted, if they
    were, when it was trained)."""
    from ftgui.core.models import classifier_names

    weights = cfg.weights or "none"
    if bundle:
        from ftgui.core.bundle.predict import Predictor

        predictor = Predictor.load(bundle)
        meta = predictor.meta
        arch = str(meta["arch"])
        sha = str(meta.get("weights_sha256", ""))[:12]
        built = BuiltModel(
            predictor.model, arch, len(predictor.classes), classifier_names(predictor.model),
            predictor.preprocess, f"bundle {sha}", dict(meta.get("model_kwargs", {})),
        )  # fmt: skip
        cfg.arch, cfg.bn_stats = arch, "keep"
        return built, predictor.split(), f"the trained model in {bundle} ({arch})"
    if trained is not None:
        model = copy.deepcopy(trained.model).cpu()  # the window's model keeps its own state
        arch = trained.built.arch
        built = BuiltModel(
            model, arch, len(trained.classes), classifier_names(model), trained.preprocess,
            "the model just trained", dict(trained.built.model_kwargs),
        )  # fmt: skip
        cfg.arch, cfg.bn_stats = arch, "keep"
        n = trained.epochs_completed
        recorded = trained.split.to_dict() if trained.split is not None else None
        return built, recorded, f"the model just trained ({arch}, {n} epoch{'s' if n != 1 else ''})"
    if weights == "none":
        return None, None, f"{cfg.arch} without pretrained weights"
    return None, None, f"{cfg.arch} ({weights} weights)"
