"""The base of the families whose covariances are matrices (full, tied)."""

from __future__ import annotations

import numpy as np
from scipy import stats

from bayes_gmm.model.densities import log_invwishart
from bayes_gmm.model.families.base import CovarianceFamily
from bayes_gmm.model.families.kernels import LOG_2PI


class MatrixFamily(CovarianceFamily):
    """Families whose covariances are matrices (full, tied): upper precision factors."""

    def n_quadratic_features(self, n_features):
        return n_features * (n_features + 3) // 2

    def quadratic_features(self, X):
        rows, cols = np.triu_indices(X.shape[1])
        return np.concatenate([X[:, rows] * X[:, cols], X], axis=1)

    def _precision(self, covariances, ops):
        """Precision matrices ``P P^T`` and ``log det Sigma`` (family shape, leading axes kept)."""
        P, logdet = ops.precision_cholesky(covariances)
        return ops.matmul(P, ops.swapaxes(P, -1, -2)), logdet

    def _matrix_coefficients(self, mu, prec, n_features, ops):
        rows, cols = np.triu_indices(n_features)
        prec_mu = ops.matmul(prec, mu[..., None])[..., 0]
        second = prec[..., rows, cols] * np.where(rows == cols, 1.0, 2.0)
        return second, prec_mu

    def symmetrized(self, covariances):
        return 0.5 * (covariances + np.swapaxes(covariances, -1, -2))

    def draw_prior_covariances(self, prior, n_components, rng):
        d = prior.n_features
        n = self._matrices(n_components)
        draws = stats.invwishart(df=prior.nu0, scale=prior.psi0).rvs(size=n, random_state=rng)
        return np.reshape(draws, self.covariance_shape(n_components, d))

    def whiten_draws(self, diff, covariances):
        L = np.linalg.cholesky(covariances)
        logdet = 2.0 * np.sum(np.log(np.diagonal(L, axis1=-2, axis2=-1)), axis=-1)
        L_inv = np.linalg.inv(L)
        if L_inv.ndim == 3:  # tied: one matrix per draw, every component's
            s, _, k, _ = diff.shape
            return np.einsum("sij,snkj->snki", L_inv, diff), np.broadcast_to(logdet[:, None], (s, k))
        return np.einsum("skij,snkj->snki", L_inv, diff), logdet

    def scale_noise(self, covariances, rows, labels, eps):
        L = np.linalg.cholesky(covariances)
        L_sel = L[rows, labels] if L.ndim == 4 else L[:, None]
        s, n, d = eps.shape
        return np.einsum("snij,snj->sni", np.broadcast_to(L_sel, (s, n, d, d)), eps)

    def mean_scale(self, covariances, spread, n_features):
        L = np.linalg.cholesky(np.asarray(covariances, dtype=float))
        return np.broadcast_to(L, (spread.shape[0], n_features, n_features)) * spread[:, None, None]

    def _spectra(self, covariances):
        stack = covariances.reshape(-1, *covariances.shape[-2:])
        return [np.linalg.eigvalsh(c) if np.all(np.isfinite(c)) else c.ravel() for c in stack]

    def check_covariances(self, cov, k, d):
        cov = super().check_covariances(cov, k, d)
        if not np.allclose(cov, np.swapaxes(cov, -1, -2)):
            raise ValueError(f"{self.name} covariances must be symmetric.")
        return cov

    wishart_prior = True
    positive_definite_words = "symmetric positive definite"

    def is_positive_definite(self, matrices):
        try:
            lower = np.linalg.cholesky(np.asarray(matrices, dtype=np.float64))
        except np.linalg.LinAlgError:
            return False
        return bool(np.all(np.isfinite(lower)) and np.all(np.diagonal(lower, axis1=-2, axis2=-1) > 0))

    def inverse(self, matrices):
        return np.linalg.inv(np.asarray(matrices, dtype=float))

    def precision_factor_diagonal(self, prec_chol, name="the precision factors"):
        if np.any(np.tril(prec_chol, -1) != 0):
            raise ValueError(f"{name} must be upper triangular")
        return np.diagonal(prec_chol, axis1=-2, axis2=-1)

    def whitening_residual(self, covariances, prec_chol):
        d = covariances.shape[-1]
        c, p = covariances.reshape(-1, d, d), prec_chol.reshape(-1, d, d)
        residual = np.abs(np.swapaxes(p, 1, 2) @ c @ p - np.eye(d)).max(axis=(1, 2))
        sd = np.sqrt(np.diagonal(c, axis1=1, axis2=2))
        bound = d * np.linalg.norm(sd[:, :, None] * p, ord=2, axis=(1, 2)) ** 2
        return residual, bound

    def precisions(self, prec_chol):
        prec_chol = np.asarray(prec_chol, dtype=float)
        return prec_chol @ np.swapaxes(prec_chol, -1, -2)

    def rescale_covariances(self, covariances, scale):
        return np.asarray(covariances, dtype=float) * np.multiply.outer(scale, scale)

    def scale_factor_rows(self, factor, row_scale):
        return np.asarray(factor, dtype=float) * np.asarray(row_scale, dtype=float)[:, None]

    def _matrices(self, n_components: int) -> int:
        raise NotImplementedError

    def log_jacobian(self, n_components, scale, prior=None):
        # entry (i, j) of each matrix is multiplied by s_i s_j: prod_{i <= j} s_i s_j = |S|^(d+1)
        d = len(scale)
        return float(self._matrices(n_components) * (d + 1) * np.sum(np.log(scale)))

    def log_prior(self, means, covariances, prior, covariances_cholesky=None):
        chol = np.linalg.cholesky(covariances) if covariances_cholesky is None else covariances_cholesky
        return float(
            np.sum(log_invwishart(covariances, prior.nu0, prior.psi0, chol, prior.psi0_cholesky))
            + np.sum(_log_mvnormal_batched(means, prior.m0, chol / np.sqrt(prior.kappa0)))
        )


def _log_mvnormal_batched(x: np.ndarray, mean: np.ndarray, cov_chol: np.ndarray) -> np.ndarray:
    """:func:`~bayes_gmm.model.prior.log_mvnormal` for a stack of factors (K, d, d), in one call."""
    diff = x - mean
    d = diff.shape[-1]
    z = np.linalg.solve(cov_chol, diff[..., None])[..., 0]
    logdet = 2.0 * np.sum(np.log(np.diagonal(cov_chol, axis1=-2, axis2=-1)), axis=-1)
    return -0.5 * (d * LOG_2PI + logdet + np.sum(z * z, axis=-1))
