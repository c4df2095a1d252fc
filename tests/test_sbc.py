"""Simulation-based calibration (Talts et al. 2018) of the sampled posterior, as a test.

Each study draws parameters from an explicit prior, data of n=40 rows from them, and ranks the
true label-invariant quantities among 99 thinned posterior draws (one compiled model per study,
reused for every replicate).  The same check must pass on the real posterior and fail on a
deliberately wrong one: data simulated with the covariance prior's scale 2x the sampler's.

Power: with R replicates and B bins, one bin's count is Binomial(R, 1/B).  Here R = 400, B = 5:
80 +- 8 per bin; the wrong posterior moves whole bins by 40-60%.  ``benchmarks/bench_sbc.py``
runs larger studies (1,000 replicates, B = 4: a 20% excess of one bin is 3.7 sd).
"""

import numpy as np
import pytest

from bayes_gmm import NIWPrior

pytest.importorskip("bayes_gmm.bayes.posterior")
from bayes_gmm.bayes.sbc import simulation_based_calibration  # noqa: E402

N_BINS = 5
#: A quantity is miscalibrated when its chi-square or KS p-value is below this.
P_MIN = 1e-3


def make_prior(covariance_type, d, scale=1.0):
    if covariance_type == "full":
        return NIWPrior("full", alpha=2.0, m0=np.zeros(d), kappa0=0.05, nu0=d + 3.0, psi0=scale * np.eye(d))
    return NIWPrior("diag", alpha=2.0, m0=np.zeros(d), kappa0=0.05, a0=3.0, b0=scale * np.ones(d))


def miscalibrated(result):
    """The quantities whose ranks are not uniform: ``(name, chi2 p, KS p)``."""
    return [(t["quantity"], t["chi2_p"], t["ks_p"]) for t in result.tests(N_BINS) if min(t["chi2_p"], t["ks_p"]) < P_MIN]


def study(covariance_type, d, n_replicates, simulate_scale=1.0, seed=0):
    prior = make_prior(covariance_type, d)
    result = simulation_based_calibration(
        prior, 2, 40, n_replicates, simulate_prior=make_prior(covariance_type, d, simulate_scale), random_seed=seed
    )
    assert result.failed == 0
    assert result.ranks.shape == (n_replicates, len(result.quantities))
    return result


@pytest.mark.slow
@pytest.mark.parametrize(("covariance_type", "d", "n_replicates"), [("full", 1, 400), ("diag", 2, 300)])
def test_posterior_is_calibrated(covariance_type, d, n_replicates):
    result = study(covariance_type, d, n_replicates)
    assert miscalibrated(result) == [], result.tests(N_BINS)


@pytest.mark.slow
def test_calibration_check_detects_a_wrong_posterior():
    """Data from a prior whose covariance scale is 2x the sampler's: the true variances are
    larger than the posterior says, so their ranks pile up in the top bins."""
    result = study("full", 1, 400, simulate_scale=2.0)
    failures = {name for name, _, _ in miscalibrated(result)}
    assert {"log variance[0, 0]", "log variance[1, 0]"} <= failures, result.tests(N_BINS)
    top = result.histograms(N_BINS)[result.quantities.index("log variance[0, 0]")]
    assert top[-1] > 1.3 * top.mean() and top[0] < 0.7 * top.mean()


def test_rank_tests_on_known_ranks():
    """The tests themselves: uniform ranks pass, ranks piled into one bin fail."""
    from bayes_gmm.bayes.sbc import rank_tests

    rng = np.random.default_rng(0)
    uniform = rng.integers(0, 100, size=(2000, 1))
    skewed = np.where(rng.uniform(size=(2000, 1)) < 0.1, 0, uniform)  # 10% moved into bin 0
    (ok,) = rank_tests(uniform, 100, 4, ["u"])
    (bad,) = rank_tests(skewed, 100, 4, ["s"])
    assert ok["chi2_p"] > 0.01 and ok["ks_p"] > 0.01 and sum(ok["histogram"]) == 2000
    assert bad["chi2_p"] < 1e-6 and bad["ks_p"] < 1e-6 and bad["max_bin_z"] > 5
