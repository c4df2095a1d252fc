# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 1. The seed question: why plain EM dies of a singular matrix, and how a prior prevents it
#
# The *seed problem* of this project: 1000 points in 2-D from 10 sheared Gaussian blobs, some of
# them overlapping. A hand-written maximum-likelihood EM, started the textbook way (means drawn
# uniformly in the data's range, identity covariances, equal weights), crashes on it with a
# *singular matrix*. This notebook shows the failure, explains it, and shows how MAP-EM
# (`bayes_gmm.MapEM`), which puts a conjugate prior on the parameters (see `docs/MATH.md`), cannot fail
# this way. Finally it shows what the one knob of the prior, `prior_strength`, does.

# %%
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

# %%
X, y = make_seed_problem()
K = 10
print(X.shape, "true blobs:", np.bincount(y))
fig, ax = plt.subplots(figsize=(6, 5))
ax.scatter(X[:, 0], X[:, 1], c=[f"C{c}" for c in y], s=6)
ax.set_title("the seed problem, coloured by true blob");

# %% [markdown]
# ## Plain EM from the classic start
#
# `em_baseline.PlainEM` is the textbook algorithm on the same machinery as `MapEM` (same loop, same
# E-step): only the M-step differs, here the maximum-likelihood one,
# `Sigma_k = S_k / N_k`. Like `scipy.stats.multivariate_normal`, it gives up when a covariance
# stops being positive definite.

# %%
start = classic_start(X, K, random_state=0)
baseline = PlainEM(K, **start)
try:
    baseline.fit(X)
except SingularCovarianceError as exc:
    failure = exc
    print(type(exc).__name__, "->", exc)
print("log-likelihood per iteration until the failure:", np.round(baseline.log_likelihoods_, 1))

# %% [markdown]
# ## Why: a component collapses onto a few points
#
# The likelihood of a Gaussian mixture is unbounded: put one component's mean on a data point and
# shrink its covariance, and that point's density goes to infinity while the other components
# still explain the rest. EM has no reason to avoid such spikes. From a poor start, some components
# also lose nearly all their responsibility mass to their neighbours; what mass is left sits on one
# or two points, and the maximum-likelihood covariance `S_k / N_k` of one or two points has a zero
# eigenvalue: it cannot be inverted. Let us stop plain EM one iteration before the crash and
# look at the culprit.

# %%
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
                       f"component {failure.component} is collapsing");

# %% [markdown]
# ## How the prior prevents it
#
# MAP-EM maximises the log-posterior under a normal-inverse-Wishart prior. Its covariance update is
#
# $$\Sigma_k = \frac{\Psi_0 + S_k + B_k}{\nu_0 + N_k + d + 2}, \qquad B_k \succeq 0,$$
#
# so, whatever the data, $\Sigma_k \succeq \Psi_0 / (\nu_0 + N + d + 2)$ in the Loewner order: with
# $\Psi_0$ positive definite no covariance can become singular, even for an empty component. The
# default prior is mclust's (Fraley & Raftery 2007): $\Psi_0 = \mathrm{cov}(X)\, K^{-2/d}$,
# $\nu_0 = d + 2$, $\kappa_0 = 0.01$, plus a Dirichlet(2) on the weights so that no weight reaches
# zero. Same start, same data:

# %%
from sklearn.metrics import adjusted_rand_score

est = MapEM(K, **start).fit(X)
prior = est.prior_
floor = np.linalg.eigvalsh(prior.psi0)[0] / (prior.nu0 + X.shape[0] + X.shape[1] + 2)
print(f"converged={est.converged_} after {est.n_iter_} iterations, log-posterior {est.log_posterior_:.1f}")
print(f"adjusted Rand index against the true blobs: {adjusted_rand_score(y, est.predict(X)):.3f}")
print(f"smallest covariance eigenvalue {np.linalg.eigvalsh(est.covariances_).min():.4f} "
      f">= guaranteed floor {floor:.2e}")
print("weights:", np.round(est.weights_, 3))

# %% [markdown]
# The objective each algorithm climbs, per iteration: the log-posterior of MAP-EM never decreases
# (a property of EM on the posterior), and plain EM's log-likelihood stops where its covariance
# became singular. (The two objectives differ by the log-prior, so their levels are not
# comparable; their shapes are.)

# %%
fig, ax = plt.subplots(figsize=(6, 4))
plotting.plot_objective(est, baseline, ax=ax)
assert np.all(np.diff(est.log_posteriors_) >= -1e-8 * abs(est.log_posterior_))

# %% [markdown]
# ## MAP-EM's fit: clusters, assignment uncertainty, density

# %%
fig, axes = plt.subplots(1, 3, figsize=(17, 5))
plotting.plot_clusters(est, X, ax=axes[0], title="MAP-EM: 1- and 2-sd ellipses")
plotting.plot_uncertainty(est, X, ax=axes[1])
plotting.plot_density(est, X, ax=axes[2], title="mixture log-density")
fig.tight_layout()

# %% [markdown]
# Points between overlapping blobs are the uncertain ones (large, opaque); `to_datatree` turns the
# fit into an ArviZ `DataTree` (the estimate, the resolved prior and the log-posterior trace) that
# ArviZ functions and the posterior notebook use as a reference.

# %%
tree = bayes_gmm.to_datatree(est)
tree

# %% [markdown]
# ## A local mode, and restarts
#
# The prior removes the crash, not the multimodality of a mixture: from the classic start MAP-EM
# converges to a local mode where some blobs share a component and three components are left
# almost empty (weight 0.034, i.e. about 33 points). Restarts from k-means starts
# (`n_init=5`) find a better mode, one component per blob; notebook 2 samples the posterior
# around that one.

# %%
best = MapEM(K, n_init=5, random_state=0).fit(X)
print(f"classic start: log-posterior {est.log_posterior_:.1f}, ARI {adjusted_rand_score(y, est.predict(X)):.3f}")
print(f"n_init=5:      log-posterior {best.log_posterior_:.1f}, ARI {adjusted_rand_score(y, best.predict(X)):.3f}")
fig, axes = plt.subplots(1, 2, figsize=(13, 5))
plotting.plot_clusters(est, X, ax=axes[0], title="classic start: a local mode")
plotting.plot_clusters(best, X, ax=axes[1], title="best of 5 k-means starts")
fig.tight_layout()

# %% [markdown]
# ## What `prior_strength` does
#
# `prior_strength` multiplies the prior's scale `Psi0`: the prior guess of every covariance and the
# floor under it. Small values approach maximum likelihood (tiny, spiky components become possible
# again, though never singular); large values make every component wide, so neighbouring blobs
# merge and some components are left with almost no points (their weights shrink towards the
# Dirichlet's pseudo-count).

# %%
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
pd.DataFrame(rows).set_index("prior_strength")

# %%
fig, axes = plt.subplots(1, 3, figsize=(17, 5))
for ax, s in zip(axes, [0.01, 1.0, 100.0], strict=True):
    plotting.plot_clusters(fits[s], X, ax=ax, title=f"prior_strength={s:g}")
fig.tight_layout()

# %% [markdown]
# The default (`prior_strength=1`, mclust's prior) recovers the blobs; very strong priors blur
# them. The next notebook keeps the default and asks how sure we can be of this fit: the full
# posterior of the same model, sampled with PyMC.
