"""Built-in data: the seed problem every part of the project uses."""

from __future__ import annotations

import numpy as np

__all__ = ["make_seed_problem", "seed_problem_holdout"]

#: make_blobs arguments and shear of the seed problem
_BLOBS = dict(cluster_std=0.5, random_state=20, n_samples=1000, centers=10)


def _shear() -> np.ndarray:
    return np.random.RandomState(0).randn(2, 2)


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

    X, y = make_blobs(**_BLOBS)
    return X @ _shear(), y


def seed_problem_holdout(n: int = 500, random_state=1) -> np.ndarray:
    """New points from the seed problem's generating process (held-out data).

    The same ten centres, spread (0.5) and shear as :func:`make_seed_problem`, with fresh noise
    from ``random_state``; centres are picked uniformly.

    Returns
    -------
    X : ndarray of shape (n, 2)
    """
    from sklearn.datasets import make_blobs

    _, _, centers = make_blobs(**_BLOBS, return_centers=True)
    rng = np.random.default_rng(random_state)
    labels = rng.integers(0, centers.shape[0], size=n)
    X = centers[labels] + _BLOBS["cluster_std"] * rng.normal(size=(n, centers.shape[1]))
    return X @ _shear()
