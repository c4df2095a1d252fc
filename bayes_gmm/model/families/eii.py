"""mclust's EII model: one spherical covariance for every component, ``Sigma_k = lambda I``.

Prior (mclust's ``meEII`` under ``priorControl()``): ``lambda ~ InvGamma(a0, b0)`` once, each
mean ``N(m0, lambda I / kappa0)``, so the mode is
``lambda = (2 b0 + sum_k tr W_k + shrink_k |xbar_k - m0|^2) / (2 a0 + 2 + (n + K) d)``
(mclust leaves its scale out, ``b0 = 0``; here ``b0 > 0`` keeps ``lambda`` positive).
"""

from __future__ import annotations

import numpy as np

from bayes_gmm.model.families.constrained import ConstrainedSpherical, MclustPrior


class EIICovariance(MclustPrior, ConstrainedSpherical):
    name = mclust_name = "EII"

    @staticmethod
    def _count(k, d):
        return 1

    def _pseudo_counts(self, prior, k, d):
        return np.full(k, (2.0 * prior.a0 + 2.0) / (k * d))

    def _prior_scales(self, prior, k, d):
        return np.full(k, 2.0 * prior.b0 / k)  # traces: 2 b0 in all

    def _solve(self, T, c, d, start=None):
        return np.full(T.shape, T.sum() / (d * c.sum()))
