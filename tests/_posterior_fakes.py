"""Hand-made posteriors with the names and dimensions of ``bayes_gmm.sample_posterior``.

The diagnostics and plots are tested on these (fast, no PyMC); the tests marked ``slow`` use the
real sampler.
"""

from __future__ import annotations

import arviz_base as azb
import numpy as np
from scipy.stats import invwishart

from bayes_gmm.diagnostics.comparison import COVARIANCE_DIMS, mixture_log_density


def fake_posterior(est, rng, *, chains=4, draws=200, noise=0.02, X=None, relabelling=None):
    """Draws scattered around the fitted estimator's parameters, as a DataTree.

    ``X`` adds a pointwise ``log_likelihood`` group (dim ``obs``) and ``observed_data``;
    ``relabelling`` (a dict) becomes the attributes of a ``relabelling`` group.
    """
    k, d = est.means_.shape
    ct = est.covariance_type
    weights = rng.dirichlet(np.asarray(est.weights_) * 2000.0, size=(chains, draws))
    means = est.means_ + noise * rng.normal(size=(chains, draws, k, d))
    cov = np.asarray(est.covariances_)
    if ct in ("full", "tied"):
        factor = np.exp(noise * rng.normal(size=(chains, draws, *cov.shape[:-2])))[..., None, None]
    else:
        factor = np.exp(noise * rng.normal(size=(chains, draws, *cov.shape)))
    covariances = cov * factor
    return make_tree(weights, means, covariances, ct, X=X, relabelling=relabelling)


def unconverged(tree, *, repeat=1, shift=None):
    """A copy of a fake posterior (a DataTree) that fails the convergence checks.

    ``repeat``: every draw is kept for ``repeat`` steps (the number of draws is unchanged), as a
    sampler that moves once every ``repeat`` steps: bulk ESS about ``chains * draws / repeat``.
    ``shift``: ``(variable, index, value)``; chain 0 of that entry is moved by ``value``, as a
    chain stuck elsewhere: R-hat above 1 for that entry.
    """
    post = tree["posterior"].to_dataset()
    n = post.sizes["draw"]
    if repeat > 1:
        post = post.isel(draw=np.repeat(np.arange(-(-n // repeat)), repeat)[:n]).assign_coords(draw=np.arange(n))
    if shift is not None:
        name, index, value = shift
        var = post[name].transpose("chain", "draw", ...)
        values = var.values.copy()
        values[(0, slice(None), *index)] += value
        post[name] = var.copy(data=values)
    out = tree.copy()
    out["posterior"] = post
    return out


def niw_posterior(X, prior, rng, *, chains=4, draws=500):
    """Exact draws from the normal-inverse-Wishart posterior of one Gaussian (K = 1, full)."""
    n, d = X.shape
    params = niw_posterior_parameters(X, prior)
    s = chains * draws
    cov = invwishart(df=params["nu_n"], scale=params["psi_n"]).rvs(size=s, random_state=rng).reshape(s, d, d)
    chol = np.linalg.cholesky(cov / params["kappa_n"])
    means = params["m_n"] + np.einsum("sij,sj->si", chol, rng.normal(size=(s, d)))
    return make_tree(
        np.ones((chains, draws, 1)),
        means.reshape(chains, draws, 1, d),
        cov.reshape(chains, draws, 1, d, d),
        "full",
    )


def niw_posterior_parameters(X, prior) -> dict:
    """The conjugate update (docs/MATH.md) for one component and its mean, mode and covariance mean."""
    n, d = X.shape
    xbar = X.mean(axis=0)
    scatter = (X - xbar).T @ (X - xbar)
    kappa_n = prior.kappa0 + n
    m_n = (prior.kappa0 * prior.m0 + n * xbar) / kappa_n
    nu_n = prior.nu0 + n
    diff = xbar - prior.m0
    psi_n = prior.psi0 + scatter + prior.kappa0 * n / kappa_n * np.outer(diff, diff)
    return {
        "kappa_n": kappa_n,
        "m_n": m_n,
        "nu_n": nu_n,
        "psi_n": psi_n,
        "mean_of_covariance": psi_n / (nu_n - d - 1),
        "mode_of_covariance": psi_n / (nu_n + d + 2),  # joint mode of (mu, Sigma)
    }


def make_tree(weights, means, covariances, covariance_type, *, X=None, relabelling=None):
    chains, draws, k, d = means.shape
    dims = {
        "weights": ["component"],
        "means": ["component", "feature"],
        "covariances": list(COVARIANCE_DIMS[covariance_type]),
    }
    data = {"posterior": {"weights": weights, "means": means, "covariances": covariances}}
    coords = {"component": np.arange(k), "feature": np.arange(d), "feature_bis": np.arange(d)}
    if X is not None:
        from bayes_gmm.diagnostics.comparison import dense_covariances

        dense = dense_covariances(covariances.reshape(chains * draws, *covariances.shape[2:]), covariance_type, k, d)
        log_lik = mixture_log_density(weights.reshape(-1, k), means.reshape(-1, k, d), dense, X)
        data["log_likelihood"] = {"x": log_lik.reshape(chains, draws, -1)}
        dims["x"] = ["obs"]
        coords["obs"] = np.arange(X.shape[0])
    tree = azb.from_dict(data, dims=dims, coords=coords)
    if X is not None:  # observed_data keeps its feature axis
        tree["observed_data"] = azb.dict_to_dataset(
            {"x": X}, sample_dims=[], dims={"x": ["obs", "feature"]}, coords=coords
        )
    if relabelling is not None:
        import xarray as xr

        tree["relabelling"] = xr.Dataset(attrs=dict(relabelling))
    return tree
