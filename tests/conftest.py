import contextlib
import warnings

import numpy as np
import pytest

from bayes_gmm import COVARIANCE_FAMILIES, ConvergenceWarning, make_seed_problem

#: Every registered covariance family: family-generic tests run over the registry.
COVARIANCE_TYPES = tuple(COVARIANCE_FAMILIES)
#: scikit-learn's four (its GaussianMixture is the oracle for them).
SKLEARN_TYPES = ("full", "tied", "diag", "spherical")
#: The families the posterior layer has a PyMC form of.
POSTERIOR_TYPES = tuple(name for name, family in COVARIANCE_FAMILIES.items() if family.posterior_form)
#: The warning of a family fitted in one scale for all columns, on columns in other units.
UNEQUAL_SCALES = "covariance_type=.* but the column standard deviations"


@contextlib.contextmanager
def convergence_warnings():
    """Collect the ConvergenceWarnings' messages; every other warning stays an error.

    (``pytest.warns`` records every warning and re-raises the others on exit: among them the
    DeprecationWarning CPython issues, and otherwise drops as an error, when PyMC forks its chain
    processes from a process where nutpie has started threads.)
    """
    messages = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConvergenceWarning)
        yield messages
    messages += [str(w.message) for w in caught if issubclass(w.category, ConvergenceWarning)]
    others = [f"{w.category.__name__}: {w.message}" for w in caught if not issubclass(w.category, ConvergenceWarning)]
    assert not others, others


@pytest.fixture
def rng():
    return np.random.default_rng(12345)


@pytest.fixture(scope="session")
def seed_problem():
    return make_seed_problem()


def make_blobs3(rng, n=300, d=2, spread=8.0):
    """Three well-separated Gaussian blobs."""
    centers = spread * np.eye(3, d) if d >= 3 else np.array([[0, 0], [spread, 0], [0, spread]])[:, :d]
    labels = rng.integers(0, 3, size=n)
    return centers[labels] + rng.normal(size=(n, d)), labels
