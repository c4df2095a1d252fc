"""bayes_gmm.diagnostics.comparison: the MAP as a DataTree, the comparison table, predictive comparison, LOO."""

import os

import arviz_stats as azs
import numpy as np
import pytest
import xarray as xr
from _posterior_fakes import fake_posterior, make_tree, niw_posterior, niw_posterior_parameters
from conftest import POSTERIOR_TYPES, convergence_warnings, make_blobs3
from scipy.special import logsumexp
from scipy.stats import multivariate_normal

import bayes_gmm
from bayes_gmm import MapEM
from bayes_gmm.diagnostics.comparison import (
    COVARIANCE_DIMS,
    compare,
    dense_covariances,
    loo_summary,
    map_dataset,
    mixture_log_density,
    predictive_comparison,
    to_datatree,
)


@pytest.fixture(scope="module")
def blobs():
    X, _ = make_blobs3(np.random.default_rng(7), n=240)
    return X


@pytest.fixture(scope="module", params=POSTERIOR_TYPES)
def fitted(request, blobs):
    return MapEM(3, covariance_type=request.param, random_state=0).fit(blobs)


# ----------------------------------------------------------------------------------------
# to_datatree
# ----------------------------------------------------------------------------------------
def test_to_datatree_holds_the_estimate_prior_and_trace(fitted):
    tree = to_datatree(fitted)
    post = tree["posterior"]
    k, d = fitted.means_.shape
    assert post["weights"].dims == ("chain", "draw", "component")
    assert post["means"].dims == ("chain", "draw", "component", "feature")
    assert post["covariances"].dims == ("chain", "draw", *COVARIANCE_DIMS[fitted.covariance_type])
    assert post.sizes["chain"] == 1 and post.sizes["draw"] == 1
    np.testing.assert_array_equal(post["weights"].values[0, 0], fitted.weights_)
    np.testing.assert_array_equal(post["means"].values[0, 0], fitted.means_)
    np.testing.assert_array_equal(post["covariances"].values[0, 0], fitted.covariances_)
    np.testing.assert_array_equal(tree["map_trace"]["log_posterior"].values, fitted.log_posteriors_)
    prior = tree["prior_parameters"]
    assert float(prior["alpha"]) == fitted.prior_.alpha
    assert float(prior["kappa0"]) == fitted.prior_.kappa0
    np.testing.assert_array_equal(prior["m0"].values, fitted.prior_.m0)
    if fitted.covariance_type in ("full", "tied"):
        np.testing.assert_array_equal(prior["psi0"].values, fitted.prior_.psi0)
        assert float(prior["nu0"]) == fitted.prior_.nu0
    else:
        np.testing.assert_array_equal(prior["b0"].values, fitted.prior_.b0)
        assert float(prior["a0"]) == fitted.prior_.a0
    assert tree.attrs["covariance_type"] == fitted.covariance_type
    # built by arviz_base.from_dict: only the posterior has (chain, draw), and says so
    assert post.attrs["sample_dims"] == ["chain", "draw"]
    assert not {"chain", "draw"} & set(prior.dims) and not {"chain", "draw"} & set(tree["map_trace"].dims)
    import json

    assert bayes_gmm.NIWPrior.from_dict(json.loads(prior.attrs["prior"])) == fitted.prior_


def test_to_datatree_is_usable_by_arviz(fitted):
    tree = to_datatree(fitted)
    # a single draw: the mean over the sample dims is the estimate itself
    mean = azs.mean(tree, var_names=["means"], round_to="none")
    np.testing.assert_allclose(np.asarray(mean["means"]), fitted.means_)


def test_covariance_dims_come_from_the_families():
    from bayes_gmm.model.families import COVARIANCE_FAMILIES, get_family

    assert COVARIANCE_DIMS == {name: get_family(name).covariance_dims for name in COVARIANCE_FAMILIES}


def test_lazy_names():
    assert bayes_gmm.to_datatree is to_datatree
    assert bayes_gmm.compare is compare
    assert bayes_gmm.predictive_comparison is predictive_comparison
    assert bayes_gmm.loo_summary is loo_summary


def test_unfitted_estimator_is_rejected():
    from sklearn.exceptions import NotFittedError

    with pytest.raises(NotFittedError):
        to_datatree(MapEM(2))


# ----------------------------------------------------------------------------------------
# compare
# ----------------------------------------------------------------------------------------
def test_compare_numbers_equal_arviz_stats_and_map_equals_estimator(fitted):
    rng = np.random.default_rng(1)
    idata = fake_posterior(fitted, rng, relabelling={"n_permuted_draws": 3, "n_ambiguous_draws": 1})
    result = compare(fitted, idata)
    table = result.table
    k, d = fitted.means_.shape
    n_cov = {"full": k * d * (d + 1) // 2, "tied": d * (d + 1) // 2, "diag": k * d, "spherical": k}
    assert len(table) == k + k * d + n_cov[fitted.covariance_type]

    ref = azs.summary(idata, ci_kind="hdi", ci_prob=0.94, round_to="none", fmt="xarray")
    post = idata["posterior"]
    for label, row in table.iterrows():
        name = row["variable"]
        sel = {dim: int(row[dim]) for dim in ("component", "feature", "feature_bis")
               if dim in post[name].dims}
        stats = ref[name].sel(sel)
        assert row["mean"] == pytest.approx(float(stats.sel(summary="mean")), rel=1e-12)
        assert row["sd"] == pytest.approx(float(stats.sel(summary="sd")), rel=1e-12)
        assert row["hdi_lower"] == pytest.approx(float(stats.sel(summary="hdi94_lb")), rel=1e-12)
        assert row["hdi_upper"] == pytest.approx(float(stats.sel(summary="hdi94_ub")), rel=1e-12)
        assert row["r_hat"] == pytest.approx(float(stats.sel(summary="r_hat")), rel=1e-12)
        assert row["ess_bulk"] == pytest.approx(float(stats.sel(summary="ess_bulk")), rel=1e-12)
        assert row["ess_tail"] == pytest.approx(float(stats.sel(summary="ess_tail")), rel=1e-12)
        assert row["mcse_mean"] == pytest.approx(float(stats.sel(summary="mcse_mean")), rel=1e-12)
        # the MAP column is the estimator's attribute, entry by entry
        attr = {"weights": fitted.weights_, "means": fitted.means_, "covariances": fitted.covariances_}[name]
        index = tuple(sel[dim] for dim in post[name].dims if dim in sel)
        assert row["map"] == attr[index], label
        draws = post[name].sel(sel).values.ravel()
        assert row["map_quantile"] == pytest.approx(np.mean(draws < row["map"]) + 0.5 * np.mean(draws == row["map"]))
        assert row["map_in_hdi"] == (row["hdi_lower"] <= row["map"] <= row["hdi_upper"])
    verdict = result.verdict
    assert verdict.n_parameters == len(table)
    assert verdict.max_rhat == pytest.approx(table["r_hat"].max())
    assert verdict.n_map_outside_hdi == int((~table["map_in_hdi"]).sum())
    assert verdict.n_permuted_draws == 3 and verdict.n_ambiguous_draws == 1
    assert verdict.n_draws == 800 and verdict.n_chains == 4
    assert "R-hat" in str(verdict) and "Relabelling: 3 of 800" in str(verdict)


def test_compare_counts_a_map_outside_its_hdi(blobs):
    est = MapEM(3, random_state=0).fit(blobs)
    idata = fake_posterior(est, np.random.default_rng(2))
    shifted = idata.copy()
    means = idata["posterior"]["means"].copy()
    means[:] = means.values + 1.0  # every draw of every mean moved far from the MAP
    shifted["posterior"] = idata["posterior"].to_dataset().assign(means=means)
    result = compare(est, shifted)
    outside = result.table.index[~result.table["map_in_hdi"]].tolist()
    assert sorted(outside) == sorted(f"means[{c}, {j}]" for c in range(3) for j in range(2))
    assert result.verdict.n_map_outside_hdi == 6
    assert (result.table.loc[outside, "map_quantile"] == 0).all()


def test_compare_does_not_depend_on_the_order_of_dimensions(blobs):
    est = MapEM(3, random_state=0).fit(blobs)
    idata = fake_posterior(est, np.random.default_rng(4), draws=50)
    post = idata["posterior"].to_dataset()
    shuffled = post.assign(
        weights=post["weights"].transpose("draw", "component", "chain"),
        means=post["means"].transpose("feature", "draw", "chain", "component"),
    )
    # rows are labelled in each variable's own dimension order; matched here by their indices
    keys = ["variable", "component", "feature", "feature_bis"]
    columns = ["map", "mean", "sd", "hdi_lower", "hdi_upper", "map_quantile"]
    expected = compare(est, idata).table.sort_values(keys)
    got = compare(est, shuffled).table.sort_values(keys)
    assert len(got) == len(expected)
    assert got[keys].astype(str).to_numpy().tolist() == expected[keys].astype(str).to_numpy().tolist()
    np.testing.assert_allclose(got[columns].to_numpy(float), expected[columns].to_numpy(float), rtol=1e-12)


def test_compare_verdict_flags_bad_rhat(blobs):
    est = MapEM(3, random_state=0).fit(blobs)
    idata = fake_posterior(est, np.random.default_rng(3))
    ds = idata["posterior"].to_dataset()
    weights = ds["weights"].copy()
    weights[0] = weights.values[0, :, ::-1]  # chain 0 in another labelling
    idata["posterior"] = ds.assign(weights=weights)
    verdict = compare(est, idata).verdict
    assert not verdict.converged and verdict.n_rhat_above >= 2


def test_compare_rejects_mismatches(blobs):
    est = MapEM(3, random_state=0).fit(blobs)
    other = MapEM(3, covariance_type="diag", random_state=0).fit(blobs)
    idata = fake_posterior(other, np.random.default_rng(0), draws=20)
    with pytest.raises(ValueError, match="covariance_type"):
        compare(est, idata)
    with pytest.raises(ValueError, match="must hold"):
        compare(est, xr.DataTree.from_dict({"posterior": xr.Dataset({"mu": ("x", [1.0])})}))
    with pytest.raises(ValueError, match="ci_prob"):
        compare(other, idata, ci_prob=1.5)


# ----------------------------------------------------------------------------------------
# closed form: one component, conjugate prior
# ----------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def one_gaussian():
    rng = np.random.default_rng(11)
    X = rng.multivariate_normal([1.0, -2.0], [[2.0, 0.6], [0.6, 1.0]], size=60)
    est = MapEM(1, random_state=0).fit(X)
    return X, est


def test_map_equals_closed_form_mode(one_gaussian):
    X, est = one_gaussian
    cf = niw_posterior_parameters(X, est.prior_)
    np.testing.assert_allclose(est.means_[0], cf["m_n"], rtol=1e-10)
    np.testing.assert_allclose(est.covariances_[0], cf["mode_of_covariance"], rtol=1e-10)
    np.testing.assert_allclose(est.weights_, [1.0])


def test_comparison_on_exact_niw_draws_matches_closed_form(one_gaussian):
    X, est = one_gaussian
    cf = niw_posterior_parameters(X, est.prior_)
    idata = niw_posterior(X, est.prior_, np.random.default_rng(5), chains=4, draws=1000)
    table = compare(est, idata).table
    _check_against_closed_form(table, cf, est)


def _check_against_closed_form(table, cf, est, n_mcse=4.0):
    d = est.means_.shape[1]
    for j in range(d):
        row = table.loc[f"means[0, {j}]"]
        assert abs(row["mean"] - cf["m_n"][j]) < n_mcse * row["mcse_mean"] + 1e-12
        assert row["map"] == pytest.approx(cf["m_n"][j], rel=1e-10)
        for m in range(j, d):
            row = table.loc[f"covariances[0, {j}, {m}]"]
            assert abs(row["mean"] - cf["mean_of_covariance"][j, m]) < n_mcse * row["mcse_mean"]
            assert row["map"] == pytest.approx(cf["mode_of_covariance"][j, m], rel=1e-10)
    # a single weight of 1 has no spread: no R-hat, and it does not spoil the verdict
    assert table.loc["weights[0]", "map_in_hdi"]


# ----------------------------------------------------------------------------------------
# predictive comparison and LOO
# ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("covariance_type", POSTERIOR_TYPES)
def test_predictive_comparison_matches_scipy(covariance_type):
    rng = np.random.default_rng(4)
    X, _ = make_blobs3(rng, n=90)
    est = MapEM(3, covariance_type=covariance_type, random_state=0).fit(X)
    idata = fake_posterior(est, rng, chains=2, draws=3, noise=0.2)
    X_test = rng.normal(size=(7, 2)) * 4
    result = predictive_comparison(est, idata, X_test)

    def density(weights, means, covs, x):
        return sum(w * multivariate_normal(m, c).pdf(x) for w, m, c in zip(weights, means, covs, strict=True))

    dense = dense_covariances(est.covariances_, covariance_type, 3, 2)
    expected_map = np.log(density(est.weights_, est.means_, dense, X_test))
    post = idata["posterior"]
    per_draw = []
    for c in range(2):
        for s in range(3):
            w = post["weights"].values[c, s]
            m = post["means"].values[c, s]
            cov = dense_covariances(post["covariances"].values[c, s], covariance_type, 3, 2)
            per_draw.append(density(w, m, cov, X_test))
    expected_post = np.log(np.mean(per_draw, axis=0))
    np.testing.assert_allclose(result.pointwise["map"], expected_map, rtol=1e-10)
    np.testing.assert_allclose(result.pointwise["posterior"], expected_post, rtol=1e-10)
    np.testing.assert_allclose(result.pointwise["difference"], expected_post - expected_map, rtol=1e-8, atol=1e-12)
    summary = result.summary
    assert summary.loc["map", "elpd"] == pytest.approx(expected_map.sum())
    assert summary.loc["posterior", "elpd"] == pytest.approx(expected_post.sum())
    assert summary.loc["posterior", "se"] == pytest.approx(np.sqrt(7) * np.std(expected_post, ddof=1))
    diff = expected_post - expected_map
    assert summary.loc["difference", "se"] == pytest.approx(np.sqrt(7) * np.std(diff, ddof=1))
    assert result.n_draws == 6
    # the plug-in side agrees with the estimator's own density
    np.testing.assert_allclose(result.pointwise["map"], est.score_samples(X_test), rtol=1e-9)


def test_mixture_log_density_chunks_agree(blobs):
    est = MapEM(3, random_state=0).fit(blobs)
    idata = fake_posterior(est, np.random.default_rng(0), chains=2, draws=10)
    post = idata["posterior"]
    w = post["weights"].values.reshape(20, 3)
    m = post["means"].values.reshape(20, 3, 2)
    c = post["covariances"].values.reshape(20, 3, 2, 2)
    whole = mixture_log_density(w, m, c, blobs)
    chunked = mixture_log_density(w, m, c, blobs, chunk_elements=1)
    np.testing.assert_allclose(whole, chunked)
    assert whole.shape == (20, blobs.shape[0])


def test_loo_summary(blobs):
    est = MapEM(3, random_state=0).fit(blobs)
    idata = fake_posterior(est, np.random.default_rng(6), chains=2, draws=100, X=blobs)
    result = loo_summary(idata)
    direct = azs.loo(idata, pointwise=True)
    assert result.elpd == pytest.approx(direct.elpd)
    assert result.se == pytest.approx(direct.se)
    assert result.pareto_k["count"].sum() == blobs.shape[0]
    assert result.pareto_k["percent"].sum() == pytest.approx(100.0)
    assert "Pareto k" in str(result)
    # the LOO elpd is below the in-sample log predictive density
    lpd = logsumexp(idata["log_likelihood"]["x"].values.reshape(200, -1), axis=0) - np.log(200)
    assert result.elpd <= lpd.sum()


def test_loo_summary_needs_log_likelihood(blobs):
    est = MapEM(3, random_state=0).fit(blobs)
    with pytest.raises(ValueError, match="log_likelihood"):
        loo_summary(fake_posterior(est, np.random.default_rng(0), draws=10))


def test_map_dataset_takes_the_posterior_coords(blobs):
    est = MapEM(3, random_state=0).fit(blobs)
    ds = map_dataset(est, coords={"component": ["a", "b", "c"]}, sample_dims=False)
    assert list(ds["component"].values) == ["a", "b", "c"]
    assert "chain" not in ds.dims


def test_make_tree_shapes():
    tree = make_tree(np.full((1, 2, 2), 0.5), np.zeros((1, 2, 2, 3)), np.ones((1, 2, 2)), "spherical")
    assert tree["posterior"]["covariances"].dims == ("chain", "draw", "component")


# ----------------------------------------------------------------------------------------
# with the real sampler (slow; bayes_gmm.bayes.posterior)
# ----------------------------------------------------------------------------------------
FAST = os.environ.get("BAYES_GMM_FAST", "1") != "0"


@pytest.mark.slow
def test_sampled_posterior_matches_closed_form(one_gaussian):
    posterior = pytest.importorskip("bayes_gmm.bayes.posterior")
    X, est = one_gaussian
    cf = niw_posterior_parameters(X, est.prior_)
    idata = posterior.sample_posterior(est, X, draws=1000, tune=1000, chains=2, random_seed=1,
                                       progressbar=False)
    table = compare(est, idata).table
    _check_against_closed_form(table, cf, est, n_mcse=4.5)


@pytest.mark.slow
def test_real_posterior_compare_predictive_loo(blobs):
    posterior = pytest.importorskip("bayes_gmm.bayes.posterior")
    est = MapEM(3, random_state=0).fit(blobs)
    with convergence_warnings():  # 2 x 300 draws: R-hat may exceed 1.01; the plumbing is tested
        idata = posterior.sample_posterior(est, blobs, draws=300, tune=300, chains=2, random_seed=2,
                                           progressbar=False)
    result = compare(est, idata)
    ref = azs.summary(idata, var_names=["weights"], ci_kind="hdi", ci_prob=0.94, round_to="none", fmt="xarray")
    for c in range(3):
        row = result.table.loc[f"weights[{c}]"]
        assert row["r_hat"] == pytest.approx(float(ref["weights"].sel(component=c, summary="r_hat")))
        assert row["map"] == est.weights_[c]
    assert result.verdict.n_permuted_draws is not None
    X_test, _ = make_blobs3(np.random.default_rng(99), n=50)
    pred = predictive_comparison(est, idata, X_test)
    assert np.isfinite(pred.summary.to_numpy()).all()
    loo = loo_summary(idata)
    assert loo.pareto_k["count"].sum() == blobs.shape[0]
