"""MapEM vs scikit-learn GaussianMixture: time per EM iteration and to convergence.

Same data, same starting parameters (scikit-learn's own k-means start, one EM step, given to
both as ``weights_init``/``means_init``/``precisions_init``), same process.  Runs alternate
(scikit-learn, MapEM, scikit-learn, MapEM, ...) and the table gives the medians of the times
and the median of the per-pair ratios, under a 1-thread BLAS limit and under the default
thread count (``threadpoolctl``).  MapEM's prior is resolved once beforehand and passed in,
so a timed fit is initialisation from the given parameters plus the iterations on both sides.

- per iteration: both fits run ``m`` iterations with ``tol=0`` (scikit-learn: m E+M steps and
  a final E-step; MapEM: m+1 one-pass E-steps and m M-steps, its log-prior included), time/m;
- to convergence (smaller sizes only, to bound the runtime): scikit-learn with its default
  ``tol=1e-3`` on the mean log-likelihood, MapEM with the same threshold expressed as its
  relative tolerance (``tol = 1e-3 / |mean log-likelihood|``), both from the same start,
  alternating pairs as above (median times, median of the per-pair ratios);
- ``ll rel diff``: the log-likelihood of the same parameters computed by scikit-learn
  (``score_samples``) and by MapEM's engine.

To compare with the current OpenBLAS kernels, unset OPENBLAS_CORETYPE/OPENBLAS_L2_SIZE for
this command only (see /work/.library/env/README.md); the header prints the kernels in use.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE .venv/bin/python benchmarks/bench_em_speed.py
    .venv/bin/python benchmarks/bench_em_speed.py --only 1000,2,10 --pairs 7
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import time
import warnings

import numpy as np
from sklearn.mixture import GaussianMixture
from threadpoolctl import threadpool_info, threadpool_limits

from bayes_gmm import MapEM, NIWPrior, _engine, get_family

# (n, d, k, covariance_type, dtype)
CASES = [
    (1_000_000, 10, 10, "full", "float64"),
    (100_000, 2, 10, "full", "float64"),
    (200_000, 50, 20, "full", "float64"),
    (100_000, 100, 5, "full", "float64"),
    (1_000, 2, 10, "full", "float64"),
    (1_000_000, 10, 10, "diag", "float64"),
    (100_000, 2, 10, "diag", "float64"),
    (1_000_000, 10, 10, "full", "float32"),
]
GOALS = {(1_000_000, 10, 10): 6.0, (100_000, 2, 10): 5.0, (200_000, 50, 20): 3.0, (100_000, 100, 5): 3.0, (1_000, 2, 10): 1.0}


def make_data(n, d, k, dtype, seed=0):
    rng = np.random.default_rng(seed)
    centers = rng.normal(scale=4.0, size=(k, d))
    scales = rng.uniform(0.5, 2.0, size=(k, 1, 1)) * (np.eye(d) + 0.3 * rng.normal(size=(k, d, d)) / np.sqrt(d))
    labels = rng.integers(0, k, size=n)
    X = np.empty((n, d))
    for j in range(k):
        idx = labels == j
        X[idx] = centers[j] + rng.normal(size=(idx.sum(), d)) @ scales[j].T
    return X.astype(dtype)


def starting_point(X, k, cov):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        gm = GaussianMixture(k, covariance_type=cov, max_iter=1, random_state=0).fit(X)
    return gm, {"weights_init": gm.weights_, "means_init": gm.means_, "precisions_init": gm.precisions_}


def fit_sklearn(X, k, cov, init, max_iter, tol):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return GaussianMixture(k, covariance_type=cov, max_iter=max_iter, tol=tol, **init).fit(X)


def fit_mapem(X, k, cov, init, max_iter, tol, prior):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return MapEM(k, covariance_type=cov, max_iter=max_iter, tol=tol, prior=prior, **init).fit(X)


def timed(fn, *args):
    t0 = time.perf_counter()
    out = fn(*args)
    return time.perf_counter() - t0, out


def loglik_agreement(gm, X, cov):
    family = get_family(cov)
    params = family.params(gm.weights_, gm.means_, gm.covariances_)
    ours = _engine.accumulate(family, X, None, params).log_likelihood
    theirs = float(np.sum(gm.score_samples(X), dtype=np.float64))
    return abs(ours - theirs) / abs(theirs)


def run_case(case, pairs, thread_settings, convergence_max_seconds, min_iters=2):
    n, d, k, cov, dtype = case
    X = make_data(n, d, k, dtype)
    gm0, init = starting_point(X, k, cov)
    prior = NIWPrior.from_data(X.astype(np.float64) if dtype == "float32" else X, k, cov)
    ll_diff = loglik_agreement(gm0, X, cov)
    rows = []
    for threads in thread_settings:
        with threadpool_limits(threads):
            # size the number of iterations so a scikit-learn fit takes about a second
            t_probe, _ = timed(fit_sklearn, X, k, cov, init, 1, 0.0)
            m = int(np.clip(1.0 / max(t_probe, 1e-4), min_iters, max(50, min_iters)))
            fit_mapem(X, k, cov, init, 1, 0.0, prior)  # warm-up (thread pool, imports)
            sk, me, ratio = [], [], []
            for _ in range(pairs):
                a, _ = timed(fit_sklearn, X, k, cov, init, m, 0.0)
                b, _ = timed(fit_mapem, X, k, cov, init, m, 0.0, prior)
                sk.append(a / m)
                me.append(b / m)
                ratio.append(a / b)
            conv = None
            if np.median(sk) * 30 < convergence_max_seconds:
                mean_ll = abs(float(np.mean(gm0.score_samples(X))))
                ta, tb, conv_ratio = [], [], []
                for _ in range(pairs):  # alternating, as above
                    a, ga = timed(fit_sklearn, X, k, cov, init, 1000, 1e-3)
                    b, gb = timed(fit_mapem, X, k, cov, init, 1000, 1e-3 / max(mean_ll, 1e-12), prior)
                    ta.append(a)
                    tb.append(b)
                    conv_ratio.append(a / b)
                conv = (float(np.median(ta)), int(ga.n_iter_), float(np.median(tb)), int(gb.n_iter_),
                        float(np.median(conv_ratio)))
        rows.append((threads, m, float(np.median(sk)), float(np.median(me)), float(np.median(ratio)),
                     float(np.min(ratio)), float(np.max(ratio)), conv))
    return ll_diff, rows


def header():
    libs = "; ".join(
        f"{i['internal_api']} {i.get('version')} {i.get('architecture')} threads={i['num_threads']}"
        for i in threadpool_info()
    )
    core = os.environ.get("OPENBLAS_CORETYPE", "unset")
    return (f"# bench_em_speed  {datetime.datetime.now():%Y-%m-%d %H:%M}  host={platform.node()}  "
            f"cpus={os.cpu_count()}  loadavg={os.getloadavg()[0]:.1f}  OPENBLAS_CORETYPE={core}\n# {libs}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pairs", type=int, default=3, help="alternating sklearn/MapEM pairs per setting")
    parser.add_argument("--min-iters", type=int, default=2,
                        help="at least this many timed iterations per fit (both sides also pay one "
                             "initial/final pass, which weighs less with more iterations)")
    parser.add_argument("--only", action="append", default=None,
                        help="n,d,k[,cov[,dtype]] to run only this case (repeatable)")
    parser.add_argument("--threads", default="1,default", help="comma list of BLAS limits: 1, 2, default")
    parser.add_argument("--convergence-max-seconds", type=float, default=60.0,
                        help="time to convergence only where 30 sklearn iterations take less")
    args = parser.parse_args()
    cases = CASES
    if args.only:
        cases = []
        for spec in args.only:
            parts = spec.split(",")
            n, d, k = (int(float(p)) for p in parts[:3])
            cov = parts[3] if len(parts) > 3 else "full"
            dtype = parts[4] if len(parts) > 4 else "float64"
            cases.append((n, d, k, cov, dtype))
    thread_settings = [None if t == "default" else int(t) for t in args.threads.split(",")]
    print(header())
    print(f"{'n':>9s} {'d':>4s} {'k':>3s} {'cov':>5s} {'dtype':>7s} {'blas':>7s} {'iters':>5s} "
          f"{'sklearn/it':>11s} {'MapEM/it':>10s} {'ratio':>6s} {'[min,max]':>13s} {'goal':>5s} "
          f"{'ll rel diff':>11s}  to convergence (sklearn s/iters vs MapEM s/iters, ratio)")
    for case in cases:
        ll_diff, rows = run_case(case, args.pairs, thread_settings, args.convergence_max_seconds, args.min_iters)
        n, d, k, cov, dtype = case
        goal = GOALS.get((n, d, k)) if cov == "full" and dtype == "float64" else None
        for threads, m, sk, me, ratio, lo, hi, conv in rows:
            conv_txt = "-"
            if conv is not None:
                ta, ia, tb, ib, conv_ratio = conv
                conv_txt = f"{ta:.3f}s/{ia} vs {tb:.3f}s/{ib}, {conv_ratio:.1f}x"
            flag = "" if goal is None else (f">={goal:g}" + ("ok" if ratio >= goal else "NO"))
            print(f"{n:9d} {d:4d} {k:3d} {cov:>5s} {dtype:>7s} {str(threads or 'default'):>7s} {m:5d} "
                  f"{sk * 1e3:9.2f}ms {me * 1e3:8.2f}ms {ratio:6.2f} [{lo:5.2f},{hi:5.2f}] {flag:>5s} "
                  f"{ll_diff:11.1e}  {conv_txt}", flush=True)


if __name__ == "__main__":
    main()
