"""mclust's EVV model: equal volume, variable shape and orientation: ``Sigma_k = lambda C_k``
(``|C_k| = 1``).

Under the constrained models' default prior (:mod:`~bayes_gmm.model.families.constrained`);
mclust has no prior for this model."""

from __future__ import annotations

from bayes_gmm.model.families import decomposition
from bayes_gmm.model.families.constrained import RestrictedConjugate


class EVVCovariance(RestrictedConjugate):
    name = mclust_name = "EVV"
    common_scale = False

    @staticmethod
    def _count(k, d):
        return 1 + k * (d * (d + 1) // 2 - 1)

    def _solve(self, S, c, d, start=None):
        return decomposition.equal_volume_variable_matrix(S, c)
