"""A guard against the data-dependent slowdown of issue 14 (a ratio within one run, not a time).

On clusters on a line with more components than clusters, most responsibilities underflow
towards zero; computing with subnormal numbers made one EM pass 6x slower on an Intel Xeon
than on well-separated blobs of the same size.  Responsibilities are now floored at a normal
number (``kernels.responsibilities_inplace``).
"""

import time

import numpy as np
import pytest
from threadpoolctl import threadpool_limits

from bayes_gmm import MapEM, get_family
from bayes_gmm.em import engine as _engine


def _blobs(rng, n, d, k):
    centers = rng.normal(scale=4.0, size=(k, d))
    return rng.normal(size=(n, d)) + centers[rng.integers(0, k, n)]


def _line(rng, n, d, k):
    return rng.normal(size=(n, d)) + rng.integers(0, 6, size=(n, 1)) * 3.0


def _pass_seconds(X, k, repeats=5):
    """Median time of one E-step-and-statistics pass under parameters fitted to ``X``."""
    est = MapEM(k, max_iter=20, random_state=0).fit(X)
    family = get_family("full")
    params = family.params(est.weights_, est.means_, est.covariances_)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        _engine.accumulate(family, X, None, params, threads=1)
        times.append(time.perf_counter() - start)
    return float(np.median(times)), params


@pytest.mark.slow
def test_line_clusters_cost_no_more_than_blobs_per_pass(rng):
    n, d, k = 100_000, 10, 10
    with threadpool_limits(1):
        line, params = _pass_seconds(_line(rng, n, d, k), k)
        blobs, _ = _pass_seconds(_blobs(rng, n, d, k), k)
        line_again, _ = _pass_seconds(_line(rng, n, d, k), k)
    # the case is the one of the issue: most responsibilities of a row are negligible
    X = _line(rng, 20_000, d, k)
    log_prob = get_family("full").log_prob(X, params.means, params.precisions_cholesky) + np.log(params.weights)
    relative = log_prob - log_prob.max(axis=1, keepdims=True)
    assert np.mean((relative < -708) & (relative > -745)) > 0.01  # exp() of these is subnormal
    assert min(line, line_again) < 2.0 * blobs, (line, line_again, blobs)
