"""The compiled posterior model: compiled once per shape, reused across data sets (measured)."""

import time

import numpy as np
import pytest
from conftest import convergence_warnings

from bayes_gmm import MapEM, NIWPrior

pytensor = pytest.importorskip("pytensor")
from pytensor.graph.traversal import graph_inputs  # noqa: E402

posterior = pytest.importorskip("bayes_gmm.bayes.posterior")
posterior_sampler = posterior
nutpie = pytest.importorskip("nutpie")
from bayes_gmm.bayes import nutpie_cache  # noqa: E402


def two_blobs(seed, n, shift):
    rng = np.random.default_rng(seed)
    X = np.concatenate([rng.normal(size=(n // 2, 2)), rng.normal(size=(n - n // 2, 2)) + 6.0])
    return X + shift


@pytest.mark.slow
def test_second_data_set_reuses_the_compiled_model(monkeypatch, capfd):
    """One compilation for two data sets of different sizes, places and priors: counted (nutpie's
    compile function wrapped), timed (the second call is much faster than the first, which
    compiled), and the second posterior is the second data set's, not the first one's."""
    calls = []
    compile_model = nutpie.compile_pymc_model

    def counting(*args, **kwargs):
        calls.append(time.perf_counter())
        return compile_model(*args, **kwargs)

    def counting_cached(*args, **kwargs):
        calls.append(time.perf_counter())
        return compile_cached(*args, **kwargs)

    compile_cached = nutpie_cache.compile_pymc_model_cached
    monkeypatch.setattr(nutpie, "compile_pymc_model", counting)
    monkeypatch.setattr(nutpie_cache, "compile_pymc_model_cached", counting_cached)
    sampler = posterior_sampler.PosteriorSampler("spherical", 2, 2)
    X1, X2 = two_blobs(0, 60, 0.0), two_blobs(1, 90, 40.0)
    est1 = MapEM(2, covariance_type="spherical", random_state=0).fit(X1)
    est2 = MapEM(2, covariance_type="spherical", random_state=0).fit(X2)
    assert est1.prior_ != est2.prior_  # data-driven priors: the prior is an input too

    results, walls = [], []
    for est, X, progressbar in ((est1, X1, True), (est2, X2, False)):
        start = time.perf_counter()
        with convergence_warnings():
            results.append(sampler.sample(est, X, draws=300, tune=300, chains=2, random_seed=1, progressbar=progressbar))
        walls.append(time.perf_counter() - start)
        if progressbar:
            err = capfd.readouterr().err
            assert "Compiling the posterior model (spherical, k=2, d=2)" in err and "Compiled in" in err

    assert len(calls) == 1 and sampler.n_compilations == 1
    first, second = (r["sample_stats"].attrs for r in results)
    assert first["compile_seconds"] > 0.2 and second["compile_seconds"] == 0.0
    # measured: the first call paid for the compilation, the second did not
    assert walls[1] < walls[0] - 0.5 * first["compile_seconds"], walls
    assert "Compiling" not in capfd.readouterr().err
    for idata, est, X in ((results[0], est1, X1), (results[1], est2, X2)):
        post = idata["posterior"]
        np.testing.assert_allclose(post["means"].mean(("chain", "draw")).values, est.means_, atol=0.5)
        assert idata["log_likelihood"]["x"].shape == (2, 300, X.shape[0])
        np.testing.assert_array_equal(idata["observed_data"]["x"].values, X)
        np.testing.assert_allclose(idata["map_estimate"]["means"].values, est.means_)


@pytest.mark.slow
def test_sample_posterior_consults_the_process_cache():
    X1, X2 = two_blobs(2, 50, 0.0), two_blobs(3, 50, -10.0)
    est1 = MapEM(2, covariance_type="diag", random_state=0).fit(X1)
    est2 = MapEM(2, covariance_type="VVI", random_state=0).fit(X2)  # mclust's name of diag
    sampler = posterior_sampler.get_posterior_sampler(est1)
    assert posterior_sampler.get_posterior_sampler(est2) is sampler
    assert posterior_sampler.get_posterior_sampler(MapEM(3, covariance_type="diag").fit(X1)) is not sampler
    with convergence_warnings():
        posterior.sample_posterior(est1, X1, draws=100, tune=100, chains=2, random_seed=0, progressbar=False)
        compiled = sampler.compiled
        idata = posterior.sample_posterior(est2, X2, draws=100, tune=100, chains=2, random_seed=0, progressbar=False)
    assert sampler.n_compilations == 1 and sampler.compiled is compiled
    assert idata["sample_stats"].attrs["compile_seconds"] == 0.0
    assert idata["sample_stats"].attrs["sampling_seconds"] > 0.0
    assert idata["sample_stats"].attrs["tuning_gradient_evaluations"] > 0
    from bayes_gmm import diagnostics

    assert diagnostics.compare(est2, idata).table.shape[0] > 0  # "VVI" is the posterior's "diag"


def test_sampler_rejects_an_estimator_of_another_shape():
    X = two_blobs(0, 40, 0.0)
    sampler = posterior_sampler.PosteriorSampler("full", 3, 2)
    with pytest.raises(ValueError, match=r"this sampler is for covariance_type='full', n_components=3"):
        sampler.sample(MapEM(2, random_state=0).fit(X), X)
    with pytest.raises(ValueError, match="covariance_type must be one of"):
        posterior_sampler.PosteriorSampler("banana", 2, 2)
    assert sampler.n_compilations == 0 and "not compiled" in repr(sampler)


def test_model_inputs_carry_the_prior_and_the_data():
    """Everything taken from the estimator is an input of the graph, so that one compiled model
    serves every data set of its shape: a prior given explicitly changes the inputs' values."""
    X = two_blobs(0, 40, 0.0)
    prior = NIWPrior("diag", alpha=3.0, m0=np.array([1.0, -1.0]), kappa0=0.2, a0=2.5, b0=np.array([0.5, 2.0]))
    est = MapEM(2, covariance_type="diag", prior=prior, random_state=0).fit(X)
    values = posterior.model_input_values(est, X)
    np.testing.assert_array_equal(values["bgmm_x"], X)
    assert values["bgmm_alpha"] == 3.0 and values["bgmm_kappa0"] == 0.2 and values["bgmm_a0"] == 2.5
    np.testing.assert_array_equal(values["bgmm_b0"], [0.5, 2.0])
    model = posterior.build_model(est, X)
    shared = {v.name: v for v in graph_inputs([model.logp()]) if v.name}
    # the likelihood reads the data through their quadratic features (bgmm_x is the observed value)
    assert {"bgmm_features", "bgmm_centre", "bgmm_alpha", "bgmm_m0", "bgmm_kappa0", "bgmm_a0", "bgmm_b0",
            "bgmm_mean_loc", "bgmm_mean_scale"} <= set(shared)
    np.testing.assert_array_equal(shared["bgmm_b0"].get_value(), [0.5, 2.0])


_COMPILE_IN_A_FRESH_PROCESS = """
import json, numpy as np, bayes_gmm
X = np.concatenate([np.random.default_rng(0).normal(size=(30, 2)), np.random.default_rng(1).normal(size=(30, 2)) + 6])
est = bayes_gmm.MapEM(2, covariance_type="tied", random_state=0).fit(X)
sampler = bayes_gmm.get_posterior_sampler(est).compile(progressbar=False)
c = sampler.compiled
print(json.dumps({"disk_cached": sampler.disk_cached, "seconds": sampler.compile_seconds,
                  "hits": [c.compiled_logp_func.cache_hits, c.compiled_expand_func.cache_hits]}))
"""


@pytest.mark.slow
@pytest.mark.skipif(not nutpie_cache.supported(), reason="nutpie's internals differ from those the disk cache was written for")
def test_a_fresh_process_loads_the_compiled_model_from_disk():
    """Measured, not assumed: a second process finds both of nutpie's callbacks in numba's
    on-disk cache (a cache hit each) instead of compiling them."""
    import json
    import subprocess
    import sys

    runs = [
        json.loads(subprocess.run([sys.executable, "-c", _COMPILE_IN_A_FRESH_PROCESS], check=True,
                                  capture_output=True, text=True, timeout=900).stdout.strip().splitlines()[-1])
        for _ in range(2)
    ]
    assert all(run["disk_cached"] for run in runs), runs
    assert runs[1]["hits"] == [1, 1], runs


@pytest.mark.slow
@pytest.mark.skipif(not nutpie_cache.supported(), reason="nutpie's internals differ from those the disk cache was written for")
def test_the_disk_cached_compilation_samples_as_nutpies_own():
    """The same model compiled by nutpie and through the disk cache: the same draws, bit for bit."""
    X = two_blobs(4, 40, 0.0)
    est = MapEM(2, covariance_type="spherical", random_state=0).fit(X)
    sampler = posterior_sampler.PosteriorSampler("spherical", 2, 2)
    posterior.set_model_inputs(sampler.inputs, posterior.model_input_values(est, X))
    ours = nutpie_cache.compile_pymc_model_cached(sampler.model, jitter_rvs=set())
    theirs = nutpie.compile_pymc_model(sampler.model, jitter_rvs=set())
    draws = []
    for compiled in (ours, theirs):
        sampler.compiled = compiled  # sample with this compilation, from the library's start
        idata, _ = sampler.run(est, X, draws=50, tune=50, chains=1, random_seed=5, progressbar=False)
        draws.append(idata)
    for name in ("weights", "means", "covariances"):
        np.testing.assert_array_equal(draws[0]["posterior"][name].values, draws[1]["posterior"][name].values)


@pytest.mark.slow
def test_raw_draws_equal_the_datatree_draws():
    """``run(..., as_arrays=True)`` (what a calibration study reads) gives the DataTree's draws."""
    X = two_blobs(5, 40, 0.0)
    est = MapEM(2, covariance_type="full", random_state=0).fit(X)
    sampler = posterior_sampler.get_posterior_sampler(est)
    kwargs = dict(draws=30, tune=20, chains=2, random_seed=3, progressbar=False, save_warmup=False)
    idata, _ = sampler.run(est, X, **kwargs)
    arrays, _ = sampler.run(est, X, as_arrays=True, **kwargs)
    for name in ("weights", "means", "covariances"):
        want = idata["posterior"][name].transpose("chain", "draw", ...).values
        assert arrays[name].shape == want.shape == (2, 30, *want.shape[2:])
        np.testing.assert_array_equal(arrays[name], want)
