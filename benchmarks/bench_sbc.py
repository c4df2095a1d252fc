"""Benchmark: simulation-based calibration (Talts et al. 2018) of the sampled posterior.

For each configuration (covariance type, d; K=2, n=40 rows): ``--replicates`` data sets simulated
from an explicit fixed prior, MAP-EM on each, posterior draws with the compiled model (compiled
once per configuration and reused for every replicate), and the ranks of the true value of
label-invariant quantities among 99 thinned draws (2 chains x (200 tune + 200 draws)): the
component means sorted by their first feature, the weight of the component with the lowest
mean, the log-variances in that order, the data's log-likelihood.  Printed: rank histograms in
``--bins`` bins, chi-square and Kolmogorov-Smirnov p-values.  The last configuration is a
deliberately wrong posterior (data simulated with the covariance prior's scale 2x the
sampler's): a calibration check must flag it.

With R replicates and B bins one bin holds Binomial(R, 1/B) ranks: with R = 1000 and B = 4,
250 +- 13.7, so a 20% excess of one bin (50 ranks) is 3.7 standard deviations.

Run: ``.venv/bin/python benchmarks/bench_sbc.py`` (``--replicates 1000 --bins 4`` by default)
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

CONFIGS = [("full", 1, 1.0), ("full", 2, 1.0), ("diag", 2, 1.0), ("full", 1, 2.0)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--replicates", type=int, default=1000)
    parser.add_argument("--bins", type=int, default=4)
    parser.add_argument("--seed", type=int, default=2026)
    args = parser.parse_args()

    from test_sbc import make_prior  # the suite's fixed priors

    from bayes_gmm.bayes.sbc import simulation_based_calibration

    print(f"SBC: K=2, n=40, {args.replicates} replicates per configuration, ranks among 99 thinned draws, "
          f"{args.bins} bins (expected {args.replicates / args.bins:.0f} per bin)")
    for ct, d, scale in CONFIGS:
        start = time.perf_counter()
        result = simulation_based_calibration(
            make_prior(ct, d), 2, 40, args.replicates, simulate_prior=make_prior(ct, d, scale),
            random_seed=args.seed,
        )
        label = f"{ct}, d={d}" + ("" if scale == 1.0 else f", data from a prior scale {scale:g}x the sampler's")
        print(f"\n{label}: {time.perf_counter() - start:.0f} s, {result.failed} replicates without a start")
        print(f"  {'quantity':<24} {'histogram':<28} {'chi2 p':>9} {'KS p':>9}")
        tests = result.tests(args.bins)
        for t in tests:
            hist = " ".join(f"{c:>4d}" for c in t["histogram"])
            print(f"  {t['quantity']:<24} {hist:<28} {t['chi2_p']:>9.3g} {t['ks_p']:>9.3g}")
        print(f"  smallest p-value: {min(min(t['chi2_p'], t['ks_p']) for t in tests):.3g} "
              f"over {2 * len(tests)} tests")


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()
