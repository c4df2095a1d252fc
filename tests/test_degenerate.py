"""Degenerate data never breaks MapEM (hypothesis generates the data sets)."""

import numpy as np
import pytest
from conftest import COVARIANCE_TYPES
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bayes_gmm import MapEM, get_family

KINDS = ("duplicates", "constant_column", "wide", "collinear", "few_distinct", "tiny_scale", "huge_scale", "mixed_scale")


def make_degenerate(kind: str, n: int, d: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d))
    if kind == "duplicates":  # e.g. 50 copies of one point among 150
        X[: max(1, n // 3)] = X[0]
    elif kind == "constant_column":
        X[:, rng.integers(d)] = rng.normal() * 10
    elif kind == "wide":  # fewer rows than columns
        X = rng.normal(size=(max(2, min(n, d)), d + 3))
    elif kind == "collinear":
        X = np.outer(rng.normal(size=n), rng.normal(size=d)) + rng.normal()
    elif kind == "few_distinct":  # k larger than the number of distinct points
        X = rng.normal(size=(2, d))[rng.integers(0, 2, size=n)]
    elif kind == "tiny_scale":
        X *= 1e-12
    elif kind == "huge_scale":
        X *= 1e12
    else:
        X *= np.logspace(-12, 12, d)
    return X


def check_fit(est, X):
    est.fit(X)
    for name in ("weights_", "means_", "covariances_", "precisions_cholesky_"):
        assert np.all(np.isfinite(getattr(est, name))), name
    assert np.all(est.weights_ > 0)
    k, d = est.means_.shape
    np.linalg.cholesky(get_family(est.covariance_type).dense(np.asarray(est.covariances_), k, d))
    lp = est.log_posteriors_
    assert np.all(np.isfinite(lp))
    if get_family(est.covariance_type).exact_mode:  # not mclust's EEI update: see its docstring
        assert np.all(np.diff(lp) >= -1e-8 * np.abs(lp[1:]))
    proba = est.predict_proba(X)
    assert np.all(np.isfinite(proba))
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    assert np.all(np.isfinite(est.score_samples(X)))


@pytest.mark.filterwarnings("ignore:covariance_type=.* but the column standard deviations:UserWarning")
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    kind=st.sampled_from(KINDS),
    n=st.integers(2, 60),
    d=st.integers(1, 4),
    k=st.integers(1, 5),
    seed=st.integers(0, 2**16),
    ct=st.sampled_from(COVARIANCE_TYPES),
    init=st.sampled_from(["k-means++", "random_from_data", "random"]),
)
def test_degenerate_data_never_breaks_the_fit(kind, n, d, k, seed, ct, init):
    X = make_degenerate(kind, n, d, seed)
    k = min(k, X.shape[0])
    check_fit(MapEM(k, covariance_type=ct, init_params=init, random_state=seed, max_iter=2000), X)


@pytest.mark.filterwarnings("ignore:covariance_type=.* but the column standard deviations:UserWarning")
@pytest.mark.parametrize("ct", COVARIANCE_TYPES)
@pytest.mark.parametrize("kind", KINDS)
def test_each_degenerate_kind(ct, kind):
    X = make_degenerate(kind, 150, 3, 0)
    check_fit(MapEM(min(4, X.shape[0]), covariance_type=ct, random_state=0, max_iter=2000), X)


def test_fifty_copies_of_one_point_among_150(rng):
    X = np.vstack([np.tile([[2.0, -1.0]], (50, 1)), rng.normal(size=(100, 2))])
    est = MapEM(3, random_state=0)
    check_fit(est, X)
    # the duplicates get a component of their own whose covariance is small but not singular
    j = est.predict(X[:1])[0]
    assert np.linalg.eigvalsh(est.covariances_[j]).min() > 0


def test_more_components_than_distinct_points_keeps_every_weight_positive():
    X = np.array([[0.0, 0.0], [1.0, 1.0]] * 10)
    est = MapEM(5, random_state=0, init_params="random")
    check_fit(est, X)
    assert est.weights_.min() >= 1.0 / (20 + 5 * 1.0) - 1e-12  # (N_k + 1) / (N + K) with alpha = 2
