"""The tied family: one covariance matrix shared by all components."""

from __future__ import annotations

import numpy as np

from bayes_gmm.model.array_ops import NUMPY_OPS
from bayes_gmm.model.families.base import SufficientStatistics
from bayes_gmm.model.families.kernels import centered_t, cholesky_pair, ordered_safe, triangular_inverse
from bayes_gmm.model.families.matrix import MatrixFamily


class TiedCovariance(MatrixFamily):
    name = "tied"
    mclust_name = "EEE"
    covariance_dims = ("feature", "feature_bis")

    def quadratic_coefficients(self, mu, covariances, n_features, ops=NUMPY_OPS):
        prec, logdet = self._precision(covariances, ops)  # one matrix: every component's
        second, prec_mu = self._matrix_coefficients(mu, prec[..., None, :, :], n_features, ops)
        per_component = ops.ones_like(mu[..., :1])  # (..., K, 1)
        coef = ops.concatenate([second * per_component, -2.0 * prec_mu], axis=-1)
        return coef, ops.sum(mu * prec_mu, axis=-1), logdet[..., None] * per_component[..., 0]

    def _component(self, j):
        return None

    def _matrices(self, n_components):
        return 1

    def identity_covariances(self, n_components, n_features):
        return np.eye(n_features)

    def n_cov_parameters(self, k, d):
        return d * (d + 1) // 2

    def covariance_shape(self, k, d):
        return (d, d)

    def dense(self, covariances, k, d):
        cov = np.asarray(covariances, dtype=float)
        return np.broadcast_to(cov[..., None, :, :], (*cov.shape[:-2], k, d, d))

    def covariances_cholesky_from_precisions(self, prec_chol):
        return triangular_inverse(np.asarray(prec_chol, dtype=float).T)

    def cholesky(self, covariances):
        return cholesky_pair(np.asarray(covariances, dtype=float), None, self.name)

    def covariances_from_precisions_cholesky(self, prec_chol):
        inv = triangular_inverse(np.asarray(prec_chol, dtype=float).T)
        return inv @ inv.T

    def whiten_rows_t(self, X, means, prec_chol):
        Xt, shifted = centered_t(X, means)
        dtype = Xt.dtype
        whitened = prec_chol.T.astype(dtype) @ Xt
        return whitened[None, :, :] - (shifted @ prec_chol).astype(dtype)[:, :, None]

    def log_det_precision_cholesky(self, prec_chol, d):
        return np.sum(np.log(np.diag(prec_chol)))

    def whitened_moments(self, Y, resp):
        root = np.sqrt(resp)
        Y *= root[:, None, :]
        k, d, _ = Y.shape
        first = np.empty((k, d))
        second = np.zeros((d, d))
        for j in range(k):
            first[j] = Y[j] @ root[j]
            second += Y[j] @ Y[j].T
        return first, second

    def finalize(self, raw, params):
        L = params.covariances_cholesky
        nk = raw.nk
        safe = ordered_safe(nk)
        xbar = params.means + (raw.first @ L.T) / safe[:, None]
        inner = raw.second - (raw.first / safe[:, None]).T @ raw.first
        scatter = L @ inner @ L.T
        scatter = 0.5 * (scatter + scatter.T)
        return SufficientStatistics(nk, xbar, scatter, raw.total_weight, raw.log_likelihood)

    def _reference_scatter(self, X, w, xbar):
        out = np.zeros((X.shape[1], X.shape[1]))
        for j in range(xbar.shape[0]):
            diff = X - xbar[j]
            out += (w[:, j][:, None] * diff).T @ diff
        return out

    def scatter_from_components(self, scatters):
        return np.sum(scatters, axis=0)  # one matrix: the components' scatters pooled

    def _map_covariances(self, stats, prior, diff, shrink):
        k, d = diff.shape
        B = (diff * shrink[:, None]).T @ diff
        denom = prior.nu0 + stats.total_weight + k + d + 1.0
        return (prior.psi0 + stats.scatter + B) / denom

    def ml_step(self, stats, reg_covar=0.0):
        d = stats.xbar.shape[1]
        cov = stats.scatter / stats.total_weight + reg_covar * np.eye(d)
        return stats.xbar.copy(), cov

    def component_cholesky(self, cov_chol, k, d):
        return cov_chol
