"""mclust's VEI model: ``Sigma_k = lambda_k A``, one diagonal shape ``A`` (``|A| = 1``).

Prior as mclust's ``meVEI`` under ``priorControl()``: per component the scale ``2 b0`` and the
count ``q_k = (2 a0 + 3) / d - 1`` (mclust counts each mean's prior once per volume, not d
times); the mode alternates ``lambda_k = tr(A^-1 T_k) / (2 a0 + 3 + d n_k)`` and
``A ∝ sum_k T_k / lambda_k`` to convergence.
"""

from __future__ import annotations

import numpy as np

from bayes_gmm.model.families import decomposition
from bayes_gmm.model.families.constrained import ConstrainedDiagonal, MclustPrior


class VEICovariance(MclustPrior, ConstrainedDiagonal):
    name = mclust_name = "VEI"

    @staticmethod
    def _count(k, d):
        return k + (d - 1)

    def _pseudo_counts(self, prior, k, d):
        return np.full(k, (2.0 * prior.a0 + 3.0) / d - 1.0)

    def _prior_scales(self, prior, k, d):
        return np.broadcast_to(2.0 * np.asarray(prior.b0), (k, d))

    def _solve(self, T, c, d, start=None):
        return decomposition.variable_volume_equal_shape(T, c)
