"""Every registered covariance family, through the same tests: what the posterior layer asks of
a family (shapes and dims, the quadratic form, log densities and KL divergences over draws,
noise, prior draws) agrees with the family's dense matrices and with SciPy.

A new family added to the registry runs through all of these without a line changed here.
"""

import numpy as np
import pytest
from conftest import COVARIANCE_TYPES
from scipy import stats

from bayes_gmm import NIWPrior, get_family
from bayes_gmm.model.array_ops import NUMPY_OPS

K, D, S = 3, 4, 5


def _random_covariances(family, rng, leading=()):
    """Random covariances in the family's shape (well conditioned), with leading axes."""
    shape = (*leading, *family.covariance_shape(K, D))
    if len(family.covariance_dims) and family.covariance_dims[-1] == "feature_bis":
        A = rng.normal(size=(*shape[:-1], D))
        return A @ np.swapaxes(A, -1, -2) / D + np.eye(D)
    return rng.uniform(0.5, 2.0, size=shape)


@pytest.fixture(params=COVARIANCE_TYPES)
def family(request):
    return get_family(request.param)


def test_dims_name_the_covariance_shape(family):
    sizes = {"component": K, "feature": D, "feature_bis": D}
    assert tuple(sizes[dim] for dim in family.covariance_dims) == family.covariance_shape(K, D)
    letters = family.core_signature()[1:-1].split(",")
    assert len(letters) == len(family.covariance_dims)


def test_quadratic_form_equals_the_mahalanobis_distance(family):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(7, D)) * 3.0
    mu = rng.normal(size=(S, K, D))
    cov = _random_covariances(family, rng, (S,))
    features = family.quadratic_features(X)
    assert features.shape == (7, family.n_quadratic_features(D))
    coef, const, logdet = family.quadratic_coefficients(mu, cov, D)
    assert coef.shape == (S, K, features.shape[1]) and const.shape == logdet.shape == (S, K)
    dense = family.dense(cov, K, D)  # (S, K, d, d)
    diff = X[None, :, None, :] - mu[:, None, :, :]
    want = np.einsum("snka,skab,snkb->snk", diff, np.linalg.inv(dense), diff)
    got = np.einsum("nf,skf->snk", features, coef) + const[:, None, :]
    np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(logdet, np.linalg.slogdet(dense)[1], rtol=1e-12)
    # the same code on one draw (no leading axis), as the PyMC model calls it
    coef0, const0, logdet0 = family.quadratic_coefficients(mu[0], cov[0], D, NUMPY_OPS)
    np.testing.assert_allclose(coef0, coef[0], rtol=1e-12)
    np.testing.assert_allclose(const0 + logdet0, const[0] + logdet[0], rtol=1e-12)


def test_log_prob_of_draws_matches_scipy(family):
    rng = np.random.default_rng(1)
    X = rng.normal(size=(6, D))
    weights = rng.dirichlet(np.ones(K), size=S)
    mu = rng.normal(size=(S, K, D))
    cov = _random_covariances(family, rng, (S,))
    got = family.log_prob_draws(X, weights, mu, cov)
    dense = family.dense(cov, K, D)
    for s in range(S):
        for k in range(K):
            want = np.log(weights[s, k]) + stats.multivariate_normal(mu[s, k], dense[s, k]).logpdf(X)
            np.testing.assert_allclose(got[s, :, k], want, rtol=1e-11)


def test_kl_divergence_is_zero_only_on_the_diagonal_of_identical_components(family):
    rng = np.random.default_rng(2)
    mu = rng.normal(size=(K, D)) * 5.0
    cov = _random_covariances(family, rng)
    kl = family.kl_divergence_draws(mu[None], cov[None], mu, cov)[0]
    np.testing.assert_allclose(np.diag(kl), 0.0, atol=1e-10)
    assert np.all(kl[~np.eye(K, dtype=bool)] > 0.1)


def test_scale_noise_has_each_components_covariance(family):
    """``L_c eps`` with ``eps`` the unit vectors gives the columns of ``L_c``: ``L_c L_c^T`` is
    the covariance of the component each row names."""
    rng = np.random.default_rng(3)
    cov = _random_covariances(family, rng, (2,))
    labels = np.array([[2] * D, [0] * D])
    rows = np.arange(2)[:, None]
    eps = np.broadcast_to(np.eye(D), (2, D, D)).copy()
    L_T = family.scale_noise(cov, rows, labels, eps)  # row i = column i of L
    dense = family.dense(cov, K, D)
    np.testing.assert_allclose(np.swapaxes(L_T, -1, -2) @ L_T, dense[[0, 1], [2, 0]], rtol=1e-12)


def test_prior_draws_have_the_prior_mean(family):
    if not family.posterior_form:  # a restricted prior: no draws (the posterior layer's)
        with pytest.raises(NotImplementedError, match="has no prior to draw from"):
            family.draw_prior_covariances(None, K, np.random.default_rng(0))
        return
    """The mean of inverse-Wishart(nu, Psi) is Psi / (nu - d - 1); of inverse-gamma(a, b) b / (a - 1)."""
    rng = np.random.default_rng(4)
    X = rng.normal(size=(200, D)) * [1.0, 2.0, 3.0, 4.0]
    prior = NIWPrior.from_data(X, K, covariance_type=family.name)
    draws = np.stack([family.draw_prior_covariances(prior, K, rng) for _ in range(4000)])
    assert draws.shape[1:] == family.covariance_shape(K, D)
    dense = family.dense(draws, K, D)
    assert np.all(np.linalg.eigvalsh(dense) > 0)
    dense = dense.mean(axis=(0, 1))
    if family.wishart_prior:
        want = prior.psi0 / (prior.nu0 - D - 1)
    else:
        want = np.diag(np.broadcast_to(prior.b0, (D,)) / (prior.a0 - 1))
    np.testing.assert_allclose(dense, want, rtol=0.1, atol=0.05 * np.abs(want).max())


def test_mean_scale_is_the_scaled_covariance_factor(family):
    rng = np.random.default_rng(5)
    cov = _random_covariances(family, rng)
    spread = np.array([0.5, 1.0, 2.0])
    scale = family.mean_scale(cov, spread, D)
    dense = family.dense(cov, K, D)
    factor = scale if scale.ndim == 3 else scale[..., None] * np.eye(D)  # standard deviations
    np.testing.assert_allclose(factor @ np.swapaxes(factor, -1, -2), dense * spread[:, None, None] ** 2, rtol=1e-12)


def test_symmetrized_is_symmetric_and_keeps_symmetric_input(family):
    rng = np.random.default_rng(6)
    cov = _random_covariances(family, rng, (2,))
    np.testing.assert_array_equal(family.symmetrized(cov), cov)
    if cov.ndim >= 3 and cov.shape[-1] == cov.shape[-2] == D and "feature_bis" in family.covariance_dims:
        skew = cov + 1e-9 * rng.normal(size=cov.shape)
        sym = family.symmetrized(skew)
        np.testing.assert_array_equal(sym, np.swapaxes(sym, -1, -2))


def test_a_new_family_is_one_class_and_one_registry_line(monkeypatch, tmp_path):
    """Register a family (here a copy of diag under another name) and every layer takes it:
    the estimator, model selection, saving and loading, the posterior's draws."""
    from bayes_gmm import MapEM, load, make_seed_problem, save, select
    from bayes_gmm.bayes import draws
    from bayes_gmm.model.families import COVARIANCE_FAMILIES, DiagCovariance

    class IndependentColumns(DiagCovariance):
        name = "independent"

    monkeypatch.setitem(COVARIANCE_FAMILIES, "independent", IndependentColumns())
    X = make_seed_problem()[0][:300]
    new = MapEM(3, covariance_type="independent", random_state=0).fit(X)
    diag = MapEM(3, covariance_type="diag", random_state=0).fit(X)
    np.testing.assert_allclose(new.covariances_, diag.covariances_, rtol=1e-12)
    assert new.prior_.covariance_type == "independent"

    result = select(X, k=[2, 3], covariance_types=["independent", "diag"], random_state=0)
    table = result.table.set_index(["k", "covariance_type"])
    np.testing.assert_allclose(table.loc[(3, "independent"), "bic"], table.loc[(3, "diag"), "bic"], rtol=1e-9)

    loaded = load(save(new, tmp_path / "model.json"))
    assert loaded.covariance_type == "independent"
    np.testing.assert_array_equal(loaded.predict_proba(X), new.predict_proba(X))

    rng = np.random.default_rng(0)
    weights, means, cov = draws.draw_prior(new.prior_, 3, rng)
    x, labels = draws.simulate_mixture(rng, weights, means, cov, "independent", 50)
    assert x.shape == (50, 2) and set(np.unique(labels)) <= {0, 1, 2}
