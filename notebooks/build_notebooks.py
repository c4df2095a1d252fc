"""Generate the story notebooks from Python and execute them (outputs are committed).

    .venv/bin/python notebooks/build_notebooks.py            # write and execute 01, 02 and 03
    .venv/bin/python notebooks/build_notebooks.py 01         # only the one(s) named
    .venv/bin/python notebooks/build_notebooks.py --no-execute

Each notebook is a list of markdown and code cells below; edit them here, not in the .ipynb.
``BAYES_GMM_FAST=1`` in the environment shrinks the posterior sampling (the test suite sets it).
"""

from __future__ import annotations

import sys
from pathlib import Path

import nbformat

HERE = Path(__file__).resolve().parent

SETUP = """\
import os
import warnings

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

import bayes_gmm
from bayes_gmm import MapEM, make_seed_problem, plotting
from em_baseline import PlainEM, SingularCovarianceError, classic_start

pd.set_option("display.precision", 4)
pd.set_option("display.width", 120)
plt.rcParams["figure.dpi"] = 80
"""

NB01 = [
    ("md", """\
# 1. The seed question: why plain EM dies of a singular matrix, and how a prior prevents it

The *seed problem* of this project: 1000 points in 2-D from 10 sheared Gaussian blobs, some of
them overlapping. A hand-written maximum-likelihood EM, started the textbook way (means drawn
uniformly in the data's range, identity covariances, equal weights), crashes on it with a
*singular matrix*. This notebook shows the failure, explains it, and shows how MAP-EM
(`bayes_gmm.MapEM`), which puts a conjugate prior on the parameters (see `docs/MATH.md`), cannot fail
this way. Finally it shows what the one knob of the prior, `prior_strength`, does."""),
    ("code", SETUP),
    ("code", """\
X, y = make_seed_problem()
K = 10
print(X.shape, "true blobs:", np.bincount(y))
fig, ax = plt.subplots(figsize=(6, 5))
ax.scatter(X[:, 0], X[:, 1], c=[f"C{c}" for c in y], s=6)
ax.set_title("the seed problem, coloured by true blob");"""),
    ("md", """\
## Plain EM from the classic start

`em_baseline.PlainEM` is the textbook algorithm on the same machinery as `MapEM` (same loop, same
E-step): only the M-step differs, here the maximum-likelihood one,
`Sigma_k = S_k / N_k`. Like `scipy.stats.multivariate_normal`, it gives up when a covariance
stops being positive definite."""),
    ("code", """\
start = classic_start(X, K, random_state=0)
baseline = PlainEM(K, **start)
try:
    baseline.fit(X)
except SingularCovarianceError as exc:
    failure = exc
    print(type(exc).__name__, "->", exc)
print("log-likelihood per iteration until the failure:", np.round(baseline.log_likelihoods_, 1))"""),
    ("md", """\
## Why: a component collapses onto a few points

The likelihood of a Gaussian mixture is unbounded: put one component's mean on a data point and
shrink its covariance, and that point's density goes to infinity while the other components
still explain the rest. EM has no reason to avoid such spikes. From a poor start, some components
also lose nearly all their responsibility mass to their neighbours; what mass is left sits on one
or two points, and the maximum-likelihood covariance `S_k / N_k` of one or two points has a zero
eigenvalue: it cannot be inverted. Let us stop plain EM one iteration before the crash and
look at the culprit."""),
    ("code", """\
with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # it stops early on purpose: no convergence
    before = PlainEM(K, max_iter=failure.iteration - 1, **start).fit(X)
resp = before.predict_proba(X)
nk = resp.sum(axis=0)
eig = np.linalg.eigvalsh(before.covariances_)
effective = nk**2 / (resp**2).sum(axis=0)  # (sum r)^2 / sum r^2: how many points carry the mass
c = failure.component
print(f"component {c}: N_k = {nk[c]:.2g}, carried by about {effective[c]:.1f} points; "
      f"covariance eigenvalues {eig[c]}")
print("smallest / largest eigenvalue per component:")
print(pd.DataFrame({"N_k": nk, "effective points": effective, "min_eig": eig[:, 0], "max_eig": eig[:, 1]}).T
      .to_string(float_format=lambda v: f"{v:.3g}"))
fig, ax = plt.subplots(figsize=(6, 5))
plotting.plot_clusters(before, X, ax=ax, title=f"plain EM at iteration {failure.iteration - 1}: "
                       f"component {failure.component} is collapsing");"""),
    ("md", r"""
## How the prior prevents it

MAP-EM maximises the log-posterior under a normal-inverse-Wishart prior. Its covariance update is

$$\Sigma_k = \frac{\Psi_0 + S_k + B_k}{\nu_0 + N_k + d + 2}, \qquad B_k \succeq 0,$$

so, whatever the data, $\Sigma_k \succeq \Psi_0 / (\nu_0 + N + d + 2)$ in the Loewner order: with
$\Psi_0$ positive definite no covariance can become singular, even for an empty component. The
default prior is mclust's (Fraley & Raftery 2007): $\Psi_0 = \mathrm{cov}(X)\, K^{-2/d}$,
$\nu_0 = d + 2$, $\kappa_0 = 0.01$, plus a Dirichlet(2) on the weights so that no weight reaches
zero. Same start, same data: """),
    ("code", """\
from sklearn.metrics import adjusted_rand_score

est = MapEM(K, **start).fit(X)
prior = est.prior_
floor = np.linalg.eigvalsh(prior.psi0)[0] / (prior.nu0 + X.shape[0] + X.shape[1] + 2)
print(f"converged={est.converged_} after {est.n_iter_} iterations, log-posterior {est.log_posterior_:.1f}")
print(f"adjusted Rand index against the true blobs: {adjusted_rand_score(y, est.predict(X)):.3f}")
print(f"smallest covariance eigenvalue {np.linalg.eigvalsh(est.covariances_).min():.4f} "
      f">= guaranteed floor {floor:.2e}")
print("weights:", np.round(est.weights_, 3))"""),
    ("md", """\
The objective each algorithm climbs, per iteration: the log-posterior of MAP-EM never decreases
(a property of EM on the posterior), and plain EM's log-likelihood stops where its covariance
became singular. (The two objectives differ by the log-prior, so their levels are not
comparable; their shapes are.)"""),
    ("code", """\
fig, ax = plt.subplots(figsize=(6, 4))
plotting.plot_objective(est, baseline, ax=ax)
assert np.all(np.diff(est.log_posteriors_) >= -1e-8 * abs(est.log_posterior_))"""),
    ("md", "## MAP-EM's fit: clusters, assignment uncertainty, density"),
    ("code", """\
fig, axes = plt.subplots(1, 3, figsize=(17, 5))
plotting.plot_clusters(est, X, ax=axes[0], title="MAP-EM: 1- and 2-sd ellipses")
plotting.plot_uncertainty(est, X, ax=axes[1])
plotting.plot_density(est, X, ax=axes[2], title="mixture log-density")
fig.tight_layout()"""),
    ("md", """\
Points between overlapping blobs are the uncertain ones (large, opaque); `to_datatree` turns the
fit into an ArviZ `DataTree` (the estimate, the resolved prior and the log-posterior trace) that
ArviZ functions and the posterior notebook use as a reference."""),
    ("code", """\
tree = bayes_gmm.to_datatree(est)
tree"""),
    ("md", """\
## A local mode, and restarts

The prior removes the crash, not the multimodality of a mixture: from the classic start MAP-EM
converges to a local mode where some blobs share a component and three components are left
almost empty (weight 0.034, i.e. about 33 points). Restarts from k-means++ seeds
(`n_init=5`) find a better mode, one component per blob; notebook 2 samples the posterior
around that one."""),
    ("code", """\
best = MapEM(K, n_init=5, random_state=0).fit(X)
print(f"classic start: log-posterior {est.log_posterior_:.1f}, ARI {adjusted_rand_score(y, est.predict(X)):.3f}")
print(f"n_init=5:      log-posterior {best.log_posterior_:.1f}, ARI {adjusted_rand_score(y, best.predict(X)):.3f}")
fig, axes = plt.subplots(1, 2, figsize=(13, 5))
plotting.plot_clusters(est, X, ax=axes[0], title="classic start: a local mode")
plotting.plot_clusters(best, X, ax=axes[1], title="best of 5 k-means++ starts")
fig.tight_layout()"""),
    ("md", """\
## What `prior_strength` does

`prior_strength` multiplies the prior's scale `Psi0`: the prior guess of every covariance and the
floor under it. Small values approach maximum likelihood (tiny, spiky components become possible
again, though never singular); large values make every component wide, so neighbouring blobs
merge and some components are left with almost no points (their weights shrink towards the
Dirichlet's pseudo-count)."""),
    ("code", """\
strengths = [0.01, 0.1, 1.0, 10.0, 100.0]
rows, fits = [], {}
for s in strengths:
    fit = MapEM(K, prior_strength=s, **start).fit(X)
    fits[s] = fit
    rows.append({
        "prior_strength": s,
        "log-likelihood": fit.score(X) * X.shape[0],
        "min eigenvalue": np.linalg.eigvalsh(fit.covariances_).min(),
        "mean sd": np.sqrt(np.linalg.eigvalsh(fit.covariances_)).mean(),
        "weights > 2%": int(np.sum(fit.weights_ > 0.02)),
        "ARI": adjusted_rand_score(y, fit.predict(X)),
        "BIC": fit.bic(X),
    })
pd.DataFrame(rows).set_index("prior_strength")"""),
    ("code", """\
fig, axes = plt.subplots(1, 3, figsize=(17, 5))
for ax, s in zip(axes, [0.01, 1.0, 100.0]):
    plotting.plot_clusters(fits[s], X, ax=ax, title=f"prior_strength={s:g}")
fig.tight_layout()"""),
    ("md", """\
The default (`prior_strength=1`, mclust's prior) recovers the blobs; very strong priors blur
them. The next notebook keeps the default and asks how sure we can be of this fit: the full
posterior of the same model, sampled with PyMC."""),
]

NB02 = [
    ("md", """\
# 2. The full posterior of the seed problem, beside the MAP estimate

MAP-EM gives the posterior *mode*. `bayes_gmm.sample_posterior` samples the whole posterior of the
**same** model (same prior object, `docs/MATH.md`) with NUTS (nutpie), starting every chain at the
MAP-EM solution and relabelling every draw to MAP-EM's components afterwards, so that R-hat and
ESS mean something. Here we check the chains, put MAP and posterior side by side
(`bayes_gmm.compare`), look at the uncertainty of the ellipses and of the cluster memberships,
and compare the predictive performance of the point estimate and the posterior on held-out data.

We sample around the best MAP-EM fit (5 k-means++ restarts): notebook 1 showed that the classic
start, while it no longer crashes, ends in a poorer local mode with near-empty components, and a
posterior explored from a poor local mode is not the one we want to report.

`BAYES_GMM_FAST=1` (used by the test suite) shrinks the number of draws."""),
    ("code", SETUP + """\
import time

from bayes_gmm.demo import seed_problem_holdout
from bayes_gmm.diagnostics import loo_summary, predictive_comparison
from bayes_gmm.posterior import posterior_membership, sample_posterior

FAST = os.environ.get("BAYES_GMM_FAST", "0") not in ("", "0")
DRAWS, TUNE, CHAINS = (200, 300, 2) if FAST else (1000, 1000, 4)
"""),
    ("code", """\
X, y = make_seed_problem()
K = 10
est = MapEM(K, n_init=5, random_state=0).fit(X)  # the best of 5 k-means++ starts (notebook 1)
print(f"MAP-EM: log-posterior {est.log_posterior_:.1f}, weights {np.round(est.weights_, 3)}")
t0 = time.perf_counter()
idata = sample_posterior(est, X, draws=DRAWS, tune=TUNE, chains=CHAINS, random_seed=1, progressbar=False)
print(f"{CHAINS} chains x ({TUNE} tune + {DRAWS} draws) in {time.perf_counter() - t0:.0f} s (compilation included)")
idata"""),
    ("md", """\
## Label switching

The likelihood does not change when components are permuted, so a chain may wander into another
labelling. Every draw has been matched to MAP-EM's components by optimal assignment; the
`relabelling` group says how many draws had to be permuted (the raw draws are kept in
`posterior_raw`)."""),
    ("code", """\
dict(idata["relabelling"].attrs)"""),
    ("md", """\
## Chains: rank and trace plots of the relabelled draws

ArviZ 1.x draws rank plots as the difference between each chain's rank ECDF and the uniform
one: lines that stay close to zero (the printed p-value is a uniformity test) mean the chains
explore the same distribution. Traces should overlap."""),
    ("code", """\
pc = plotting.plot_chains(idata, var_names=["weights"], kind="rank")"""),
    ("code", """\
pc = plotting.plot_chains(idata, var_names=["means"], kind="trace", coords={"component": [0, 1, 2]})"""),
    ("md", """\
## MAP beside the posterior

One row per parameter entry: MAP value, posterior mean, sd, 94% HDI, whether the MAP lies in it,
the posterior quantile of the MAP, R-hat, bulk and tail ESS and MCSE, all computed with
`arviz_stats` on the relabelled draws. The verdict summarises it."""),
    ("code", """\
comparison = bayes_gmm.compare(est, idata)
print(comparison.verdict)"""),
    ("code", """\
comparison.table.drop(columns=["variable"]).head(12)"""),
    ("md", """\
The mode of a posterior is not its mean: for the covariances (skewed, inverse-Wishart-like
marginals) the MAP sits below the posterior mean, at a low posterior quantile. Entries whose MAP
falls outside the 94% HDI, if any:"""),
    ("code", """\
table = comparison.table
table.loc[~table["map_in_hdi"], ["map", "mean", "sd", "hdi_lower", "hdi_upper", "map_quantile"]]"""),
    ("code", """\
table.groupby("variable")["map_quantile"].describe()[["mean", "min", "max"]]"""),
    ("code", """\
pc = plotting.plot_posterior_marginals(est, idata, var_names=["weights"], kind="forest")"""),
    ("code", """\
# the variance of x0 in components 0-3: skewed marginals, the MAP (dashed) left of the mean
pc = plotting.plot_posterior_marginals(est, idata, var_names=["covariances"], kind="dist",
                                       coords={"component": [0, 1, 2, 3], "feature": [0], "feature_bis": [0]})"""),
    ("md", """\
## Uncertainty at a glance: posterior ellipses

Thin coloured ellipses: 2-sd ellipses of 40 posterior draws; black: MAP-EM's. Tight bundles are
well-determined components; where two blobs overlap the posterior fans out."""),
    ("code", """\
fig, ax = plt.subplots(figsize=(8, 7))
plotting.plot_posterior_ellipses(est, idata, X, ax=ax, n_draws=40);"""),
    ("md", """\
## Membership uncertainty

For each point, the posterior mean and standard deviation of its responsibilities across draws.
The MAP plug-in responsibilities ignore the uncertainty of the parameters; the posterior mean
includes it."""),
    ("code", """\
member_mean, member_sd = posterior_membership(idata, X)
map_resp = est.predict_proba(X)
unc_map = plotting.assignment_uncertainty(map_resp)
unc_post = plotting.assignment_uncertainty(member_mean)
print(f"points with assignment uncertainty > 0.1: MAP plug-in {np.sum(unc_map > 0.1)}, posterior {np.sum(unc_post > 0.1)}")
print(f"points whose most probable component changes: {np.sum(map_resp.argmax(1) != member_mean.argmax(1))}")
print(f"largest posterior sd of a responsibility: {member_sd.max():.3f}")
fig, axes = plt.subplots(1, 2, figsize=(14, 5.5))
plotting.plot_uncertainty(est, X, ax=axes[0], title="MAP plug-in assignment uncertainty")
plotting.plot_uncertainty(est, X, ax=axes[1], responsibilities=member_mean,
                          title="posterior mean assignment uncertainty")
fig.tight_layout()"""),
    ("md", """\
## Predictive comparison on held-out data

500 new points from the same ten blobs (same centres, spread and shear, fresh noise). For each,
the log density of the MAP plug-in and the log of the posterior predictive density (the mean of
the mixture density over all draws); sums with standard errors. Both sides use the same points,
and the posterior side uses every draw."""),
    ("code", """\
X_new = seed_problem_holdout(500, random_state=1)
pred = predictive_comparison(est, idata, X_new)
pred.summary"""),
    ("code", """\
fig, ax = plt.subplots(figsize=(6, 4))
ax.hist(pred.pointwise["difference"], bins=50)
ax.set_xlabel("posterior - MAP log predictive density, per held-out point")
ax.set_ylabel("points");"""),
    ("md", """\
## PSIS-LOO

Leave-one-out cross-validation of the posterior by Pareto-smoothed importance sampling
(`arviz_stats.loo` on the pointwise log-likelihood), with the Pareto-k diagnostic: k above the
threshold means the importance weights of that point are unreliable."""),
    ("code", """\
loo = loo_summary(idata)
print(loo)"""),
    ("md", """\
**Summary.** On this problem the posterior is tight around the MAP-EM solution for the means and
weights of well-separated blobs; covariances show the expected mode-below-mean skew; the
posterior spreads out where blobs overlap, and that is where point memberships are uncertain.
The MAP plug-in and the posterior predict held-out data almost equally well here: with 1000
points and 10 components the extra uncertainty is small compared with the noise."""),
]

from build_03_model_selection import CELLS as NB03  # noqa: E402  (cells kept in their own file)

NOTEBOOKS = {"01_seed_problem": NB01, "02_posterior": NB02, "03_model_selection": NB03}


def build(cells) -> nbformat.NotebookNode:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.metadata["language_info"] = {"name": "python"}
    for kind, source in cells:
        make = nbformat.v4.new_markdown_cell if kind == "md" else nbformat.v4.new_code_cell
        nb.cells.append(make(source.strip("\n")))
    return nb


def execute(nb: nbformat.NotebookNode, timeout: int = 900) -> nbformat.NotebookNode:
    from nbclient import NotebookClient

    NotebookClient(nb, timeout=timeout, kernel_name="python3",
                   resources={"metadata": {"path": str(HERE)}}).execute()
    return nb


def main(argv: list[str]) -> int:
    run = "--no-execute" not in argv
    wanted = [a for a in argv if not a.startswith("--")]
    for name, cells in NOTEBOOKS.items():
        if wanted and not any(name.startswith(w) for w in wanted):
            continue
        nb = build(cells)
        if run:
            execute(nb)
        nbformat.validate(nb)
        nbformat.write(nb, HERE / f"{name}.ipynb")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
