import numpy as np
import pytest

from bayes_gmm import make_seed_problem

COVARIANCE_TYPES = ("full", "tied", "diag", "spherical")


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
