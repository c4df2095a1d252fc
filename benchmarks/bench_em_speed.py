"""MapEM vs scikit-learn GaussianMixture: time per EM iteration, to convergence, and a user's fit.

Everything runs in one process and alternates scikit-learn and MapEM (sklearn, MapEM, sklearn,
MapEM, ...); a row reports the medians of the times and the median of the per-pair ratios
(sklearn time / MapEM time: above 1 means MapEM is faster), once under a 1-thread limit
(``threadpoolctl``, every BLAS and OpenMP library) and once at the default thread count.

Modes (``--mode iter,user``, both by default; one table each):

- ``iter``, per iteration: same data, same starting parameters (scikit-learn's own k-means start,
  one EM step, given to both as ``weights_init``/``means_init``/``precisions_init``), MapEM's
  prior resolved once beforehand and passed in.  Both fits run ``m`` iterations with ``tol=0``
  (scikit-learn: m E+M steps and a final E-step; MapEM: m+1 one-pass E-steps and m M-steps, its
  log-prior included); time/m.  ``m`` is sized so that a scikit-learn fit takes about a second.
  Columns: ``iters`` m; ``sklearn/it``, ``MapEM/it`` median time per iteration; ``ratio`` median
  of the per-pair ratios and ``[min,max]`` their range; ``goal`` the issue-14 target for this
  size; ``GF/s`` this machine's GEMM rate in the row's dtype and thread setting, measured between
  the pairs (a (4096 x 64) x (64 x 4096) product, best of 3 per pair, median over pairs);
  ``floor`` the flop floor of one full-covariance iteration, ``4 n k d^2`` flops at that rate
  (shared/PERF_NOTES.md); ``/floor`` the cost of one more MapEM iteration (one pass over the
  data and one M-step: the time of a 6-iteration fit minus a 2-iteration fit, over 4, median
  over pairs) divided by the floor, and its goal; ``ll rel
  diff`` the relative difference of the log-likelihood of the same parameters computed by
  scikit-learn (``score_samples``) and by MapEM's engine; ``to convergence`` (where 30
  scikit-learn iterations take less than ``--convergence-max-seconds``): from the same start,
  scikit-learn with its default ``tol=1e-3`` on the mean log-likelihood and MapEM with
  ``tol=1e-3`` (a change of the log-posterior per row: the same criterion, the same units),
  alternating pairs, median seconds / iterations of each and the median ratio.
- ``user``, a whole fit exactly as a user calls it: ``MapEM(k).fit(X)`` against
  ``GaussianMixture(k).fit(X)``, all defaults (each its own initialisation, default ``tol``,
  ``n_init=1``, MapEM's prior resolved from the data inside the timed fit), ``random_state`` set
  to the pair's number on both so that a run can be repeated.  Columns: median seconds, median
  iterations and how many of the pairs' fits converged, for each side; ``ratio`` and
  ``[min,max]`` as above; ``goal`` (>= 3x at the goal sizes).  Pairs stop early (at least one)
  once a row has taken ``--user-max-seconds``.

Data (``--data NAME[,NAME...]``, all by default; the first column of every row names it):
``blobs`` (k shaped Gaussian clusters, well apart), ``line`` (6 clusters on a line, fitted with
k components), ``overlap`` (k centres with scale 0.5 against unit noise), ``k_gt_true`` (k//2
true clusters, fitted with k), ``dominant`` (one cluster holds ~90% of the rows), ``digits``
(scikit-learn's ``load_digits``, constant columns dropped, standardised, rows resampled with
small noise up to n; d is fixed by the data and printed), ``covtype_like`` (simulated forest
covertype: up to 10 continuous columns on very different scales plus jittered 0/1 indicator
columns, d in all).

Goal sizes (issue 14, float64, full): per iteration >= 6x at (1e6, 10, 10), >= 4x at
(2e5, 10, 10), >= 3x at (2e5, 50, 20) and (1e5, 100, 5), MapEM/it <= 3x the floor at
(1e6, 10, 10) (one thread, as the issue's figure; the two-thread /floor is printed without a
goal); a user's whole fit >= 3x; at the default thread count, at least the one-thread ratio
(a closing table lists every row's two ratios).  A goal shows as ``>=6 ok`` or ``>=6 MISS``; ``(...)``
marks a goal case scaled down by ``--scale`` (the goal is for the full size), ``*`` a digits row
(its d is the data's, not the goal size's).

The header gives the CPU, the BLAS libraries and kernels, the thread counts, the load and
whether OPENBLAS_CORETYPE/OPENBLAS_L2_SIZE are set.  ``--both-env`` runs the same command a
second time in a subprocess with both variables unset (only if either is set) and prints its
tables too; the first tables are the environment as it is, the one a user gets.

    # full run: every generator at the goal sizes, both modes, both thread settings (hours;
    # split it with --data / --mode / --only)
    .venv/bin/python benchmarks/bench_em_speed.py --both-env
    .venv/bin/python benchmarks/bench_em_speed.py --mode iter --data blobs,line
    .venv/bin/python benchmarks/bench_em_speed.py --extra --data blobs   # + d=2, diag, float32 cases
    .venv/bin/python benchmarks/bench_em_speed.py --only 1000,2,10 --pairs 7
    .venv/bin/python benchmarks/bench_em_speed.py --scale 0.002 --pairs 1 --threads 1  # smoke test
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import os
import platform
import subprocess
import sys
import time
import warnings

import numpy as np
from sklearn.mixture import GaussianMixture
from threadpoolctl import threadpool_info, threadpool_limits

from bayes_gmm import MapEM, NIWPrior, get_family
from bayes_gmm.em import engine as _engine

BLAS_ENV_VARS = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")
GEMM_SHAPE = (4096, 64, 4096)  # (m, inner, n) of the product that measures the GEMM rate

# issue 14, float64 full covariance; keys (n, d, k)
GOAL_SIZES = [(1_000_000, 10, 10), (200_000, 10, 10), (200_000, 50, 20), (100_000, 100, 5)]
ITER_GOALS = {(1_000_000, 10, 10): 6.0, (200_000, 10, 10): 4.0, (200_000, 50, 20): 3.0, (100_000, 100, 5): 3.0}
USER_GOAL = 3.0  # whole fit, at every goal size
FLOOR_GOALS = {(1_000_000, 10, 10): 3.0}  # MapEM/it divided by the flop floor, at most
# further cases (no goal) for --extra: (n, d, k, covariance_type, dtype)
EXTRA_CASES = [
    (100_000, 2, 10, "full", "float64"),
    (1_000, 2, 10, "full", "float64"),
    (1_000_000, 10, 10, "diag", "float64"),
    (100_000, 2, 10, "diag", "float64"),
    (1_000_000, 10, 10, "full", "float32"),
]


@dataclasses.dataclass(frozen=True)
class Case:
    data: str
    n: int
    d: int
    k: int
    cov: str = "full"
    dtype: str = "float64"
    full_n: int | None = None  # n before --scale, when scaled down

    @property
    def goal_key(self) -> tuple[int, int, int] | None:
        """The (n, d, k) the goals are looked up by; None where no goal applies."""
        if self.cov != "full" or self.dtype != "float64":
            return None
        return (self.full_n or self.n, self.d, self.k)


# ------------------------------------------------------------------------------------ data
def _clusters(rng, n, d, n_clusters, *, weights=None, center_scale=4.0, shaped=True):
    """Gaussian clusters: centres ~ N(0, center_scale^2), each with a random scale and
    (``shaped``) a random correlation; labels drawn with ``weights`` (uniform if None)."""
    centers = rng.normal(scale=center_scale, size=(n_clusters, d))
    if shaped:
        transforms = rng.uniform(0.5, 2.0, size=(n_clusters, 1, 1)) * (
            np.eye(d) + 0.3 * rng.normal(size=(n_clusters, d, d)) / np.sqrt(d))
    else:
        transforms = np.broadcast_to(np.eye(d), (n_clusters, d, d))
    labels = rng.choice(n_clusters, size=n, p=weights)
    X = np.empty((n, d))
    for j in range(n_clusters):
        idx = labels == j
        X[idx] = centers[j] + rng.normal(size=(int(idx.sum()), d)) @ transforms[j].T
    return X


def gen_blobs(rng, n, d, k):
    return _clusters(rng, n, d, k)


def gen_line(rng, n, d, k):
    return rng.normal(size=(n, d)) + rng.integers(0, 6, size=(n, 1)) * 3.0


def gen_overlap(rng, n, d, k):
    return _clusters(rng, n, d, k, center_scale=0.5, shaped=False)


def gen_k_gt_true(rng, n, d, k):
    return _clusters(rng, n, d, max(k // 2, 1))


def gen_dominant(rng, n, d, k):
    weights = np.full(k, 0.1 / max(k - 1, 1)) if k > 1 else np.ones(1)
    weights[0] = 0.9 if k > 1 else 1.0
    return _clusters(rng, n, d, k, weights=weights)


def gen_digits(rng, n, d, k):
    from sklearn.datasets import load_digits
    from sklearn.preprocessing import StandardScaler

    base = load_digits().data
    base = StandardScaler().fit_transform(base[:, base.std(axis=0) > 0])
    rows = base[rng.integers(0, base.shape[0], size=n)]
    return rows + rng.normal(scale=0.05, size=rows.shape)


# covtype's continuous columns: (name, sampler(rng, size, cover type c in 0..6))
_COVTYPE_ELEVATION = np.array([3130.0, 2920.0, 2390.0, 2220.0, 2790.0, 2420.0, 3360.0])
_COVTYPE_CONTINUOUS = [
    ("elevation", lambda rng, c: rng.normal(_COVTYPE_ELEVATION[c], 150.0)),
    ("aspect", lambda rng, c: rng.uniform(0.0, 360.0, size=c.shape)),
    ("slope", lambda rng, c: rng.gamma(3.5, 4.3, size=c.shape) + 1.5 * (c == 2)),
    ("horizontal_distance_to_hydrology", lambda rng, c: np.minimum(rng.gamma(1.3, 210.0, size=c.shape), 1400)),
    ("vertical_distance_to_hydrology", lambda rng, c: rng.normal(45.0, 58.0, size=c.shape)),
    ("horizontal_distance_to_roadways", lambda rng, c: np.minimum(rng.gamma(1.6, 1470.0 + 300 * (c == 0)), 7000)),
    ("hillshade_9am", lambda rng, c: np.clip(rng.normal(212.0, 27.0, size=c.shape), 0, 254)),
    ("hillshade_noon", lambda rng, c: np.clip(rng.normal(223.0, 20.0, size=c.shape), 0, 254)),
    ("hillshade_3pm", lambda rng, c: np.clip(rng.normal(142.0, 38.0, size=c.shape), 0, 254)),
    ("horizontal_distance_to_fire_points", lambda rng, c: np.minimum(rng.gamma(1.6, 1250.0, size=c.shape), 7200)),
]
_COVTYPE_CLASS_WEIGHTS = np.array([0.365, 0.488, 0.062, 0.005, 0.016, 0.030, 0.035])
_COVTYPE_CLASS_WEIGHTS /= _COVTYPE_CLASS_WEIGHTS.sum()


def gen_covtype_like(rng, n, d, k):
    """Simulated forest covertype: 7 cover types; the continuous columns (integer-valued, on
    scales from ~10 to ~7000) first, then one-hot indicator groups (4 "wilderness areas", the
    rest "soil types") jittered by N(0, 0.01^2).  At least 3 indicator columns when d > 3, at
    most 10 continuous ones."""
    n_indicators = max(3, d - len(_COVTYPE_CONTINUOUS)) if d > 3 else 0
    n_continuous = d - n_indicators
    cover = rng.choice(len(_COVTYPE_CLASS_WEIGHTS), size=n, p=_COVTYPE_CLASS_WEIGHTS)
    columns = [np.round(sample(rng, cover)) for _, sample in _COVTYPE_CONTINUOUS[:n_continuous]]
    groups = [n_indicators] if n_indicators <= 4 else [4, n_indicators - 4]
    groups = [size for size in groups if size > 0]
    for size in groups:
        # each cover type prefers a few categories: per-type Dirichlet category probabilities
        probs = rng.dirichlet(np.full(size, 0.3), size=len(_COVTYPE_CLASS_WEIGHTS))
        category = (probs[cover].cumsum(axis=1) < rng.random((n, 1))).sum(axis=1)
        one_hot = np.zeros((n, size))
        one_hot[np.arange(n), np.minimum(category, size - 1)] = 1.0
        columns.extend(one_hot.T)
    X = np.column_stack(columns)
    X[:, n_continuous:] += rng.normal(scale=0.01, size=(n, n_indicators))
    return X


GENERATORS = {
    "blobs": gen_blobs,
    "line": gen_line,
    "overlap": gen_overlap,
    "k_gt_true": gen_k_gt_true,
    "dominant": gen_dominant,
    "digits": gen_digits,
    "covtype_like": gen_covtype_like,
}


def make_data(case: Case, seed: int = 0) -> np.ndarray:
    X = GENERATORS[case.data](np.random.default_rng(seed), case.n, case.d, case.k)
    return np.ascontiguousarray(X, dtype=case.dtype)


# ------------------------------------------------------------------------------------ fits
def quiet(fn):
    def wrapped(*args, **kwargs):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return fn(*args, **kwargs)
    return wrapped


@quiet
def starting_point(X, k, cov):
    gm = GaussianMixture(k, covariance_type=cov, max_iter=1, random_state=0).fit(X)
    return gm, {"weights_init": gm.weights_, "means_init": gm.means_, "precisions_init": gm.precisions_}


@quiet
def fit_sklearn(X, k, cov, init, max_iter, tol):
    return GaussianMixture(k, covariance_type=cov, max_iter=max_iter, tol=tol, **init).fit(X)


@quiet
def fit_mapem(X, k, cov, init, max_iter, tol, prior):
    return MapEM(k, covariance_type=cov, max_iter=max_iter, tol=tol, prior=prior, **init).fit(X)


@quiet
def fit_sklearn_as_user(X, k, seed):
    return GaussianMixture(k, random_state=seed).fit(X)


@quiet
def fit_mapem_as_user(X, k, seed):
    return MapEM(k, random_state=seed).fit(X)


def timed(fn, *args):
    t0 = time.perf_counter()
    out = fn(*args)
    return time.perf_counter() - t0, out


def gemm_rate(dtype, repeats=3):
    """GFLOP/s of one (m x inner) @ (inner x n) product (GEMM_SHAPE), best of ``repeats``,
    under the caller's thread limit."""
    m, inner, n = GEMM_SHAPE
    rng = np.random.default_rng(1)
    A = rng.normal(size=(m, inner)).astype(dtype)
    B = rng.normal(size=(inner, n)).astype(dtype)
    C = np.empty((m, n), dtype=dtype)
    best = min(timed(np.matmul, A, B, C)[0] for _ in range(repeats))
    return 2.0 * m * inner * n / best / 1e9


def flop_floor_seconds(n, d, k, gflops):
    """Seconds of one full-covariance EM iteration's ``4 n k d^2`` flops at ``gflops``."""
    return 4.0 * n * k * d * d / (gflops * 1e9)


def loglik_agreement(gm, X, cov):
    family = get_family(cov)
    params = family.params(gm.weights_, gm.means_, gm.covariances_)
    ours = _engine.accumulate(family, X, None, params).log_likelihood
    theirs = float(np.sum(gm.score_samples(X), dtype=np.float64))
    return abs(ours - theirs) / abs(theirs)


def median(values):
    return float(np.median(values))


# ----------------------------------------------------------------------- per-iteration mode
def time_per_iteration(X, case, init, prior, pairs, min_iters, measure_gemm):
    """Alternating pairs of ``m``-iteration fits; medians per iteration, ratios, GEMM rate."""
    k, cov = case.k, case.cov
    t_probe, _ = timed(fit_sklearn, X, k, cov, init, 1, 0.0)
    m = int(np.clip(1.0 / max(t_probe, 1e-4), min_iters, max(50, min_iters)))
    fit_mapem(X, k, cov, init, 1, 0.0, prior)  # warm-up (thread pool, imports)
    sk, me, ratio, rates, marginal = [], [], [], [], []
    for _ in range(pairs):
        a, _ = timed(fit_sklearn, X, k, cov, init, m, 0.0)
        b, _ = timed(fit_mapem, X, k, cov, init, m, 0.0, prior)
        sk.append(a / m)
        me.append(b / m)
        ratio.append(a / b)
        if measure_gemm:
            rates.append(gemm_rate(case.dtype))
            # one more iteration's cost (a pass and an M-step): the difference of a 2- and a
            # 6-iteration fit, without the start and the final pass that every fit also pays
            short, _ = timed(fit_mapem, X, k, cov, init, 2, 0.0, prior)
            long, _ = timed(fit_mapem, X, k, cov, init, 6, 0.0, prior)
            marginal.append((long - short) / 4)
    return {"m": m, "sk": median(sk), "me": median(me), "ratio": median(ratio), "lo": min(ratio),
            "hi": max(ratio), "gflops": median(rates) if rates else None,
            "marginal": median(marginal) if marginal else None}


def time_to_convergence(X, case, init, prior, pairs):
    """Alternating pairs of fits to convergence with scikit-learn's ``tol=1e-3`` on both sides."""
    k, cov = case.k, case.cov
    ta, tb, ratio = [], [], []
    for _ in range(pairs):
        a, ga = timed(fit_sklearn, X, k, cov, init, 1000, 1e-3)
        b, gb = timed(fit_mapem, X, k, cov, init, 1000, 1e-3, prior)
        ta.append(a)
        tb.append(b)
        ratio.append(a / b)
    return f"{median(ta):.3f}s/{ga.n_iter_} vs {median(tb):.3f}s/{gb.n_iter_}, {median(ratio):.1f}x"


def run_iter_case(case, X, args, thread_settings):
    gm0, init = starting_point(X, case.k, case.cov)
    prior = NIWPrior.from_data(X.astype(np.float64, copy=False), case.k, case.cov)
    ll_diff = loglik_agreement(gm0, X, case.cov)
    for threads in thread_settings:
        with threadpool_limits(threads):
            row = time_per_iteration(X, case, init, prior, args.pairs, args.min_iters,
                                     measure_gemm=case.cov == "full")
            conv = "-"
            if row["sk"] * 30 < args.convergence_max_seconds:
                conv = time_to_convergence(X, case, init, prior, args.pairs)
        yield threads, row, ll_diff, conv


ITER_HEADER = (f"{'data':>12s} {'n':>9s} {'d':>4s} {'k':>3s} {'cov':>5s} {'dtype':>7s} {'blas':>7s} "
               f"{'iters':>5s} {'sklearn/it':>11s} {'MapEM/it':>10s} {'ratio':>6s} {'[min,max]':>13s} "
               f"{'goal':>11s} {'GF/s':>5s} {'floor':>9s} {'/floor':>6s} {'goal':>11s} {'ll rel diff':>11s}"
               f"  to convergence (sklearn s/iters vs MapEM s/iters, ratio)")


def format_iter_row(case, d, threads, row, ll_diff, conv):
    key = case.goal_key
    goal = goal_text(ITER_GOALS.get(key), row["ratio"], case)
    floor_txt, per_floor_txt, floor_goal = f"{'-':>9s}", f"{'-':>6s}", "-"
    if row["gflops"] is not None:
        floor = flop_floor_seconds(case.n, d, case.k, row["gflops"])
        per_floor = row["marginal"] / floor
        floor_txt, per_floor_txt = f"{floor * 1e3:7.2f}ms", f"{per_floor:6.2f}"
        # the floor goal is the one-thread figure (its 235 ms against 73 ms of GEMM work)
        floor_goal = goal_text(FLOOR_GOALS.get(key) if threads == 1 else None, per_floor, case, at_most=True)
    gflops = f"{row['gflops']:5.1f}" if row["gflops"] is not None else f"{'-':>5s}"
    return (f"{case.data:>12s} {case.n:9d} {d:4d} {case.k:3d} {case.cov:>5s} {case.dtype:>7s} "
            f"{str(threads or 'default'):>7s} {row['m']:5d} {row['sk'] * 1e3:9.2f}ms {row['me'] * 1e3:8.2f}ms "
            f"{row['ratio']:6.2f} [{row['lo']:5.2f},{row['hi']:5.2f}] {goal:>11s} {gflops} {floor_txt} "
            f"{per_floor_txt} {floor_goal:>11s} {ll_diff:11.1e}  {conv}")


# -------------------------------------------------------------------------------- user mode
def time_user_fits(X, k, pairs, max_seconds):
    """Alternating pairs of default fits; stops adding pairs (at least one) after ``max_seconds``."""
    sk, me, ratio, sk_iters, me_iters, sk_conv, me_conv = [], [], [], [], [], [], []
    start = time.perf_counter()
    for seed in range(pairs):
        a, ga = timed(fit_sklearn_as_user, X, k, seed)
        b, gb = timed(fit_mapem_as_user, X, k, seed)
        sk.append(a)
        me.append(b)
        ratio.append(a / b)
        sk_iters.append(ga.n_iter_)
        me_iters.append(gb.n_iter_)
        sk_conv.append(bool(ga.converged_))
        me_conv.append(bool(gb.converged_))
        if time.perf_counter() - start > max_seconds:
            break
    return {"pairs": len(ratio), "sk": median(sk), "me": median(me), "ratio": median(ratio),
            "lo": min(ratio), "hi": max(ratio), "sk_iters": median(sk_iters), "me_iters": median(me_iters),
            "sk_conv": sum(sk_conv), "me_conv": sum(me_conv)}


def run_user_case(case, X, args, thread_settings):
    for threads in thread_settings:
        with threadpool_limits(threads):
            yield threads, time_user_fits(X, case.k, args.pairs, args.user_max_seconds)


USER_HEADER = (f"{'data':>12s} {'n':>9s} {'d':>4s} {'k':>3s} {'blas':>7s} {'pairs':>5s} "
               f"{'sklearn s':>10s} {'iters':>5s} {'conv':>5s} {'MapEM s':>10s} {'iters':>5s} {'conv':>5s} "
               f"{'ratio':>6s} {'[min,max]':>13s} {'goal':>11s}")


def format_user_row(case, d, threads, row):
    goal = goal_text(USER_GOAL if case.goal_key in ITER_GOALS else None, row["ratio"], case)
    pairs = row["pairs"]
    return (f"{case.data:>12s} {case.n:9d} {d:4d} {case.k:3d} {str(threads or 'default'):>7s} {pairs:5d} "
            f"{row['sk']:9.3f}s {row['sk_iters']:5.0f} {row['sk_conv']:>2d}/{pairs:<2d} "
            f"{row['me']:9.3f}s {row['me_iters']:5.0f} {row['me_conv']:>2d}/{pairs:<2d} "
            f"{row['ratio']:6.2f} [{row['lo']:5.2f},{row['hi']:5.2f}] {goal:>11s}")


# ---------------------------------------------------------------------------------- report
def goal_text(goal, value, case, at_most=False):
    """``>=6 ok`` / ``>=6 MISS`` (``<=3`` with ``at_most``); ``(...)`` when scaled down, ``*`` for
    digits (d from the data); ``-`` without a goal."""
    if goal is None:
        return "-"
    met = value <= goal if at_most else value >= goal
    text = f"{'<=' if at_most else '>='}{goal:g} {'ok' if met else 'MISS'}"
    if case.full_n is not None:
        text = f"({text})"
    return text + ("*" if case.data == "digits" else "")


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def git_revision():
    try:
        out = subprocess.run(["git", "describe", "--always", "--dirty"], capture_output=True, text=True,
                             cwd=os.path.dirname(os.path.abspath(__file__)), timeout=10)
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def header():
    libs = "\n".join(
        f"#   {i['user_api']}: {i['internal_api']} {i.get('version')} kernel={i.get('architecture', '-')} "
        f"threads={i['num_threads']} ({os.path.basename(i['filepath'])})"
        for i in threadpool_info()
    )
    env = "  ".join(f"{name}={os.environ.get(name, 'unset')}" for name in BLAS_ENV_VARS)
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    return (f"# bench_em_speed  {datetime.datetime.now():%Y-%m-%d %H:%M}  host={platform.node()}  "
            f"bayes_gmm {git_revision()}\n"
            f"# cpu: {cpu_model()}  cpus={os.cpu_count()}  usable={len(os.sched_getaffinity(0))}  "
            f"loadavg(1,5,15 min)={load}\n"
            f"# {env}\n"
            f"# python {platform.python_version()}  numpy {np.__version__}  "
            f"scikit-learn {sklearn_version()}\n"
            f"# thread pools (threads = default count):\n{libs}")


def sklearn_version():
    import sklearn

    return sklearn.__version__


FOOTNOTE = ("# goal '(...)': a goal size scaled down by --scale (the goal is for the full size); "
            "'*': digits, d fixed by the data (the goal of the requested size, for reference)")


# ------------------------------------------------------------------------------------ main
def parse_cases(args) -> list[Case]:
    if args.only:
        sizes = []
        for spec in args.only:
            parts = spec.split(",")
            n, d, k = (int(float(p)) for p in parts[:3])
            sizes.append((n, d, k, parts[3] if len(parts) > 3 else "full", parts[4] if len(parts) > 4 else "float64"))
    else:
        sizes = [(n, d, k, "full", "float64") for n, d, k in GOAL_SIZES]
        if args.extra:
            sizes += EXTRA_CASES
    cases = []
    for name in args.data:
        for n, d, k, cov, dtype in sizes:
            if name == "digits" and not args.only and (n, d, k) != (200_000, 10, 10):
                continue  # d = 61 whatever is asked: one size (scikit-learn takes minutes per
                # iteration at n = 1e6 with 61 columns)
            full_n = None
            if args.scale != 1.0:
                n, full_n = max(int(round(n * args.scale)), 5 * d * k, 2 * k), n
            cases.append(Case(name, n, d, k, cov, dtype, full_n))
    return cases


def run_mode(mode, cases, args, thread_settings):
    """One table; returns ``{(case, d): {threads: ratio}}`` for :func:`print_thread_check`."""
    print(f"\n## {'per iteration' if mode == 'iter' else 'user fit: MapEM(k).fit(X) vs GaussianMixture(k).fit(X)'}")
    print(ITER_HEADER if mode == "iter" else USER_HEADER, flush=True)
    ratios = {}
    for case in cases:
        X = make_data(case)
        d = X.shape[1]
        if d != case.d:
            print(f"# {case.data}: d={d} (fixed by the data; {case.d} requested)", flush=True)
        if mode == "iter":
            for threads, row, ll_diff, conv in run_iter_case(case, X, args, thread_settings):
                ratios.setdefault((case, d), {})[threads] = row["ratio"]
                print(format_iter_row(case, d, threads, row, ll_diff, conv), flush=True)
        else:
            for threads, row in run_user_case(case, X, args, thread_settings):
                ratios.setdefault((case, d), {})[threads] = row["ratio"]
                print(format_user_row(case, d, threads, row), flush=True)
        del X
    return ratios


def print_thread_check(mode, ratios):
    """Issue 14: with the default (two) threads, at least the one-thread ratio."""
    rows = [(case, d, r[1], r[None]) for (case, d), r in ratios.items() if 1 in r and None in r]
    if not rows:
        return
    print(f"\n## {'per iteration' if mode == 'iter' else 'user fit'}: ratio at the default thread count "
          "against one thread (goal: at least the one-thread ratio)")
    misses = 0
    for case, d, one, default in rows:
        ok = default >= one
        misses += not ok
        print(f"{case.data:>12s} {case.n:9d} {d:4d} {case.k:3d}   one thread {one:6.2f}   default {default:6.2f}   "
              f"{'ok' if ok else 'MISS'}")
    print(f"# {len(rows) - misses} of {len(rows)} rows at least the one-thread ratio", flush=True)


def run_without_blas_env():
    """Re-run this command with OPENBLAS_CORETYPE/OPENBLAS_L2_SIZE unset (they are set here)."""
    env = {name: value for name, value in os.environ.items() if name not in BLAS_ENV_VARS}
    argv = [a for a in sys.argv[1:] if a != "--both-env"]
    print("\n# ==== the same command with OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE unset "
          "(NOT what a user of this machine gets) ====", flush=True)
    return subprocess.run([sys.executable, os.path.abspath(__file__), *argv], env=env).returncode


def comma_list(choices):
    def parse(text):
        names = [t.strip() for t in text.split(",") if t.strip()]
        bad = [t for t in names if t not in choices]
        if bad or not names:
            raise argparse.ArgumentTypeError(f"choose from {','.join(choices)}, got {text!r}")
        return names
    return parse


def build_parser():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mode", type=comma_list(("iter", "user")), default=["iter", "user"],
                        help="iter (per iteration, with the to-convergence column), user (whole default fit)")
    parser.add_argument("--data", type=comma_list(tuple(GENERATORS)), default=list(GENERATORS),
                        help=f"data generators, comma list of {','.join(GENERATORS)} (default: all)")
    parser.add_argument("--pairs", type=int, default=3, help="alternating sklearn/MapEM pairs per setting")
    parser.add_argument("--min-iters", type=int, default=2,
                        help="iter mode: at least this many timed iterations per fit (both sides also pay "
                             "one initial/final pass, which weighs less with more iterations)")
    parser.add_argument("--only", action="append", default=None,
                        help="n,d,k[,cov[,dtype]] to run only this size (repeatable), for each --data")
    parser.add_argument("--extra", action="store_true",
                        help="also the sizes without a goal: d=2, diag, float32 (" +
                             "; ".join(",".join(map(str, c)) for c in EXTRA_CASES) + ")")
    parser.add_argument("--scale", type=float, default=1.0,
                        help="multiply every n by this (smoke tests; at least 5*d*k rows)")
    parser.add_argument("--threads", default="1,default", help="comma list of BLAS limits: 1, 2, default")
    parser.add_argument("--convergence-max-seconds", type=float, default=60.0,
                        help="iter mode: time to convergence only where 30 sklearn iterations take less")
    parser.add_argument("--user-max-seconds", type=float, default=600.0,
                        help="user mode: no further pair once a row has taken this long (at least one pair)")
    parser.add_argument("--both-env", action="store_true",
                        help="also run the same command with OPENBLAS_CORETYPE/OPENBLAS_L2_SIZE unset "
                             "(in a subprocess, if either is set) and print both tables")
    return parser


def main() -> int:
    args = build_parser().parse_args()
    cases = parse_cases(args)
    thread_settings = [None if t == "default" else int(t) for t in args.threads.split(",")]
    blas_env_set = any(name in os.environ for name in BLAS_ENV_VARS)
    if args.both_env:
        print("# ==== the environment as it is (what a user of this machine gets) ====")
    print(header(), flush=True)
    checks = [(mode, run_mode(mode, cases, args, thread_settings)) for mode in args.mode]
    if any(c.full_n is not None or c.data == "digits" for c in cases):
        print(FOOTNOTE)
    for mode, ratios in checks:
        print_thread_check(mode, ratios)
    if args.both_env:
        if blas_env_set:
            return run_without_blas_env()
        print("\n# --both-env: neither OPENBLAS_CORETYPE nor OPENBLAS_L2_SIZE is set, so the tables "
              "above are also the unset-environment tables; no second run.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
