"""mclust's EVI model: ``Sigma_k = lambda A_k``, one volume, a diagonal shape per component.

Prior as mclust's ``meEVI`` under ``priorControl()``: per component the scale ``2 b0``, and
counts that add up to ``2 a0 + 2 + n`` (``q_k = (2 a0 + 2) / K - 1``); the mode is
``A_k ∝ diag T_k`` and ``lambda = sum_k |diag T_k|^(1/d) / (2 a0 + 2 + n)``.
"""

from __future__ import annotations

import numpy as np

from bayes_gmm.model.families import decomposition
from bayes_gmm.model.families.constrained import ConstrainedDiagonal, MclustPrior


class EVICovariance(MclustPrior, ConstrainedDiagonal):
    name = mclust_name = "EVI"

    @staticmethod
    def _count(k, d):
        return 1 + k * (d - 1)

    def _pseudo_counts(self, prior, k, d):
        return np.full(k, (2.0 * prior.a0 + 2.0) / k - 1.0)

    def _prior_scales(self, prior, k, d):
        return np.broadcast_to(2.0 * np.asarray(prior.b0), (k, d))

    def _solve(self, T, c, d, start=None):
        return decomposition.equal_volume_variable_shape(T, c)
