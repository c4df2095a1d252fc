"""The one pass over the data that each EM iteration makes: E-step and statistics, by chunks.

Rows are processed in blocks so that no n x K x d temporary is ever built; the statistics of
the blocks add up (:class:`~bayes_gmm.covariance.RawStatistics`).  This is the only place
that walks over the rows of ``X``.
"""

from __future__ import annotations

import numpy as np
from scipy.special import logsumexp

from .covariance import CovarianceFamily, GaussianParams, RawStatistics

__all__ = ["accumulate", "chunk_rows", "weighted_log_prob"]

#: Target number of floats in the (rows x K x d) whitened block of one chunk.
_BLOCK_FLOATS = 1 << 17


def chunk_rows(n_samples: int, n_components: int, n_features: int, chunk_size: int | None = None) -> int:
    """Rows per block: ``chunk_size`` if given, else sized so a block stays in cache."""
    if chunk_size is not None:
        return max(1, min(int(chunk_size), n_samples))
    rows = _BLOCK_FLOATS // max(1, n_components * n_features)
    return max(256, min(rows, n_samples))


def _blocks(n_samples: int, rows: int):
    for start in range(0, n_samples, rows):
        yield slice(start, min(start + rows, n_samples))


def accumulate(
    family: CovarianceFamily,
    X: np.ndarray,
    sample_weight: np.ndarray | None,
    params: GaussianParams,
    chunk_size: int | None = None,
) -> RawStatistics:
    """E-step and sufficient statistics of all rows of ``X`` under ``params``."""
    n, d = X.shape
    k = params.means.shape[0]
    rows = chunk_rows(n, k, d, chunk_size)
    total: RawStatistics | None = None
    for block in _blocks(n, rows):
        w = None if sample_weight is None else sample_weight[block]
        raw = family.accumulate(np.asarray(X[block], dtype=float), w, params)
        total = raw if total is None else total + raw
    assert total is not None
    return total


def weighted_log_prob(
    family: CovarianceFamily, X: np.ndarray, params: GaussianParams, chunk_size: int | None = None
) -> np.ndarray:
    """``log pi_k + log N(x_i | mu_k, Sigma_k)``, shape (n, K), computed by blocks."""
    n, d = X.shape
    k = params.means.shape[0]
    rows = chunk_rows(n, k, d, chunk_size)
    out = np.empty((n, k))
    log_w = np.log(params.weights)
    for block in _blocks(n, rows):
        out[block] = family.log_prob(np.asarray(X[block], dtype=float), params.means, params.precisions_cholesky) + log_w
    return out


def log_responsibilities(weighted: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-row log normaliser and log responsibilities from weighted log probabilities."""
    log_norm = logsumexp(weighted, axis=1)
    return log_norm, weighted - log_norm[:, None]
