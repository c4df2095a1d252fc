"""Gaussian mixture models that never die of a singular covariance matrix.

The core (:class:`MapEM`, :class:`NIWPrior`) depends on NumPy, SciPy and scikit-learn only;
the PyMC posterior and the ArviZ diagnostics are imported on first use.
"""

from __future__ import annotations

from importlib import import_module
from importlib.metadata import PackageNotFoundError, version

from .covariance import COVARIANCE_FAMILIES, get_family
from .datasets import make_seed_problem, seed_problem_holdout
from .exceptions import ConvergenceWarning, SingularCovarianceError
from .map_em import MapEM, log_posterior
from .prior import NIWPrior

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
    # PyMC posterior (bayes_gmm.posterior)
    "build_model": ".posterior",
    "sample_posterior": ".posterior",
    "relabel": ".posterior",
    "posterior_membership": ".posterior",
    "posterior_predictive_density": ".posterior",
    "sample_posterior_predictive": ".posterior",
    "PosteriorSampler": ".posterior_sampler",
    "get_posterior_sampler": ".posterior_sampler",
    "clear_posterior_cache": ".posterior_sampler",
    # ArviZ diagnostics (bayes_gmm.diagnostics)
    "compare": ".diagnostics",
    "to_datatree": ".diagnostics",
    "predictive_comparison": ".diagnostics",
    "loo_summary": ".diagnostics",
    # model selection and persistence
    "select": ".selection",
    "save": ".io",
    "load": ".io",
}


def __getattr__(name: str):
    if name in _LAZY:
        module = import_module(_LAZY[name], __name__)
        return getattr(module, name)
    raise AttributeError(f"module 'bayes_gmm' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_LAZY))
