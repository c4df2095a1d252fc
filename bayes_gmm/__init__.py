"""Gaussian mixture models that never die of a singular covariance matrix.

The core (:class:`MapEM`, :class:`NIWPrior`) depends on NumPy, SciPy and scikit-learn only;
the PyMC posterior and the ArviZ diagnostics are imported on first use.
"""

from __future__ import annotations

from importlib import import_module
from importlib.metadata import PackageNotFoundError, version

from bayes_gmm.datasets import make_seed_problem, seed_problem_holdout
from bayes_gmm.em.map_em import MapEM, log_posterior
from bayes_gmm.exceptions import ConvergenceWarning, SingularCovarianceError
from bayes_gmm.model.families import COVARIANCE_FAMILIES, get_family
from bayes_gmm.model.prior import NIWPrior

try:
    __version__ = version("bayes_gmm")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0+unknown"

__all__ = [
    "COVARIANCE_FAMILIES",
    "ConvergenceWarning",
    "MapEM",
    "NIWPrior",
    "SingularCovarianceError",
    "get_family",
    "log_posterior",
    "make_seed_problem",
    "seed_problem_holdout",
]

# Heavier layers, imported lazily so that ``import bayes_gmm`` never imports PyMC.
_LAZY = {
    # PyMC posterior (bayes_gmm.bayes.posterior)
    "build_model": "bayes_gmm.bayes.posterior",
    "sample_posterior": "bayes_gmm.bayes.posterior",
    "relabel": "bayes_gmm.bayes.draws",
    "posterior_membership": "bayes_gmm.bayes.draws",
    "posterior_predictive_density": "bayes_gmm.bayes.draws",
    "sample_posterior_predictive": "bayes_gmm.bayes.draws",
    "PosteriorSampler": "bayes_gmm.bayes.posterior",
    "get_posterior_sampler": "bayes_gmm.bayes.posterior",
    "clear_posterior_cache": "bayes_gmm.bayes.posterior",
    # ArviZ diagnostics (bayes_gmm.diagnostics.comparison)
    "compare": "bayes_gmm.diagnostics",
    "to_datatree": "bayes_gmm.diagnostics",
    "predictive_comparison": "bayes_gmm.diagnostics",
    "loo_summary": "bayes_gmm.diagnostics",
    # model selection and persistence
    "select": "bayes_gmm.em.selection",
    "save": "bayes_gmm.io",
    "load": "bayes_gmm.io",
}


def __getattr__(name: str):
    if name in _LAZY:
        module = import_module(_LAZY[name])
        return getattr(module, name)
    raise AttributeError(f"module 'bayes_gmm' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_LAZY))
