"""The full family: one covariance matrix per component, and the kernels of its E-step
(which the variance families borrow up to ``kernels.GEMM_MAX_D`` features)."""

from __future__ import annotations

import numpy as np

from bayes_gmm.model.array_ops import NUMPY_OPS
from bayes_gmm.model.blas import trmm_right_upper
from bayes_gmm.model.families import kernels
from bayes_gmm.model.families.base import CovarianceFamily, GaussianParams, SufficientStatistics
from bayes_gmm.model.families.kernels import (
    LOG_2PI,
    centered_t,
    cholesky_pair,
    ordered_safe,
    params_cache,
    scratch,
    squared_norms_t,
    triangular_inverse,
    work_dtype,
)
from bayes_gmm.model.families.matrix import MatrixFamily


class FullCovariance(MatrixFamily):
    name = "full"
    mclust_name = "VVV"
    covariance_dims = ("component", "feature", "feature_bis")

    def quadratic_coefficients(self, mu, covariances, n_features, ops=NUMPY_OPS):
        prec, logdet = self._precision(covariances, ops)
        second, prec_mu = self._matrix_coefficients(mu, prec, n_features, ops)
        coef = ops.concatenate([second, -2.0 * prec_mu], axis=-1)
        return coef, ops.sum(mu * prec_mu, axis=-1), logdet

    def _matrices(self, n_components):
        return n_components

    def identity_covariances(self, n_components, n_features):
        return np.broadcast_to(np.eye(n_features), (n_components, n_features, n_features)).copy()

    def n_cov_parameters(self, k, d):
        return k * d * (d + 1) // 2

    def covariance_shape(self, k, d):
        return (k, d, d)

    def dense(self, covariances, k, d):
        return np.asarray(covariances, dtype=float)

    def covariances_cholesky_from_precisions(self, prec_chol):
        return np.stack([triangular_inverse(p.T) for p in np.asarray(prec_chol, dtype=float)])

    def cholesky(self, covariances):
        cov = np.asarray(covariances, dtype=float)
        k, d, _ = cov.shape
        if d <= kernels.BATCHED_CHOLESKY_MAX_D and np.all(np.isfinite(cov)):
            # small matrices: one batched call each instead of k LAPACK calls from Python
            try:
                lower = np.linalg.cholesky(cov)
            except np.linalg.LinAlgError:
                pass  # the loop below names the component that failed
            else:
                diag = np.diagonal(lower, axis1=1, axis2=2)
                if np.all(diag > 0) and np.all(np.isfinite(lower)):
                    prec_chol = np.triu(np.linalg.inv(lower).transpose(0, 2, 1))
                    return lower, prec_chol
        cov_chol = np.empty_like(cov)
        prec_chol = np.empty_like(cov)
        for j in range(k):
            cov_chol[j], prec_chol[j] = cholesky_pair(cov[j], j, self.name)
        return cov_chol, prec_chol

    def covariances_from_precisions_cholesky(self, prec_chol):
        prec_chol = np.asarray(prec_chol, dtype=float)
        out = np.empty_like(prec_chol)
        for j, p in enumerate(prec_chol):
            inv = triangular_inverse(p.T)  # (P^T)^-1: precision = P P^T, so Sigma = P^-T P^-1
            out[j] = inv @ inv.T
        return out

    def whiten_rows_t(self, X, means, prec_chol):
        k, d, _ = prec_chol.shape
        Xt, shifted = centered_t(X, means)
        dtype = Xt.dtype
        # one matrix product whitens the block for all components: rows k*d..(k+1)*d are P_k^T
        stacked = prec_chol.transpose(0, 2, 1).reshape(k * d, d).astype(dtype)
        shift = np.einsum("kd,kde->ke", shifted, prec_chol).reshape(k * d, 1)
        Y = stacked @ Xt
        Y -= shift.astype(dtype)
        return Y.reshape(k, d, -1)

    def log_det_precision_cholesky(self, prec_chol, d):
        return np.sum(np.log(np.diagonal(prec_chol, axis1=1, axis2=2)), axis=1)

    def _block_log_prob(self, X, params):
        """Augmented whitened block ``Z`` (d+1, K, m): ``Z[0]`` is 1, ``Z[1:, k]`` is y of component k.

        The row of ones makes each component's count and first moment come out of the same
        matrix product as its second moment.  Row ``j`` of every component is contiguous
        (``Z[j]`` is (K, m)), so that rows ``lo:hi`` of all components come out of one product
        (:func:`_augmented_whitener`).  ``Z`` and the log-densities are scratch arrays of this
        thread.
        """
        k, d = params.means.shape
        m = X.shape[0]
        dtype = work_dtype(X)
        if dtype == np.float64 and d <= kernels.PAIRS_MAX_D:
            return _pairwise_log_prob(X, params, _block_constants(self, params, dtype))
        Z = scratch("Z", (d + 1, k, m), dtype)
        log_prob = scratch("log_prob", (k, m), dtype)
        center, pieces, Q = _augmented_whitener(params, dtype)
        Xa = _augmented_rows(X, center)
        if d <= kernels.STACKED_GEMM_MAX_D:  # all components in a few general products
            for A, lo, hi in pieces:
                np.matmul(A, Xa[:hi], out=Z[lo:hi].reshape((hi - lo) * k, m))
        else:  # half the flops
            for j in range(k):
                _whiten_component(Xa, Q[j], Z[:, j])
        squared_norms_t(Z[1:].transpose(1, 0, 2), out=log_prob)
        log_prob *= -0.5
        log_prob += _block_constants(self, params, dtype)[:, None]
        return Z, log_prob

    def _block_moments(self, Z, resp, params=None):
        """First and second moments (K, d) and (K, d, d) from the Gram matrices of ``Z``.

        ``G_k = sum_i r_ik z_ik z_ik^T`` (K, d+1, d+1) holds the first moment in ``[1:, 0]``
        and the second in ``[1:, 1:]``.  Small d: one batched product of ``r Z`` and ``Z``;
        large d: one SYRK per component of ``Z`` scaled by ``sqrt(r)``, without the rows whose
        responsibility is negligible (:func:`_weighted_rows`).
        """
        if Z.ndim == 2:  # the pairwise products of _pairwise_log_prob
            return _pairwise_moments(Z, resp, params)
        d = Z.shape[0] - 1
        by_component = Z.transpose(1, 0, 2)  # (K, d+1, m), rows strided
        if d <= kernels.GEMM_MAX_D:
            W = np.multiply(by_component, resp[:, None, :], out=scratch("W", by_component.shape, Z.dtype))
            G = np.matmul(W, by_component.transpose(0, 2, 1))
        else:
            root = np.sqrt(resp)
            keep = resp > kernels.NEGLIGIBLE_SHARE * resp.sum(axis=1, dtype=np.float64, keepdims=True)
            sparse = np.count_nonzero(keep, axis=1) <= (1.0 - kernels.SPARSE_ZERO_SHARE) * resp.shape[1]
            G = np.empty((Z.shape[1], d + 1, d + 1), dtype=Z.dtype)
            for j, Zj in enumerate(by_component):
                W = _weighted_rows(Zj, root[j], keep[j] if sparse[j] else None)
                np.matmul(W, W.T, out=G[j])
        G = G.astype(np.float64, copy=False)
        # the per-block second moments need not be symmetric: finalize symmetrises the scatter
        return G[:, 1:, 0].copy(), G[:, 1:, 1:].copy()

    def whitened_moments(self, Y, resp):
        # scaled by sqrt(r), each second moment is a symmetric rank-m update (SYRK)
        root = np.sqrt(resp)
        Y *= root[:, None, :]
        k, d, _ = Y.shape
        first = np.empty((k, d))
        second = np.empty((k, d, d))
        for j in range(k):
            first[j] = Y[j] @ root[j]
            second[j] = Y[j] @ Y[j].T
        return first, second

    def finalize(self, raw, params):
        L = params.covariances_cholesky
        nk = raw.nk
        safe = ordered_safe(nk)
        xbar = params.means + np.einsum("kij,kj->ki", L, raw.first) / safe[:, None]
        # mean first, then the product: first**2 overflows for weights near 1e300
        inner = raw.second - np.einsum("ki,kj->kij", raw.first / safe[:, None], raw.first)
        scatter = L @ inner @ L.transpose(0, 2, 1)
        scatter = 0.5 * (scatter + scatter.transpose(0, 2, 1))
        return SufficientStatistics(nk, xbar, scatter, raw.total_weight, raw.log_likelihood)

    def _reference_scatter(self, X, w, xbar):
        out = np.empty((xbar.shape[0], X.shape[1], X.shape[1]))
        for j in range(xbar.shape[0]):
            diff = X - xbar[j]
            out[j] = (w[:, j][:, None] * diff).T @ diff
        return out

    def _map_covariances(self, stats, prior, diff, shrink):
        d = diff.shape[1]
        B = shrink[:, None, None] * np.einsum("ki,kj->kij", diff, diff)
        denom = prior.nu0 + stats.nk + d + 2.0
        return (prior.psi0 + stats.scatter + B) / denom[:, None, None]

    def ml_step(self, stats, reg_covar=0.0):
        nk = stats.nk
        d = stats.xbar.shape[1]
        cov = stats.scatter / ordered_safe(nk)[:, None, None]
        cov = cov + reg_covar * np.eye(d)
        return stats.xbar.copy(), cov

    def component_cholesky(self, cov_chol, k, d):
        return cov_chol[k]


def _block_constants(family: CovarianceFamily, params: GaussianParams, dtype) -> np.ndarray:
    """``log pi_k + log det P_k - d/2 log(2 pi)`` (K,) in ``dtype``."""

    def compute():
        d = params.means.shape[1]
        const = np.log(params.weights) + family.log_det_precision_cholesky(params.precisions_cholesky, d)
        return (const - 0.5 * d * LOG_2PI).astype(dtype)

    return params_cache(params, ("constants", dtype), compute)


def _augmented_whitener(params: GaussianParams, dtype) -> tuple[np.ndarray, list[tuple], list[np.ndarray]]:
    """The augmented precision factors of the components (see ``FullCovariance._block_log_prob``).

    ``Q_k = [[1, -(mu_k - c) P_k], [0, P_k]]`` ((d+1) x (d+1), upper triangular) maps the row
    ``[1, x - c]`` to ``[1, (x - mu_k) P_k]``; ``c`` (d,), the mean of the means, keeps this
    accurate far from the origin.  Returns ``(c, pieces, Q)`` in ``dtype``: ``pieces`` lists
    ``(A, lo, hi)``, ``A`` ((hi - lo) K, hi) the rows ``lo:hi`` of every ``Q_k^T`` (row-major
    by row, then component) without their columns ``hi:``, which are zero (one product per
    piece whitens those rows for all components; ``kernels.WHITEN_PIECE_ROWS``); ``Q`` lists
    the ``Q_k`` in Fortran order (one TRMM each).
    """

    def compute():
        P = params.precisions_cholesky
        k, d, _ = P.shape
        # rounded to dtype first: the rows are shifted by exactly this number (see centered_t)
        center = params.means.mean(axis=0).astype(dtype).astype(np.float64)
        Q = np.zeros((k, d + 1, d + 1))
        Q[:, 0, 0] = 1.0
        Q[:, 0, 1:] = -np.einsum("kd,kde->ke", params.means - center, P)
        Q[:, 1:, 1:] = P
        Q = Q.astype(dtype)
        by_row = Q.transpose(2, 0, 1)  # [j, k, :] = row j of Q_k^T
        n_pieces = min(kernels.WHITEN_MAX_PIECES, -(-(d + 1) // kernels.WHITEN_PIECE_ROWS))
        bounds = np.linspace(0, d + 1, n_pieces + 1).round().astype(int)
        pieces = [
            (np.ascontiguousarray(by_row[lo:hi, :, :hi]).reshape((hi - lo) * k, hi), int(lo), int(hi))
            for lo, hi in zip(bounds[:-1], bounds[1:], strict=True)
        ]
        return center.astype(dtype), pieces, [np.asfortranarray(q) for q in Q]

    return params_cache(params, ("whitener", dtype), compute)


def _pairwise_whitener(params: GaussianParams) -> tuple[np.ndarray, np.ndarray, np.ndarray, tuple]:
    """What the pairwise-product kernel needs (see :func:`_pairwise_log_prob`), cached on params.

    Returns ``(c, C, Q, (rows, cols))``: ``c`` (d,) the mean of the means; ``C`` (K, p) the
    quadratic-form weights, ``-1/2 (B_k)_ij`` (doubled off the diagonal) with
    ``B_k = Q_k[:, 1:] Q_k[:, 1:]^T`` so that ``C @ pairs = -1/2 ||(x - mu_k) P_k||^2``; ``Q``
    (K, d+1, d+1) the augmented factors of :func:`_augmented_whitener`; the pair indices.
    """

    def compute():
        center, _, Q_list = _augmented_whitener(params, np.float64)
        Q = np.stack(Q_list)
        D = Q.shape[1]
        rows, cols = np.triu_indices(D)
        B = np.einsum("kij,klj->kil", Q[:, :, 1:], Q[:, :, 1:])
        C = -0.5 * B[:, rows, cols] * np.where(rows == cols, 1.0, 2.0)
        return center, np.ascontiguousarray(C), Q, (rows, cols)

    return params_cache(params, "pairwise", compute)


def _pairwise_log_prob(X: np.ndarray, params: GaussianParams, constants: np.ndarray):
    """Weighted log-densities (K, m) of a float64 block with small d, and its pair products.

    The squared whitened distance ``||Q_k^T xa||^2`` is a quadratic form in ``xa = [1, x - c]``,
    so for all components at once it is one product of the weights ``C`` (K, p) with the
    ``p = (d+1)(d+2)/2`` products ``xa_i xa_j`` (i <= j) of each row, and the same products
    give each component's Gram matrix ``sum_i r_ik xa xa^T`` with one more product
    (:func:`_pairwise_moments`).  That is about half the flops and a third of the memory
    traffic of whitening each component (measured 2x faster per block at d = 10, K = 10 on
    an Intel Xeon).  In the standardised units MapEM fits in, ``|x - c|`` stays near the
    data's spread, so the quadratic form loses at most a few digits to cancellation.
    """
    center, C, _, _ = _pairwise_whitener(params)
    m, d = X.shape
    D = d + 1
    pairs = scratch("pairs", (D * (D + 1) // 2, m), np.float64)
    Xa = pairs[:D]  # the products with xa_0 = 1 are xa itself
    Xa[0] = 1.0
    np.subtract(X.T, center[:, None], out=Xa[1:])
    row = D
    for i in range(1, D):
        np.multiply(Xa[i:], Xa[i], out=pairs[row : row + D - i])
        row += D - i
    log_prob = scratch("log_prob", (C.shape[0], m), np.float64)
    np.matmul(C, pairs, out=log_prob)
    log_prob += constants[:, None]
    return pairs, log_prob


def _pairwise_moments(pairs: np.ndarray, resp: np.ndarray, params: GaussianParams):
    """First and second moments in whitened coordinates from the pair products of a block."""
    _, _, Q, (rows, cols) = _pairwise_whitener(params)
    k, D = Q.shape[0], Q.shape[1]
    sums = (pairs @ resp.T).T  # (K, p): sum_i r_ik xa_i xa_j (this orientation was faster)
    M = np.zeros((k, D, D))
    M[:, rows, cols] = sums
    M[:, cols, rows] = sums
    G = np.einsum("kji,kjl,klm->kim", Q, M, Q)  # Q_k^T M_k Q_k
    return G[:, 1:, 0].copy(), G[:, 1:, 1:].copy()


def _augmented_rows(X: np.ndarray, center: np.ndarray) -> np.ndarray:
    """``[1, X - c]^T`` (d+1, m) in ``center``'s dtype, a scratch array of this thread."""
    m, d = X.shape
    Xa = scratch("Xa", (d + 1, m), center.dtype)
    Xa[0] = 1.0
    np.subtract(X.T, center[:, None], out=Xa[1:])
    return Xa


def _whiten_component(Xa: np.ndarray, Q: np.ndarray, out: np.ndarray) -> None:
    """``out`` (d+1, m) <- ``(Xa^T Q)^T`` with ``Q`` upper triangular: one in-place TRMM
    (GIL released, so the block threads run it concurrently); ``out``'s rows may be strided."""
    out[...] = Xa
    trmm_right_upper(Q, out)


def _weighted_rows(Zj: np.ndarray, root: np.ndarray, keep: np.ndarray | None) -> np.ndarray:
    """``Zj * root`` (d+1, m), or only its columns where the mask ``keep`` is True.

    ``Zj`` (d+1, m) is overwritten (scaled in place) when all its columns are kept.
    """
    if keep is None:
        Zj *= root
        return Zj
    index = np.flatnonzero(keep)
    # fancy indexing, not np.take: take copies the strided Zj to a contiguous array first
    # (a gather 3-4x slower at (d, K) = (100, 5))
    W = Zj[:, index]
    W *= root[index]
    return W
