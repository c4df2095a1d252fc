"""NIWPrior: mclust's defaults, the floor, densities against scipy, serialisation."""

import numpy as np
import pytest
from scipy import stats

from bayes_gmm import NIWPrior
from bayes_gmm.model.prior import SCALE_FLOOR, log_dirichlet, log_invgamma, log_invwishart, log_mvnormal


@pytest.mark.parametrize("d, k", [(1, 2), (2, 10), (5, 3)])
def test_from_data_equals_mclust_default_prior(rng, d, k):
    X = rng.normal(size=(200, d)) @ rng.normal(size=(d, d)) + 3.0
    cov = np.cov(X, rowvar=False).reshape(d, d)
    full = NIWPrior.from_data(X, k, "full", alpha=1.0)
    np.testing.assert_allclose(full.m0, X.mean(axis=0), rtol=1e-13)
    assert full.kappa0 == 0.01 and full.nu0 == d + 2 and full.alpha == 1.0
    np.testing.assert_allclose(full.psi0, cov * k ** (-2.0 / d), rtol=1e-12)
    tied = NIWPrior.from_data(X, k, "tied", alpha=1.0)
    np.testing.assert_allclose(tied.psi0, full.psi0, rtol=1e-12)
    mclust = {"diag": dict(pooled_variance=True), "spherical": {}}
    for ct, option in mclust.items():
        p = NIWPrior.from_data(X, k, ct, alpha=1.0, **option)
        assert p.a0 == pytest.approx((d + 2) / 2)
        np.testing.assert_allclose(2 * np.asarray(p.b0), k ** (-2.0 / d) * np.mean(np.diag(cov)), rtol=1e-12)


@pytest.mark.parametrize("d, k", [(2, 3), (5, 4)])
def test_diag_default_scale_is_per_column(rng, d, k):
    """diag's default b0 follows each column's own variance (mclust pools them)."""
    X = rng.normal(size=(300, d)) * np.logspace(-3, 3, d)
    var = np.var(X, axis=0, ddof=1)
    prior = NIWPrior.from_data(X, k, "diag")
    np.testing.assert_allclose(2 * prior.b0, k ** (-2.0 / d) * var, rtol=1e-12)
    pooled = NIWPrior.from_data(X, k, "diag", pooled_variance=True)
    np.testing.assert_allclose(2 * pooled.b0, k ** (-2.0 / d) * np.mean(var), rtol=1e-12)


def test_default_alpha_is_above_one(rng):
    prior = NIWPrior.from_data(rng.normal(size=(50, 2)), 3)
    assert prior.alpha == 2.0


def test_prior_strength_is_a_factor_on_the_scale(rng):
    X = rng.normal(size=(100, 3))
    for ct in ("full", "tied"):
        a = NIWPrior.from_data(X, 4, ct)
        b = NIWPrior.from_data(X, 4, ct, prior_strength=5.0)
        np.testing.assert_allclose(b.psi0, 5.0 * a.psi0, rtol=1e-13)
        assert a.nu0 == b.nu0 and a.kappa0 == b.kappa0
    for ct in ("diag", "spherical"):
        a = NIWPrior.from_data(X, 4, ct)
        b = NIWPrior.from_data(X, 4, ct, prior_strength=5.0)
        np.testing.assert_allclose(b.b0, 5.0 * np.asarray(a.b0), rtol=1e-13)


@pytest.mark.parametrize(
    "make",
    [
        lambda rng: np.column_stack([rng.normal(size=40), np.full(40, 7.0)]),  # constant column
        lambda rng: np.column_stack([rng.normal(size=40), np.zeros(40)]),  # column of zeros
        lambda rng: rng.normal(size=(3, 6)),  # fewer rows than columns
        lambda rng: np.tile([[1.0, 2.0, 3.0]], (10, 1)),  # all rows equal
        lambda rng: np.outer(rng.normal(size=30), [1.0, -2.0, 0.5]),  # collinear
        lambda rng: rng.normal(size=(1, 3)),  # a single row
    ],
)
def test_scale_is_positive_definite_on_degenerate_data(rng, make):
    X = make(rng)
    prior = NIWPrior.from_data(X, 2, "full")
    assert np.linalg.eigvalsh(prior.psi0)[0] > 0
    np.linalg.cholesky(prior.psi0)
    for ct in ("diag", "spherical"):
        assert np.all(np.asarray(NIWPrior.from_data(X, 2, ct).b0) > 0)


def test_scale_floor_is_equivariant_to_rescaling_each_column(rng):
    X = np.column_stack([rng.normal(size=40), np.full(40, 7.0), rng.normal(size=40)])
    X[:, 2] = X[:, 0] * 2.0  # collinear too
    s = np.array([1e-3, 50.0, 1e6])
    a = NIWPrior.from_data(X, 3, "full")
    b = NIWPrior.from_data(X * s, 3, "full")
    np.testing.assert_allclose(b.psi0, a.psi0 * np.outer(s, s), rtol=1e-9)
    # the floor is relative: the correlation-scale eigenvalue is SCALE_FLOOR
    D = np.sqrt(np.diag(a.psi0))
    assert np.linalg.eigvalsh(a.psi0 / np.outer(D, D))[0] == pytest.approx(SCALE_FLOOR, rel=1e-3)


def test_well_conditioned_scale_is_left_alone(rng):
    X = rng.normal(size=(100, 3))
    prior = NIWPrior.from_data(X, 1, "full")
    np.testing.assert_allclose(prior.psi0, np.cov(X, rowvar=False), rtol=1e-12)


def test_log_invwishart_matches_scipy(rng):
    d = 3
    psi = np.cov(rng.normal(size=(20, d)), rowvar=False) + 0.1 * np.eye(d)
    for nu in (d + 0.5, d + 2.0, 12.0):
        covs = stats.invwishart(df=nu, scale=psi).rvs(size=4, random_state=1)
        ours = log_invwishart(covs, nu, psi)
        np.testing.assert_allclose(ours, stats.invwishart(df=nu, scale=psi).logpdf(covs.transpose(1, 2, 0)), rtol=1e-10)


def test_log_invgamma_matches_scipy(rng):
    x = rng.gamma(2.0, size=7)
    np.testing.assert_allclose(log_invgamma(x, 2.5, 0.7), stats.invgamma(2.5, scale=0.7).logpdf(x), rtol=1e-12)


def test_log_dirichlet_and_normal_match_scipy(rng):
    w = rng.dirichlet(np.ones(4))
    for alpha in (1.0, 2.0, 3.7):
        assert log_dirichlet(w, alpha) == pytest.approx(stats.dirichlet(np.full(4, alpha)).logpdf(w), rel=1e-12)
    cov = np.array([[2.0, 0.3], [0.3, 0.5]])
    x = rng.normal(size=(5, 2))
    np.testing.assert_allclose(
        log_mvnormal(x, np.array([0.1, -0.2]), np.linalg.cholesky(cov)),
        stats.multivariate_normal([0.1, -0.2], cov).logpdf(x),
        rtol=1e-12,
    )


@pytest.mark.parametrize("ct", ["full", "tied", "diag", "spherical"])
def test_log_density_matches_scipy_composition(rng, ct):
    """The prior's log density is the sum of the docs/MATH.md terms, each from scipy."""
    d, k = 2, 3
    X = rng.normal(size=(50, d))
    prior = NIWPrior.from_data(X, k, ct)
    w = rng.dirichlet(np.ones(k))
    means = rng.normal(size=(k, d))
    expected = stats.dirichlet(np.full(k, prior.alpha)).logpdf(w)
    if ct == "full":
        cov = stats.invwishart(df=prior.nu0, scale=prior.psi0).rvs(size=k, random_state=2)
        for j in range(k):
            expected += stats.invwishart(df=prior.nu0, scale=prior.psi0).logpdf(cov[j])
            expected += stats.multivariate_normal(prior.m0, cov[j] / prior.kappa0).logpdf(means[j])
    elif ct == "tied":
        cov = stats.invwishart(df=prior.nu0, scale=prior.psi0).rvs(random_state=2)
        expected += stats.invwishart(df=prior.nu0, scale=prior.psi0).logpdf(cov)
        expected += stats.multivariate_normal(prior.m0, cov / prior.kappa0).logpdf(means).sum()
    elif ct == "diag":
        cov = rng.gamma(2.0, size=(k, d))
        expected += stats.invgamma(prior.a0, scale=prior.b0).logpdf(cov).sum()
        expected += stats.norm(prior.m0, np.sqrt(cov / prior.kappa0)).logpdf(means).sum()
    else:
        cov = rng.gamma(2.0, size=k)
        expected += stats.invgamma(prior.a0, scale=prior.b0).logpdf(cov).sum()
        for j in range(k):
            expected += stats.multivariate_normal(prior.m0, cov[j] / prior.kappa0 * np.eye(d)).logpdf(means[j])
    assert prior.log_density(w, means, cov) == pytest.approx(expected, rel=1e-11)


def test_round_trip_dict(rng):
    X = rng.normal(size=(30, 2))
    for ct in ("full", "tied", "diag", "spherical"):
        prior = NIWPrior.from_data(X, 2, ct)
        assert NIWPrior.from_dict(prior.to_dict()) == prior


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(alpha=0.5), "alpha must be >= 1"),
        (dict(alpha=np.nan), "alpha must be a finite"),
        (dict(kappa0=-1.0), "kappa0 must be a finite positive"),
        (dict(nu0=0.5), "nu0 must be > d - 1"),
        (dict(psi0=np.eye(3)), r"psi0 must have shape \(d, d\) = \(2, 2\)"),
        (dict(psi0=np.array([[1.0, 2.0], [2.0, 1.0]])), "psi0 must be positive definite"),
        (dict(m0=[np.inf, 0.0]), "m0 must be a finite 1-D array"),
    ],
)
def test_explicit_prior_is_checked(kwargs, match):
    base = dict(covariance_type="full", alpha=2.0, m0=np.zeros(2), kappa0=0.01, nu0=4.0, psi0=np.eye(2))
    base.update(kwargs)
    with pytest.raises(ValueError, match=match):
        NIWPrior(**base)


def test_wrong_diag_scale_shape():
    with pytest.raises(ValueError, match=r"b0 must have shape \(2,\)"):
        NIWPrior("diag", 2.0, np.zeros(2), 0.01, a0=2.0, b0=np.ones(3))
    with pytest.raises(TypeError, match="alpha must be a real number"):
        NIWPrior("diag", "two", np.zeros(2), 0.01, a0=2.0, b0=np.ones(2))
