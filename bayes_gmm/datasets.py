"""Built-in data: the seed problem every part of the project uses."""

from __future__ import annotations

import numpy as np

__all__ = ["make_seed_problem"]


def make_seed_problem() -> tuple[np.ndarray, np.ndarray]:
    """The seed problem: 1000 points from 10 sheared Gaussian blobs in 2-D.

    ``make_blobs(cluster_std=0.5, random_state=20, n_samples=1000, centers=10)`` sheared by
    ``RandomState(0).randn(2, 2)``.  Some blobs overlap after the shear, and a hand-written
    maximum-likelihood EM from the classic start collapses a component on it.

    Returns
    -------
    X : ndarray of shape (1000, 2)
    y : ndarray of shape (1000,), the true blob of each point
    """
    from sklearn.datasets import make_blobs

    X, y = make_blobs(cluster_std=0.5, random_state=20, n_samples=1000, centers=10)
    X = X @ np.random.RandomState(0).randn(2, 2)
    return X, y
