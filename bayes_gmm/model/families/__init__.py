"""Covariance families: one small class per covariance type, found through a registry.

Pure numerics (NumPy and SciPy only).  Each family knows

- the shapes of its parameters (scikit-learn's conventions: ``covariances_`` is (K, d, d) for
  ``full``, (d, d) for ``tied``, (K, d) for ``diag``, (K,) for ``spherical``; the precision
  Cholesky factor is upper triangular, ``precision = P P^T``);
- its log-density (``log_prob``) and the one-pass E-step that also accumulates the
  sufficient statistics (``accumulate``);
- its M-step from sufficient statistics, MAP (``map_step``) and maximum likelihood
  (``ml_step``);
- its parameter count and its part of the prior log-density.

Sufficient statistics are accumulated *in the whitened coordinates of the current parameters*
(``y = (x - mu_k) P_k``): the E-step computes ``y`` anyway, the statistics of several blocks of
rows simply add (chunked, weighted or distributed data), and the scatter about the new mean is
recovered with a d x d transform, without the cancellation of raw second moments.

The package: :mod:`~bayes_gmm.model.families.base` holds the containers and the base class,
:mod:`~bayes_gmm.model.families.matrix` and :mod:`~bayes_gmm.model.families.variance` the bases
of the matrix (full, tied) and variance (diag, spherical) families,
:mod:`~bayes_gmm.model.families.kernels` the helpers and kernels several families share (and the
kernels' tuning constants), and one module per family.  A new family is one new module and one
line in :data:`COVARIANCE_FAMILIES` below.
"""

from __future__ import annotations

from bayes_gmm.model.families.base import (
    CovarianceFamily,
    GaussianParams,
    RawStatistics,
    SufficientStatistics,
)
from bayes_gmm.model.families.diag import DiagCovariance
from bayes_gmm.model.families.full import FullCovariance
from bayes_gmm.model.families.matrix import MatrixFamily
from bayes_gmm.model.families.spherical import SphericalCovariance
from bayes_gmm.model.families.tied import TiedCovariance
from bayes_gmm.model.families.variance import VarianceFamily

__all__ = [
    "COVARIANCE_FAMILIES",
    "CovarianceFamily",
    "DiagCovariance",
    "FullCovariance",
    "GaussianParams",
    "MatrixFamily",
    "RawStatistics",
    "SphericalCovariance",
    "SufficientStatistics",
    "TiedCovariance",
    "VarianceFamily",
    "get_family",
]

#: The registered families by name (in this order in messages); one line per family.
COVARIANCE_FAMILIES: dict[str, CovarianceFamily] = {
    family.name: family
    for family in (
        FullCovariance(),
        TiedCovariance(),
        DiagCovariance(),
        SphericalCovariance(),
    )
}


def get_family(covariance_type: str) -> CovarianceFamily:
    """The covariance family registered under ``covariance_type``."""
    try:
        return COVARIANCE_FAMILIES[covariance_type]
    except (KeyError, TypeError):
        raise ValueError(
            f"covariance_type must be one of {tuple(COVARIANCE_FAMILIES)}, got {covariance_type!r}."
        ) from None
