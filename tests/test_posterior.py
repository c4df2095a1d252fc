"""The PyMC posterior: same model as MapEM, correct densities, relabelling, predictive checks.

Slow tests compile PyTensor graphs or sample; logp checks use ``mode="FAST_COMPILE"`` (Python
implementations, no numba compilation); the sampling tests reuse one model of the 3-blob data and
add two small ones (a constant column, full and diag).  The convergence warning is checked on
fabricated posteriors (``_posterior_fakes``).
"""

import re
import subprocess
import sys

import numpy as np
import pytest
import xarray as xr
from _posterior_fakes import fake_posterior, niw_posterior, unconverged
from conftest import POSTERIOR_TYPES, convergence_warnings, make_blobs3
from scipy import stats

from bayes_gmm import ConvergenceWarning, MapEM, get_family, log_posterior
from bayes_gmm.bayes import draws

posterior = pytest.importorskip("bayes_gmm.bayes.posterior")
pm = pytest.importorskip("pymc")
import pytensor  # noqa: E402
import pytensor.tensor as pt  # noqa: E402
from pymc.initial_point import make_initial_point_fn  # noqa: E402
from pymc.model.transform.conditioning import remove_value_transforms  # noqa: E402

FAST = "FAST_COMPILE"


# ----------------------------------------------------------------------------------------
# fixtures
# ----------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def blobs():
    X, _ = make_blobs3(np.random.default_rng(0), n=240, spread=6.0)
    # shear so that the covariances are correlated
    return X @ np.array([[1.0, 0.0], [0.6, 0.8]])


@pytest.fixture(scope="module")
def fitted(blobs):
    return {
        ct: MapEM(3, covariance_type=ct, random_state=0, tol=1e-14, max_iter=20_000).fit(blobs)
        for ct in POSTERIOR_TYPES
    }


@pytest.fixture(scope="module")
def models(blobs, fitted):
    return {ct: posterior.build_model(fitted[ct], blobs) for ct in POSTERIOR_TYPES}


def unconstrained(model, values):
    """The sampler's (transformed) point for constrained parameter values."""
    return make_initial_point_fn(model=model, overrides=values, jitter_rvs=set())(0)


def random_parameters(est, rng):
    """A parameter value away from the MAP, in scikit-learn's shapes."""
    k, d = est.means_.shape
    weights = rng.dirichlet(np.full(k, 5.0))
    means = est.means_ + 0.3 * rng.standard_normal((k, d))
    cov = np.asarray(est.covariances_)
    ct = est.covariance_type
    if ct in ("full", "tied"):
        shape = (k, d, d) if ct == "full" else (d, d)
        W = np.eye(d) + 0.3 * rng.standard_normal(shape)
        cov = W @ cov @ np.swapaxes(W, -1, -2) + 0.05 * np.eye(d)
        cov = 0.5 * (cov + np.swapaxes(cov, -1, -2))
    else:
        cov = cov * np.exp(0.5 * rng.standard_normal(cov.shape))
    return {"weights": weights, "means": means, "covariances": cov}


def map_values(est):
    return {"weights": est.weights_, "means": est.means_, "covariances": est.covariances_}


def covariance_samples(dataset, ct):
    """Every covariance entry that is a free parameter (lower triangle for full/tied)."""
    cov = dataset["covariances"]
    if ct in ("full", "tied"):
        d = cov.sizes["feature"]
        rows, cols = np.tril_indices(d)
        feats = cov["feature"].values
        return [cov.sel(feature=feats[i], feature_bis=feats[j]) for i, j in zip(rows, cols, strict=True)]
    return [cov]


# ----------------------------------------------------------------------------------------
# the same model as MapEM
# ----------------------------------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.parametrize("ct", POSTERIOR_TYPES)
def test_logp_without_jacobian_is_map_objective(ct, blobs, fitted, models, rng):
    est, model = fitted[ct], models[ct]
    logp = model.compile_logp(jacobian=False, mode=FAST)
    # the same density with the parameters themselves as inputs (no transform at all)
    plain = remove_value_transforms(model).compile_logp(mode=FAST)
    diffs = []
    for values in [map_values(est)] + [random_parameters(est, rng) for _ in range(4)]:
        objective = log_posterior(blobs, values["weights"], values["means"], values["covariances"], est.prior_)
        diffs.append(logp(unconstrained(model, values)) - objective)
        np.testing.assert_allclose(plain(values), objective, rtol=1e-10)
    # equal to rounding: both densities are normalised, and the hyper-parameters are graph
    # inputs (constant-folded, PyTensor's gammaln(a0) was 1.9e-9 off scipy's: a constant
    # 5.6e-10 per inverse-gamma factor in the model's density)
    np.testing.assert_allclose(diffs, 0.0, atol=1e-12)


@pytest.mark.slow
@pytest.mark.parametrize("ct", POSTERIOR_TYPES)
def test_gradient_vanishes_at_map_fit(ct, fitted, models, rng):
    est, model = fitted[ct], models[ct]
    assert est.converged_
    dlogp = model.compile_dlogp(jacobian=False, mode=FAST)
    grad_map = dlogp(unconstrained(model, map_values(est)))
    grad_away = dlogp(unconstrained(model, random_parameters(est, rng)))
    # the unconstrained coordinates are scaled by the posterior spread: O(1) gradients away
    # EM stops at a relative change of 1e-14 in the objective, not at an exact zero
    assert np.max(np.abs(grad_away)) > 1.0
    assert np.max(np.abs(grad_map)) < 1e-4


@pytest.mark.slow
@pytest.mark.parametrize("ct", ["full", "tied"])
def test_sampled_graph_has_no_factorisation(ct, fitted, models):
    """In the sampler's coordinates the log density and its gradient need no Cholesky, solve or
    inverse: the rewrites PyTensor runs before differentiating reduce cholesky(inv(Sigma)) to the
    transform's own factor.  (A factorisation here made compilation and sampling 1.4x slower.)"""
    from pytensor.graph import rewrite_graph
    from pytensor.graph.traversal import ancestors
    from pytensor.tensor.blockwise import Blockwise

    model = models[ct]
    logp = rewrite_graph(model.logp(), include=["canonicalize", "stabilize"])
    grads = pt.grad(logp, model.value_vars)
    ops = {
        type(v.owner.op.core_op if isinstance(v.owner.op, Blockwise) else v.owner.op).__name__
        for v in ancestors([logp, *grads])
        if v.owner is not None
    }
    assert not ops & {"Cholesky", "SolveTriangular", "CholeskySolve", "MatrixInverse", "Solve", "Det"}
    assert "Dot" in ops  # the check looks inside Blockwise


# ----------------------------------------------------------------------------------------
# the densities
# ----------------------------------------------------------------------------------------
def _spd(rng, d, n):
    W = rng.standard_normal((n, d, d))
    return W @ np.swapaxes(W, 1, 2) + 0.5 * np.eye(d)


@pytest.mark.slow
@pytest.mark.parametrize("d", [1, 2, 3])
def test_invwishart_logp_matches_scipy(d, rng):
    nu = d + 1.7
    psi = _spd(rng, d, 1)[0]
    values = _spd(rng, d, 5)
    value = pt.tensor3("value", shape=(5, d, d))
    fn = pytensor.function([value], posterior.invwishart_logp(value, nu, psi), mode=FAST)
    want = [stats.invwishart.logpdf(v, df=nu, scale=psi) for v in values]
    np.testing.assert_allclose(fn(values), want, rtol=1e-10)


@pytest.mark.slow
@pytest.mark.parametrize("ct", POSTERIOR_TYPES)
def test_covariance_prior_matches_scipy(ct, fitted, models, rng):
    prior = fitted[ct].prior_
    rv = models[ct]["covariances"]
    cov = random_parameters(fitted[ct], rng)["covariances"]
    got = pytensor.function([], pm.logp(rv, cov), mode=FAST)()
    if ct == "full":
        want = [stats.invwishart.logpdf(c, df=prior.nu0, scale=prior.psi0) for c in cov]
    elif ct == "tied":
        want = stats.invwishart.logpdf(cov, df=prior.nu0, scale=prior.psi0)
    else:
        want = stats.invgamma.logpdf(cov, prior.a0, scale=prior.b0)
    np.testing.assert_allclose(got, want, rtol=1e-10)


@pytest.mark.slow
@pytest.mark.parametrize("ct", POSTERIOR_TYPES)
def test_mixture_likelihood_is_pointwise(ct, blobs, fitted, models):
    """The observed variable's log density, row by row, is MapEM's ``score_samples``."""
    est = fitted[ct]
    plain = remove_value_transforms(models[ct])
    logp_x = plain.compile_fn(plain.logp(vars=[plain["x"]], sum=False), mode=FAST)
    pointwise = logp_x(map_values(est))[0]
    assert pointwise.shape == (blobs.shape[0],)
    np.testing.assert_allclose(pointwise, est.score_samples(blobs), rtol=1e-10)


@pytest.mark.slow
@pytest.mark.parametrize("ct", ["full", "tied"])
def test_prior_draws_of_means_and_covariances(ct, fitted, models):
    """Forward draws from the model: shapes, and the mean's N(m0, Sigma / kappa0) given Sigma."""
    est, model = fitted[ct], models[ct]
    k, d = est.means_.shape
    cov, means = pm.draw([model["covariances"], model["means"]], draws=3, random_seed=1, mode=FAST)
    assert cov.shape == (3, *np.shape(est.covariances_)) and means.shape == (3, k, d)
    np.testing.assert_allclose(cov, np.swapaxes(cov, -1, -2))
    assert np.all(np.linalg.eigvalsh(cov) > 0)
    prior = est.prior_
    sigma = np.asarray(est.covariances_)[0] if ct == "full" else np.asarray(est.covariances_)
    draws = posterior._mean_random(prior.m0, prior.kappa0, sigma, rng=0, size=(40_000,))
    assert draws.shape == (40_000, d)
    np.testing.assert_allclose(draws.mean(axis=0), prior.m0, atol=0.03 * np.sqrt(sigma.diagonal().max() / prior.kappa0) + 1e-9)
    np.testing.assert_allclose(np.cov(draws.T), sigma / prior.kappa0, rtol=0.05, atol=0.02 * np.abs(sigma).max() / prior.kappa0)


@pytest.mark.slow
@pytest.mark.parametrize("d", [1, 2, 3])
def test_bartlett_transform_jacobian(d, rng):
    """The log Jacobian is right, and with R = chol(Psi0^-1) the density is Bartlett's."""
    nu = d + 2.3
    psi = _spd(rng, d, 1)[0]
    p = d * (d + 1) // 2
    R = np.linalg.cholesky(np.linalg.inv(psi))
    transform = posterior.PrecisionCholeskyTransform(R)
    u = pt.vector("u", shape=(p,))
    sigma = transform.backward(u)
    rows, cols = np.tril_indices(d)
    entries = sigma[rows, cols]
    jac = pt.stack([pytensor.grad(entries[i], u) for i in range(p)])  # no Scan: no C compiler
    density = posterior.invwishart_logp(sigma, nu, psi) + transform.log_jac_det(u)
    fn = pytensor.function([u], [pt.log(pt.abs(pt.linalg.det(jac))), transform.log_jac_det(u), density, sigma], mode=FAST)
    s = pt.matrix("s", shape=(d, d))
    to_u = pytensor.function([s], transform.forward(s), mode=FAST)
    for _ in range(3):
        value = 0.5 * rng.standard_normal(p)
        autodiff, explicit, got, sig = fn(value)
        np.testing.assert_allclose(explicit, autodiff, rtol=1e-8, atol=1e-10)
        np.testing.assert_allclose(to_u(sig), value, atol=1e-8)
        A = np.zeros((d, d))
        A[rows, cols] = value
        diag = np.exp(value[rows == cols])
        want = np.sum(
            stats.chi2.logpdf(diag**2, nu - np.arange(d)) + np.log(2.0) + 2.0 * value[rows == cols]
        ) + np.sum(stats.norm.logpdf(value[rows != cols]))
        np.testing.assert_allclose(got, want, rtol=1e-10)


# ----------------------------------------------------------------------------------------
# relabelling (pure NumPy, no PyMC compilation)
# ----------------------------------------------------------------------------------------
def _fake_posterior(est, rng, n_chain=2, n_draw=30, noise=0.02):
    ct = est.covariance_type
    k, d = est.means_.shape
    shape = (n_chain, n_draw)
    weights = rng.dirichlet(200 * est.weights_, size=shape)
    means = est.means_ + noise * rng.standard_normal((*shape, k, d))
    cov = np.asarray(est.covariances_)
    cov = np.broadcast_to(cov, (*shape, *cov.shape)).copy()
    if ct in ("diag", "spherical"):
        cov = cov * np.exp(noise * rng.standard_normal(cov.shape))
    dims = get_family(ct).covariance_dims
    return xr.Dataset(
        {
            "weights": (("chain", "draw", "component"), weights),
            "means": (("chain", "draw", "component", "feature"), means),
            "covariances": (("chain", "draw", *dims), cov),
        },
        coords={"chain": np.arange(n_chain), "draw": np.arange(n_draw), "component": np.arange(k)},
    )


@pytest.mark.parametrize("ct", POSTERIOR_TYPES)
def test_relabel_restores_permuted_draws(ct, fitted, rng):
    est = fitted[ct]
    clean = _fake_posterior(est, rng)
    k = est.weights_.shape[0]
    shape = (clean.sizes["chain"], clean.sizes["draw"])
    perms = np.array([rng.permutation(k) if rng.uniform() < 0.5 else np.arange(k) for _ in range(np.prod(shape))])
    perms = perms.reshape(*shape, k)
    scrambled = clean.copy()
    for name, var in clean.data_vars.items():
        if "component" in var.dims:
            arr = var.transpose("chain", "draw", "component", ...).values
            index = perms.reshape(*shape, k, *([1] * (arr.ndim - 3)))
            scrambled[name] = (var.transpose("chain", "draw", "component", ...).dims, np.take_along_axis(arr, index, 2))
    relabelled, info = draws.relabel(scrambled, est)
    for name in clean.data_vars:
        xr.testing.assert_allclose(relabelled[name].transpose(*clean[name].dims), clean[name])
    # scrambled[k] = clean[perm[k]], so relabelled[k] = scrambled[inv[k]] with inv = argsort(perm)
    np.testing.assert_array_equal(info["permutation"].values, np.argsort(perms, axis=-1))
    n_permuted = int(np.sum(np.any(perms != np.arange(k), axis=-1)))
    assert info.attrs["n_permuted_draws"] == n_permuted
    assert info.attrs["n_ambiguous_draws"] == 0
    assert info["permutation"].dims == ("chain", "draw", "component")


def test_relabel_flags_ambiguous_draws(fitted, rng):
    est = fitted["spherical"]
    ref = xr.Dataset(
        {
            "means": (("component", "feature"), np.repeat(est.means_[:1], 3, axis=0) + [[0.0, 0.0], [1e-3, 0.0], [5.0, 5.0]]),
            "covariances": (("component",), np.ones(3)),
        }
    )
    _, info = draws.relabel(_fake_posterior(est, rng), ref, covariance_type="spherical")
    # components 0 and 1 of the reference are interchangeable: every draw is ambiguous
    assert info.attrs["n_ambiguous_draws"] == info.attrs["n_draws"]
    assert np.all(info["cost_gap"].values < 0.1)


@pytest.mark.parametrize("k", [2, 3, 4, 6])
def test_second_best_gap_is_the_brute_force_one(k, rng):
    import itertools

    from scipy.optimize import linear_sum_assignment

    costs = rng.exponential(size=(40, k, k)) * rng.uniform(1e-3, 1e3, size=(40, 1, 1))
    costs[:5] = np.round(costs[:5])  # ties: a gap of exactly 0
    costs[5, :, :] = 1.0  # every assignment costs the same
    perms = np.empty((40, k), dtype=np.int64)
    for i, cost in enumerate(costs):
        rows, cols = linear_sum_assignment(cost)
        perms[i, cols] = rows
    every = np.array([[c[np.arange(k), p].sum() for p in itertools.permutations(range(k))] for c in costs])
    ordered = np.sort(every, axis=1)
    gaps = draws._second_best_gaps(costs, perms)
    np.testing.assert_allclose(gaps, ordered[:, 1] - ordered[:, 0], rtol=1e-12, atol=1e-9 * costs.max())
    assert gaps[5] == 0.0 and np.all(gaps >= -1e-9 * costs.max())
    assert np.all(np.isinf(draws._second_best_gaps(costs[:, :1, :1], perms[:, :1])))


def test_relabel_rejects_bad_input(fitted, rng):
    post = _fake_posterior(fitted["full"], rng)
    with pytest.raises(ValueError, match="ambiguity_tol"):
        draws.relabel(post, fitted["full"], ambiguity_tol=-1.0)
    with pytest.raises(TypeError, match="reference"):
        draws.relabel(post, "map")
    with pytest.raises(ValueError, match="covariance_type"):
        draws.relabel(post, fitted["diag"])


# ----------------------------------------------------------------------------------------
# predictive checks on a fake posterior (no PyMC)
# ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("ct", POSTERIOR_TYPES)
def test_posterior_predictive_draws_are_independent(ct, fitted, rng):
    est = fitted[ct]
    post = _fake_posterior(est, rng, n_chain=2, n_draw=5, noise=0.0)  # identical means/covariances
    sim = draws.sample_posterior_predictive(post, 50, random_seed=1)
    d = est.means_.shape[1]
    assert sim["x"].dims == ("chain", "draw", "pp_obs", "feature")
    assert sim["x"].shape == (2, 5, 50, d)
    assert sim["labels"].shape == (2, 5, 50)
    x = sim["x"].values
    # a new sample per draw and per row: no value repeats, even where the component repeats
    assert np.unique(x).size == x.size
    again = draws.sample_posterior_predictive(post, 50, random_seed=1)
    np.testing.assert_array_equal(again["x"].values, x)
    big = draws.sample_posterior_predictive(post, 4000, random_seed=2)
    freq = np.bincount(big["labels"].values.ravel(), minlength=3) / big["labels"].size
    np.testing.assert_allclose(freq, post["weights"].mean(("chain", "draw")), atol=0.02)


@pytest.mark.parametrize("ct", POSTERIOR_TYPES)
def test_predictive_density_and_membership_at_a_point_mass(ct, blobs, fitted, rng):
    """With every draw at the MAP, both reduce to MapEM's score_samples and predict_proba."""
    est = fitted[ct]
    post = _fake_posterior(est, rng, n_chain=1, n_draw=3, noise=0.0)
    post["weights"][:] = est.weights_
    np.testing.assert_allclose(draws.posterior_predictive_density(post, blobs[:40]), est.score_samples(blobs[:40]), rtol=1e-10)
    mean, sd = draws.posterior_membership(post, blobs[:40])
    np.testing.assert_allclose(mean, est.predict_proba(blobs[:40]), atol=1e-10)
    np.testing.assert_allclose(sd, 0.0, atol=1e-7)


def test_input_checks(blobs, fitted):
    with pytest.raises(ValueError, match="not fitted"):
        posterior.build_model(MapEM(3), blobs)
    with pytest.raises(TypeError, match="MapEM"):
        posterior.build_model("est", blobs)
    with pytest.raises(ValueError, match="features"):
        posterior.build_model(fitted["full"], np.hstack([blobs, blobs]))
    with pytest.raises(ValueError, match="sampler"):
        posterior.sample_posterior(fitted["full"], blobs, sampler="gibbs")
    with pytest.raises(ValueError, match="cores"):
        posterior.sample_posterior(fitted["full"], blobs, cores=0)
    with pytest.raises(ValueError, match="coords"):
        posterior.build_model(fitted["full"], blobs, coords={"component": ["a", "b"]})
    post = _fake_posterior(fitted["full"], np.random.default_rng(0))
    with pytest.raises(ValueError, match="columns"):
        draws.posterior_predictive_density(post, np.ones((3, 5)))


def test_import_bayes_gmm_does_not_import_pymc():
    code = "import sys, bayes_gmm; bayes_gmm.MapEM; assert 'pymc' not in sys.modules, 'pymc imported'"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_a_saved_posterior_is_read_without_pymc(tmp_path, blobs, fitted):
    """Relabelling, memberships, predictive densities and the ArviZ comparison of a saved
    posterior need neither PyMC nor PyTensor (bayes_gmm.bayes.draws, bayes_gmm.diagnostics)."""
    est = fitted["diag"]
    post = _fake_posterior(est, np.random.default_rng(0))
    post.to_netcdf(tmp_path / "post.nc")
    np.save(tmp_path / "X.npy", blobs[:20])
    code = f"""
import sys, numpy as np, xarray as xr, bayes_gmm
post = xr.open_dataset({str(tmp_path / "post.nc")!r}).load()
X = np.load({str(tmp_path / "X.npy")!r})
relabelled, info = bayes_gmm.relabel(post, post.isel(chain=0, draw=0))
mean, sd = bayes_gmm.posterior_membership(relabelled, X)
density = bayes_gmm.posterior_predictive_density(relabelled, X)
import bayes_gmm.diagnostics
assert np.allclose(mean.sum(axis=1), 1.0) and np.all(np.isfinite(density)), (mean, density)
assert 'pymc' not in sys.modules and 'pytensor' not in sys.modules, 'PyMC imported'
"""
    subprocess.run([sys.executable, "-c", code], check=True)


# ----------------------------------------------------------------------------------------
# sampling: one 3-component 2-D problem, one compilation
# ----------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def sampled(blobs, fitted):
    return posterior.sample_posterior(
        fitted["full"], blobs, draws=1000, tune=1000, chains=4, random_seed=3, progressbar=False
    )


@pytest.mark.slow
def test_sampling_converges_after_relabelling(sampled, fitted):
    import arviz as az

    est = fitted["full"]
    post = sampled["posterior"].to_dataset()
    rhat = az.rhat(post)
    ess = az.ess(post, method="bulk")
    for name in ("weights", "means"):
        assert float(rhat[name].max()) <= 1.01, name
        assert float(ess[name].min()) >= 400, name
    for r, e in zip(covariance_samples(rhat, "full"), covariance_samples(ess, "full"), strict=True):
        assert float(r.max()) <= 1.01
        assert float(e.min()) >= 400
    assert int(sampled["sample_stats"]["diverging"].sum()) == 0
    # posterior means within a few posterior standard deviations of the MAP estimate
    for name, map_value in (("weights", est.weights_), ("means", est.means_), ("covariances", est.covariances_)):
        mean = post[name].mean(("chain", "draw")).values
        sd = post[name].std(("chain", "draw")).values
        assert np.all(np.abs(mean - map_value) <= 4 * sd + 1e-12), name


@pytest.mark.slow
def test_sampled_datatree_layout(sampled, blobs, fitted):
    groups = set(sampled.children)
    assert {"posterior", "posterior_raw", "relabelling", "sample_stats", "log_likelihood",
            "observed_data", "map_estimate"} <= groups
    post = sampled["posterior"]
    assert post["weights"].dims == ("chain", "draw", "component")
    assert post["means"].dims == ("chain", "draw", "component", "feature")
    assert post["covariances"].dims == ("chain", "draw", "component", "feature", "feature_bis")
    assert post.attrs["covariance_type"] == "full"
    for group in ("posterior", "posterior_raw"):
        cov = sampled[group]["covariances"].values
        np.testing.assert_array_equal(cov, np.swapaxes(cov, -1, -2))
    assert sampled["log_likelihood"]["x"].dims == ("chain", "draw", "obs")
    assert sampled["log_likelihood"]["x"].shape == (4, 1000, blobs.shape[0])
    info = sampled["relabelling"]
    assert info["permutation"].dims == ("chain", "draw", "component")
    assert {"n_permuted_draws", "n_ambiguous_draws"} <= set(info.attrs)
    # relabelling does not change the pointwise log-likelihood
    first = post.to_dataset().isel(chain=[0], draw=[0])
    density = draws.posterior_predictive_density(first, blobs)
    np.testing.assert_allclose(density, sampled["log_likelihood"]["x"].values[0, 0], rtol=1e-8)
    np.testing.assert_allclose(sampled["map_estimate"]["means"].values, fitted["full"].means_)


@pytest.mark.slow
def test_membership_and_predictive_from_samples(sampled, blobs, fitted):
    est = fitted["full"]
    mean, sd = draws.posterior_membership(sampled, blobs)
    assert mean.shape == sd.shape == (blobs.shape[0], 3)
    np.testing.assert_allclose(mean.sum(axis=1), 1.0)
    assert np.all(sd >= 0) and np.all(sd <= 0.5)
    assert np.max(np.abs(mean - est.predict_proba(blobs))) < 0.1
    density = draws.posterior_predictive_density(sampled, blobs[:50])
    assert density.shape == (50,)
    # averaging over the posterior changes the density at the data only a little
    assert abs(np.mean(density - est.score_samples(blobs[:50]))) < 0.1
    sim = draws.sample_posterior_predictive(sampled, 20, random_seed=0)
    assert sim["x"].shape == (4, 1000, 20, 2)
    assert np.unique(sim["x"].values).size == sim["x"].size


@pytest.mark.slow
def test_pymc_sampler_starts_at_map(blobs, fitted):
    """PyMC's own NUTS: same groups, chains started at the MAP stay in its labelling."""
    with convergence_warnings() as messages:
        idata = posterior.sample_posterior(
            fitted["full"], blobs, draws=100, tune=100, chains=2, sampler="pymc", random_seed=5, progressbar=False
        )
    # 2 x 100 draws cannot reach a bulk ESS of 100 per chain in every entry
    assert any("bulk ESS down to" in m for m in messages), messages
    assert {"posterior", "posterior_raw", "relabelling", "log_likelihood", "map_estimate"} <= set(idata.children)
    assert idata["relabelling"].attrs["n_permuted_draws"] == 0
    assert "lp" in idata["sample_stats"]


@pytest.mark.slow
def test_random_seed_reproduces_the_draws(blobs, fitted):
    """The same random_seed gives the same draws; another seed gives other draws."""

    def draws(seed):
        with convergence_warnings() as messages:
            idata = posterior.sample_posterior(
                fitted["full"], blobs, draws=60, tune=60, chains=2, random_seed=seed, progressbar=False
            )
        # 2 x 60 draws: too few for the convergence checks, and sample_posterior says so
        pattern = r"bulk ESS down to \d+ \(below 200: 100 per chain for 2 chains\) in \d+ of 18 entries, worst "
        assert any(re.search(pattern, m) for m in messages), messages
        return idata["posterior"]["means"].values

    first, again, other = draws(11), draws(11), draws(12)
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, other)


# ----------------------------------------------------------------------------------------
# convergence warning (fabricated posteriors, no PyMC)
# ----------------------------------------------------------------------------------------
def test_converged_chains_give_no_warning(blobs, fitted):
    tree = fake_posterior(fitted["full"], np.random.default_rng(0), chains=4, draws=1000)
    assert draws.convergence_message(tree) is None
    # a single component's weight is 1 in every draw: no R-hat, no ESS, no warning, no NaN warning
    one = MapEM(1, random_state=0).fit(blobs)
    assert draws.convergence_message(niw_posterior(blobs, one.prior_, np.random.default_rng(1))) is None


def test_stuck_chain_warns_with_rhat_and_the_worst_entries(fitted):
    tree = fake_posterior(fitted["full"], np.random.default_rng(0), chains=4, draws=1000)
    stuck = unconverged(tree, shift=("means", (1, 0), 0.1))  # noise 0.02: chain 0 sits 5 sd away
    with pytest.warns(ConvergenceWarning, match=r"R-hat up to \d\.\d{3} \(above 1\.01\) in 1 of \d+ entries, worst means\[1, 0\]"):
        draws.warn_if_not_converged(stuck["posterior"].to_dataset())
    # a covariance entry is named once (lower triangle), by its labels
    stuck = unconverged(unconverged(tree, shift=("covariances", (2, 1, 0), 1.0)), shift=("covariances", (2, 0, 1), 1.0))
    message = draws.convergence_message(stuck)
    assert "covariances[2, 1, 0]" in message and "covariances[2, 0, 1]" not in message


def test_sticky_chains_warn_with_bulk_ess(fitted):
    tree = fake_posterior(fitted["diag"], np.random.default_rng(0), chains=4, draws=1000)
    message = draws.convergence_message(unconverged(tree, repeat=20))
    assert "bulk ESS down to" in message and "(below 400: 100 per chain for 4 chains)" in message
    assert "worst" in message and "sample longer" in message
    # too few draws for the statistics: said so, not silently passed
    short = fake_posterior(fitted["diag"], np.random.default_rng(0), chains=2, draws=3)
    assert "cannot be computed" in draws.convergence_message(short)


# ----------------------------------------------------------------------------------------
# degenerate data: where the sampler starts
# ----------------------------------------------------------------------------------------
def degenerate_data(kind):
    """Data sets on which MapEM's solution has exactly-zero or infinite gradients, and MapEM's options."""
    rng = np.random.default_rng(0)
    if kind == "constant_column":  # two clusters; the second column is exactly 3
        return np.column_stack([np.r_[rng.normal(size=15), 6.0 + rng.normal(size=15)], np.full(30, 3.0)]), {}
    if kind == "identical_rows":
        return np.ones((10, 2)), {}
    if kind == "fewer_rows_than_columns":  # columns of equal spread (spherical would warn otherwise)
        X = rng.normal(size=(3, 6))
        return X / X.std(axis=0), {}
    # alpha = 1 and 2 distinct rows for 3 components: an empty component, of weight 0 (or 1e-150)
    return rng.normal(size=(2, 2))[rng.integers(0, 2, size=20)], {"alpha": 1.0}


def fit_degenerate(kind, ct):
    X, options = degenerate_data(kind)
    k = 3 if kind == "empty_component" else 2
    with np.errstate(divide="ignore"):  # MapEM's fit takes log 0 of the empty component's weight
        return X, MapEM(k, covariance_type=ct, n_init=3, random_state=0, **options).fit(X)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("kind", "ct"),
    [("constant_column", ct) for ct in POSTERIOR_TYPES]
    + [("identical_rows", "full"), ("identical_rows", "diag"), ("fewer_rows_than_columns", "diag"),
       ("fewer_rows_than_columns", "spherical"), ("empty_component", "full"), ("empty_component", "diag")],
)
def test_start_point_has_a_finite_nonzero_gradient(kind, ct):
    """nutpie refuses a start where a gradient entry is exactly 0 (or not finite); at MAP-EM's
    solution of these data sets some are (the mean of a constant column, every mean and
    covariance when rows are identical), or the log density is -inf (a weight of 0).  The start
    is next to it, an empty component's weight at 1 / (n + K)."""
    X, est = fit_degenerate(kind, ct)
    model = posterior.build_model(est, X)
    start = posterior._start_point(model, est, X.shape[0])
    assert np.isfinite(model.compile_logp(mode=FAST)(start))
    grad = model.compile_dlogp(mode=FAST)(start)
    assert np.all(np.isfinite(grad)) and np.all(grad != 0)
    posterior._check_start(model, start, "nutpie")
    at_map = unconstrained(model, posterior._initvals(est, X.shape[0]))
    for name, value in start.items():
        np.testing.assert_allclose(np.abs(value - at_map[name]), posterior.START_OFFSET, rtol=1e-6)
    if kind == "empty_component":
        np.testing.assert_allclose(posterior._initvals(est, X.shape[0])["weights"].min(), 1.0 / (X.shape[0] + 3))


class _Sampled(Exception):
    """Raised instead of sampling."""


@pytest.mark.slow
def test_invalid_start_is_a_value_error_before_any_compilation(blobs, fitted, monkeypatch):
    def sample(*args, **kwargs):
        raise _Sampled

    monkeypatch.setattr(posterior.pm, "sample", sample)
    est = fitted["diag"]
    model = posterior.build_model(est, blobs)
    with model:
        pm.Potential("wall", pt.constant(-np.inf))
    with pytest.raises(ValueError, match=r"log density at the starting point \(next to MAP-EM's solution\) is -inf: the sampler cannot start"):
        posterior.sample_posterior(est, blobs, model=model)
    # a variable added at its mode has a zero gradient: nutpie cannot start there, PyMC can
    model = posterior.build_model(est, blobs)
    with model:
        pm.Normal("z", 0.0, 1.0)
    with pytest.raises(ValueError, match=r"exactly 0 in z at the starting point.*sampler='pymc'"):
        posterior.sample_posterior(est, blobs, model=model)
    with pytest.raises(_Sampled):
        posterior.sample_posterior(est, blobs, model=model, sampler="pymc")


@pytest.mark.slow
@pytest.mark.parametrize("ct", ["full", "diag"])
def test_constant_column_samples_with_nutpie(ct):
    """The flagship degenerate case: nutpie used to fail with "Invalid initial point" (a Rust
    backtrace) after compiling, while PyMC's NUTS sampled the same model."""
    X, est = fit_degenerate("constant_column", ct)
    with convergence_warnings():  # 2 x 100 draws may fail the convergence checks
        idata = posterior.sample_posterior(est, X, draws=100, tune=100, chains=2, random_seed=1, progressbar=False)
    assert idata["posterior"]["means"].shape == (2, 100, 2, 2)
    assert float(idata["sample_stats"]["diverging"].mean()) < 0.05
    for group in ("posterior", "log_likelihood"):
        assert all(np.all(np.isfinite(var.values)) for var in idata[group].data_vars.values())
