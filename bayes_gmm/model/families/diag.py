"""The diag family: one variance per component and feature."""

from __future__ import annotations

import numpy as np

from bayes_gmm.model.densities import log_invgamma
from bayes_gmm.model.families.base import SufficientStatistics
from bayes_gmm.model.families.kernels import LOG_2PI, centered_t, diagonal_moments, ordered_safe
from bayes_gmm.model.families.variance import VarianceFamily


class DiagCovariance(VarianceFamily):
    name = "diag"
    mclust_name = "VVI"
    covariance_dims = ("component", "feature")

    def variances_per_feature(self, covariances):
        return covariances

    @staticmethod
    def _squares(X):
        return X * X

    @staticmethod
    def _inverse_variances(covariances):
        return 1.0 / covariances

    @staticmethod
    def _weighted_squares(mu, inv_var, ops):
        return ops.sum(mu**2 * inv_var, axis=-1)

    @staticmethod
    def _log_det(covariances, n_features, ops):
        return ops.sum(ops.log(covariances), axis=-1)

    def n_quadratic_features(self, n_features):
        return 2 * n_features

    def prior_rate_shape(self, n_features):
        return (n_features,)

    def default_prior_rate(self, column_variances, raw_variances, live):
        return column_variances  # one rate per column

    def rescale_covariances(self, covariances, scale):
        return np.asarray(covariances, dtype=float) * np.asarray(scale, dtype=float) ** 2

    def scale_factor_rows(self, factor, row_scale):
        return np.asarray(factor, dtype=float) * np.asarray(row_scale, dtype=float)

    def log_jacobian(self, n_components, scale, prior=None):
        return float(2.0 * n_components * np.sum(np.log(scale)))

    def identity_covariances(self, n_components, n_features):
        return np.ones((n_components, n_features))

    def n_cov_parameters(self, k, d):
        return k * d

    def covariance_shape(self, k, d):
        return (k, d)

    def dense(self, covariances, k, d):
        return np.asarray(covariances, dtype=float)[..., :, None] * np.eye(d)

    def whiten_rows_t(self, X, means, prec_chol):
        Xt, shifted = centered_t(X, means)
        dtype = Xt.dtype
        Y = Xt[None, :, :] - shifted.astype(dtype)[:, :, None]
        Y *= prec_chol.astype(dtype)[:, :, None]
        return Y

    def log_det_precision_cholesky(self, prec_chol, d):
        return np.sum(np.log(prec_chol), axis=1)

    def whitened_moments(self, Y, resp):
        return diagonal_moments(Y, resp)

    def _second_from_diagonal(self, diagonal):
        return diagonal.copy()

    def finalize(self, raw, params):
        std = params.covariances_cholesky
        nk = raw.nk
        safe = ordered_safe(nk)
        xbar = params.means + std * raw.first / safe[:, None]
        scatter = std**2 * (raw.second - (raw.first / safe[:, None]) * raw.first)
        return SufficientStatistics(nk, xbar, np.maximum(scatter, 0.0), raw.total_weight, raw.log_likelihood)

    def _reference_scatter(self, X, w, xbar):
        return np.stack([w[:, j] @ (X - xbar[j]) ** 2 for j in range(xbar.shape[0])])

    def _map_covariances(self, stats, prior, diff, shrink):
        B = shrink[:, None] * diff**2
        return (2.0 * prior.b0 + stats.scatter + B) / (2.0 * prior.a0 + stats.nk + 3.0)[:, None]

    def ml_step(self, stats, reg_covar=0.0):
        return stats.xbar.copy(), stats.scatter / ordered_safe(stats.nk)[:, None] + reg_covar

    def log_prior(self, means, covariances, prior, covariances_cholesky=None):
        var = covariances / prior.kappa0
        return float(
            np.sum(log_invgamma(covariances, prior.a0, prior.b0))
            + np.sum(-0.5 * (LOG_2PI + np.log(var) + (means - prior.m0) ** 2 / var))
        )

    def component_cholesky(self, cov_chol, k, d):
        return np.diag(cov_chol[k])
