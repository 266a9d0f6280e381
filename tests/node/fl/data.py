"""The breast-cancer data for the FL tests and the centralised scikit-learn baseline.

Split: 70/30 stratified with ``random_state=0``. Standardisation: mean and standard
deviation fitted on the whole training set, centrally, in the test only; in a real run
the providers would compute them with secure statistics (node/algorithms/stats.py, the
same secure sum) and standardise locally, which yields the same numbers.

Baseline: ``sklearn.linear_model.LogisticRegression(C=1.0, solver="lbfgs",
max_iter=5000)`` on the same standardised split; the FL runs minimise the same
objective, with l2 = 1 / (C * n_train) in the mean-loss form (``node/fl/models.py``).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import numpy as np
import numpy.typing as npt
from sklearn.datasets import load_breast_cancer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split

Array = npt.NDArray[np.float64]
C = 1.0


@dataclass(frozen=True)
class Split:
    x_train: Array
    y_train: Array
    x_test: Array
    y_test: Array
    baseline_accuracy: float

    @property
    def l2(self) -> float:
        return 1.0 / (C * len(self.y_train))


@cache
def breast_cancer() -> Split:
    x, y = load_breast_cancer(return_X_y=True)
    x_tr, x_te, y_tr, y_te = train_test_split(x, y, test_size=0.3, random_state=0, stratify=y)
    mean, std = x_tr.mean(axis=0), x_tr.std(axis=0)
    x_tr, x_te = (x_tr - mean) / std, (x_te - mean) / std
    clf = LogisticRegression(C=C, solver="lbfgs", max_iter=5000).fit(x_tr, y_tr)
    return Split(
        x_tr.astype(np.float64),
        y_tr.astype(np.float64),
        x_te.astype(np.float64),
        y_te.astype(np.float64),
        float(clf.score(x_te, y_te)),
    )


def horizontal_parts(split: Split, parts: int) -> list[tuple[Array, Array]]:
    """Rows dealt round-robin after a seeded shuffle: deterministic, similar sizes."""
    order = np.random.default_rng(7).permutation(len(split.y_train))
    return [(split.x_train[order[k::parts]], split.y_train[order[k::parts]]) for k in range(parts)]


def accuracy(scores: Array, y: Array) -> float:
    return float(np.mean((scores > 0) == (y == 1)))
