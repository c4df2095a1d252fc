"""Benchmark: the posterior of the seed problem, compiled once and reused, against the previous path.

Seed problem (n=1000, d=2, K=10), 4 chains x (1000 tune + 1000 draws), nutpie:

- ``reused`` (``bayes_gmm.sample_posterior``): the first call in a fresh process compiles the model
  (shape (full, K=10, d=2), data and MAP anchor as shared inputs); a second call on *new data
  of the same shape* (the seed problem's blobs, every point drawn again: ``default_rng(21)``) reuses it;
- ``previous``: ``sample_posterior(est, X, model=build_model(est, X))``, the route every call
  took before: ``pm.sample`` compiles the model each time, ``pm.compute_log_likelihood``
  compiles its function each time (first call and second call, in a fresh process too);
- ``--naive``: a naive ``pm.Mixture`` of ``MvNormal`` with ``LKJCholeskyCov`` priors, default
  (jittered) start (slow: minutes).

Each group runs in its own fresh process.  Wall times are for the ``sample_posterior`` call
alone (imports and the MAP-EM fit are printed apart).  Where the time goes: compilation, tuning
and draws (nutpie's sampling time split in proportion to the gradient evaluations of each
phase), the pointwise log-likelihood, and post-processing (relabelling, convergence checks).
R-hat (max) and bulk ESS (min) over every weight, mean and covariance entry, after relabelling
to MapEM's components.

Run: ``.venv/bin/python benchmarks/bench_posterior.py`` (``--naive`` adds the naive model)
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time

import numpy as np

K = 10
NAIVE_CAP_S = 480
NAIVE_SHORT = 250


def _summary(posterior, wall: float, divergences: int) -> dict:
    import arviz as az

    variables = ["weights", "means", "covariances"]
    rhat = az.rhat(posterior[variables])
    ess = az.ess(posterior[variables], method="bulk")
    rhat_max = max(float(rhat[v].max()) for v in variables)
    ess_min = min(float(ess[v].min()) for v in variables)
    return {
        "wall_s": wall,
        "rhat_max": rhat_max,
        "ess_min": ess_min,
        "divergences": divergences,
        "ess_per_s": ess_min / wall,
    }


def fit_map(second: bool = False):
    import bayes_gmm

    if second:  # new data of the seed problem's shape: its blobs, every point drawn again
        from sklearn.datasets import make_blobs

        X0, y = make_blobs(cluster_std=0.5, random_state=20, n_samples=1000, centers=10)
        centres = np.array([X0[y == j].mean(axis=0) for j in range(K)])
        X = centres[y] + 0.5 * np.random.default_rng(21).standard_normal(X0.shape)
        X = X @ np.random.RandomState(0).randn(2, 2)
    else:
        X, _ = bayes_gmm.make_seed_problem()
    est = bayes_gmm.MapEM(K, n_init=5, random_state=0).fit(X)
    return X, est


def _one_call(X, est, previous: bool, draws: int, tune: int) -> dict:
    import warnings

    import bayes_gmm

    kwargs = {}
    if previous:
        kwargs["model"] = bayes_gmm.build_model(est, X)
    start = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        idata = bayes_gmm.sample_posterior(
            est, X, draws=draws, tune=tune, chains=4, random_seed=1, progressbar=False, **kwargs
        )
    wall = time.perf_counter() - start
    out = _summary(idata["posterior"].to_dataset(), wall, int(idata["sample_stats"]["diverging"].sum()))
    out["n_permuted_draws"] = idata["relabelling"].attrs["n_permuted_draws"]
    out["draws"], out["tune"] = draws, tune
    out["warnings"] = sorted({f"{w.category.__name__}: {str(w.message)[:80]}" for w in caught})
    attrs = idata["sample_stats"].attrs
    if "sampling_seconds" in attrs:
        tune_ev, draw_ev = attrs["tuning_gradient_evaluations"], attrs["draw_gradient_evaluations"]
        sampling = attrs["sampling_seconds"]
        out.update(
            compile_s=attrs["compile_seconds"],
            tuning_s=sampling * tune_ev / (tune_ev + draw_ev),
            draws_s=sampling * draw_ev / (tune_ev + draw_ev),
            log_lik_s=attrs["log_likelihood_seconds"],
            post_s=attrs["postprocess_seconds"],
            gradients=tune_ev + draw_ev,
        )
    return out


def run_calls(previous: bool, draws: int, tune: int) -> dict:
    """Two calls in this (fresh) process: the seed problem, then new data of the same shape."""
    start = time.perf_counter()
    import bayes_gmm.bayes.posterior  # noqa: F401  (PyMC, nutpie, ArviZ)

    out = {"import_s": time.perf_counter() - start}
    for name, second in (("first", False), ("second", True)):
        start = time.perf_counter()
        X, est = fit_map(second)
        fit_s = time.perf_counter() - start
        out[name] = _one_call(X, est, previous, draws, tune)
        out[name]["fit_s"] = fit_s
    return out


def run_naive(draws: int, tune: int) -> dict:
    import pymc as pm
    import pytensor.tensor as pt
    from threadpoolctl import threadpool_limits

    from bayes_gmm.bayes.draws import relabel
    from bayes_gmm.em.engine import available_cores

    X, est = fit_map()
    d = X.shape[1]
    centre, scale = X.mean(axis=0), X.std(axis=0)
    start = time.perf_counter()
    with pm.Model(coords={"component": range(K), "feature": range(d), "feature_bis": range(d)}):
        weights = pm.Dirichlet("weights", a=np.ones(K), dims="component")
        means, covariances, components = [], [], []
        for k in range(K):
            chol, _, _ = pm.LKJCholeskyCov(
                f"chol_{k}", n=d, eta=2.0, sd_dist=pm.Exponential.dist(1.0 / scale, shape=d)
            )
            mu = pm.Normal(f"mu_{k}", mu=centre, sigma=3.0 * scale, shape=d)
            means.append(mu)
            covariances.append(chol @ chol.T)
            components.append(pm.MvNormal.dist(mu=mu, chol=chol))
        pm.Deterministic("means", pt.stack(means), dims=("component", "feature"))
        pm.Deterministic("covariances", pt.stack(covariances), dims=("component", "feature", "feature_bis"))
        pm.Mixture("x", w=weights, comp_dists=components, observed=X)
        with threadpool_limits(limits=1, user_api="blas"):
            idata = pm.sample(
                draws=draws, tune=tune, chains=4, cores=min(4, available_cores()), random_seed=1, nuts_sampler="nutpie",
                compute_convergence_checks=False, progressbar=False,
            )
    wall = time.perf_counter() - start
    raw = idata["posterior"].to_dataset()[["weights", "means", "covariances"]]
    relabelled, info = relabel(raw, est, covariance_type="full")
    out = _summary(relabelled, wall, int(idata["sample_stats"]["diverging"].sum()))
    out["n_permuted_draws"] = info.attrs["n_permuted_draws"]
    out["draws"], out["tune"] = draws, tune
    return out


def _in_child(flag: str, draws: int, tune: int, cap: float) -> dict | None:
    cmd = [sys.executable, __file__, flag, "--draws", str(draws), "--tune", str(tune)]
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=cap, check=True)
    except subprocess.TimeoutExpired:
        return None
    except subprocess.CalledProcessError as exc:
        sys.stderr.write(exc.stderr[-3000:])
        raise
    return json.loads(done.stdout.strip().splitlines()[-1])


def _row(name: str, r: dict) -> str:
    return (
        f"{name:<34} {r['wall_s']:>7.1f} {r['rhat_max']:>9.4f} {r['ess_min']:>8.0f} {r['divergences']:>4d} "
        f"{r['ess_per_s']:>7.1f} {r['n_permuted_draws']:>8d}"
    )


def _breakdown(name: str, r: dict) -> str:
    if "compile_s" not in r:
        return f"{name:<34} (not recorded on this path)"
    rest = r["wall_s"] - r["compile_s"] - r["tuning_s"] - r["draws_s"] - r["log_lik_s"] - r["post_s"]
    return (
        f"{name:<34} {r['compile_s']:>7.1f} {r['tuning_s']:>7.1f} {r['draws_s']:>7.1f} {r['log_lik_s']:>7.2f} "
        f"{r['post_s']:>6.2f} {rest:>6.2f} {r['gradients']:>9d} {1e6 * (r['tuning_s'] + r['draws_s']) / r['gradients'] * min(4, CORES):>8.0f}"
    )


CORES = 2


def main() -> None:
    global CORES
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--naive-only", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--calls-only", choices=["reused", "previous"], help=argparse.SUPPRESS)
    parser.add_argument("--naive", action="store_true", help="also run the naive PyMC model (minutes)")
    parser.add_argument("--draws", type=int, default=1000)
    parser.add_argument("--tune", type=int, default=1000)
    args = parser.parse_args()
    if args.naive_only:
        print(json.dumps(run_naive(args.draws, args.tune)))
        return
    if args.calls_only:
        print(json.dumps(run_calls(args.calls_only == "previous", args.draws, args.tune)))
        return

    import os

    from bayes_gmm.em.engine import available_cores

    CORES = available_cores()
    X, est = fit_map()
    load = os.getloadavg()
    print(f"seed problem: n={X.shape[0]}, d={X.shape[1]}, K={K}; MapEM(10, n_init=5, random_state=0), "
          f"log-posterior {est.log_posterior_:.2f}; 4 chains x ({args.tune} tune + {args.draws} draws), nutpie, "
          f"{min(4, CORES)} chains at a time; load average before: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    reused = _in_child("--calls-only=reused", args.draws, args.tune, 1200)
    previous = _in_child("--calls-only=previous", args.draws, args.tune, 1200)
    print("wall: the sample_posterior call alone, in a fresh process (imports "
          f"{reused['import_s']:.1f} s and the MAP-EM fit {reused['first']['fit_s']:.1f} s apart)")
    print(f"{'call':<34} {'wall_s':>7} {'rhat_max':>9} {'ess_min':>8} {'div':>4} {'ess/s':>7} {'permuted':>8}")
    rows = [("reused: 1st call (compiles)", reused["first"]), ("reused: 2nd call, new data", reused["second"]),
            ("previous: 1st call", previous["first"]), ("previous: 2nd call, new data", previous["second"])]
    for name, r in rows:
        print(_row(name, r))
    print("where the time goes (seconds; tuning/draws: nutpie's time split by gradient evaluations; "
          "us/grad: per gradient, per core)")
    print(f"{'call':<34} {'compile':>7} {'tuning':>7} {'draws':>7} {'log_lik':>7} {'post':>6} {'other':>6} "
          f"{'gradients':>9} {'us/grad':>8}")
    for name, r in rows[:2]:
        print(_breakdown(name, r))
    for name, r in rows:
        if r["warnings"]:
            print(f"{name}: warnings {r['warnings']}")
    print(f"second call vs previous path's second call: {previous['second']['wall_s'] / reused['second']['wall_s']:.1f}x faster")
    load = os.getloadavg()
    print(f"load average after: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    if not args.naive:
        return
    naive = _in_child("--naive-only", args.draws, args.tune, NAIVE_CAP_S)
    note = ""
    if naive is None:
        note = (f"naive model: {args.tune}+{args.draws} did not finish within the {NAIVE_CAP_S} s cap; "
                f"rerun with {NAIVE_SHORT} tune + {NAIVE_SHORT} draws (its wall time and ESS are for that run)")
        naive = _in_child("--naive-only", NAIVE_SHORT, NAIVE_SHORT, 2 * NAIVE_CAP_S)
    if naive is None:
        print(f"naive model did not finish even with {NAIVE_SHORT}+{NAIVE_SHORT} draws")
        return
    print(_row("naive (Mixture + LKJ)", naive))
    if note:
        print(note)
    print(f"ESS/s ratio (reused 1st call / naive): {reused['first']['ess_per_s'] / naive['ess_per_s']:.1f}x")


if __name__ == "__main__":
    main()
