"""mclust's VEV model: ``Sigma_k = lambda_k D_k A D_k^T``: one shape, a volume and an
orientation per component.

Prior as mclust's ``meVEV`` under ``priorControl()``: per component the scale ``Psi0`` and no
count at all (mclust's VEV leaves ``nu0`` out: ``q_k = -1``, so ``c_k = n_k``, floored at
``1e-8`` of the data's weight so that an empty component keeps a finite volume); the mode takes
``D_k`` the eigenvectors of ``T_k`` and alternates ``lambda_k = tr(A^-1 Omega_k) / (d c_k)`` and
``A ∝ sum_k Omega_k / lambda_k`` to convergence.  Fitted in one scale for all columns (as
spherical is).
"""

from __future__ import annotations

import numpy as np

from bayes_gmm.model.families import decomposition
from bayes_gmm.model.families.constrained import ConstrainedMatrix, MclustPrior


class VEVCovariance(MclustPrior, ConstrainedMatrix):
    name = mclust_name = "VEV"
    common_scale = True

    @staticmethod
    def _count(k, d):
        return k + (d - 1) + k * d * (d - 1) // 2

    def _pseudo_counts(self, prior, k, d):
        return np.full(k, -1.0)

    def _prior_scales(self, prior, k, d):
        return np.broadcast_to(prior.psi0, (k, d, d))

    def _solve(self, T, c, d, start=None):
        return decomposition.variable_volume_equal_shape_variable_orientation(T, np.maximum(c, 1e-8 * c.sum()))
