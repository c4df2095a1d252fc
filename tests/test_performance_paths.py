"""The fast paths (chunked kernel, threads, float32, memmap, blocked initialisation, Dask)
give the answers of the plain reference computations."""

import importlib
import sys
import warnings

import numpy as np
import pytest
from conftest import COVARIANCE_TYPES
from scipy.special import logsumexp
from sklearn.cluster import kmeans_plusplus
from sklearn.utils import check_random_state
from threadpoolctl import threadpool_limits

from bayes_gmm import MapEM
from bayes_gmm.em import engine as _engine
from bayes_gmm.model import scaling
from bayes_gmm.model.families import get_family
from bayes_gmm.model.prior import _weighted_moments
from bayes_gmm.model.scaling import ScaledRows

prior_module = importlib.import_module("bayes_gmm.model.prior")


def _random_params(family, rng, k, d):
    means = rng.normal(size=(k, d)) + 5.0
    if family.name == "full":
        A = rng.normal(size=(k, d, d))
        cov = A @ A.transpose(0, 2, 1) + np.eye(d)
    elif family.name == "tied":
        A = rng.normal(size=(d, d))
        cov = A @ A.T + np.eye(d)
    elif family.name == "diag":
        cov = rng.random((k, d)) + 0.5
    elif family.name == "spherical":
        cov = rng.random(k) + 0.5
    else:  # a constrained model: its M-step from random statistics
        Z = rng.normal(size=(40 * k, d)) * (rng.random(d) + 0.5)
        stats = family.statistics_from_responsibilities(Z, rng.dirichlet(np.ones(k), size=40 * k))
        cov = family.ml_step(stats)[1]
    weights = rng.random(k) + 0.1
    return family.params(weights / weights.sum(), means, cov)


def _rel(a, b):
    return float(np.max(np.abs(np.asarray(a) - np.asarray(b))) / np.max(np.abs(b)))


def _data(rng, n=1037, d=3):
    return rng.normal(size=(n, d)) * 2.0 + 5.0 + 3.0 * rng.integers(0, 3, size=(n, 1))


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
@pytest.mark.parametrize("chunk_size", [None, 100, 61, 1037, 5000])
@pytest.mark.parametrize("weighted", [False, True])
def test_fast_statistics_equal_reference(rng, covariance_type, chunk_size, weighted):
    family = get_family(covariance_type)
    X = _data(rng)
    params = _random_params(family, rng, 4, X.shape[1])
    sample_weight = rng.random(X.shape[0]) * 3 if weighted else None
    log_prob = family.log_prob(X, params.means, params.precisions_cholesky) + np.log(params.weights)
    log_norm = logsumexp(log_prob, axis=1)
    resp = np.exp(log_prob - log_norm[:, None])
    ref = family.statistics_from_responsibilities(X, resp, sample_weight)

    raw = _engine.accumulate(family, X, sample_weight, params, chunk_size)
    got = family.finalize(raw, params)
    assert _rel(got.nk, ref.nk) < 1e-12
    assert _rel(got.xbar, ref.xbar) < 1e-12
    assert _rel(got.scatter, ref.scatter) < 1e-12
    assert got.total_weight == pytest.approx(ref.total_weight, rel=1e-14)
    w = np.ones(X.shape[0]) if sample_weight is None else sample_weight
    assert raw.log_likelihood == pytest.approx(float(w @ log_norm), rel=1e-12)


def _assert_threads_do_not_change_the_result(monkeypatch, family, X, params, chunk):
    """One block thread and two give the same numbers, bit for bit, with BLAS at one thread
    as a fit holds it (a multi-threaded BLAS call may round differently)."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1, user_api="blas"):
        serial = _engine.accumulate(family, X, None, params, chunk, threads=1)
        monkeypatch.setattr(_engine, "_MIN_PARALLEL_FLOATS", 0)
        monkeypatch.setattr(_engine, "available_cores", lambda: 2)
        monkeypatch.setattr(_engine, "n_workers", lambda n_blocks, work: 2)
        threaded = _engine.accumulate(family, X, None, params, chunk)
    assert threaded.log_likelihood == serial.log_likelihood
    np.testing.assert_array_equal(threaded.second, serial.second)
    np.testing.assert_array_equal(threaded.first, serial.first)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_threads_do_not_change_the_result(rng, covariance_type, monkeypatch):
    family = get_family(covariance_type)
    X = _data(rng, n=20_000, d=4)
    _assert_threads_do_not_change_the_result(monkeypatch, family, X, _random_params(family, rng, 5, 4), 1000)


@pytest.mark.parametrize("d", [30, 140], ids=["stacked-gemm", "trmm"])
def test_threads_do_not_change_the_result_for_large_d(rng, monkeypatch, d):
    """The large-d kernels: one stacked GEMM or one TRMM per component, SYRK moments."""
    family = get_family("full")
    X = rng.normal(size=(3000, d))
    _assert_threads_do_not_change_the_result(monkeypatch, family, X, _random_params(family, rng, 3, d), 400)


@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("covariance_type", ["full", "diag"])
def test_threads_do_not_change_the_start_statistics(rng, monkeypatch, weighted, covariance_type):
    """The k-means start's statistics, block by block on two threads, merged in block order:
    the same numbers as on one thread."""
    family = get_family(covariance_type)
    X = _data(rng, n=30_000, d=6) * 1e5 + 1e9
    w = rng.random(X.shape[0]) * 2 if weighted else None
    if weighted:
        w[::5] = 0.0
    centers = X[rng.choice(X.shape[0], size=4, replace=False)]
    calls = []
    real_map_blocks = _engine._map_blocks

    def counting(function, blocks, work, threads=None):
        calls.append((threads, len(blocks)))
        return real_map_blocks(function, blocks, work, threads)

    monkeypatch.setattr(_engine, "_map_blocks", counting)
    monkeypatch.setattr(_engine, "_MIN_ROWS", 100)
    monkeypatch.setattr(_engine, "_BLOCK_FLOATS", 6 * 4000)  # 8 blocks
    with threadpool_limits(1):
        monkeypatch.setattr(_engine, "n_workers", lambda n_blocks, work: 1)
        serial = _engine.label_statistics(family, X, w, lambda block, Xb: _engine.nearest_center(Xb, centers), 4)
        assert calls == [(1, 2)] * 4
        calls.clear()
        monkeypatch.setattr(_engine, "n_workers", lambda n_blocks, work: 2)
        threaded = _engine.label_statistics(family, X, w, lambda block, Xb: _engine.nearest_center(Xb, centers), 4)
    assert calls == [(2, 4)] * 2  # two blocks a thread at a time: memory bounded whatever n
    for name in ("nk", "xbar", "scatter", "total_weight"):
        np.testing.assert_array_equal(getattr(threaded, name), getattr(serial, name))


@pytest.mark.parametrize(("d", "k", "serial"), [(4, 3, True), (40, 8, False)])
def test_small_kmeans_start_runs_on_one_openmp_thread(rng, monkeypatch, d, k, serial):
    """The k-means start's short OpenMP regions run on one thread when the work is small (a
    second thread's wake-ups cost more than it saved); larger work keeps the threads; the
    limit is restored after the fit."""
    from threadpoolctl import threadpool_info

    import bayes_gmm.em.base as base

    def openmp_threads():
        return [info["num_threads"] for info in threadpool_info() if info["user_api"] == "openmp"]

    before = openmp_threads()
    if not before:
        pytest.skip("no OpenMP runtime loaded (scikit-learn's KMeans brings one)")
    seen = []
    real_fit = base.KMeans.fit

    def recording_fit(self, *args, **kwargs):
        seen.append(openmp_threads())
        return real_fit(self, *args, **kwargs)

    monkeypatch.setattr(base.KMeans, "fit", recording_fit)
    monkeypatch.setattr(_engine, "_KMEANS_SERIAL_WORK", 20_000)
    X = _data(rng, n=1000, d=d)
    MapEM(k, init_params="kmeans", random_state=0).fit(X)
    assert seen == [[1] * len(before)] if serial else seen == [before]
    assert openmp_threads() == before


@pytest.mark.parametrize("weighted", [False, True])
def test_scaling_passes_on_threads_equal_serial(rng, monkeypatch, weighted):
    """``column_scaling`` through the engine's threads: the same centres, scales and moments."""
    X = _data(rng, n=9000, d=5) * 10.0 ** np.array([-100, -2, 0, 3, 120]) + 10.0 ** np.array([-99, 5, 0, 6, 121])
    w = rng.random(X.shape[0]) * 3 if weighted else None
    if weighted:
        w[::4] = 0.0
    monkeypatch.setattr(scaling, "_ROWS", 1000)
    calls = []

    def threaded(function, blocks):
        calls.append(len(blocks))
        return _engine.map_blocks(function, blocks, 0)

    monkeypatch.setattr(_engine, "n_workers", lambda n_blocks, work: 2)
    with threadpool_limits(1):
        serial = scaling.column_scaling(X, w, moments=True)
        parallel = scaling.column_scaling(X, w, moments=True, map_blocks=threaded)
    assert calls == [9, 9]  # both passes went through the mapper
    np.testing.assert_array_equal(parallel.center, serial.center)
    np.testing.assert_array_equal(parallel.scale, serial.scale)
    for a, b in zip(parallel.moments, serial.moments, strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
@pytest.mark.parametrize("weighted", [False, True])
def test_likelihood_only_pass_gives_the_same_numbers(rng, covariance_type, weighted):
    """``moments=False`` skips the moments and changes nothing else, bit for bit."""
    family = get_family(covariance_type)
    X = _data(rng)
    params = _random_params(family, rng, 4, X.shape[1])
    w = rng.random(X.shape[0]) * 3 if weighted else None
    full = _engine.accumulate(family, X, w, params, 100)
    light = _engine.accumulate(family, X, w, params, 100, moments=False)
    assert light.log_likelihood == full.log_likelihood
    assert light.total_weight == full.total_weight
    np.testing.assert_array_equal(light.nk, full.nk)
    assert light.first is None and light.second is None


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_fit_ending_at_max_iter_skips_unused_moments(rng, covariance_type, monkeypatch):
    """The pass after the last M-step only needs the objective: it skips the moments, and the
    fit's parameters and objective are those of a fit whose every pass computes them."""
    X = _data(rng, n=400)
    flags = []
    original = _engine.accumulate

    def spy(*args, moments=True, **kwargs):
        flags.append(moments)
        return original(*args, moments=moments, **kwargs)

    def fit():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return MapEM(3, covariance_type=covariance_type, max_iter=4, tol=0, random_state=0).fit(X)

    monkeypatch.setattr(_engine, "accumulate", spy)
    light = fit()
    assert flags[-5:] == [True, True, True, True, False]
    monkeypatch.setattr(_engine, "accumulate", lambda *a, moments=True, **kw: original(*a, **kw))
    every = fit()
    assert light.log_posterior_ == every.log_posterior_
    np.testing.assert_array_equal(light.means_, every.means_)
    np.testing.assert_array_equal(light.covariances_, every.covariances_)


def test_fit_holds_blas_at_one_thread_and_restores_it(rng, monkeypatch):
    """While a threaded fit runs, BLAS stays at one thread (M-steps included) and the block
    pool is still sized by the caller's limit; nested and finished fits restore the limit."""
    from threadpoolctl import threadpool_limits

    monkeypatch.setattr(_engine, "available_cores", lambda: 2)
    monkeypatch.setattr(_engine, "_MIN_PARALLEL_FLOATS", 0)

    def blas_threads():
        return min(lib.num_threads for lib in _engine._blas_controller().lib_controllers)

    seen = []
    original = MapEM._m_step

    def spy(self, stats):
        seen.append((blas_threads(), _engine.n_workers(8, 1 << 30)))
        return original(self, stats)

    monkeypatch.setattr(MapEM, "_m_step", spy)
    X = _data(rng, n=4000)
    with threadpool_limits(2, user_api="blas"):
        with _engine.fitting(4000, 3, 3, 500):
            assert blas_threads() == 1
            with _engine.fitting(4000, 3, 3, 500):
                assert blas_threads() == 1 and _engine.n_workers(8, 1 << 30) == 2
            assert blas_threads() == 1
        assert blas_threads() == 2
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # did not converge in max_iter
            MapEM(3, max_iter=3, tol=0, chunk_size=500, random_state=0).fit(X)
        assert blas_threads() == 2
    assert len(seen) >= 3 and set(seen) == {(1, 2)}  # initial M-step, then one per iteration
    # a fit too small for the block threads leaves BLAS alone
    monkeypatch.setattr(_engine, "_MIN_PARALLEL_FLOATS", 1 << 40)
    seen.clear()
    with threadpool_limits(2, user_api="blas"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        MapEM(3, max_iter=2, tol=0, random_state=0).fit(X)
    assert len(seen) >= 2 and set(seen) == {(2, 1)}


def _start(X, covariance_type):
    est = MapEM(3, covariance_type=covariance_type, max_iter=1, tol=1.0, random_state=0).fit(X)
    init = {"weights_init": est.weights_, "means_init": est.means_, "precisions_init": est.precisions_}
    return init, est.prior_


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_integer_weights_equal_repeated_rows(rng, covariance_type):
    X = _data(rng, n=300)
    counts = rng.integers(0, 4, size=X.shape[0])
    init, prior = _start(X, covariance_type)
    weighted = MapEM(3, covariance_type=covariance_type, max_iter=5, tol=0.0, prior=prior, **init)
    repeated = MapEM(3, covariance_type=covariance_type, max_iter=5, tol=0.0, prior=prior, **init)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        weighted.fit(X, sample_weight=counts)
        repeated.fit(np.repeat(X, counts, axis=0))
    np.testing.assert_allclose(weighted.means_, repeated.means_, rtol=1e-10)
    np.testing.assert_allclose(weighted.covariances_, repeated.covariances_, rtol=1e-10)
    np.testing.assert_allclose(weighted.weights_, repeated.weights_, rtol=1e-10)
    assert weighted.log_posterior_ == pytest.approx(repeated.log_posterior_, rel=1e-10)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_zero_weight_drops_the_row(rng, covariance_type):
    X = _data(rng, n=300)
    keep = rng.random(X.shape[0]) > 0.2
    init, prior = _start(X, covariance_type)
    kwargs = dict(covariance_type=covariance_type, max_iter=5, tol=0.0, prior=prior, **init)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        zero = MapEM(3, **kwargs).fit(X, sample_weight=keep.astype(float))
        dropped = MapEM(3, **kwargs).fit(X[keep])
    np.testing.assert_allclose(zero.means_, dropped.means_, rtol=1e-10)
    np.testing.assert_allclose(zero.covariances_, dropped.covariances_, rtol=1e-10)
    assert zero.log_posterior_ == pytest.approx(dropped.log_posterior_, rel=1e-10)


@pytest.mark.parametrize("covariance_type", ["full", "diag"])
def test_memmap_fit_equals_in_memory_fit(rng, tmp_path, covariance_type):
    X = _data(rng, n=2000)
    path = tmp_path / "X.npy"
    np.save(path, X)
    mapped = np.load(path, mmap_mode="r")
    assert isinstance(mapped, np.memmap)
    a = MapEM(3, covariance_type=covariance_type, random_state=0).fit(X)
    b = MapEM(3, covariance_type=covariance_type, random_state=0).fit(mapped)
    # the memmap's prior moments come from the scaling's pass (rounding-level differences)
    assert a.log_posterior_ == pytest.approx(b.log_posterior_, rel=1e-13)
    np.testing.assert_allclose(a.means_, b.means_, rtol=1e-13)


def test_memmap_is_not_copied(rng, tmp_path, monkeypatch):
    X = _data(rng, n=2000)
    path = tmp_path / "X.npy"
    np.save(path, X)
    mapped = np.load(path, mmap_mode="r")
    seen = []
    original = _engine._as_block

    def spy(data, block):
        seen.append(data)
        return original(data, block)

    monkeypatch.setattr(_engine, "_as_block", spy)
    MapEM(3, random_state=0).fit(mapped)
    # the fit reads the memmap through a standardising view, block by block (bayes_gmm.model.scaling)
    assert seen and all(isinstance(data, ScaledRows) and data.base is mapped for data in seen)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_float32_fit_is_accurate(rng, covariance_type):
    X = _data(rng, n=3000).astype(np.float32)
    init, prior = _start(X.astype(np.float64), covariance_type)
    kwargs = dict(covariance_type=covariance_type, max_iter=10, tol=0.0, prior=prior, **init)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        single = MapEM(3, **kwargs).fit(X)
        double = MapEM(3, **kwargs).fit(X.astype(np.float64))
    assert _rel(single.means_, double.means_) < 1e-4
    assert _rel(single.covariances_, double.covariances_) < 1e-4
    assert single.log_posterior_ == pytest.approx(double.log_posterior_, rel=1e-6)


def test_float32_block_is_computed_in_float32(rng):
    family = get_family("full")
    params = _random_params(family, rng, 3, 3)
    X = _data(rng, n=50).astype(np.float32)
    assert family.log_prob(X, params.means, params.precisions_cholesky).dtype == np.float32
    raw = family.accumulate(X, None, params)
    assert raw.second.dtype == np.float64


@pytest.mark.parametrize("weighted", [False, True])
def test_blocked_kmeans_plusplus_equals_sklearn(rng, monkeypatch, weighted):
    X = _data(rng, n=20_000, d=4)
    sample_weight = rng.random(X.shape[0]) if weighted else None
    monkeypatch.setattr(_engine, "_INIT_ROWS", 3001)
    expected, _ = kmeans_plusplus(X, 6, random_state=check_random_state(7), sample_weight=sample_weight)
    got = _engine.kmeans_plusplus(X, 6, sample_weight, check_random_state(7))
    np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize("init_params", ["k-means++", "random", "random_from_data"])
@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_blocked_initialisation_equals_plain(rng, monkeypatch, init_params, covariance_type):
    X = _data(rng, n=3000)
    plain = MapEM(3, covariance_type=covariance_type, init_params=init_params, random_state=0, max_iter=3, tol=0.0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        plain.fit(X)
        monkeypatch.setattr(scaling, "_LARGE_FLOATS", 1000)
        monkeypatch.setattr(_engine, "_INIT_ROWS", 700)
        blocked = MapEM(3, covariance_type=covariance_type, init_params=init_params, random_state=0, max_iter=3, tol=0.0)
        blocked.fit(X)
    assert blocked.log_posterior_ == pytest.approx(plain.log_posterior_, rel=1e-12)
    assert _rel(blocked.means_, plain.means_) < 1e-10


@pytest.mark.parametrize("weighted", [False, True])
def test_blocked_data_moments_equal_plain(rng, monkeypatch, weighted):
    X = _data(rng, n=5000, d=4)
    sample_weight = rng.random(X.shape[0]) if weighted else None
    plain = _weighted_moments(X, sample_weight)
    monkeypatch.setattr(scaling, "_LARGE_FLOATS", 1000)
    monkeypatch.setattr(scaling, "_ROWS", 777)
    blocked = _weighted_moments(X, sample_weight)
    for a, b in zip(blocked, plain, strict=True):
        assert _rel(a, b) < 1e-12


@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("common", [False, True])
def test_scaling_pass_moments_equal_the_standardised_rows_moments(rng, weighted, common):
    """The moments ``column_scaling(moments=True)`` keeps are those of the standardised rows,
    at extreme scales and far offsets, with a constant column and zero weights."""
    X = _data(rng, n=6000, d=5) @ rng.normal(size=(5, 5))
    X *= 10.0 ** np.array([-120, -3, 0, 40, 150])
    X += 10.0 ** np.array([-118, 2, 5, 45, 151])
    X[:, 2] = 7.25
    w = rng.random(X.shape[0]) * 3 if weighted else None
    if weighted:
        w[:50] = 0.0
    s = scaling.column_scaling(X, w, common=common, moments=True)
    reference = scaling.column_moments(ScaledRows(X, s), w)
    mean, cov, square = s.moments
    assert np.all(mean == 0.0) and np.max(np.abs(reference[0])) < 1e-10
    assert _rel(cov, reference[1]) < 1e-13
    assert _rel(square, reference[2]) < 1e-13
    assert cov[2, 2] == 0.0 and square[2] == 0.0
    assert scaling.column_scaling(X, w, common=common).moments is None


@pytest.mark.parametrize("weighted", [False, True])
def test_scaling_first_pass_sums_blocks_in_their_own_units(rng, monkeypatch, weighted):
    """The range and the mean come from one pass, each block summed in a unit of its own:
    the centre equals the mean summed in the final unit, with blocks whose magnitudes differ by
    up to 1e280 and (weighted) ignored rows holding 1e300."""
    n = 700
    X = rng.normal(size=(n, 3)) + 2.0
    X[:, 0] *= 10.0 ** np.repeat([-140.0, 0.0, 140.0, -3.0], n // 4)[:n]  # one magnitude a block
    X[:, 1] *= 1e-140
    w = rng.random(n) * 3 if weighted else None
    if weighted:
        w[::7] = 0.0
        X[::7, 2] = 1e300  # rows the scaling must ignore
    monkeypatch.setattr(scaling, "_ROWS", n // 4)
    s = scaling.column_scaling(X, w)
    live = slice(None) if w is None else w > 0
    weights = np.ones(n) if w is None else w
    unit = 2.0 ** np.round(np.log2(np.max(np.abs(X[live]), axis=0)))
    want = (weights[live] @ (X[live] / unit)) / weights[live].sum() * unit
    np.testing.assert_allclose(s.center, want, rtol=1e-14)
    assert np.all(np.isfinite(s.scale)) and np.all(s.scale > 0)


def test_large_fit_takes_the_prior_moments_from_the_scaling_pass(rng, tmp_path, monkeypatch):
    """A memmap is standardised as it is read; its prior's moments come from the scaling's
    pass (no column_moments pass) and equal the in-memory fit's to rounding."""
    X = _data(rng, n=3000) * 1e6 + 3e7
    path = tmp_path / "X.npy"
    np.save(path, X)
    mapped = np.load(path, mmap_mode="r")
    in_memory = MapEM(3, random_state=0).fit(X)
    calls = []
    original = scaling.column_moments

    def spy(*args, **kwargs):
        calls.append(args)
        return original(*args, **kwargs)

    monkeypatch.setattr(prior_module, "column_moments", spy)
    from_disk = MapEM(3, random_state=0).fit(mapped)
    assert calls == []
    assert _rel(from_disk.prior_.psi0, in_memory.prior_.psi0) < 1e-12
    assert _rel(from_disk.prior_.m0, in_memory.prior_.m0) < 1e-12
    assert from_disk.log_posterior_ == pytest.approx(in_memory.log_posterior_, rel=1e-10)


def test_import_does_not_import_dask():
    import subprocess

    code = "import sys, bayes_gmm; bayes_gmm.MapEM(2); print('dask' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_dask_fit_equals_numpy_fit(rng, covariance_type):
    da = pytest.importorskip("dask.array")
    import dask

    X = _data(rng, n=2000)
    expected = MapEM(3, covariance_type=covariance_type, random_state=0).fit(X)
    with dask.config.set(scheduler="threads"):
        got = MapEM(3, covariance_type=covariance_type, random_state=0).fit(da.from_array(X, chunks=(450, 3)))
    assert got.n_iter_ == expected.n_iter_
    assert got.log_posterior_ == pytest.approx(expected.log_posterior_, rel=1e-10)
    assert _rel(got.means_, expected.means_) < 1e-10
    assert _rel(got.covariances_, expected.covariances_) < 1e-10
    np.testing.assert_array_equal(got.predict(X), expected.predict(X))


def test_dask_sample_weight_and_lazy_finiteness_check(rng):
    da = pytest.importorskip("dask.array")
    X = _data(rng, n=1000)
    w = rng.random(X.shape[0])
    expected = MapEM(3, random_state=0).fit(X, sample_weight=w)
    got = MapEM(3, random_state=0).fit(da.from_array(X, chunks=(300, 3)), sample_weight=w)
    assert got.log_posterior_ == pytest.approx(expected.log_posterior_, rel=1e-10)
    bad = X.copy()
    bad[700, 1] = np.nan
    lazy = da.from_array(bad, chunks=(300, 3))
    from bayes_gmm.em.validation import check_data

    checked = check_data(lazy)  # no error yet: nothing computed
    assert checked.shape == X.shape
    with pytest.raises(ValueError, match="NaN at row 100, column 1.*row 600"):
        MapEM(3, random_state=0).fit(lazy)


@pytest.mark.parametrize(
    ("stacked_max_d", "gemm_max_d", "pairs_max_d", "piece_rows"),
    [(0, 0, 0, 20), (100, 0, 0, 20), (100, 0, 0, 2), (100, 100, 0, 3), (100, 100, 16, 20)],
    ids=["trmm-syrk", "stacked-gemm-syrk", "pieces-syrk", "pieces-gemm", "pairs"],
)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_full_kernel_paths_equal_reference(rng, monkeypatch, stacked_max_d, gemm_max_d, pairs_max_d, piece_rows, dtype):
    """Every whitening/moment path of the full family: one TRMM per component (d above
    ``kernels.STACKED_GEMM_MAX_D``) or stacked GEMMs for all (one, or one per piece of rows of
    the triangular factors: ``kernels.WHITEN_PIECE_ROWS``), then one SYRK per component (d
    above ``kernels.GEMM_MAX_D``) or batched products; and the pairwise-products path (float64,
    small d)."""
    from bayes_gmm.model.families import kernels

    monkeypatch.setattr(kernels, "STACKED_GEMM_MAX_D", stacked_max_d)
    monkeypatch.setattr(kernels, "GEMM_MAX_D", gemm_max_d)
    monkeypatch.setattr(kernels, "PAIRS_MAX_D", pairs_max_d)
    monkeypatch.setattr(kernels, "WHITEN_PIECE_ROWS", piece_rows)
    family = get_family("full")
    X = _data(rng, n=1500, d=6)
    params = _random_params(family, rng, 3, 6)
    log_prob = family.log_prob(X, params.means, params.precisions_cholesky) + np.log(params.weights)
    log_norm = logsumexp(log_prob, axis=1)
    ref = family.statistics_from_responsibilities(X, np.exp(log_prob - log_norm[:, None]))
    raw = _engine.accumulate(family, X.astype(dtype), None, params, 400)
    got = family.finalize(raw, params)
    tol = 1e-12 if dtype == np.float64 else 1e-4
    assert _rel(got.nk, ref.nk) < tol
    assert _rel(got.xbar, ref.xbar) < tol
    assert _rel(got.scatter, ref.scatter) < tol
    assert raw.log_likelihood == pytest.approx(float(np.sum(log_norm)), rel=tol)


@pytest.mark.parametrize("gemm_max_d", [0, 100], ids=["elementwise", "full-kernel"])
@pytest.mark.parametrize("covariance_type", ["diag", "spherical"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_variance_kernel_paths_equal_reference(rng, monkeypatch, gemm_max_d, covariance_type, dtype):
    """diag/spherical: the elementwise path (large d) and the full family's kernel (small d)."""
    from bayes_gmm.model.families import kernels

    monkeypatch.setattr(kernels, "GEMM_MAX_D", gemm_max_d)
    family = get_family(covariance_type)
    X = _data(rng, n=1500, d=6)
    params = _random_params(family, rng, 3, 6)
    w = rng.random(X.shape[0]) * 2
    log_prob = family.log_prob(X, params.means, params.precisions_cholesky) + np.log(params.weights)
    log_norm = logsumexp(log_prob, axis=1)
    ref = family.statistics_from_responsibilities(X, np.exp(log_prob - log_norm[:, None]), w)
    raw = _engine.accumulate(family, X.astype(dtype), w, params, 400)
    got = family.finalize(raw, params)
    tol = 1e-12 if dtype == np.float64 else 1e-4
    assert raw.second.shape == np.shape(params.covariances)
    assert _rel(got.nk, ref.nk) < tol
    assert _rel(got.xbar, ref.xbar) < tol
    assert _rel(got.scatter, ref.scatter) < tol
    assert raw.log_likelihood == pytest.approx(float(w @ log_norm), rel=tol)


@pytest.mark.parametrize("zero_share", [0.0, 0.25, 1.0])
@pytest.mark.parametrize("separation", [60.0, 5.0], ids=["underflow", "tiny"])
def test_full_kernel_skips_negligible_responsibilities(rng, monkeypatch, zero_share, separation):
    """Rows whose responsibility underflows to 0 (well apart) or is tiny but positive (closer:
    1e-30 and below) may be left out of a component's SYRK: the statistics stay equal to the
    reference's."""
    from bayes_gmm.model.families import kernels

    monkeypatch.setattr(kernels, "GEMM_MAX_D", 0)
    monkeypatch.setattr(kernels, "PAIRS_MAX_D", 0)
    monkeypatch.setattr(kernels, "SPARSE_ZERO_SHARE", zero_share)
    family = get_family("full")
    d = 5
    X = rng.normal(size=(1200, d)) + separation * rng.integers(0, 3, size=(1200, 1))
    centres = separation * np.arange(3)[:, None] * np.ones(d) + 0.1
    params = family.params(np.full(3, 1 / 3), centres, np.tile(np.eye(d), (3, 1, 1)))
    log_prob = family.log_prob(X, params.means, params.precisions_cholesky) + np.log(params.weights)
    log_norm = logsumexp(log_prob, axis=1)
    resp = np.exp(log_prob - log_norm[:, None])
    if separation > 10:
        assert np.mean(resp == 0) > 0.5
    else:
        assert np.mean(resp == 0) == 0 and np.mean(resp < 1e-22) > 0.5
    ref = family.statistics_from_responsibilities(X, resp)
    raw = _engine.accumulate(family, X, None, params, 500)
    got = family.finalize(raw, params)
    assert _rel(got.nk, ref.nk) < 1e-12
    assert _rel(got.xbar, ref.xbar) < 1e-12
    assert _rel(got.scatter, ref.scatter) < 1e-12


@pytest.mark.parametrize("separation, tol", [(3.0, 1e-12), (60.0, 1e-9)])
@pytest.mark.parametrize("d", [1, 2, 10, 16])
def test_pairwise_kernel_equals_the_reference(rng, d, separation, tol):
    """float64 blocks with d <= 16 use pair products (a quadratic form and one Gram product for
    all components).  Its rounding grows as eps (distance / sd)^2 from the centre of the means:
    1e-12 for data within a few sds (MapEM fits standardised data), 1e-9 at 60 sds."""
    from bayes_gmm.model.families import kernels

    assert d <= kernels.PAIRS_MAX_D
    family = get_family("full")
    X = rng.normal(size=(3000, d)) + separation * rng.integers(0, 3, size=(3000, 1))
    params = _random_params(family, rng, 3, d)
    params = family.params(params.weights, separation * np.arange(3)[:, None] * np.ones(d) + 0.1, params.covariances)
    log_prob = family.log_prob(X, params.means, params.precisions_cholesky) + np.log(params.weights)
    log_norm = logsumexp(log_prob, axis=1)
    ref = family.statistics_from_responsibilities(X, np.exp(log_prob - log_norm[:, None]))
    raw = _engine.accumulate(family, X, None, params, 700)
    got = family.finalize(raw, params)
    assert _rel(got.nk, ref.nk) < tol
    assert _rel(got.xbar, ref.xbar) < tol
    assert _rel(got.scatter, ref.scatter) < tol
    assert raw.log_likelihood == pytest.approx(float(np.sum(log_norm)), rel=tol)
