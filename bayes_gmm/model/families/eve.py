"""mclust's EVE model: equal volume and orientation, variable shape: ``Sigma_k = lambda D A_k D^T``.

One orientation for every component, so a rescaling of one column is not a change of units
for this model: it is fitted in one scale for all columns (as spherical is).  Under the
constrained models' default prior (:mod:`~bayes_gmm.model.families.constrained`); mclust has
no prior for this model."""

from __future__ import annotations

from bayes_gmm.model.families import decomposition
from bayes_gmm.model.families.constrained import RestrictedConjugate


class EVECovariance(RestrictedConjugate):
    name = mclust_name = "EVE"
    common_scale = True

    @staticmethod
    def _count(k, d):
        return 1 + k * (d - 1) + d * (d - 1) // 2

    def _solve(self, S, c, d, start=None):
        return decomposition.common_orientation(S, c, equal_volume=True, start=start)
