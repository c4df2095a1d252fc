"""mclust's VVE model: variable volume and shape, equal orientation: ``Sigma_k = lambda_k D A_k D^T``.

One orientation for every component, so it is fitted in one scale for all columns (as
spherical is).  Under the constrained models' default prior
(:mod:`~bayes_gmm.model.families.constrained`); mclust has no prior for this model."""

from __future__ import annotations

from bayes_gmm.model.families import decomposition
from bayes_gmm.model.families.constrained import RestrictedConjugate


class VVECovariance(RestrictedConjugate):
    name = mclust_name = "VVE"
    common_scale = True

    @staticmethod
    def _count(k, d):
        return k * d + d * (d - 1) // 2

    def _solve(self, S, c, d, start=None):
        return decomposition.common_orientation(S, c, equal_volume=False, start=start)
