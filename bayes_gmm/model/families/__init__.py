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

from collections.abc import Set

from bayes_gmm.model.families.base import (
    CovarianceFamily,
    GaussianParams,
    RawStatistics,
    SufficientStatistics,
)
from bayes_gmm.model.families.diag import DiagCovariance
from bayes_gmm.model.families.eei import EEICovariance
from bayes_gmm.model.families.eev import EEVCovariance
from bayes_gmm.model.families.eii import EIICovariance
from bayes_gmm.model.families.eve import EVECovariance
from bayes_gmm.model.families.evi import EVICovariance
from bayes_gmm.model.families.evv import EVVCovariance
from bayes_gmm.model.families.full import FullCovariance
from bayes_gmm.model.families.matrix import MatrixFamily
from bayes_gmm.model.families.spherical import SphericalCovariance
from bayes_gmm.model.families.tied import TiedCovariance
from bayes_gmm.model.families.variance import VarianceFamily
from bayes_gmm.model.families.vee import VEECovariance
from bayes_gmm.model.families.vei import VEICovariance
from bayes_gmm.model.families.vev import VEVCovariance
from bayes_gmm.model.families.vve import VVECovariance

__all__ = [
    "ACCEPTED_COVARIANCE_TYPES",
    "COVARIANCE_FAMILIES",
    "MCLUST_ORDER",
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
    "covariance_type_names",
    "get_family",
    "mclust_names",
    "same_family",
]

#: mclust's 14 models (volume, shape, orientation: Equal, Variable or I for the identity), in
#: the order mclust lists them.
MCLUST_ORDER = ("EII", "VII", "EEI", "VEI", "EVI", "VVI", "EEE", "VEE", "EVE", "VVE", "EEV", "VEV", "EVV", "VVV")

#: The registered families by name (in this order in messages); one line per family.
COVARIANCE_FAMILIES: dict[str, CovarianceFamily] = {
    family.name: family
    for family in (
        FullCovariance(),
        TiedCovariance(),
        DiagCovariance(),
        SphericalCovariance(),
        EIICovariance(),
        EEICovariance(),
        VEICovariance(),
        EVICovariance(),
        VEECovariance(),
        EVECovariance(),
        VVECovariance(),
        EEVCovariance(),
        VEVCovariance(),
        EVVCovariance(),
    )
}


def mclust_names() -> dict[str, str]:
    """mclust's name of every registered family that has one, in mclust's order:
    ``{"EII": "EII", ..., "VVV": "full"}`` (mclust name -> registered name)."""
    named = {family.mclust_name: name for name, family in COVARIANCE_FAMILIES.items() if family.mclust_name}
    return {m: named[m] for m in MCLUST_ORDER if m in named}


def covariance_type_names() -> tuple[str, ...]:
    """Every accepted ``covariance_type``: the registered names, then mclust's names of the
    families registered under another name (``VVV``, ``EEE``, ``VVI``, ``VII``)."""
    aliases = tuple(m for m, name in mclust_names().items() if m != name)
    return tuple(COVARIANCE_FAMILIES) + aliases


def get_family(covariance_type: str) -> CovarianceFamily:
    """The covariance family registered under ``covariance_type``, or under the family's
    mclust name (``"VVV"`` is ``"full"``, ``"EEE"`` ``"tied"``, ``"VVI"`` ``"diag"``,
    ``"VII"`` ``"spherical"``)."""
    try:
        return COVARIANCE_FAMILIES[covariance_type]
    except (KeyError, TypeError):
        pass
    if isinstance(covariance_type, str):
        name = mclust_names().get(covariance_type)
        if name is not None:
            return COVARIANCE_FAMILIES[name]
    raise ValueError(
        f"covariance_type must be one of {covariance_type_names()}, got {covariance_type!r}."
    )


class _AcceptedNames(Set):
    """The names :func:`covariance_type_names` gives, read when asked (so a family registered
    later is accepted): scikit-learn's ``StrOptions`` takes it as its set of options."""

    def __contains__(self, name) -> bool:
        return name in covariance_type_names()

    def __iter__(self):
        return iter(covariance_type_names())

    def __len__(self) -> int:
        return len(covariance_type_names())

    @classmethod
    def _from_iterable(cls, iterable):  # set operations give plain sets
        return set(iterable)


#: Every accepted ``covariance_type``, as a live set.
ACCEPTED_COVARIANCE_TYPES = _AcceptedNames()


def same_family(a: str, b: str) -> bool:
    """Whether two covariance-type names (registered or mclust's) name the same family."""
    return get_family(a) is get_family(b)
