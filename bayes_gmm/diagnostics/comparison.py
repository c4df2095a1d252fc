"""ArviZ diagnostics that put the MAP-EM point estimate beside the PyMC posterior.

The posterior (``bayes_gmm.sample_posterior``) is an :class:`xarray.DataTree` whose ``posterior``
group holds the *relabelled* draws of ``weights`` (component), ``means`` (component, feature) and
``covariances`` (full: component, feature, feature_bis; tied: feature, feature_bis; diag:
component, feature; spherical: component).  Everything here reads those three variables and the
fitted :class:`~bayes_gmm.MapEM`; the statistics themselves come from ``arviz_stats``.

- :func:`to_datatree`: the MAP estimate as a DataTree with the same variable names and dimensions
  (plus ``chain = draw = 1``), the resolved prior and the log-posterior trace, so that ArviZ
  functions and plots can take it as a reference.
- :func:`compare`: one row per parameter entry, MAP beside posterior summaries and MCMC
  diagnostics, with a short verdict.
- :func:`predictive_comparison`: held-out log predictive density of the MAP plug-in against the
  posterior predictive (log of the mean density over draws), per point and summed.
- :func:`loo_summary`: PSIS-LOO of the posterior with its Pareto-k summary.
"""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import xarray as xr
from scipy.special import logsumexp

from bayes_gmm.bayes.draws import (
    PARAMETERS,
    SAMPLE_DIMS,
    covariance_type_of,
    map_variables,
    posterior_dataset,
    posterior_predictive_density,
    stacked_draws,
)
from bayes_gmm.model.families import COVARIANCE_FAMILIES, get_family, same_family

__all__ = [
    "Comparison",
    "LooSummary",
    "PredictiveComparison",
    "Verdict",
    "compare",
    "dense_covariances",
    "loo_summary",
    "map_dataset",
    "mixture_log_density",
    "posterior_draws",
    "predictive_comparison",
    "to_datatree",
]

#: Dimensions of ``covariances`` for each covariance type (the contract of ``bayes_gmm.bayes.posterior``),
#: read from the covariance families' registry: ``get_family(covariance_type).covariance_dims``.
COVARIANCE_DIMS = {name: family.covariance_dims for name, family in COVARIANCE_FAMILIES.items()}
_LOG_2PI = np.log(2.0 * np.pi)


# ----------------------------------------------------------------------------------------
# the MAP estimate as a DataTree
# ----------------------------------------------------------------------------------------
def _check_fitted(est) -> None:
    from sklearn.utils.validation import check_is_fitted

    check_is_fitted(est, ["weights_", "means_", "covariances_"])


def _default_coords(k: int, d: int) -> dict[str, np.ndarray]:
    return {"component": np.arange(k), "feature": np.arange(d), "feature_bis": np.arange(d)}


def map_dataset(est, *, coords: dict | None = None, sample_dims: bool = True) -> xr.Dataset:
    """The MAP estimate of a fitted estimator as an :class:`xarray.Dataset`.

    Variables ``weights``, ``means`` and ``covariances`` with the posterior's dimensions
    (``covariances``: the family's ``covariance_dims``, see :data:`COVARIANCE_DIMS`); with
    ``sample_dims=True`` a leading ``chain = draw = 1`` is added.
    ``coords`` overrides the default integer coordinates (e.g. the posterior's own).
    """
    values = map_variables(est)
    k, d = values["means"][1].shape
    all_coords = _default_coords(k, d)
    if coords is not None:
        all_coords.update({name: np.asarray(v) for name, v in coords.items() if name in all_coords})
    used = {dim for dims, _ in values.values() for dim in dims}
    ds = xr.Dataset(values, coords={name: all_coords[name] for name in used})
    if sample_dims:
        ds = ds.expand_dims(chain=[0], draw=[0])
    return ds


def _prior_group(prior) -> tuple[dict, dict[str, list[str]], dict]:
    """The resolved prior for ``arviz_base.from_dict``: its variables, their dims and its attributes."""
    data = {"alpha": prior.alpha, "kappa0": prior.kappa0, "m0": np.asarray(prior.m0)}
    dims = {"m0": ["feature"]}
    if get_family(prior.covariance_type).wishart_prior:  # inverse-Wishart covariance part
        data.update(nu0=prior.nu0, psi0=np.asarray(prior.psi0))
        dims["psi0"] = ["feature", "feature_bis"]
    else:  # inverse-gamma variances: the rate b0 per feature (diag) or one (spherical)
        b0 = np.asarray(prior.b0, dtype=float)
        data.update(a0=prior.a0, b0=b0)
        dims["b0"] = ["feature"] if b0.ndim else []
    attrs = {"covariance_type": prior.covariance_type, "prior": json.dumps(prior.to_dict())}
    return data, dims, attrs


def to_datatree(est) -> xr.DataTree:
    """A fitted :class:`~bayes_gmm.MapEM` as an ArviZ :class:`xarray.DataTree`.

    Groups
    ------
    ``posterior``
        The MAP estimate as a single draw (``chain = draw = 1``) of ``weights``, ``means`` and
        ``covariances``, with the same names and dimensions as the posterior of
        ``bayes_gmm.sample_posterior``: it can be given to ArviZ functions and plots wherever a
        reference is wanted.
    ``prior_parameters``
        The resolved prior (``alpha``, ``kappa0``, ``m0`` and ``nu0``/``psi0`` or ``a0``/``b0``);
        its ``prior`` attribute is the JSON of ``NIWPrior.to_dict()`` (``NIWPrior.from_dict`` reads it).
    ``map_trace``
        ``log_posterior`` at the start and after every EM iteration (dimension ``iteration``).

    The tree is built by ``arviz_base.from_dict``, so every group carries ArviZ's standard
    attributes (``created_at``, ``creation_library``, ..., ``sample_dims``: ``["chain", "draw"]``
    for ``posterior``, none for the other two).  The root's attributes say which estimator and
    covariance type produced it.

    Examples
    --------
    >>> import numpy as np
    >>> from bayes_gmm import MapEM
    >>> X = np.random.default_rng(0).normal(size=(200, 2))
    >>> tree = to_datatree(MapEM(2, random_state=0).fit(X))
    >>> tree["posterior"]["means"].dims
    ('chain', 'draw', 'component', 'feature')
    """
    import arviz_base

    values = map_variables(est)
    k, d = values["means"][1].shape
    # sample_dims=[] for every group, so that the prior and the trace get no (chain, draw); the
    # posterior's variables name (chain, draw) themselves, and its sample_dims attribute says so
    data = {"posterior": {name: v[np.newaxis, np.newaxis] for name, (_, v) in values.items()}}
    dims = {name: [*SAMPLE_DIMS, *var_dims] for name, (var_dims, _) in values.items()}
    coords = {"chain": np.arange(1), "draw": np.arange(1), **_default_coords(k, d)}
    attrs = {
        "/": {
            "inference_library": "bayes_gmm",
            "estimator": type(est).__name__,
            "kind": "MAP estimate (posterior mode)",
            "covariance_type": est.covariance_type,
            "n_components": int(k),
        },
        "posterior": {"sample_dims": list(SAMPLE_DIMS)},
    }
    prior = getattr(est, "prior_", None)
    if prior is not None:
        data["prior_parameters"], prior_dims, attrs["prior_parameters"] = _prior_group(prior)
        dims.update(prior_dims)
    trace = getattr(est, "log_posteriors_", None)
    if trace is not None:
        trace = np.asarray(trace, dtype=float)
        data["map_trace"] = {"log_posterior": trace}
        dims["log_posterior"] = ["iteration"]
        coords["iteration"] = np.arange(trace.shape[0])
        attrs["map_trace"] = {"converged": int(bool(getattr(est, "converged_", False))),
                              "n_iter": int(getattr(est, "n_iter_", trace.shape[0] - 1))}
    return arviz_base.from_dict(data, sample_dims=[], dims=dims, coords=coords, attrs=attrs)


# ----------------------------------------------------------------------------------------
# posterior draws as arrays
# ----------------------------------------------------------------------------------------
def dense_covariances(covariances: np.ndarray, covariance_type: str, k: int, d: int) -> np.ndarray:
    """Dense ``(..., K, d, d)`` covariance matrices from any covariance type's shape.

    Leading axes (e.g. draws) are kept: full ``(..., K, d, d)``, tied ``(..., d, d)``, diag
    ``(..., K, d)``, spherical ``(..., K)``.
    """
    return get_family(covariance_type).dense(covariances, k, d)


def posterior_draws(idata, group: str = "posterior") -> tuple[np.ndarray, np.ndarray, np.ndarray, str]:
    """The draws of ``idata[group]`` stacked over chains: weights (S, K), means (S, K, d), dense
    covariances (S, K, d, d), and the covariance type.

    ``idata`` is a ``DataTree`` from :func:`bayes_gmm.sample_posterior` (or the group's
    ``xarray.Dataset``); a missing group or variable is a ``ValueError`` naming it.
    """
    ds = posterior_dataset(idata, group)
    ct = covariance_type_of(ds)
    weights, means, cov = stacked_draws(ds, ct)
    k, d = means.shape[1:]
    return weights, means, get_family(ct).dense(cov, k, d), ct


def mixture_log_density(weights, means, covariances, X, *, chunk_elements: int = 4_000_000) -> np.ndarray:
    """``log sum_k w_k N(x | mu_k, Sigma_k)`` for every parameter draw and row of ``X``.

    Parameters
    ----------
    weights : ndarray (S, K) or (K,)
    means : ndarray (S, K, d) or (K, d)
    covariances : ndarray (S, K, d, d) or (K, d, d), dense
    X : ndarray (n, d)

    Returns
    -------
    ndarray of shape (S, n), or (n,) when the parameters have no draw axis.
    """
    X = np.asarray(X, dtype=float)
    single = np.ndim(weights) == 1
    weights = np.atleast_2d(np.asarray(weights, dtype=float))
    means = np.asarray(means, dtype=float).reshape(weights.shape[0], *np.shape(means)[-2:])
    cov = np.asarray(covariances, dtype=float)
    cov = cov.reshape(weights.shape[0], *cov.shape[-3:])
    s, k = weights.shape
    n, d = X.shape
    if means.shape[-1] != d:
        raise ValueError(f"X has {d} columns but the parameters have {means.shape[-1]} features.")
    out = np.empty((s, n))
    step = max(1, chunk_elements // max(1, k * n * d))
    with np.errstate(divide="ignore"):
        log_w = np.log(weights)
    for lo in range(0, s, step):
        hi = min(s, lo + step)
        chol = np.linalg.cholesky(cov[lo:hi])  # (s', K, d, d)
        logdet = 2.0 * np.sum(np.log(np.diagonal(chol, axis1=-2, axis2=-1)), axis=-1)  # (s', K)
        diff = X[None, None, :, :] - means[lo:hi, :, None, :]  # (s', K, n, d)
        z = np.linalg.solve(chol, np.swapaxes(diff, -1, -2))  # (s', K, d, n)
        maha = np.sum(z * z, axis=-2)  # (s', K, n)
        log_comp = log_w[lo:hi, :, None] - 0.5 * (d * _LOG_2PI + logdet[..., None] + maha)
        out[lo:hi] = logsumexp(log_comp, axis=1)
    return out[0] if single else out


# ----------------------------------------------------------------------------------------
# the comparison table
# ----------------------------------------------------------------------------------------
@dataclass
class Verdict:
    """Short summary of :func:`compare` (all plain Python values)."""

    n_parameters: int
    n_draws: int
    n_chains: int
    rhat_threshold: float
    max_rhat: float
    n_rhat_above: int
    min_ess_bulk: float
    min_ess_tail: float
    ci_prob: float
    n_map_outside_hdi: int
    map_outside_hdi: list[str] = field(default_factory=list)
    n_permuted_draws: int | None = None
    n_ambiguous_draws: int | None = None
    n_divergences: int | None = None

    @property
    def converged(self) -> bool:
        """Every R-hat at or below the threshold (entries with no spread are ignored)."""
        return self.n_rhat_above == 0

    def __str__(self) -> str:
        pct = f"{100 * self.ci_prob:g}%"
        lines = [
            f"R-hat: max {self.max_rhat:.4f} over {self.n_parameters} entries; "
            + ("all <= " if self.converged else f"{self.n_rhat_above} above ")
            + f"{self.rhat_threshold}.",
            f"ESS: min bulk {self.min_ess_bulk:.0f}, min tail {self.min_ess_tail:.0f} "
            f"({self.n_chains} chains x {self.n_draws // max(self.n_chains, 1)} draws).",
            f"MAP outside the posterior {pct} HDI: {self.n_map_outside_hdi} of {self.n_parameters}"
            + (f" ({', '.join(self.map_outside_hdi[:8])}{', ...' if self.n_map_outside_hdi > 8 else ''})"
               if self.n_map_outside_hdi else "")
            + ".",
        ]
        if self.n_permuted_draws is not None:
            amb = "" if self.n_ambiguous_draws is None else f", {self.n_ambiguous_draws} ambiguous"
            lines.append(f"Relabelling: {self.n_permuted_draws} of {self.n_draws} draws permuted{amb}.")
        if self.n_divergences is not None:
            lines.append(f"Divergences: {self.n_divergences}.")
        return "\n".join(lines)


@dataclass
class Comparison:
    """Result of :func:`compare`: ``table`` (one row per parameter entry) and ``verdict``."""

    table: pd.DataFrame
    verdict: Verdict

    def __str__(self) -> str:
        return f"{self.verdict}\n\n{self.table.to_string()}"

    def _repr_html_(self) -> str:  # pragma: no cover - notebooks
        verdict = "<br>".join(str(self.verdict).splitlines())
        return f"<p>{verdict}</p>" + self.table.to_html(float_format=lambda v: f"{v:.4g}")


def _entries(da: xr.DataArray, symmetric: bool):
    """Yield ``(label, index dict)`` for every entry of ``da`` (upper triangle if symmetric)."""
    dims = list(da.dims)
    for idx in np.ndindex(*da.shape):
        if symmetric and idx[-1] < idx[-2]:
            continue
        sel = {dim: da[dim].values[i] for dim, i in zip(dims, idx, strict=True)}
        label = f"{da.name}[{', '.join(str(v) for v in sel.values())}]" if dims else str(da.name)
        yield label, dict(zip(dims, idx, strict=True)), sel


def compare(
    est,
    idata,
    *,
    ci_prob: float = 0.94,
    rhat_threshold: float = 1.01,
    group: str = "posterior",
) -> Comparison:
    """Put the MAP estimate beside the posterior, one row per parameter entry.

    Parameters
    ----------
    est : fitted MapEM
        The point estimate (its ``weights_``, ``means_``, ``covariances_``); its components must be
        the ones the posterior was relabelled to.
    idata : DataTree
        From ``bayes_gmm.sample_posterior``; the ``group`` (default ``posterior``, the relabelled
        draws) must hold ``weights``, ``means`` and ``covariances``.
    ci_prob : float, default 0.94
        Probability of the highest-density interval.
    rhat_threshold : float, default 1.01

    Returns
    -------
    Comparison
        ``table``: a DataFrame indexed by entry (``weights[k]``, ``means[k, j]``,
        ``covariances[k, j, l]`` with ``j <= l`` since covariances are symmetric) with columns
        ``variable``, ``map``, ``mean``, ``sd``, ``hdi_lower``, ``hdi_upper`` (the ``ci_prob``
        HDI, in ``table.attrs["ci_prob"]``), ``map_in_hdi``, ``map_quantile`` (the fraction of
        draws below the MAP, ties counted half), ``r_hat``, ``ess_bulk``, ``ess_tail`` and
        ``mcse_mean``.  Every posterior column is a statistic of ``arviz_stats.summary`` (HDI,
        unrounded) on the same draws.  ``verdict``: a :class:`Verdict`.
    """
    _check_fitted(est)
    if not 0 < ci_prob < 1:
        raise ValueError(f"ci_prob must be in (0, 1), got {ci_prob}.")
    ds = posterior_dataset(idata, group)[list(PARAMETERS)]
    ct = covariance_type_of(ds)
    if not same_family(ct, est.covariance_type):
        raise ValueError(
            f"the posterior's covariances are {ct!r} but the estimator's covariance_type is "
            f"{est.covariance_type!r}."
        )
    k, d = np.asarray(est.means_).shape
    if ds.sizes.get("component") != k or ds.sizes.get("feature") != d:
        raise ValueError(
            f"the posterior has {ds.sizes.get('component')} components and {ds.sizes.get('feature')} "
            f"features but the estimator has {k} and {d}."
        )
    # the MAP with the posterior's coordinates, dimensions in the posterior's order
    map_ds = map_dataset(est, coords={name: ds[name].values for name in ds.coords}, sample_dims=False)
    # an entry with no spread (the weight of a single component) has no R-hat, ESS or MCSE:
    # NaN, without NumPy's division warnings
    with np.errstate(invalid="ignore", divide="ignore"):
        stats = _posterior_summary(ds, ci_prob)
    # the fraction of draws below the MAP, ties counted half, reduced over (chain, draw)
    quantiles = (ds < map_ds).mean(SAMPLE_DIMS) + 0.5 * (ds == map_ds).mean(SAMPLE_DIMS)
    # The table is built entry by entry rather than by arviz_base.dataset_to_dataframe: that
    # labels the stacked entries in each variable's own dimension order but stacks them in the
    # Dataset's, so a variable whose dimensions are in another order gets other entries' labels;
    # and covariances keep only their upper triangle.
    rows, labels = [], []
    for name in PARAMETERS:
        param_dims = [dim for dim in ds[name].dims if dim not in SAMPLE_DIMS]
        map_da = map_ds[name].transpose(*param_dims)
        symmetric = param_dims[-2:] == ["feature", "feature_bis"]
        for label, idx, sel in _entries(map_da, symmetric):
            value = float(map_da.values[tuple(idx.values())])
            entry = dict(zip(stats["summary"].values, stats[name].sel(sel).values.tolist(), strict=True))
            rows.append({
                "variable": name,
                **{dim: sel[dim] for dim in param_dims},
                "map": value,
                "mean": entry["mean"],
                "sd": entry["sd"],
                "hdi_lower": entry["hdi_lower"],
                "hdi_upper": entry["hdi_upper"],
                "map_in_hdi": bool(entry["hdi_lower"] <= value <= entry["hdi_upper"]),
                "map_quantile": float(quantiles[name].sel(sel)),
                "r_hat": entry["r_hat"],
                "ess_bulk": entry["ess_bulk"],
                "ess_tail": entry["ess_tail"],
                "mcse_mean": entry["mcse_mean"],
            })
            labels.append(label)
    table = pd.DataFrame(rows, index=pd.Index(labels, name="parameter"))
    order = ["variable", "component", "feature", "feature_bis"]
    table = table[[c for c in order if c in table] + [c for c in table if c not in order]]
    for column in order[1:]:
        if column in table and pd.api.types.is_numeric_dtype(table[column]):
            table[column] = table[column].astype("Int64")  # NaN where the entry has no such index
    table.attrs = {"ci_prob": ci_prob, "ci_kind": "hdi", "covariance_type": ct}
    verdict = _verdict(table, idata, ds, ci_prob, rhat_threshold)
    return Comparison(table, verdict)


def _posterior_summary(ds: xr.Dataset, ci_prob: float) -> xr.Dataset:
    """``arviz_stats.summary`` of the draws, unrounded (``round_to="none"``), as a Dataset.

    Each variable gains a ``summary`` dimension: ``mean``, ``sd``, ``hdi_lower``, ``hdi_upper``
    (the ``ci_prob`` HDI; ArviZ labels its bounds ``hdi<percent>_lb`` and ``_ub``),
    ``ess_bulk``, ``ess_tail``, ``r_hat``, ``mcse_mean`` and ``mcse_sd``.
    """
    import arviz_stats

    summary = arviz_stats.summary(ds, sample_dims=list(SAMPLE_DIMS), kind="all", fmt="xarray",
                                  ci_kind="hdi", ci_prob=ci_prob, round_to="none")
    bounds = {"_lb": "hdi_lower", "_ub": "hdi_upper"}
    names = [str(label) for label in summary["summary"].values]
    names = [bounds[name[-3:]] if name.startswith("hdi") and name[-3:] in bounds else name for name in names]
    return summary.assign_coords(summary=names)


def _verdict(table, idata, ds, ci_prob, rhat_threshold) -> Verdict:
    rhat = table["r_hat"].to_numpy()
    finite = np.isfinite(rhat)  # entries with no spread (a single weight of 1) have no R-hat
    outside = table.index[~table["map_in_hdi"].to_numpy()].tolist()
    n_permuted = n_ambiguous = n_div = None
    if isinstance(idata, xr.DataTree):
        if "relabelling" in idata.children:
            attrs = idata["relabelling"].attrs
            n_permuted = int(attrs["n_permuted_draws"]) if "n_permuted_draws" in attrs else None
            n_ambiguous = int(attrs["n_ambiguous_draws"]) if "n_ambiguous_draws" in attrs else None
        if "sample_stats" in idata.children and "diverging" in idata["sample_stats"]:
            n_div = int(idata["sample_stats"]["diverging"].values.sum())
    return Verdict(
        n_parameters=len(table),
        n_draws=int(ds.sizes["chain"] * ds.sizes["draw"]),
        n_chains=int(ds.sizes["chain"]),
        rhat_threshold=rhat_threshold,
        max_rhat=float(np.max(rhat[finite])) if finite.any() else float("nan"),
        n_rhat_above=int(np.sum(rhat[finite] > rhat_threshold)),
        min_ess_bulk=float(np.nanmin(table["ess_bulk"])) if len(table) else float("nan"),
        min_ess_tail=float(np.nanmin(table["ess_tail"])) if len(table) else float("nan"),
        ci_prob=ci_prob,
        n_map_outside_hdi=len(outside),
        map_outside_hdi=[str(v) for v in outside],
        n_permuted_draws=n_permuted,
        n_ambiguous_draws=n_ambiguous,
        n_divergences=n_div,
    )


# ----------------------------------------------------------------------------------------
# predictive comparison on held-out data
# ----------------------------------------------------------------------------------------
@dataclass
class PredictiveComparison:
    """Result of :func:`predictive_comparison`.

    ``pointwise``: one row per held-out point with ``map`` (log density of the MAP plug-in),
    ``posterior`` (log of the mean density over draws) and ``difference`` (posterior - map).
    ``summary``: rows ``map``, ``posterior``, ``difference``; columns ``elpd`` (the sum over
    points), ``se`` (``sqrt(n) * sd`` of the pointwise values, ``ddof=1``) and ``mean``
    (per point).
    """

    pointwise: pd.DataFrame
    summary: pd.DataFrame
    n_draws: int

    def __str__(self) -> str:
        return (f"Held-out log predictive density ({len(self.pointwise)} points, {self.n_draws} draws)\n"
                + self.summary.to_string(float_format=lambda v: f"{v:.3f}"))


def _sum_and_se(values: np.ndarray) -> tuple[float, float, float]:
    n = values.shape[0]
    se = float(np.sqrt(n) * np.std(values, ddof=1)) if n > 1 else float("nan")
    return float(values.sum()), se, float(values.mean())


def predictive_comparison(est, idata, X, *, group: str = "posterior") -> PredictiveComparison:
    """Held-out log predictive density: the MAP plug-in against the posterior predictive.

    For each row ``x_i`` of ``X`` (data *not* used in the fit), ``map_i = log p(x_i | theta_MAP)``
    and ``posterior_i = log (1/S) sum_s p(x_i | theta_s)`` over all ``S`` draws of ``group``.
    Both sides use the same points and the same numerics (the covariance family's log density
    over draws, :func:`bayes_gmm.bayes.draws.posterior_predictive_density`), computed from the
    parameters, not from the estimator.
    """
    _check_fitted(est)
    X = np.asarray(X, dtype=float)
    if X.ndim != 2:
        raise ValueError(f"X must be a 2-D array (n, d), got shape {X.shape}.")
    posterior = posterior_dataset(idata, group)
    d = posterior.sizes["feature"]
    if X.shape[1] != d:
        raise ValueError(f"X has {X.shape[1]} columns but the posterior has {d} features.")
    n_draws = int(np.prod([posterior.sizes[dim] for dim in SAMPLE_DIMS if dim in posterior.dims]))
    map_lpd = posterior_predictive_density(map_dataset(est), X, est.covariance_type)  # one draw
    post_lpd = posterior_predictive_density(posterior, X)
    pointwise = pd.DataFrame({"map": map_lpd, "posterior": post_lpd, "difference": post_lpd - map_lpd})
    pointwise.index.name = "point"
    summary = pd.DataFrame(
        [_sum_and_se(pointwise[c].to_numpy()) for c in ("map", "posterior", "difference")],
        index=["map", "posterior", "difference"],
        columns=["elpd", "se", "mean"],
    )
    return PredictiveComparison(pointwise, summary, n_draws=n_draws)


# ----------------------------------------------------------------------------------------
# PSIS-LOO
# ----------------------------------------------------------------------------------------
@dataclass
class LooSummary:
    """PSIS-LOO of the posterior (``loo``, from ``arviz_stats.loo``) and its Pareto-k table.

    ``pareto_k``: rows ``good`` (k <= ``good_k``), ``bad`` (``good_k`` < k <= 1) and
    ``very bad`` (k > 1), columns ``count`` and ``percent``.
    """

    loo: object
    pareto_k: pd.DataFrame
    good_k: float

    @property
    def elpd(self) -> float:
        return float(self.loo.elpd)

    @property
    def se(self) -> float:
        return float(self.loo.se)

    def __str__(self) -> str:
        return f"{self.loo}\n\nPareto k (good <= {self.good_k:.2f}):\n{self.pareto_k.to_string()}"


def loo_summary(idata, *, var_name: str | None = None) -> LooSummary:
    """PSIS-LOO (``arviz_stats.loo``, pointwise) with a Pareto-k summary.

    ArviZ's warning about large Pareto k is not repeated: the ``pareto_k`` table and
    ``loo.warning`` carry it.
    """
    import arviz_stats

    if "log_likelihood" not in idata.children:
        raise ValueError("idata has no log_likelihood group (bayes_gmm.sample_posterior adds it).")
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Estimated shape parameter of Pareto", category=UserWarning)
        result = arviz_stats.loo(idata, pointwise=True, var_name=var_name)
    k = np.asarray(result.pareto_k).ravel()
    good_k = float(result.good_k)
    counts = np.array([np.sum(k <= good_k), np.sum((k > good_k) & (k <= 1.0)), np.sum(k > 1.0)])
    table = pd.DataFrame(
        {"count": counts, "percent": 100.0 * counts / max(k.size, 1)},
        index=pd.Index(["good", "bad", "very bad"], name="pareto_k"),
    )
    return LooSummary(result, table, good_k)
