"""MapEM: the seed problem, monotone EM, the exact M-step, equivariance, the sklearn oracle."""

import warnings

import numpy as np
import pytest
from conftest import COVARIANCE_TYPES, SKLEARN_TYPES, make_blobs3
from scipy import optimize, stats
from scipy.optimize import linear_sum_assignment
from sklearn.metrics import adjusted_rand_score
from sklearn.mixture import GaussianMixture

from bayes_gmm import ConvergenceWarning, MapEM, NIWPrior, get_family, log_posterior
from bayes_gmm.em.map_em import map_weights


def dense_covariances(ct, cov, k, d):
    return get_family(ct).dense(np.asarray(cov), k, d)


# ---------------------------------------------------------------------------- seed problem
def test_seed_problem_from_100_random_states_never_fails(seed_problem):
    X, _ = seed_problem
    for seed in range(100):
        est = MapEM(10, random_state=seed).fit(X)
        assert est.converged_
        for name in ("weights_", "means_", "covariances_", "precisions_cholesky_"):
            assert np.all(np.isfinite(getattr(est, name))), (seed, name)
        np.linalg.cholesky(est.covariances_)  # every covariance positive definite
        assert np.all(est.weights_ > 0)
        assert np.all(np.diff(est.log_posteriors_) >= -1e-10 * abs(est.log_posterior_))


def test_seed_problem_adjusted_rand_at_least_sklearn(seed_problem):
    X, y = seed_problem
    # both run to the same tight tolerance: at the default 1e-3 either may stop a few rows short
    # of the mode (MapEM's k-means start stopped with two rows still to move, ARI 0.9868)
    ours = MapEM(10, n_init=10, random_state=0, tol=1e-8).fit(X)
    theirs = GaussianMixture(10, n_init=10, random_state=0, tol=1e-8).fit(X)
    ari_ours = adjusted_rand_score(y, ours.predict(X))
    ari_theirs = adjusted_rand_score(y, theirs.predict(X))
    assert ari_ours >= ari_theirs - 1e-12
    assert ari_ours > 0.95


# ---------------------------------------------------------------------------- monotone EM
@pytest.mark.parametrize("ct", COVARIANCE_TYPES)
@pytest.mark.parametrize("data", ["blobs", "duplicates", "constant_column", "wide"])
def test_log_posterior_never_decreases(rng, ct, data):
    if data == "blobs":
        X, _ = make_blobs3(rng, n=200, spread=3.0)
    elif data == "duplicates":
        X = np.vstack([np.tile(rng.normal(size=(1, 2)), (50, 1)), rng.normal(size=(100, 2))])
    elif data == "constant_column":
        X = np.column_stack([rng.normal(size=120), np.full(120, 3.0), rng.normal(size=120)])
    else:
        X = rng.normal(size=(6, 10))
    est = MapEM(4 if X.shape[0] > 6 else 3, covariance_type=ct, init_params="random", max_iter=200, tol=1e-10,
                random_state=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # tol=1e-10 on purpose: many steps
        est.fit(X)
    lp = est.log_posteriors_
    assert lp.size > 3
    drop = 1e-9 if get_family(ct).exact_mode else 1e-5  # mclust's EEI keeps the weighted means
    assert np.all(np.diff(lp) >= -drop * np.abs(lp[1:])), np.diff(lp).min()
    # the recorded objective is the objective of the returned parameters
    assert est.log_posterior(X) == pytest.approx(est.log_posterior_, rel=1e-9)


# ---------------------------------------------------------------------------- exact M-step
def _unpack(theta, ct, k, d):
    a = np.concatenate([[0.0], theta[: k - 1]])
    weights = np.exp(a - a.max())
    weights /= weights.sum()
    pos = k - 1
    means = theta[pos : pos + k * d].reshape(k, d)
    pos += k * d
    rest = theta[pos:]
    if ct in ("full", "tied"):
        m = k if ct == "full" else 1
        tril = np.tril_indices(d)
        covs = []
        for j in range(m):
            L = np.zeros((d, d))
            L[tril] = rest[j * len(tril[0]) : (j + 1) * len(tril[0])]
            L[np.diag_indices(d)] = np.exp(np.diag(L))
            covs.append(L @ L.T)
        cov = np.array(covs) if ct == "full" else covs[0]
    elif ct == "diag":
        cov = np.exp(rest.reshape(k, d))
    else:
        cov = np.exp(rest)
    return weights, means, cov


def _pack(weights, means, cov, ct):
    logw = np.log(weights)
    parts = [logw[1:] - logw[0], means.ravel()]
    if ct in ("full", "tied"):
        for c in cov[None] if ct == "tied" else cov:
            L = np.linalg.cholesky(c)
            L[np.diag_indices(L.shape[0])] = np.log(np.diag(L))
            parts.append(L[np.tril_indices(L.shape[0])])
    else:
        parts.append(np.log(cov).ravel())
    return np.concatenate(parts)


@pytest.mark.parametrize("ct", SKLEARN_TYPES)  # the constrained models: tests/test_constrained.py
def test_closed_form_m_step_is_the_maximiser(rng, ct):
    """A numerical optimiser on the complete-data log-posterior finds nothing better."""
    n, d, k = 25, 2, 2
    X = rng.normal(size=(n, d)) + np.repeat([[0.0, 0.0], [3.0, 1.0]], [12, 13], axis=0)
    resp = rng.dirichlet(np.ones(k), size=n)
    prior = NIWPrior.from_data(X, k, ct, alpha=1.7)
    family = get_family(ct)

    def complete_log_posterior(weights, means, cov):
        dense = dense_covariances(ct, cov, k, d)
        logn = np.column_stack([stats.multivariate_normal(means[j], dense[j]).logpdf(X) for j in range(k)])
        return float(np.sum(resp * (np.log(weights) + logn))) + prior.log_density(weights, means, cov)

    stats_ = family.statistics_from_responsibilities(X, resp)
    means, cov = family.map_step(stats_, prior)
    weights = map_weights(stats_.nk, prior.alpha)
    best = complete_log_posterior(weights, means, cov)
    theta0 = _pack(weights, means, cov, ct)
    np.testing.assert_allclose(_unpack(theta0, ct, k, d)[2], cov, rtol=1e-10)

    def negative(theta):
        return -complete_log_posterior(*_unpack(theta, ct, k, d))

    found = []
    for trial in range(3):
        start = theta0 + (0 if trial == 0 else 0.3) * rng.normal(size=theta0.size)
        res = optimize.minimize(negative, start, method="BFGS", options={"gtol": 1e-9})
        found.append(-res.fun)
    assert max(found) <= best + 1e-8 * abs(best)
    # and the optimiser does reach the closed form from the first start (it is a maximum)
    assert found[0] == pytest.approx(best, rel=1e-9, abs=1e-9)


# ---------------------------------------------------------------------------- equivariance
def _transform_prior(prior, scale, shift):
    kw = prior.to_dict()
    kw["m0"] = prior.m0 * scale + shift
    family = get_family(prior.covariance_type)
    if family.wishart_prior:
        kw["psi0"] = prior.psi0 * np.outer(scale, scale)
    elif family.prior_rate_shape(len(scale)):
        kw["b0"] = np.asarray(prior.b0) * scale**2
    else:
        kw["b0"] = prior.b0 * scale[0] ** 2
    return NIWPrior(**kw)


def _cov_transform(ct, cov, scale):
    return get_family(ct).rescale_covariances(cov, scale)


@pytest.mark.parametrize("ct", COVARIANCE_TYPES)
@pytest.mark.parametrize("derived_prior", [True, False])
def test_rescaling_and_shifting_columns_is_equivariant(rng, ct, derived_prior):
    X, labels = make_blobs3(rng, n=150, d=3, spread=4.0)
    family = get_family(ct)
    if family.common_scale:
        scale = np.full(3, 250.0)  # only a common scale keeps a spherical model spherical
    elif family.covariance_dims == ("component", "feature") and derived_prior:
        scale = np.full(3, 1e-3)  # mclust's diag default pools the column variances
    else:
        scale = np.array([1e-3, 7.0, 1e4])
    shift = np.array([5.0, -3e3, 1e5])
    Xt = X * scale + shift
    init = labels  # same start on both scales
    a = MapEM(3, covariance_type=ct, init_params=init, tol=1e-12, max_iter=1000)
    b = MapEM(3, covariance_type=ct, init_params=init, tol=1e-12, max_iter=1000)
    a.fit(X)
    if not derived_prior:
        b.set_params(prior=_transform_prior(a.prior_, scale, shift))
    b.fit(Xt)
    assert a.n_iter_ == b.n_iter_
    np.testing.assert_allclose(b.weights_, a.weights_, rtol=1e-7)
    np.testing.assert_allclose(b.means_, a.means_ * scale + shift, rtol=1e-7)
    np.testing.assert_allclose(b.covariances_, _cov_transform(ct, a.covariances_, scale), rtol=1e-6)
    np.testing.assert_allclose(b.predict_proba(Xt), a.predict_proba(X), atol=1e-8)


# ---------------------------------------------------------------------------- oracle
@pytest.mark.parametrize("ct", SKLEARN_TYPES)
def test_negligible_prior_agrees_with_sklearn(rng, ct):
    d, k = 2, 3
    X, _ = make_blobs3(rng, n=6000, d=d, spread=10.0)
    X[:, 1] *= 0.5
    tiny = 1e-9
    if ct in ("full", "tied"):
        prior = NIWPrior(ct, 1.0, X.mean(0), tiny, nu0=d - 1 + tiny, psi0=tiny * np.eye(d))
    else:
        prior = NIWPrior(ct, 1.0, X.mean(0), tiny, a0=tiny, b0=tiny * (np.ones(d) if ct == "diag" else 1.0))
    ours = MapEM(k, covariance_type=ct, prior=prior, random_state=0).fit(X)
    theirs = GaussianMixture(k, covariance_type=ct, reg_covar=0.0, tol=1e-10, random_state=0).fit(X)
    cost = ((ours.means_[:, None] - theirs.means_[None]) ** 2).sum(-1)
    rows, cols = linear_sum_assignment(cost)
    np.testing.assert_allclose(ours.weights_[rows], theirs.weights_[cols], atol=1e-3)
    np.testing.assert_allclose(ours.means_[rows], theirs.means_[cols], atol=1e-3)
    tc = theirs.covariances_ if ct == "tied" else theirs.covariances_[cols]
    oc = ours.covariances_ if ct == "tied" else ours.covariances_[rows]
    np.testing.assert_allclose(oc, tc, rtol=5e-3, atol=1e-4)  # the prior adds ~2d+1 pseudo-counts
    assert ours.score(X) == pytest.approx(theirs.score(X), rel=1e-3)


# ---------------------------------------------------------------------------- behaviour
def test_random_state_reproduces_bit_for_bit(seed_problem):
    X, _ = seed_problem
    a = MapEM(10, n_init=3, random_state=42).fit(X)
    b = MapEM(10, n_init=3, random_state=42).fit(X)
    for name in ("weights_", "means_", "covariances_", "log_posteriors_"):
        assert np.array_equal(getattr(a, name), getattr(b, name))


def test_n_init_keeps_the_best_log_posterior(seed_problem):
    X, _ = seed_problem
    one = MapEM(10, init_params="random_from_data", random_state=3).fit(X)
    many = MapEM(10, init_params="random_from_data", n_init=8, random_state=3).fit(X)
    assert many.log_posterior_ >= one.log_posterior_
    singles = []
    rs = np.random.RandomState(3)
    for _ in range(8):
        singles.append(MapEM(10, init_params="random_from_data", random_state=rs).fit(X).log_posterior_)
    assert many.log_posterior_ == pytest.approx(max(singles), rel=1e-12)


@pytest.mark.parametrize("init", ["k-means++", "kmeans", "random_from_data", "random", "labels", "resp"])
def test_initialisations(rng, init):
    X, labels = make_blobs3(rng, n=300, spread=8.0)
    if init == "labels":
        init = labels
    elif init == "resp":
        init = np.eye(3)[labels] * 0.9 + 0.1 / 3
    est = MapEM(3, init_params=init, random_state=0).fit(X)
    assert adjusted_rand_score(labels, est.predict(X)) > 0.99


def test_given_parameters_start_the_fit(rng):
    X, labels = make_blobs3(rng, n=300)
    means = np.array([[0.0, 0.0], [8.0, 0.0], [0.0, 8.0]])
    est = MapEM(3, means_init=means, weights_init=np.full(3, 1 / 3), precisions_init=np.tile(np.eye(2), (3, 1, 1)),
                max_iter=1, tol=0.0)
    with pytest.warns(ConvergenceWarning, match="max_iter"):
        est.fit(X)
    # one M-step from the given start: components keep the order of means_init
    np.testing.assert_allclose(est.means_, means, atol=0.5)


def test_convergence_warning_says_what_to_change(seed_problem):
    X, _ = seed_problem
    with pytest.warns(ConvergenceWarning, match=r"Increase max_iter, loosen tol"):
        MapEM(10, max_iter=1, tol=1e-10, random_state=0).fit(X)


@pytest.mark.parametrize("ct", COVARIANCE_TYPES)
def test_prior_strength_changes_the_fit(rng, ct):
    X, labels = make_blobs3(rng, n=200, spread=3.0)
    weak = MapEM(3, covariance_type=ct, prior_strength=0.1, init_params=labels).fit(X)
    strong = MapEM(3, covariance_type=ct, prior_strength=50.0, init_params=labels).fit(X)
    # a stronger prior scale widens every component
    assert np.sum(strong.covariances_) > np.sum(weak.covariances_)
    assert np.all(strong.prior_.log_density(strong.weights_, strong.means_, strong.covariances_) > -np.inf)


def test_alpha_changes_the_weights(rng):
    X = np.vstack([rng.normal(size=(200, 2)), rng.normal(6, 1, size=(4, 2))])
    labels = (X[:, 0] > 3).astype(int)
    flat = MapEM(2, alpha=1.0, init_params=labels).fit(X)
    smooth = MapEM(2, alpha=50.0, init_params=labels).fit(X)
    assert smooth.weights_.min() > flat.weights_.min()
    assert smooth.prior_.alpha == 50.0


def test_explicit_prior_is_used(rng):
    X, labels = make_blobs3(rng, n=200)
    prior = NIWPrior.from_data(X, 3, "full", prior_strength=20.0)
    a = MapEM(3, prior=prior, init_params=labels).fit(X)
    b = MapEM(3, prior=prior.to_dict(), init_params=labels).fit(X)
    c = MapEM(3, init_params=labels).fit(X)
    assert a.prior_ is prior
    np.testing.assert_array_equal(a.covariances_, b.covariances_)
    assert not np.allclose(a.covariances_, c.covariances_)


def test_chunk_size_does_not_change_the_fit(seed_problem):
    X, _ = seed_problem
    a = MapEM(10, random_state=0).fit(X)
    b = MapEM(10, random_state=0, chunk_size=37).fit(X)
    np.testing.assert_allclose(a.means_, b.means_, rtol=1e-10)
    assert a.n_iter_ == b.n_iter_


def test_tol_and_max_iter_change_the_run(seed_problem):
    X, _ = seed_problem
    loose = MapEM(10, random_state=0, tol=1e-2).fit(X)
    tight = MapEM(10, random_state=0, tol=1e-10).fit(X)
    assert loose.n_iter_ < tight.n_iter_
    assert tight.log_posterior_ >= loose.log_posterior_


@pytest.mark.parametrize("ct", COVARIANCE_TYPES)
def test_prediction_api(rng, ct):
    X, labels = make_blobs3(rng, n=300)
    est = MapEM(3, covariance_type=ct, random_state=0)
    pred = est.fit_predict(X)
    assert adjusted_rand_score(labels, pred) > 0.99
    proba = est.predict_proba(X)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    np.testing.assert_array_equal(proba.argmax(1), pred)
    # score_samples is the mixture density, checked against scipy
    dense = dense_covariances(ct, est.covariances_, 3, 2)
    density = sum(est.weights_[j] * stats.multivariate_normal(est.means_[j], dense[j]).pdf(X) for j in range(3))
    np.testing.assert_allclose(est.score_samples(X), np.log(density), rtol=1e-10)
    assert est.score(X) == pytest.approx(np.mean(np.log(density)))
    # the objective is log-likelihood plus log-prior
    expected = np.sum(np.log(density)) + est.prior_.log_density(est.weights_, est.means_, est.covariances_)
    assert log_posterior(X, est.weights_, est.means_, est.covariances_, est.prior_) == pytest.approx(expected)
    Xs, ys = est.sample(500, random_state=0)
    assert Xs.shape == (500, 2) and ys.shape == (500,)
    assert np.bincount(ys, minlength=3).min() > 100


def test_precisions_cholesky_are_consistent(rng):
    X, _ = make_blobs3(rng)
    est = MapEM(3, random_state=0).fit(X)
    for c, p in zip(est.covariances_, est.precisions_cholesky_, strict=True):
        np.testing.assert_allclose(p @ p.T @ c, np.eye(2), atol=1e-10)
        assert np.allclose(p, np.triu(p))


def test_bic_aic_icl_definitions(rng):
    X, _ = make_blobs3(rng, n=300)
    est = MapEM(3, random_state=0).fit(X)
    loglik = est.score_samples(X).sum()
    p = 3 * 2 + 3 * 3 + 2
    assert est.bic(X) == pytest.approx(-2 * loglik + p * np.log(300))
    assert est.aic(X) == pytest.approx(-2 * loglik + 2 * p)
    resp = est.predict_proba(X)
    assert est.icl(X) == pytest.approx(est.bic(X) - 2 * np.sum(np.log(resp.max(axis=1))))


def test_sample_weight_integer_equals_repeats_from_same_start(rng):
    X, labels = make_blobs3(rng, n=60)
    w = rng.integers(0, 4, size=60)
    start = dict(means_init=np.array([[0, 0], [8, 0], [0, 8.0]]), weights_init=np.full(3, 1 / 3),
                 precisions_init=np.tile(np.eye(2), (3, 1, 1)))
    a = MapEM(3, **start).fit(X, sample_weight=w)
    b = MapEM(3, **start).fit(np.repeat(X, w, axis=0))
    np.testing.assert_allclose(a.means_, b.means_, rtol=1e-9)
    np.testing.assert_allclose(a.covariances_, b.covariances_, rtol=1e-9)
    np.testing.assert_allclose(a.weights_, b.weights_, rtol=1e-9)


def test_import_does_not_import_pymc():
    import subprocess
    import sys

    code = "import bayes_gmm, sys; bayes_gmm.MapEM(2).fit([[0.0], [1.0], [5.0]]); print('pymc' in sys.modules, 'pytensor' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False False"


@pytest.mark.parametrize("ct", COVARIANCE_TYPES)
def test_covariances_from_precisions_cholesky_inverts_cholesky(rng, ct):
    X, _ = make_blobs3(rng)
    X[:, 1] += 0.7 * X[:, 0]
    est = MapEM(3, covariance_type=ct, random_state=0).fit(X)
    family = get_family(ct)
    np.testing.assert_allclose(family.covariances_from_precisions_cholesky(est.precisions_cholesky_),
                               est.covariances_, rtol=1e-10)


def test_criteria_accept_dataframes_without_warnings(rng):
    import pandas as pd

    X, _ = make_blobs3(rng)
    df = pd.DataFrame(X, columns=["a", "b"])
    est = MapEM(3, random_state=0).fit(df)
    loglik = est.score_samples(df).sum()
    assert est.bic(df) == pytest.approx(-2 * loglik + 17 * np.log(len(df)))  # warnings are errors here
    assert est.aic(df) == pytest.approx(-2 * loglik + 2 * 17)
    assert est.icl(df) >= est.bic(df)


def test_tol_zero_runs_max_iter(rng):
    X, labels = make_blobs3(rng, n=300, spread=10.0)
    with pytest.warns(ConvergenceWarning):
        est = MapEM(3, init_params=labels, tol=0.0, max_iter=25).fit(X)
    assert est.n_iter_ == 25 and est.log_posteriors_.shape == (26,)


def test_verbose_prints_progress_as_scikit_learn_does(seed_problem, capsys):
    X, _ = seed_problem
    MapEM(10, random_state=0).fit(X)
    assert capsys.readouterr().out == ""  # silent by default
    est = MapEM(10, n_init=2, verbose=2, verbose_interval=1, tol=1e-8, random_state=0).fit(X)
    out = capsys.readouterr().out.splitlines()
    assert [line for line in out if line.startswith("Initialization ") and line[15:].isdigit()] == [
        "Initialization 0",
        "Initialization 1",
    ]
    iterations = [line for line in out if line.strip().startswith("Iteration")]
    assert len(iterations) >= est.n_iter_  # every iteration of each run, interval 1
    assert sum("converged after" in line for line in out) == 2
    MapEM(10, n_init=1, verbose=1, random_state=0).fit(X)
    quiet = capsys.readouterr().out
    assert "Initialization 0" in quiet and "Iteration" not in quiet


@pytest.mark.parametrize("bad", [-1, 1.5, "yes"])
def test_verbose_must_be_a_non_negative_integer(seed_problem, bad):
    X, _ = seed_problem
    with pytest.raises((TypeError, ValueError), match="verbose"):
        MapEM(2, verbose=bad).fit(X)
