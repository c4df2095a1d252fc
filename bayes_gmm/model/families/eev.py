"""mclust's EEV model: ``Sigma_k = lambda D_k A D_k^T``: one volume and shape, an orientation
per component.

Prior as mclust's ``meEEV`` under ``priorControl()``: per component the scale ``Psi0``, and
counts that add up to ``nu0 + d + 2 + n`` (``q_k = (nu0 + d + 2) / K - 1``); the mode is closed
form: ``D_k`` the eigenvectors of ``T_k`` and ``lambda A = sum_k Omega_k / (nu0 + d + 2 + n)``
with ``Omega_k`` their eigenvalues, largest first.  One shape for several orientations depends
on the columns' units, so the model is fitted in one scale for all columns (as spherical is).
"""

from __future__ import annotations

import numpy as np

from bayes_gmm.model.families import decomposition
from bayes_gmm.model.families.constrained import ConstrainedMatrix, MclustPrior


class EEVCovariance(MclustPrior, ConstrainedMatrix):
    name = mclust_name = "EEV"
    common_scale = True

    @staticmethod
    def _count(k, d):
        return 1 + (d - 1) + k * d * (d - 1) // 2

    def _pseudo_counts(self, prior, k, d):
        return np.full(k, (prior.nu0 + d + 2.0) / k - 1.0)

    def _prior_scales(self, prior, k, d):
        return np.broadcast_to(prior.psi0, (k, d, d))

    def _solve(self, T, c, d, start=None):
        return decomposition.equal_volume_shape_variable_orientation(T, c)
