"""Simulation-based calibration (Talts et al. 2018) of the sampled posterior, as a test.

Each study draws parameters from an explicit prior, data of n=40 rows from them, and ranks the
true label-invariant quantities among 51 thinned posterior draws (one compiled model per study,
reused for every replicate).  The same check must pass on the real posterior and fail on a
deliberately wrong one: data simulated with the covariance prior's scale 2x the sampler's.

Power: with R replicates and B bins, one bin's count is Binomial(R, 1/B).  Here R = 2,000 and
B = 4 (500 +- 19 per bin): a 20% excess in one bin (600) is detected by the chi-square or KS test
at p < 1e-3 in 94% of studies (282 of 300 synthetic studies in
``test_the_study_size_detects_a_20_percent_excess_in_one_bin``; none of 300 uniform ones).
A replicate is one chain of 150 tuning and 100 kept draws, thinned to 51 (ranks 0-51), about
40 ms: MapEM's fit, nutpie's sampling, and the draws read from nutpie's raw trace.
"""

import numpy as np
import pytest

from bayes_gmm import NIWPrior

pytest.importorskip("bayes_gmm.bayes.posterior")
from bayes_gmm.bayes.sbc import simulation_based_calibration  # noqa: E402

N_BINS = 4
#: Replicates of each calibration study, and the sampler settings of each replicate.
N_REPLICATES = 2000
SAMPLER = {"chains": 1, "tune": 150, "draws": 100, "n_ranks": 52}
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
        prior, 2, 40, n_replicates, simulate_prior=make_prior(covariance_type, d, simulate_scale), random_seed=seed,
        **SAMPLER,
    )
    assert result.failed == 0
    assert result.ranks.shape == (n_replicates, len(result.quantities))
    return result


@pytest.mark.slow
@pytest.mark.parametrize(("covariance_type", "d"), [("full", 1), ("diag", 2)])
def test_posterior_is_calibrated(covariance_type, d):
    result = study(covariance_type, d, N_REPLICATES)
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


def test_the_study_size_detects_a_20_percent_excess_in_one_bin():
    """The calibration studies' size and criterion, on synthetic ranks: a rank distribution with
    one bin 20% too full is flagged in at least 85% of studies of N_REPLICATES replicates, and
    uniform ranks in at most 1%."""
    from bayes_gmm.bayes.sbc import SBCResult

    rng = np.random.default_rng(0)
    n_ranks, n_studies = SAMPLER["n_ranks"], 300
    per_bin = n_ranks // N_BINS
    flagged = {"uniform": 0, "excess": 0}
    for _ in range(n_studies):
        uniform = rng.integers(0, n_ranks, size=N_REPLICATES)
        # bin 0 holds 0.3 of the ranks instead of 0.25: a 20% excess, the other bins share the rest
        in_bin0 = rng.uniform(size=N_REPLICATES) < 1.2 / N_BINS
        excess = np.where(in_bin0, rng.integers(0, per_bin, size=N_REPLICATES),
                          rng.integers(per_bin, n_ranks, size=N_REPLICATES))
        for name, ranks in (("uniform", uniform), ("excess", excess)):
            result = SBCResult(ranks[:, None], n_ranks, [name], 0, 0.0)
            flagged[name] += bool(miscalibrated(result))
    assert flagged["excess"] >= 0.85 * n_studies, flagged
    assert flagged["uniform"] <= 0.01 * n_studies, flagged
