"""Time per EM iteration of every covariance family against the full family's, same data.

Issue 13: mclust's constrained models use the same blocked one-pass E-step as full (their
covariances are stored as full, diagonal or spherical ones); only their M-step differs, and some
of those iterate (VEI, VEV, VEE: alternating volumes and shape; EVE, VVE: plane rotations of the
shared orientation, warm-started from the last estimate).  The goal: each within 2x of full at
(n, d, k) = (1e5, 10, 5).

Per family, one process, one BLAS thread, alternating pairs (full, family, full, family, ...):
each fit starts from the same partition (k-means labels, ``init_params``) with the family's
default prior resolved beforehand, runs ``tol=0`` for 3 and for 13 iterations, and one iteration
costs (t13 - t3) / 10.  A row: the medians of both and the median of the per-pair ratios
(family / full; at most 2 is the goal).

    .venv/bin/python benchmarks/bench_families.py            # (1e5, 10, 5), 3 pairs
    .venv/bin/python benchmarks/bench_families.py --n 20000 --pairs 1   # quick look
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import warnings

import numpy as np
from sklearn.cluster import KMeans
from threadpoolctl import threadpool_limits

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from bench_em_speed import header  # noqa: E402

from bayes_gmm import COVARIANCE_FAMILIES, MapEM, NIWPrior  # noqa: E402
from bayes_gmm.model.families import mclust_names  # noqa: E402


def data(n: int, d: int, k: int, seed: int = 0) -> np.ndarray:
    """k shaped Gaussian clusters (each its own random covariance), a little apart."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(scale=4.0, size=(k, d))
    labels = rng.integers(0, k, size=n)
    factors = rng.normal(size=(k, d, d)) / np.sqrt(d) + np.eye(d)
    return centres[labels] + np.einsum("nij,nj->ni", factors[labels], rng.normal(size=(n, d)))


def fit_seconds(X, labels, covariance_type, prior, iterations):
    est = MapEM(int(labels.max()) + 1, covariance_type=covariance_type, prior=prior, init_params=labels,
                tol=0.0, max_iter=iterations)
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est.fit(X)
    return time.perf_counter() - start


def per_iteration(X, labels, covariance_type, prior):
    return (fit_seconds(X, labels, covariance_type, prior, 13) - fit_seconds(X, labels, covariance_type, prior, 3)) / 10


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--d", type=int, default=10)
    parser.add_argument("--k", type=int, default=5)
    parser.add_argument("--pairs", type=int, default=3)
    args = parser.parse_args(argv)
    print(header())
    X = data(args.n, args.d, args.k)
    labels = KMeans(args.k, n_init=1, random_state=0).fit(X).labels_
    names = {name: m for m, name in mclust_names().items()}
    print(f"# data: {args.k} shaped clusters, n={args.n}, d={args.d}, k={args.k}; one BLAS thread; "
          f"{args.pairs} alternating pairs; per iteration = (t13 - t3) / 10")
    print(f"{'family':>10} {'mclust':>6} {'full ms/it':>11} {'family ms/it':>13} {'ratio':>7}  goal")
    with threadpool_limits(1):
        priors = {ct: NIWPrior.from_data(X, args.k, ct) for ct in COVARIANCE_FAMILIES}
        for ct in COVARIANCE_FAMILIES:
            full, family, ratios = [], [], []
            for _ in range(args.pairs):
                full.append(per_iteration(X, labels, "full", priors["full"]))
                family.append(per_iteration(X, labels, ct, priors[ct]))
                ratios.append(family[-1] / full[-1])
            ratio = float(np.median(ratios))
            print(f"{ct:>10} {names.get(ct, '-'):>6} {1e3 * np.median(full):11.1f} {1e3 * np.median(family):13.1f} "
                  f"{ratio:7.2f}  <=2 {'ok' if ratio <= 2 else 'MISS'}", flush=True)


if __name__ == "__main__":
    main()
