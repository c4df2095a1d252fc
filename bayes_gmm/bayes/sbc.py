"""Simulation-based calibration (Talts et al. 2018) of the posterior sampler.

For each replicate: parameters ``theta ~ p(theta)`` from an explicit prior, data ``X ~ p(X |
theta)``, MAP-EM on ``X`` (the sampler's start and anchor), posterior draws with the compiled
model of :class:`~bayes_gmm.bayes.posterior.PosteriorSampler` (compiled once, reused for every
replicate), and, for each test quantity ``f``, the rank of ``f(theta)`` among ``f`` of ``L``
thinned draws.  If the sampler draws from the exact posterior, every rank is uniform on
``0..L``.

Test quantities are invariant to the components' labels (the posterior is symmetric in them):
the means sorted by their first feature (``mean[j]``: the ``j``-th smallest component's means),
the weight of the component with the lowest mean, the log-variances of the components in that
order, and the data's log-likelihood ``log p(X | theta)``.

``simulate_prior`` can draw the parameters from *another* prior than the sampler's (for
instance a covariance scale off by 2x): the ranks are then not uniform, which is what a
calibration test must detect.
"""

from __future__ import annotations

import dataclasses
import warnings

import numpy as np
from scipy import stats

from bayes_gmm.bayes.draws import draw_prior, log_likelihood_of_draws, simulate_mixture
from bayes_gmm.bayes.posterior import get_posterior_sampler
from bayes_gmm.em.map_em import MapEM
from bayes_gmm.model.families import get_family
from bayes_gmm.model.prior import NIWPrior

__all__ = ["SBCResult", "rank_histograms", "rank_tests", "simulation_based_calibration", "label_invariant_quantities"]


def label_invariant_quantities(X, weights, means, covariances, ct: str) -> tuple[np.ndarray, list[str]]:
    """The label-invariant quantities of draws (S, ...): (S, Q) and their names."""
    s, k, d = means.shape
    order = np.argsort(means[:, :, 0], axis=1, kind="stable")  # (S, K)
    rows = np.arange(s)[:, None]
    sorted_means = means[rows, order]  # (S, K, d)
    variances = np.diagonal(get_family(ct).dense(covariances, k, d), axis1=-2, axis2=-1)[rows, order]  # (S, K, d)
    log_lik = log_likelihood_of_draws(X, weights, means, covariances, ct)
    columns = [sorted_means.reshape(s, -1), weights[rows[:, 0], order[:, 0]][:, None],
               np.log(variances).reshape(s, -1), log_lik[:, None]]
    names = [f"mean[{j}, {f}]" for j in range(k) for f in range(d)] + ["weight of lowest mean"]
    names += [f"log variance[{j}, {f}]" for j in range(k) for f in range(d)] + ["log-likelihood"]
    return np.concatenate(columns, axis=1), names


@dataclasses.dataclass
class SBCResult:
    """Ranks of a simulation-based calibration study.

    Attributes
    ----------
    ranks : ndarray of shape (n_replicates, n_quantities)
        Rank of each quantity's true value among ``n_ranks - 1`` thinned posterior draws.
    n_ranks : int
        Number of possible ranks (``L + 1``).
    quantities : list of str
    failed : int
        Replicates where the sampler could not start (left out).
    seconds : float
        Wall time of the study (compilation included).
    """

    ranks: np.ndarray
    n_ranks: int
    quantities: list
    failed: int
    seconds: float

    def histograms(self, n_bins: int) -> np.ndarray:
        """Counts of the ranks in ``n_bins`` equal bins, shape (n_quantities, n_bins)."""
        return rank_histograms(self.ranks, self.n_ranks, n_bins)

    def tests(self, n_bins: int) -> list[dict]:
        """:func:`rank_tests` of every quantity."""
        return rank_tests(self.ranks, self.n_ranks, n_bins, self.quantities)


def rank_histograms(ranks: np.ndarray, n_ranks: int, n_bins: int) -> np.ndarray:
    if n_ranks % n_bins:
        raise ValueError(f"n_bins={n_bins} must divide the {n_ranks} possible ranks.")
    bins = ranks * n_bins // n_ranks
    return np.stack([np.bincount(bins[:, q], minlength=n_bins) for q in range(ranks.shape[1])])


def rank_tests(ranks: np.ndarray, n_ranks: int, n_bins: int, names) -> list[dict]:
    """Uniformity tests of each column of ranks.

    ``chi2_p``: chi-square test of the ``n_bins`` bin counts; ``ks_p``: Kolmogorov-Smirnov test
    of ``(rank + u) / n_ranks`` with ``u ~ U(0, 1)`` (a fixed seed), uniform on (0, 1) exactly
    when the ranks are uniform; ``max_bin_z``: the largest ``|count - N/B| / sd`` of one bin.
    """
    hist = rank_histograms(ranks, n_ranks, n_bins)
    n = ranks.shape[0]
    expected = n / n_bins
    sd = np.sqrt(n * (1.0 / n_bins) * (1.0 - 1.0 / n_bins))
    jitter = np.random.default_rng(0).uniform(size=ranks.shape)
    out = []
    for q, name in enumerate(names):
        chi2 = stats.chisquare(hist[q])
        ks = stats.kstest((ranks[:, q] + jitter[:, q]) / n_ranks, "uniform")
        out.append({
            "quantity": name,
            "histogram": hist[q].tolist(),
            "chi2_p": float(chi2.pvalue),
            "ks_p": float(ks.pvalue),
            "max_bin_z": float(np.max(np.abs(hist[q] - expected)) / sd),
        })
    return out


def simulation_based_calibration(
    prior: NIWPrior,
    n_components: int,
    n_samples: int,
    n_replicates: int,
    *,
    simulate_prior: NIWPrior | None = None,
    n_ranks: int = 100,
    chains: int = 2,
    tune: int = 200,
    draws: int = 200,
    random_seed: int = 0,
    cores: int | None = None,
) -> SBCResult:
    """Ranks of ``n_replicates`` simulation-based calibration replicates.

    Parameters
    ----------
    prior : NIWPrior
        The prior of the posterior that is sampled (MapEM's ``prior``).
    n_components, n_samples : int
        Components and rows of each simulated data set.
    n_replicates : int
    simulate_prior : NIWPrior, optional
        The prior the parameters are drawn from; ``prior`` if not given (a calibrated sampler
        then gives uniform ranks).
    n_ranks : int, default=100
        ``L + 1``: the ``chains * draws`` draws are thinned to ``L`` equally spaced ones (less
        autocorrelation, so that the ranks' histogram has binomial noise only).
    chains, tune, draws : int
    random_seed : int
        Seeds the whole study (data, MapEM, the sampler).
    cores : int, optional
        Chains run in parallel (every CPU by default).

    Returns
    -------
    SBCResult
    """
    import time

    start = time.perf_counter()
    rng = np.random.default_rng(random_seed)
    simulate_prior = prior if simulate_prior is None else simulate_prior
    ct, k = prior.covariance_type, int(n_components)
    n_draws = chains * draws
    if n_ranks - 1 > n_draws:
        raise ValueError(f"n_ranks - 1 = {n_ranks - 1} thinned draws need chains * draws >= {n_ranks - 1}.")
    keep = np.linspace(0, n_draws - 1, n_ranks - 1).round().astype(int)
    ranks, failed, names = [], 0, None
    for _ in range(n_replicates):
        weights, means, covariances = draw_prior(simulate_prior, k, rng)
        X, _ = simulate_mixture(rng, weights, means, covariances, ct, n_samples)
        est = MapEM(k, covariance_type=ct, prior=prior, n_init=3, max_iter=2000,
                    random_state=int(rng.integers(2**31)))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # a component the simulated data barely support
            est.fit(X)
        sampler = get_posterior_sampler(est)
        try:
            arrays, _ = sampler.run(est, X, draws=draws, tune=tune, chains=chains, cores=cores,
                                    random_seed=int(rng.integers(2**31)), progressbar=False, save_warmup=False,
                                    as_arrays=True)
        except ValueError:  # no start (an exactly-zero gradient): rare, counted
            failed += 1
            continue
        w, m, c = (arrays[name].reshape(-1, *arrays[name].shape[2:]) for name in ("weights", "means", "covariances"))
        draws_q, names = label_invariant_quantities(X, w[keep], m[keep], c[keep], ct)
        true_q, _ = label_invariant_quantities(X, weights[None], means[None], np.asarray(covariances)[None], ct)
        ranks.append(np.sum(draws_q < true_q, axis=0))
    return SBCResult(np.asarray(ranks, dtype=np.int64), n_ranks, names or [], failed, time.perf_counter() - start)
