"""em_baseline: the classic EM fails on the seed problem; MapEM from the same start does not."""

import numpy as np
import pytest
from conftest import COVARIANCE_TYPES, SKLEARN_TYPES, make_blobs3
from sklearn.mixture import GaussianMixture

from bayes_gmm import MapEM, SingularCovarianceError
from em_baseline import PlainEM, classic_start

# The documented start of the demo and notebooks: classic_start(X, 10, random_state=0).
SEED_START = 0


def test_baseline_fails_on_seed_problem_and_mapem_does_not(seed_problem):
    X, _ = seed_problem
    start = classic_start(X, 10, random_state=SEED_START)
    baseline = PlainEM(10, **start)
    with pytest.raises(SingularCovarianceError) as info:
        baseline.fit(X)
    err = info.value
    assert isinstance(err, ValueError)
    assert err.iteration >= 1 and 0 <= err.component < 10
    msg = str(err)
    assert f"EM iteration {err.iteration}" in msg
    assert f"component {err.component}" in msg
    assert "bayes_gmm.MapEM" in msg
    # the log-likelihood trace until the failure is kept for plotting
    assert baseline.log_likelihoods_.shape == (err.iteration,)
    assert np.all(np.isfinite(baseline.log_likelihoods_))

    est = MapEM(10, **start).fit(X)
    assert est.converged_
    np.linalg.cholesky(est.covariances_)


@pytest.mark.parametrize("seed", range(1, 6))
def test_classic_start_fails_for_other_seeds_too(seed_problem, seed):
    X, _ = seed_problem
    with pytest.raises(SingularCovarianceError):
        PlainEM(10, **classic_start(X, 10, random_state=seed)).fit(X)
    assert MapEM(10, **classic_start(X, 10, random_state=seed)).fit(X).converged_


def test_classic_start_is_within_the_data_range(seed_problem):
    X, _ = seed_problem
    start = classic_start(X, 10, random_state=0)
    assert np.all(start["means_init"] >= X.min(0)) and np.all(start["means_init"] <= X.max(0))
    np.testing.assert_array_equal(start["precisions_init"], np.tile(np.eye(2), (10, 1, 1)))
    np.testing.assert_allclose(start["weights_init"], 0.1)


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.parametrize("ct", SKLEARN_TYPES)
def test_baseline_iterates_like_sklearn_from_the_same_start(rng, ct):
    X, _ = make_blobs3(rng, n=400, spread=4.0)
    start = classic_start(X, 3, covariance_type=ct, random_state=1)
    ours = PlainEM(3, covariance_type=ct, reg_covar=1e-3, tol=0.0, max_iter=5, **start)
    theirs = GaussianMixture(3, covariance_type=ct, reg_covar=1e-3, tol=0.0, max_iter=5, **start)
    ours.fit(X)
    theirs.fit(X)
    np.testing.assert_allclose(ours.means_, theirs.means_, rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(ours.covariances_, theirs.covariances_, rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(ours.weights_, theirs.weights_, rtol=1e-8)


@pytest.mark.parametrize("ct", COVARIANCE_TYPES)
def test_reg_covar_adds_to_the_diagonal(rng, ct):
    from bayes_gmm import get_family

    X, labels = make_blobs3(rng, n=200)
    family = get_family(ct)
    stats = family.statistics_from_responsibilities(X, np.eye(3)[labels])
    _, plain = family.ml_step(stats, 0.0)
    _, regularised = family.ml_step(stats, 0.5)
    eye = family.identity_covariances(3, 2)
    np.testing.assert_allclose(regularised, plain + 0.5 * eye, rtol=1e-14)
    # and with it the classic start no longer fails on the seed problem's collapse
    assert np.all(np.isfinite(plain))


def test_reg_covar_rescues_the_seed_problem(seed_problem):
    X, _ = seed_problem
    est = PlainEM(10, reg_covar=1e-3, **classic_start(X, 10, random_state=SEED_START)).fit(X)
    assert np.all(np.isfinite(est.log_likelihoods_))


def test_baseline_fails_on_duplicates_where_mapem_does_not(rng):
    X = np.vstack([np.tile([[1.0, 2.0]], (50, 1)), rng.normal(size=(100, 2))])
    labels = np.r_[np.zeros(50, int), np.ones(100, int)]
    with pytest.raises(SingularCovarianceError, match="initialisation: the covariance of component 0"):
        PlainEM(2, init_params=labels).fit(X)
    est = MapEM(2, init_params=labels).fit(X)
    assert np.linalg.eigvalsh(est.covariances_).min() > 0
