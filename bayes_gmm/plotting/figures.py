"""Plots of fitted mixtures and their posteriors (matplotlib, ArviZ).

The matplotlib functions take an optional ``ax`` and return it.  The data-space plots work for
every dimension: ``d == 1`` shows densities along the single column; ``d == 2`` the plane; for
``d > 2`` they show the two columns named by ``dims`` (default the first two), where the
ellipses and densities drawn are the *exact marginals* of the mixture on those columns (the
marginal of a Gaussian is the Gaussian of the selected entries).

The posterior plots built on ``arviz_plots`` (:func:`plot_posterior_marginals`,
:func:`plot_chains`) make their own figure and return ArviZ's ``PlotCollection`` (save it with
``pc.savefig(path)``; the matplotlib figure is ``pc.viz["figure"].item()``).
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "assignment_uncertainty",
    "covariance_matrices",
    "plot_chains",
    "plot_clusters",
    "plot_density",
    "plot_objective",
    "plot_posterior_ellipses",
    "plot_posterior_marginals",
    "plot_uncertainty",
]


def _axes(ax):
    if ax is None:
        import matplotlib.pyplot as plt

        _, ax = plt.subplots(figsize=(6, 5))
    return ax


def _colors(k: int) -> list[str]:
    return [f"C{j % 10}" for j in range(k)]


def covariance_matrices(est) -> np.ndarray:
    """Dense (K, d, d) covariances of a fitted estimator, whatever its covariance type."""
    from bayes_gmm.model.families import get_family

    k, d = np.asarray(est.means_).shape
    return np.asarray(get_family(est.covariance_type).dense(est.covariances_, k, d))


def _check_dims(dims, d: int) -> list[int]:
    try:
        i, j = (int(v) for v in dims)
    except (TypeError, ValueError):
        raise ValueError(f"dims must be two column indices, got {dims!r}.") from None
    if not (0 <= i < d and 0 <= j < d and i != j):
        raise ValueError(f"dims must name two different columns in [0, {d - 1}], got {tuple(dims)}.")
    return [i, j]


def _check_X(X, d: int) -> np.ndarray:
    X = np.asarray(X, dtype=float)
    if X.ndim != 2 or X.shape[1] != d:
        raise ValueError(f"X must have shape (n, {d}) to match the fitted model, got {X.shape}.")
    return X


def _ellipse(ax, mean, cov, n_std, **kwargs):
    from matplotlib.patches import Ellipse

    vals, vecs = np.linalg.eigh(cov)
    angle = np.degrees(np.arctan2(vecs[1, -1], vecs[0, -1]))
    width, height = 2.0 * n_std * np.sqrt(np.maximum(vals[::-1], 0.0))
    patch = Ellipse(mean, width, height, angle=angle, **kwargs)
    ax.add_patch(patch)
    return patch


def _component_curves(ax, weights, means, variances, grid, colors, **kwargs):
    from scipy.stats import norm

    for j in range(len(weights)):
        ax.plot(grid, weights[j] * norm.pdf(grid, means[j], np.sqrt(variances[j])), color=colors[j], **kwargs)


def _grid_1d(X, means, variances, n=400):
    lo = np.min(means - 3 * np.sqrt(variances))
    hi = np.max(means + 3 * np.sqrt(variances))
    if X is not None:
        lo, hi = min(lo, X.min()), max(hi, X.max())
    return np.linspace(lo, hi, n)


# ----------------------------------------------------------------------------------------
# point estimate
# ----------------------------------------------------------------------------------------
def plot_clusters(est, X, ax=None, *, n_std=(1.0, 2.0), dims=(0, 1), title=None):
    """Data coloured by most probable component, with 1- and 2-sd ellipses of each component.

    For ``d > 2`` the plot shows the two columns named by ``dims`` (the ellipses are the
    exact marginals of each component on those columns); for ``d == 1`` a histogram with the
    weighted component densities.
    """
    ax = _axes(ax)
    k, d = np.asarray(est.means_).shape
    X = _check_X(X, d)
    labels = est.predict(X)
    colors = _colors(k)
    cov = covariance_matrices(est)
    if d == 1:
        variances = cov[:, 0, 0]
        grid = _grid_1d(X[:, 0], est.means_[:, 0], variances)
        ax.hist(X[:, 0], bins=50, density=True, color="0.8")
        _component_curves(ax, est.weights_, est.means_[:, 0], variances, grid, colors)
        ax.set_xlabel("x0")
        ax.set_ylabel("density")
    else:
        i, j2 = _check_dims(dims, d)
        cov = cov[:, [i, j2]][:, :, [i, j2]]
        ax.scatter(X[:, i], X[:, j2], c=[colors[c] for c in labels], s=8, alpha=0.6, linewidths=0)
        for j in range(k):
            for s in n_std:
                _ellipse(ax, est.means_[j, [i, j2]], cov[j], s, fill=False, color=colors[j],
                         lw=1.5 if s == n_std[0] else 0.8)
            ax.plot(*est.means_[j, [i, j2]], "x", color="k", ms=6)
        ax.set_xlabel(f"x{i}")
        ax.set_ylabel(f"x{j2}")
    if title:
        ax.set_title(title)
    return ax


def assignment_uncertainty(responsibilities) -> np.ndarray:
    """``1 - max_k r_ik`` per row: 0 for a sure assignment, up to ``1 - 1/K``."""
    r = np.asarray(responsibilities, dtype=float)
    if r.ndim != 2:
        raise ValueError(f"responsibilities must have shape (n, K), got {r.shape}.")
    return 1.0 - r.max(axis=1)


def plot_uncertainty(est, X, ax=None, *, responsibilities=None, dims=(0, 1), max_size=60.0, title=None):
    """Data coloured by most probable component, size and opacity growing with the uncertainty of
    the assignment (``1 - max_k r_ik``): sure points are small and faint, doubtful ones large.

    ``responsibilities`` (n, K) defaults to ``est.predict_proba(X)`` (the MAP plug-in); pass the
    posterior mean membership (``bayes_gmm.bayes.draws.posterior_membership``) to show the posterior
    uncertainty instead.  For ``d == 1`` the x axis is the data and the y axis the uncertainty; for
    ``d > 2`` the columns ``dims``.
    """
    ax = _axes(ax)
    k, d = np.asarray(est.means_).shape
    X = _check_X(X, d)
    r = est.predict_proba(X) if responsibilities is None else np.asarray(responsibilities, dtype=float)
    if r.shape != (X.shape[0], k):
        raise ValueError(f"responsibilities must have shape (n, K) = ({X.shape[0]}, {k}), got {r.shape}.")
    unc = assignment_uncertainty(r)
    scale = unc / max(1.0 - 1.0 / k, np.finfo(float).eps) if k > 1 else np.zeros_like(unc)
    from matplotlib.colors import to_rgba

    colors = np.array([to_rgba(f"C{j % 10}") for j in r.argmax(axis=1)])
    colors[:, 3] = 0.3 + 0.7 * scale
    sizes = 5.0 + max_size * scale
    order = np.argsort(unc)  # doubtful points on top
    if d == 1:
        ax.scatter(X[order, 0], unc[order], c=colors[order], s=sizes[order], linewidths=0)
        ax.set_xlabel("x0")
        ax.set_ylabel("assignment uncertainty 1 - max_k r_ik")
    else:
        i, j = _check_dims(dims, d)
        ax.scatter(X[order, i], X[order, j], c=colors[order], s=sizes[order], linewidths=0)
        ax.set_xlabel(f"x{i}")
        ax.set_ylabel(f"x{j}")
    ax.set_title(title or f"assignment uncertainty: {np.sum(unc > 0.1)} of {len(unc)} points above 0.1")
    return ax


def plot_density(est, X=None, ax=None, *, dims=(0, 1), levels=12, grid_size=150, title=None):
    """Contours of the mixture density (log scale), over the data if given.

    ``d == 1``: the density curve (and a histogram of ``X``); ``d > 2``: the exact marginal
    density of the mixture on the columns ``dims``.
    """
    from bayes_gmm.diagnostics.comparison import mixture_log_density

    ax = _axes(ax)
    k, d = np.asarray(est.means_).shape
    cov = covariance_matrices(est)
    X = None if X is None else _check_X(X, d)
    if d == 1:
        grid = _grid_1d(None if X is None else X[:, 0], est.means_[:, 0], cov[:, 0, 0])
        dens = np.exp(mixture_log_density(est.weights_, est.means_, cov, grid[:, None]))
        if X is not None:
            ax.hist(X[:, 0], bins=50, density=True, color="0.85")
        ax.plot(grid, dens, color="k")
        ax.set_xlabel("x0")
        ax.set_ylabel("density")
    else:
        i, j = _check_dims(dims, d)
        means = est.means_[:, [i, j]]
        cov2 = cov[:, [i, j]][:, :, [i, j]]
        sd = np.sqrt(np.stack([cov2[:, 0, 0], cov2[:, 1, 1]], axis=1))
        lo, hi = (means - 3 * sd).min(axis=0), (means + 3 * sd).max(axis=0)
        if X is not None:
            lo = np.minimum(lo, X[:, [i, j]].min(axis=0))
            hi = np.maximum(hi, X[:, [i, j]].max(axis=0))
        gx, gy = np.meshgrid(np.linspace(lo[0], hi[0], grid_size), np.linspace(lo[1], hi[1], grid_size))
        log_dens = mixture_log_density(est.weights_, means, cov2, np.column_stack([gx.ravel(), gy.ravel()]))
        log_dens = log_dens.reshape(gx.shape)
        top = log_dens.max()
        contour_levels = np.linspace(top - 12.0, top, levels)
        if X is not None:
            ax.scatter(X[:, i], X[:, j], s=4, color="0.6", alpha=0.5, linewidths=0)
        cs = ax.contour(gx, gy, log_dens, levels=contour_levels, cmap="viridis", linewidths=0.9)
        ax.figure.colorbar(cs, ax=ax, label="log density")
        ax.set_xlabel(f"x{i}")
        ax.set_ylabel(f"x{j}")
    if title:
        ax.set_title(title)
    return ax


def plot_objective(est, baseline=None, ax=None, *, title=None):
    """MAP-EM's log-posterior per iteration next to the baseline's log-likelihood until it fails.

    ``baseline`` is a :class:`em_baseline.PlainEM` (fitted, or after the
    :class:`~bayes_gmm.SingularCovarianceError`: its ``log_likelihoods_`` then stop at the last
    iteration before the failure) or an array of log-likelihoods.  A failed baseline is marked
    with a red cross at the iteration where its covariance became singular.
    """
    ax = _axes(ax)
    if isinstance(est, np.ndarray | list | tuple):
        trace = np.asarray(est, dtype=float)
    else:
        trace = np.asarray(getattr(est, "log_posteriors_", np.nan), dtype=float)
    if trace.ndim != 1:
        raise ValueError("est must be a fitted MapEM (with log_posteriors_) or a 1-D array.")
    ax.plot(np.arange(trace.size), trace, "o-", ms=3, color="C0", label="MAP-EM log-posterior")
    if baseline is not None:
        failed = False
        if isinstance(baseline, np.ndarray | list | tuple):
            ll = np.asarray(baseline, dtype=float)
        else:
            ll = np.asarray(getattr(baseline, "log_likelihoods_", []), dtype=float)
            failed = not hasattr(baseline, "weights_")
        ax.plot(np.arange(ll.size), ll, "s-", ms=3, color="C1", label="plain EM log-likelihood")
        if failed and ll.size:
            ax.plot([ll.size], [ll[-1]], "X", color="C3", ms=12,
                    label=f"plain EM: singular covariance at iteration {ll.size}")
    finite = trace[np.isfinite(trace)]
    if finite.size > 2:  # the first iterations of a bad start dwarf the rest: zoom on the climb
        span = finite.max() - np.percentile(finite, 10)
        ax.set_ylim(finite.max() - 1.6 * span - 1.0, finite.max() + 0.15 * span + 1.0)
    ax.set_xlabel("EM iteration")
    ax.set_ylabel("objective")
    ax.legend(loc="lower right", fontsize="small")
    ax.set_title(title or "EM objective per iteration")
    return ax


# ----------------------------------------------------------------------------------------
# posterior
# ----------------------------------------------------------------------------------------
def plot_posterior_ellipses(est, idata, X=None, ax=None, *, n_draws=40, n_std=2.0, dims=(0, 1),
                            random_seed=0, title=None):
    """Ellipses of ``n_draws`` posterior draws (thin) around the MAP ellipses (thick).

    Uncertainty at a glance: a tight bundle is a well-determined component, a fan of ellipses a
    poorly determined one.  The draws are taken at random (``random_seed``) from the relabelled
    ``posterior`` group, so draw ``k`` is compared with MAP component ``k``.  ``d == 1``: the
    weighted component densities of the draws around the MAP's; ``d > 2``: the columns ``dims``.
    """
    from bayes_gmm.diagnostics.comparison import posterior_draws

    ax = _axes(ax)
    k, d = np.asarray(est.means_).shape
    weights, means, cov, _ = posterior_draws(idata)
    if means.shape[1:] != (k, d):
        raise ValueError(f"the posterior has shape (K, d) = {means.shape[1:]} but the estimator {(k, d)}.")
    rng = np.random.default_rng(random_seed)
    pick = rng.choice(weights.shape[0], size=min(n_draws, weights.shape[0]), replace=False)
    colors = _colors(k)
    map_cov = covariance_matrices(est)
    X = None if X is None else _check_X(X, d)
    if d == 1:
        grid = _grid_1d(None if X is None else X[:, 0], est.means_[:, 0], map_cov[:, 0, 0])
        if X is not None:
            ax.hist(X[:, 0], bins=50, density=True, color="0.9")
        for s in pick:
            _component_curves(ax, weights[s], means[s, :, 0], cov[s, :, 0, 0], grid, colors, lw=0.5, alpha=0.3)
        _component_curves(ax, est.weights_, est.means_[:, 0], map_cov[:, 0, 0], grid, ["k"] * k, lw=1.5)
        ax.set_xlabel("x0")
        ax.set_ylabel("weighted component density")
    else:
        i, j = _check_dims(dims, d)
        idx = np.ix_(range(k), [i, j], [i, j])
        if X is not None:
            ax.scatter(X[:, i], X[:, j], s=4, color="0.7", alpha=0.5, linewidths=0)
        for s in pick:
            draw_cov = cov[s][idx]
            for c in range(k):
                _ellipse(ax, means[s, c, [i, j]], draw_cov[c], n_std, fill=False, color=colors[c], lw=0.5, alpha=0.35)
        map_cov2 = map_cov[idx]
        for c in range(k):
            _ellipse(ax, est.means_[c, [i, j]], map_cov2[c], n_std, fill=False, color="k", lw=1.6)
            ax.annotate(str(c), est.means_[c, [i, j]], ha="center", va="center", fontsize=8, weight="bold")
        ax.autoscale_view()
        ax.set_xlabel(f"x{i}")
        ax.set_ylabel(f"x{j}")
    ax.set_title(title or f"{n_std:g}-sd ellipses: {len(pick)} posterior draws (colour), MAP (black)")
    return ax


def plot_posterior_marginals(est, idata, *, var_names=("weights",), kind="forest", ci_prob=0.94, coords=None,
                             **kwargs):
    """Posterior marginals of the relabelled draws with the MAP values as references.

    ``kind="forest"``: ``arviz_plots.plot_forest`` (posterior mean, 50% and ``ci_prob`` HDI
    per entry) with the MAP as red diamonds.  ``kind="dist"``: ``arviz_plots.plot_dist`` (one
    panel per entry) with the MAP as dashed vertical lines (``arviz_plots.add_lines``).
    ``coords`` (e.g. ``{"component": [0, 1]}``) selects entries; ``kwargs`` go to the ArviZ
    function.  Returns the ``PlotCollection``.
    """
    import arviz_plots as azp

    from bayes_gmm.diagnostics.comparison import map_dataset

    if isinstance(var_names, str):
        var_names = [var_names]
    var_names = list(var_names)
    posterior = idata["posterior"]
    ref = map_dataset(est, coords={name: posterior[name].values for name in posterior.coords
                                   if name in ("component", "feature", "feature_bis")},
                      sample_dims=False)[var_names]
    if coords:
        ref = ref.sel({dim: values for dim, values in coords.items() if dim in ref.dims})
        kwargs["coords"] = coords
    kwargs.setdefault("backend", "matplotlib")
    if kind == "dist":
        pc = azp.plot_dist(idata, var_names=var_names, ci_kind="hdi", ci_prob=ci_prob, **kwargs)
        azp.add_lines(pc, ref)
        return pc
    if kind != "forest":
        raise ValueError(f"kind must be 'forest' or 'dist', got {kind!r}.")
    kwargs.setdefault("combined", True)
    pc = azp.plot_forest(idata, var_names=var_names, ci_kind="hdi", ci_probs=(0.5, ci_prob), **kwargs)
    y = pc.get_aes_as_dataset("y")
    for name in var_names:
        da = y[name]
        for idx in np.ndindex(*da.shape):
            sel = {dim: da[dim].values[n] for dim, n in zip(da.dims, idx, strict=True)}
            target = pc.get_target(name, {**sel, "column": "forest"})
            target.plot(float(ref[name].sel(sel)), float(da.sel(sel)), "D", mfc="none", mec="C3", mew=1.5,
                        ms=7, zorder=5)
    fig = pc.viz["figure"].item()
    fig.suptitle(f"posterior mean with 50% / {100 * ci_prob:g}% HDI; MAP: red diamonds", fontsize="small")
    return pc


def plot_chains(idata, *, var_names=("weights",), kind="rank", **kwargs):
    """Rank plots (``kind="rank"``, ``arviz_plots.plot_rank``) or trace and marginal plots
    (``kind="trace"``, ``arviz_plots.plot_trace_dist``) of the relabelled draws, per chain.

    Converged chains look alike: ``plot_rank`` draws each chain's rank ECDF minus the uniform
    one (lines near zero), and their traces overlap.
    Returns the ``PlotCollection``.
    """
    import arviz_plots as azp

    if isinstance(var_names, str):
        var_names = [var_names]
    kwargs.setdefault("backend", "matplotlib")
    if kind == "rank":
        return azp.plot_rank(idata, var_names=list(var_names), **kwargs)
    if kind == "trace":
        return azp.plot_trace_dist(idata, var_names=list(var_names), **kwargs)
    raise ValueError(f"kind must be 'rank' or 'trace', got {kind!r}.")
