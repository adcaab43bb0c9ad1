"""Out-of-fold class probabilities: a linear head trained k times on frozen features, each
image predicted by the head that did not see it (Check data and the backbone ranking)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

Progress = Callable[[int, int], None]


def out_of_fold_probabilities(
    features: np.ndarray, labels: np.ndarray, folds: int, seed: int, progress: Progress | None = None
) -> np.ndarray:
    """Each image's class probabilities from a linear head trained without it (k folds; the
    columns are the labels present, in order; ``progress(fold, folds)`` after each)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    labels = np.asarray(labels)
    present = np.unique(labels)
    probs = np.zeros((len(labels), len(present)))
    cv = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    for fold, (train, test) in enumerate(cv.split(features, labels), start=1):
        head = make_pipeline(StandardScaler(), LogisticRegression(max_iter=300, C=0.5))
        head.fit(features[train], labels[train])
        columns = np.searchsorted(present, head.classes_)
        probs[np.ix_(test, columns)] = head.predict_proba(features[test])
        if progress:
            progress(fold, folds)
    return probs


def fold_ids(labels: np.ndarray, folds: int, seed: int) -> np.ndarray:
    """Which fold each image is predicted in by :func:`out_of_fold_probabilities` (the same
    stratified split for the same labels and seed, so backbones can be compared fold by fold)."""
    from sklearn.model_selection import StratifiedKFold

    labels = np.asarray(labels)
    ids = np.zeros(len(labels), dtype=int)
    cv = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    for fold, (_, test) in enumerate(cv.split(np.zeros(len(labels)), labels)):
        ids[test] = fold
    return ids
