"""The spherical family: one variance per component, the same for every feature."""

from __future__ import annotations

import numpy as np

from bayes_gmm.model.densities import log_invgamma
from bayes_gmm.model.families.base import SufficientStatistics
from bayes_gmm.model.families.kernels import LOG_2PI, centered_t, diagonal_moments, ordered_safe
from bayes_gmm.model.families.variance import VarianceFamily


class SphericalCovariance(VarianceFamily):
    name = "spherical"
    mclust_name = "VII"
    covariance_dims = ("component",)

    def variances_per_feature(self, covariances):
        return covariances[..., None]

    @staticmethod
    def _squares(X):
        return np.sum(X * X, axis=1, keepdims=True)

    @staticmethod
    def _inverse_variances(covariances):
        return (1.0 / covariances)[..., None]

    @staticmethod
    def _weighted_squares(mu, inv_var, ops):
        return ops.sum(mu**2, axis=-1) * inv_var[..., 0]

    @staticmethod
    def _log_det(covariances, n_features, ops):
        return n_features * ops.log(covariances)

    def n_quadratic_features(self, n_features):
        return n_features + 1
    common_scale = True
    common_scale_reason = "gives every column the same variance"

    def prior_rate_shape(self, n_features):
        return ()

    def default_prior_rate(self, column_variances, raw_variances, live):
        # one rate: the mean variance of the columns that are not constant
        return float(np.mean(raw_variances[live]) if live.any() else np.mean(column_variances))

    @staticmethod
    def _common(scale) -> float:
        scale = np.asarray(scale, dtype=float).reshape(-1)
        if not np.all(scale == scale[0]):
            raise ValueError("a spherical covariance can only be rescaled by one scale for all columns.")
        return float(scale[0])

    def rescale_covariances(self, covariances, scale):
        return np.asarray(covariances, dtype=float) * self._common(scale) ** 2

    def scale_factor_rows(self, factor, row_scale):
        return np.asarray(factor, dtype=float) * self._common(row_scale)

    def log_jacobian(self, n_components, scale, prior=None):
        return float(2.0 * n_components * np.log(self._common(scale)))

    def identity_covariances(self, n_components, n_features):
        return np.ones(n_components)

    def n_cov_parameters(self, k, d):
        return k

    def covariance_shape(self, k, d):
        return (k,)

    def dense(self, covariances, k, d):
        return np.asarray(covariances, dtype=float)[..., None, None] * np.eye(d)

    def whiten_rows_t(self, X, means, prec_chol):
        Xt, shifted = centered_t(X, means)
        dtype = Xt.dtype
        Y = Xt[None, :, :] - shifted.astype(dtype)[:, :, None]
        Y *= prec_chol.astype(dtype)[:, None, None]
        return Y

    def log_det_precision_cholesky(self, prec_chol, d):
        return d * np.log(prec_chol)

    def whitened_moments(self, Y, resp):
        first, second = diagonal_moments(Y, resp)
        return first, second.sum(axis=1)

    def _second_from_diagonal(self, diagonal):
        return diagonal.sum(axis=1)

    def finalize(self, raw, params):
        std = params.covariances_cholesky
        nk = raw.nk
        safe = ordered_safe(nk)
        xbar = params.means + std[:, None] * raw.first / safe[:, None]
        scatter = std**2 * (raw.second - np.sum((raw.first / safe[:, None]) * raw.first, axis=1))
        return SufficientStatistics(nk, xbar, np.maximum(scatter, 0.0), raw.total_weight, raw.log_likelihood)

    def _reference_scatter(self, X, w, xbar):
        return np.array([w[:, j] @ np.sum((X - xbar[j]) ** 2, axis=1) for j in range(xbar.shape[0])])

    def _map_covariances(self, stats, prior, diff, shrink):
        d = diff.shape[1]
        B = shrink * np.sum(diff**2, axis=1)
        return (2.0 * prior.b0 + stats.scatter + B) / (2.0 * prior.a0 + (stats.nk + 1.0) * d + 2.0)

    def ml_step(self, stats, reg_covar=0.0):
        d = stats.xbar.shape[1]
        return stats.xbar.copy(), stats.scatter / (d * ordered_safe(stats.nk)) + reg_covar

    def log_prior(self, means, covariances, prior, covariances_cholesky=None):
        d = means.shape[1]
        var = covariances / prior.kappa0
        sq = np.sum((means - prior.m0) ** 2, axis=1)
        return float(
            np.sum(log_invgamma(covariances, prior.a0, prior.b0))
            + np.sum(-0.5 * (d * (LOG_2PI + np.log(var)) + sq / var))
        )

    def component_cholesky(self, cov_chol, k, d):
        return cov_chol[k] * np.eye(d)
