"""Plots of fitted mixtures (matplotlib).  Each function takes an optional ``ax`` and returns it."""

from __future__ import annotations

import numpy as np

__all__ = ["plot_clusters"]


def _axes(ax):
    if ax is None:
        import matplotlib.pyplot as plt

        _, ax = plt.subplots(figsize=(6, 5))
    return ax


def _covariance_matrices(est) -> np.ndarray:
    """Dense (K, d, d) covariances of a fitted estimator, whatever its covariance type."""
    cov = np.asarray(est.covariances_)
    k, d = est.means_.shape
    ct = est.covariance_type
    if ct == "full":
        return cov
    if ct == "tied":
        return np.broadcast_to(cov, (k, d, d))
    if ct == "diag":
        return np.stack([np.diag(c) for c in cov])
    return cov[:, None, None] * np.eye(d)


def _ellipse(ax, mean, cov, n_std, **kwargs):
    from matplotlib.patches import Ellipse

    vals, vecs = np.linalg.eigh(cov)
    angle = np.degrees(np.arctan2(vecs[1, -1], vecs[0, -1]))
    width, height = 2.0 * n_std * np.sqrt(np.maximum(vals[::-1], 0.0))
    patch = Ellipse(mean, width, height, angle=angle, **kwargs)
    ax.add_patch(patch)
    return patch


def plot_clusters(est, X, ax=None, *, n_std=(1.0, 2.0), dims=(0, 1), title=None):
    """Data coloured by most probable component, with 1- and 2-sd ellipses of each component.

    For ``d > 2`` the plot shows the two columns named by ``dims`` (the ellipses are the
    exact marginals of each component on those columns); for ``d == 1`` a histogram with the
    component densities.
    """
    ax = _axes(ax)
    X = np.asarray(X, dtype=float)
    labels = est.predict(X)
    k, d = est.means_.shape
    colors = [f"C{j % 10}" for j in range(k)]
    if d == 1:
        from scipy.stats import norm

        cov = _covariance_matrices(est)[:, 0, 0]
        grid = np.linspace(X.min(), X.max(), 400)
        ax.hist(X[:, 0], bins=50, density=True, color="0.8")
        for j in range(k):
            ax.plot(grid, est.weights_[j] * norm.pdf(grid, est.means_[j, 0], np.sqrt(cov[j])), color=colors[j])
        ax.set_xlabel("x0")
        ax.set_ylabel("density")
    else:
        i, j2 = dims
        if not (0 <= i < d and 0 <= j2 < d and i != j2):
            raise ValueError(f"dims must name two different columns in [0, {d - 1}], got {dims}.")
        cov = _covariance_matrices(est)[:, [i, j2]][:, :, [i, j2]]
        ax.scatter(X[:, i], X[:, j2], c=[colors[c] for c in labels], s=8, alpha=0.6, linewidths=0)
        for j in range(k):
            for s in n_std:
                _ellipse(ax, est.means_[j, [i, j2]], cov[j], s, fill=False, color=colors[j], lw=1.5 if s == n_std[0] else 0.8)
            ax.plot(*est.means_[j, [i, j2]], "x", color="k", ms=6)
        ax.set_xlabel(f"x{i}")
        ax.set_ylabel(f"x{j2}")
    if title:
        ax.set_title(title)
    return ax
