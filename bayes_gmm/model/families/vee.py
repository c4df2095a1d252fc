"""mclust's VEE model: variable volume, equal shape and orientation: ``Sigma_k = lambda_k C``
with one matrix ``C`` (``|C| = 1``).

Under the constrained models' default prior (:mod:`~bayes_gmm.model.families.constrained`);
mclust has no prior for this model."""

from __future__ import annotations

from bayes_gmm.model.families import decomposition
from bayes_gmm.model.families.constrained import RestrictedConjugate


class VEECovariance(RestrictedConjugate):
    name = mclust_name = "VEE"
    common_scale = False

    @staticmethod
    def _count(k, d):
        return k + (d - 1) + d * (d - 1) // 2

    def _solve(self, S, c, d, start=None):
        return decomposition.variable_volume_equal_matrix(S, c)
