"""Benchmark: the exact-prior posterior of bayes_gmm against a naive PyMC mixture.

Seed problem (n=1000, d=2, K=10), 4 chains x 1000 tune + 1000 draws, nutpie for both:

- ``bayes_gmm.sample_posterior``: MapEM's prior, chains started at the MAP-EM solution;
- naive: ``pm.Mixture`` of a list of ``MvNormal`` with ``LKJCholeskyCov`` priors, default
  (jittered) start.

Both run as many chains at a time as there are CPUs (PyMC's own default would halve that).

Both are relabelled to MapEM's components before R-hat and bulk ESS are computed (every weight,
mean and covariance entry).  Wall times include compilation.  The naive model runs in a child
process under a time cap; past it, it is rerun with fewer draws and the output says so.

Run: ``.venv/bin/python benchmarks/bench_posterior.py``
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


def fit_map():
    import bayes_gmm

    X, _ = bayes_gmm.make_seed_problem()
    est = bayes_gmm.MapEM(K, n_init=5, random_state=0).fit(X)
    return X, est


def run_ours(draws: int, tune: int) -> dict:
    import bayes_gmm

    X, est = fit_map()
    start = time.perf_counter()
    idata = bayes_gmm.sample_posterior(
        est, X, draws=draws, tune=tune, chains=4, random_seed=1, progressbar=False
    )
    wall = time.perf_counter() - start
    out = _summary(
        idata["posterior"].to_dataset(), wall, int(idata["sample_stats"]["diverging"].sum())
    )
    out["n_permuted_draws"] = idata["relabelling"].attrs["n_permuted_draws"]
    out["draws"], out["tune"] = draws, tune
    return out


def run_naive(draws: int, tune: int) -> dict:
    import pymc as pm
    import pytensor.tensor as pt
    from threadpoolctl import threadpool_limits

    from bayes_gmm._engine import _available_cores
    from bayes_gmm.posterior import relabel

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
                draws=draws, tune=tune, chains=4, cores=min(4, _available_cores()), random_seed=1, nuts_sampler="nutpie",
                compute_convergence_checks=False, progressbar=False,
            )
    wall = time.perf_counter() - start
    raw = idata["posterior"].to_dataset()[["weights", "means", "covariances"]]
    relabelled, info = relabel(raw, est, covariance_type="full")
    out = _summary(relabelled, wall, int(idata["sample_stats"]["diverging"].sum()))
    out["n_permuted_draws"] = info.attrs["n_permuted_draws"]
    out["draws"], out["tune"] = draws, tune
    return out


def _naive_in_child(draws: int, tune: int, cap: float) -> dict | None:
    cmd = [sys.executable, __file__, "--naive-only", "--draws", str(draws), "--tune", str(tune)]
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
        f"{name:<28} {r['tune']:>4}+{r['draws']:<5} {r['wall_s']:>8.1f} {r['rhat_max']:>9.3f} "
        f"{r['ess_min']:>9.0f} {r['divergences']:>6d} {r['ess_per_s']:>8.2f} {r['n_permuted_draws']:>9d}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--naive-only", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--draws", type=int, default=1000)
    parser.add_argument("--tune", type=int, default=1000)
    args = parser.parse_args()
    if args.naive_only:
        print(json.dumps(run_naive(args.draws, args.tune)))
        return

    from bayes_gmm._engine import _available_cores

    X, est = fit_map()
    print(f"seed problem: n={X.shape[0]}, d={X.shape[1]}, K={K}; MapEM(10, n_init=5, random_state=0), "
          f"log-posterior {est.log_posterior_:.2f}; 4 chains, nutpie, {min(4, _available_cores())} chains at a time for both")
    ours = run_ours(args.draws, args.tune)
    naive = _naive_in_child(args.draws, args.tune, NAIVE_CAP_S)
    note = ""
    if naive is None:
        note = (f"naive model: {args.tune}+{args.draws} did not finish within the {NAIVE_CAP_S} s cap; "
                f"rerun with {NAIVE_SHORT} tune + {NAIVE_SHORT} draws (its wall time and ESS are for that run)")
        naive = _naive_in_child(NAIVE_SHORT, NAIVE_SHORT, 2 * NAIVE_CAP_S)
    header = (f"{'model':<28} {'tune+draws':>10} {'wall_s':>8} {'rhat_max':>9} {'ess_min':>9} "
              f"{'div':>6} {'ess/s':>8} {'permuted':>9}")
    print("R-hat and bulk ESS over every weight, mean and covariance entry, after relabelling to MapEM")
    print(header)
    print(_row("bayes_gmm (exact prior, MAP)", ours))
    if naive is None:
        print(f"naive model did not finish even with {NAIVE_SHORT}+{NAIVE_SHORT} draws")
        return
    print(_row("naive (Mixture + LKJ)", naive))
    if note:
        print(note)
    print(f"ESS/s ratio (ours / naive): {ours['ess_per_s'] / naive['ess_per_s']:.1f}x")


if __name__ == "__main__":
    main()
