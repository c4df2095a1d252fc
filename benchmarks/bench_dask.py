"""MapEM on a dask.array vs on the same NumPy array: agreement and times.

The same data (and ``random_state``) are fitted from NumPy, from a ``dask.array`` chunked by
rows on the local threaded scheduler, and on a ``dask.distributed.LocalCluster`` (with ``X``
persisted on the workers).  Reported per covariance type: the relative differences of the
log-posterior and of the parameters to the NumPy fit (goal: <= 1e-10), the iteration counts,
and the wall times (median of ``--repeats`` alternating runs).

    .venv/bin/python benchmarks/bench_dask.py [--n 200000] [--d 5] [--k 4] [--chunks 8]
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import time
import warnings

import numpy as np


def rel(a, b):
    return float(np.max(np.abs(np.asarray(a) - np.asarray(b))) / np.max(np.abs(b)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=200_000)
    parser.add_argument("--d", type=int, default=5)
    parser.add_argument("--k", type=int, default=4)
    parser.add_argument("--chunks", type=int, default=8, help="row blocks of the dask array")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()

    import dask
    import dask.array as da
    from dask.distributed import Client, LocalCluster

    from bayes_gmm import MapEM

    rng = np.random.default_rng(0)
    centers = rng.normal(scale=1.5, size=(args.k, args.d))
    X = centers[rng.integers(0, args.k, args.n)] + rng.normal(size=(args.n, args.d))
    rows = -(-args.n // args.chunks)
    Xd = da.from_array(X, chunks=(rows, args.d))

    def fit(data, cov):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return MapEM(args.k, covariance_type=cov, random_state=0, max_iter=200).fit(data)

    print(f"# bench_dask  {datetime.datetime.now():%Y-%m-%d %H:%M}  host={platform.node()}  cpus={os.cpu_count()}  "
          f"loadavg={os.getloadavg()[0]:.1f}  n={args.n} d={args.d} k={args.k}  {args.chunks} blocks of {rows} rows  "
          f"dask {dask.__version__}")
    print(f"{'cov':>9s} {'backend':>20s} {'iters':>5s} {'time s':>8s} {'vs numpy':>8s} {'logpost rel':>11s} "
          f"{'means rel':>10s} {'cov rel':>10s}  agree<=1e-10")
    with LocalCluster(n_workers=args.workers, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        with Client(cluster) as client:
            Xp = client.persist(Xd)
            backends = {"numpy": (X, None), "dask threads": (Xd, "threads"), "dask LocalCluster": (Xp, client)}
            for cov in ("full", "tied", "diag", "spherical"):
                times = {name: [] for name in backends}
                fits = {}
                for _ in range(args.repeats):
                    for name, (data, scheduler) in backends.items():
                        if scheduler == "threads":
                            with dask.config.set(scheduler="threads"):
                                t0 = time.perf_counter()
                                fits[name] = fit(data, cov)
                        else:  # numpy, or the distributed client (the default scheduler while it is open)
                            t0 = time.perf_counter()
                            fits[name] = fit(data, cov)
                        times[name].append(time.perf_counter() - t0)
                ref = fits["numpy"]
                t_ref = float(np.median(times["numpy"]))
                for name in backends:
                    est = fits[name]
                    t = float(np.median(times[name]))
                    lp = abs(est.log_posterior_ - ref.log_posterior_) / abs(ref.log_posterior_)
                    mr = rel(est.means_, ref.means_)
                    cr = rel(est.covariances_, ref.covariances_)
                    ok = "yes" if max(lp, mr, cr) <= 1e-10 and est.n_iter_ == ref.n_iter_ else "NO"
                    print(f"{cov:>9s} {name:>20s} {est.n_iter_:5d} {t:8.2f} {t / t_ref:8.2f} {lp:11.1e} {mr:10.1e} "
                          f"{cr:10.1e}  {ok}", flush=True)


if __name__ == "__main__":
    main()
