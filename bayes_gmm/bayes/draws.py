"""The posterior's draws in NumPy: no PyMC needed.

A posterior (the ``posterior`` group of :func:`bayes_gmm.sample_posterior`'s DataTree, or any
Dataset with ``weights`` (chain, draw, component), ``means`` (chain, draw, component, feature)
and ``covariances`` (chain, draw, then the covariance family's ``covariance_dims``)) can be
relabelled, turned into memberships, predictive densities and simulated data sets here, e.g.
after loading a saved posterior on a machine without PyMC.  Everything that depends on the
covariance type is asked of its family (:mod:`bayes_gmm.model.families`).
"""

from __future__ import annotations

import json
import numbers
import warnings
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import xarray as xr
from scipy.optimize import linear_sum_assignment
from scipy.special import logsumexp
from sklearn.exceptions import NotFittedError
from sklearn.utils.validation import check_is_fitted

from bayes_gmm.em.engine import available_cores
from bayes_gmm.em.map_em import MapEM, log_posterior
from bayes_gmm.em.validation import check_data, check_positive
from bayes_gmm.exceptions import ConvergenceWarning
from bayes_gmm.model.families import COVARIANCE_FAMILIES, get_family, same_family

__all__ = [
    "PARAMETERS",
    "SAMPLE_DIMS",
    "check_estimator",
    "convergence_message",
    "covariance_type_of",
    "draw_prior",
    "log_likelihood_dataset",
    "log_likelihood_of_draws",
    "map_estimate_dataset",
    "map_variables",
    "posterior_dataset",
    "posterior_membership",
    "posterior_predictive_density",
    "relabel",
    "sample_posterior_predictive",
    "simulate_draws",
    "simulate_mixture",
    "stacked_draws",
    "warn_if_label_switching",
    "warn_if_not_converged",
]

_LOG_2PI = float(np.log(2.0 * np.pi))
SAMPLE_DIMS = ("chain", "draw")
#: The mixture's parameters, as every posterior names them.
PARAMETERS = ("weights", "means", "covariances")
#: Floats per block of the (draws x rows x components x features) arrays built after sampling.
_BLOCK_FLOATS = 1 << 22


def check_estimator(est) -> MapEM:
    """``est`` if it is a fitted :class:`~bayes_gmm.MapEM`, else a TypeError or ValueError."""
    if not isinstance(est, MapEM):
        raise TypeError(f"est must be a fitted bayes_gmm.MapEM, got {type(est).__name__}.")
    try:
        check_is_fitted(est)
    except NotFittedError:
        raise ValueError(
            "est is not fitted: call est.fit(X) first; the posterior is built around MAP-EM's "
            "prior and solution."
        ) from None
    return est


# ----------------------------------------------------------------------------------------
# numerics on draws (NumPy), leading axis = draws
# ----------------------------------------------------------------------------------------
def covariance_type_of(posterior: xr.Dataset, covariance_type: str | None = None) -> str:
    """The covariance type of a posterior: ``covariance_type`` if given (checked), else its
    ``covariance_type`` attribute, else the one whose dims ``covariances`` has."""
    if covariance_type is not None:
        return get_family(covariance_type).name
    if "covariance_type" in posterior.attrs:
        return str(posterior.attrs["covariance_type"])
    dims = tuple(d for d in posterior["covariances"].dims if d not in SAMPLE_DIMS)
    for name, family in COVARIANCE_FAMILIES.items():
        if dims == family.covariance_dims:
            return name
    raise ValueError(f"cannot tell the covariance type from the dims {dims} of 'covariances'; pass covariance_type.")


def posterior_dataset(idata, group: str = "posterior") -> xr.Dataset:
    """The ``group`` of a DataTree (or a Dataset itself), checked to hold the parameters."""
    if isinstance(idata, xr.Dataset):
        ds = idata
    elif isinstance(idata, xr.DataTree):
        if group not in idata.children:
            raise ValueError(f"idata has no {group!r} group; it has {list(idata.children)}.")
        ds = idata[group].to_dataset()
    else:
        raise TypeError(f"expected an xarray DataTree or Dataset, got {type(idata).__name__}.")
    missing = [name for name in PARAMETERS if name not in ds.data_vars]
    if missing:
        raise ValueError(
            f"the {group!r} group must hold {list(PARAMETERS)} (bayes_gmm.sample_posterior's "
            f"names); missing {missing}."
        )
    return ds


def draw_blocks(n_draws: int, n: int, k: int, d: int):
    """Slices of the draws whose (draws x n x k x d) arrays stay near 32 MiB."""
    per = max(1, _BLOCK_FLOATS // max(1, n * k * d))
    for start in range(0, n_draws, per):
        yield slice(start, min(start + per, n_draws))


def simulate_draws(rng, weights, means, covariances, covariance_type, n):
    """``n`` new rows for each draw (independent noise everywhere): (S, n, d) and labels (S, n)."""
    s, k, d = means.shape
    cdf = np.cumsum(weights, axis=1)
    u = rng.uniform(size=(s, n)) * cdf[:, -1:]
    labels = np.minimum(np.sum(u[:, :, None] >= cdf[:, None, :], axis=2), k - 1)
    eps = rng.standard_normal((s, n, d))
    rows = np.arange(s)[:, None]
    noise = get_family(covariance_type).scale_noise(covariances, rows, labels, eps)
    return means[rows, labels] + noise, labels


# ----------------------------------------------------------------------------------------
# draws from the prior and of data, the likelihood of draws (simulation studies)
# ----------------------------------------------------------------------------------------
def draw_prior(prior, n_components: int, rng: np.random.Generator):
    """One draw ``(weights, means, covariances)`` of a :class:`~bayes_gmm.NIWPrior`, in
    scikit-learn's shapes: ``Dirichlet(alpha)`` weights, the family's covariances
    (inverse-Wishart or inverse-gamma, SciPy's), ``N(m0, Sigma_k / kappa0)`` means."""
    k, d = int(n_components), prior.n_features
    family = get_family(prior.covariance_type)
    weights = rng.dirichlet(np.full(k, prior.alpha))
    covariances = family.draw_prior_covariances(prior, k, rng)
    eps = rng.standard_normal((1, k, d))
    noise = family.scale_noise(covariances[None] / prior.kappa0, np.zeros((1, k), dtype=int), np.arange(k)[None], eps)
    return weights, prior.m0 + noise[0], covariances


def simulate_mixture(rng: np.random.Generator, weights, means, covariances, covariance_type: str, n: int):
    """``n`` rows from one mixture (scikit-learn's shapes): ``X`` (n, d) and the labels (n,)."""
    x, labels = simulate_draws(
        rng, np.asarray(weights)[None], np.asarray(means)[None], np.asarray(covariances)[None], covariance_type, int(n)
    )
    return x[0], labels[0]


def stacked_draws(posterior, covariance_type: str | None = None):
    """``weights`` (S, K), ``means`` (S, K, d), ``covariances`` (S, ...) over (chain, draw)."""
    ds = posterior_dataset(posterior)
    cov_dims = get_family(covariance_type_of(ds, covariance_type)).covariance_dims
    sample_dims = [dim for dim in SAMPLE_DIMS if dim in ds.dims]
    out = []
    for name, dims in (("weights", ("component",)), ("means", ("component", "feature")), ("covariances", cov_dims)):
        arr = ds[name].transpose(*sample_dims, *dims).values
        out.append(arr.reshape(-1, *arr.shape[len(sample_dims) :]))
    return out


def log_likelihood_of_draws(X, weights, means, covariances, covariance_type: str) -> np.ndarray:
    """``log p(X | theta_s) = sum_i log sum_k pi_k N(x_i | mu_k, Sigma_k)`` of each draw, (S,)."""
    X = np.asarray(X, dtype=np.float64)
    family = get_family(covariance_type)
    log_prob = family.log_prob_draws(X, np.asarray(weights), np.asarray(means), np.asarray(covariances))
    return np.sum(logsumexp(log_prob, axis=2), axis=1)


# ----------------------------------------------------------------------------------------
# relabelling
# ----------------------------------------------------------------------------------------
def _second_best_gaps(costs: np.ndarray, perms: np.ndarray) -> np.ndarray:
    """Cost of the second-best assignment minus the best one's, for a stack of assignments.

    ``costs`` (S, K, K); ``perms`` (S, K): ``perms[s, c]`` is the row the best assignment gives
    column ``c``.  Every other assignment moves the rows along cycles of columns, and with the
    best one optimal no cycle lowers the cost: the second best is the best one plus the
    cheapest cycle (of two or more columns) in the graph whose edge ``a -> b`` costs
    ``cost[row of a, b] - cost[row of a, a]``, found by Floyd-Warshall (no negative cycle, so
    shortest paths are defined) on every draw at once.  The same number as Murty's K
    re-solved assignments, for a fraction of the time.
    """
    s, k, _ = costs.shape
    if k < 2:
        return np.full(s, np.inf)
    rows = np.take_along_axis(costs, perms[:, :, None], axis=1)  # (S, K, K): row of column a
    with np.errstate(invalid="ignore"):
        dist = rows - np.diagonal(rows, axis1=1, axis2=2)[:, :, None]
    dist[np.isnan(dist)] = np.inf
    dist[:, np.arange(k), np.arange(k)] = np.inf  # a row that keeps its column is no move
    for m in range(k):
        np.minimum(dist, dist[:, :, m, None] + dist[:, None, m, :], out=dist)
    return np.min(np.diagonal(dist, axis1=1, axis2=2), axis=1)


def _reference_parameters(reference, covariance_type):
    if isinstance(reference, MapEM):
        check_estimator(reference)
        if not same_family(reference.covariance_type, covariance_type):
            raise ValueError(
                f"the reference has covariance_type={reference.covariance_type!r}, the draws {covariance_type!r}."
            )
        return np.asarray(reference.means_, float), np.asarray(reference.covariances_, float)
    if isinstance(reference, xr.DataTree):
        reference = reference.to_dataset()
    if isinstance(reference, xr.Dataset):
        return np.asarray(reference["means"].values, float), np.asarray(reference["covariances"].values, float)
    raise TypeError(
        "reference must be a fitted MapEM or a Dataset with 'means' and 'covariances' "
        f"(e.g. idata['map_estimate']), got {type(reference).__name__}."
    )


def relabel(
    posterior,
    reference,
    *,
    covariance_type: str | None = None,
    ambiguity_tol: float = 1.0,
) -> tuple[xr.Dataset, xr.Dataset]:
    """Relabel every draw to the reference components by optimal assignment.

    For each draw, the cost of giving the draw's component ``j`` the label of reference component
    ``k`` is ``KL(N(mu_j, Sigma_j) || N(mu_ref_k, Sigma_ref_k))``; the labelling of least total
    cost is found with :func:`scipy.optimize.linear_sum_assignment`.  A draw is *ambiguous* when
    the second-best labelling costs less than ``ambiguity_tol`` more than the best one.

    Parameters
    ----------
    posterior : xarray.Dataset or xarray.DataTree
        Draws with ``weights`` (chain, draw, component), ``means`` and ``covariances`` (and any
        other variables; those with a ``component`` dim are permuted too).  A DataTree's
        ``posterior`` group is used.
    reference : MapEM or xarray.Dataset
        The labels to match: a fitted MapEM, or a Dataset with ``means`` and ``covariances``
        (such as the ``map_estimate`` group of :func:`sample_posterior`).
    covariance_type : str, optional
        Inferred from the dims of ``covariances`` (or the ``covariance_type`` attribute) if not given.
    ambiguity_tol : float, default=1.0
        In nats of summed KL divergence.

    Returns
    -------
    relabelled : xarray.Dataset
        ``posterior`` with ``relabelled[..., k, ...] = raw[..., permutation[k], ...]``.
    relabelling : xarray.Dataset
        ``permutation`` (chain, draw, component): the raw component given label ``k``;
        ``cost`` and ``cost_gap`` (second-best minus best) (chain, draw); booleans ``permuted``
        and ``ambiguous``; attrs ``n_draws``, ``n_permuted_draws``, ``n_ambiguous_draws``,
        ``ambiguity_tol``, ``distance``.

    Examples
    --------
    >>> import numpy as np, xarray as xr
    >>> means = np.array([[[[0.0], [5.0]], [[5.0], [0.0]]]])  # chain 0: draw 1 is swapped
    >>> post = xr.Dataset({
    ...     "weights": (("chain", "draw", "component"), np.full((1, 2, 2), 0.5)),
    ...     "means": (("chain", "draw", "component", "feature"), means),
    ...     "covariances": (("chain", "draw", "component"), np.ones((1, 2, 2))),
    ... })
    >>> ref = xr.Dataset({"means": (("component", "feature"), [[0.0], [5.0]]),
    ...                   "covariances": (("component",), [1.0, 1.0])})
    >>> relabelled, info = relabel(post, ref)
    >>> info.attrs["n_permuted_draws"], relabelled["means"].values[0, 1, :, 0].tolist()
    (1, [0.0, 5.0])
    """
    if isinstance(ambiguity_tol, bool) or not isinstance(ambiguity_tol, numbers.Real) or not ambiguity_tol >= 0:
        raise ValueError(f"ambiguity_tol must be a non-negative number, got {ambiguity_tol!r}.")
    ds = posterior_dataset(posterior)
    ct = covariance_type_of(ds, covariance_type)
    family = get_family(ct)
    if "chain" not in ds.dims or "draw" not in ds.dims:
        raise ValueError("the posterior needs 'chain' and 'draw' dims.")
    n_chain, n_draw = ds.sizes["chain"], ds.sizes["draw"]
    weights, means, covariances = stacked_draws(ds, ct)
    ref_means, ref_cov = _reference_parameters(reference, ct)
    s, k, d = means.shape
    if ref_means.shape != (k, d):
        raise ValueError(f"the reference means have shape {ref_means.shape}, the draws ({k}, {d}).")

    perms = np.empty((s, k), dtype=np.int64)
    best = np.empty(s)
    gap = np.empty(s)
    identity = np.arange(k)
    for block in draw_blocks(s, k, k, d):
        costs = family.kl_divergence_draws(means[block], covariances[block], ref_means, ref_cov)
        for i, cost in zip(range(block.start, block.stop), costs, strict=True):
            rows, cols = linear_sum_assignment(cost)
            perm = np.empty(k, dtype=np.int64)
            perm[cols] = rows
            perms[i] = perm
            best[i] = cost[rows, cols].sum()
        gap[block] = _second_best_gaps(costs, perms[block])
    permuted = np.any(perms != identity, axis=1)
    ambiguous = gap < ambiguity_tol

    shape = (n_chain, n_draw)
    perm_da = perms.reshape(*shape, k)
    relabelled = ds.copy()
    for name, var in ds.data_vars.items():
        if "component" not in var.dims:
            continue
        arr = var.transpose("chain", "draw", "component", ...)
        extra = arr.ndim - 3
        index = perm_da.reshape(*shape, k, *([1] * extra))
        values = np.take_along_axis(arr.values, index, axis=2)
        relabelled[name] = arr.copy(data=values).transpose(*var.dims)
    relabelled.attrs = dict(ds.attrs, relabelled_to="map_estimate", covariance_type=ct)

    coords = {c: ds.coords[c] for c in ("chain", "draw", "component") if c in ds.coords}
    relabelling = xr.Dataset(
        {
            "permutation": (("chain", "draw", "component"), perm_da),
            "cost": (("chain", "draw"), best.reshape(shape)),
            "cost_gap": (("chain", "draw"), gap.reshape(shape)),
            "permuted": (("chain", "draw"), permuted.reshape(shape)),
            "ambiguous": (("chain", "draw"), ambiguous.reshape(shape)),
        },
        coords=coords,
        attrs={
            "n_draws": int(s),
            "n_permuted_draws": int(permuted.sum()),
            "n_ambiguous_draws": int(ambiguous.sum()),
            "ambiguity_tol": float(ambiguity_tol),
            "distance": "sum over components of KL(draw component || reference component), nats",
            "permutation": "relabelled[..., k, ...] = raw[..., permutation[k], ...]",
        },
    )
    return relabelled, relabelling



#: Fraction of permuted or ambiguous draws above which :func:`sample_posterior` warns.
LABEL_SWITCHING_WARN_FRACTION = 0.01


def warn_if_label_switching(relabelling: xr.Dataset, stacklevel: int = 3) -> None:
    """A :class:`ConvergenceWarning` when many draws were relabelled or ambiguous."""
    attrs = relabelling.attrs
    n = attrs["n_draws"]
    permuted, ambiguous = attrs["n_permuted_draws"], attrs["n_ambiguous_draws"]
    if max(permuted, ambiguous) > LABEL_SWITCHING_WARN_FRACTION * n:
        warnings.warn(
            f"{permuted} of {n} draws were relabelled and {ambiguous} were ambiguous: the chains "
            "left MAP-EM's labelling, so summaries per component may mix components. MAP-EM's "
            "solution may be a local optimum (refit with n_init > 1) or hold a component the data "
            "barely support (try fewer components); see idata['relabelling'].",
            ConvergenceWarning,
            stacklevel=stacklevel,
        )


#: :func:`sample_posterior` warns when the largest R-hat of a parameter exceeds this ...
RHAT_WARN = 1.01
#: ... or when the smallest bulk ESS is below this many per chain (Vehtari et al. 2021).
ESS_PER_CHAIN_WARN = 100


def _parameter_entries(ds: xr.Dataset, covariance_type: str):
    """Every free parameter entry as columns of one (chain, draw, entry) array, and their names.

    The upper triangle of full and tied covariances (a copy of the lower one) is left out.
    """
    n_chain, n_draw = ds.sizes["chain"], ds.sizes["draw"]
    names, columns = [], []
    for var, dims in (("weights", ("component",)), ("means", ("component", "feature")),
                      ("covariances", get_family(covariance_type).covariance_dims)):
        da = ds[var].transpose("chain", "draw", *dims)
        labels = [da[dim].values if dim in da.coords else np.arange(da.sizes[dim]) for dim in dims]
        keep = np.ones(da.shape[2:], dtype=bool)
        if "feature_bis" in dims:
            keep = np.tril(keep)
        for idx in zip(*np.nonzero(keep), strict=True):
            names.append(f"{var}[{', '.join(str(labels[a][i]) for a, i in enumerate(idx))}]")
        columns.append(da.values.reshape(n_chain, n_draw, -1)[:, :, keep.ravel()])
    return np.concatenate(columns, axis=2), names


def convergence_message(posterior, covariance_type: str | None = None, n_worst: int = 3) -> str | None:
    """What is wrong with the chains' convergence, or None.

    Rank-normalised split R-hat and bulk ESS (:func:`arviz_stats.rhat`, :func:`arviz_stats.ess`)
    of every weight, mean and covariance entry; entries constant over all draws (a single
    component's weight) have neither and are skipped.
    """
    import arviz_stats as azs

    ds = posterior_dataset(posterior)
    ct = covariance_type_of(ds, covariance_type)
    if "chain" not in ds.dims or "draw" not in ds.dims:
        raise ValueError("the posterior needs 'chain' and 'draw' dims.")
    n_chain = ds.sizes["chain"]
    values, names = _parameter_entries(ds, ct)
    flat = values.reshape(-1, values.shape[2])
    varying = np.flatnonzero(np.any(flat != flat[:1], axis=0))
    values, names = values[:, :, varying], [names[i] for i in varying]
    if not names:
        return None
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        # chains too short for the statistics give NaN (and RuntimeWarnings inside ArviZ)
        warnings.simplefilter("ignore", RuntimeWarning)
        rhat = np.asarray(azs.rhat(values, chain_axis=0, draw_axis=1), dtype=float)
        ess = np.asarray(azs.ess(values, method="bulk", chain_axis=0, draw_axis=1), dtype=float)
    ess_min = ESS_PER_CHAIN_WARN * n_chain
    problems = []
    undefined = np.flatnonzero(~np.isfinite(rhat) | ~np.isfinite(ess))
    if undefined.size:
        problems.append(
            f"R-hat and bulk ESS cannot be computed for {undefined.size} of {len(names)} entries "
            f"(e.g. {names[undefined[0]]}) from {ds.sizes['draw']} draws per chain"
        )
    high = np.flatnonzero(np.nan_to_num(rhat, nan=-np.inf) > RHAT_WARN)
    if high.size:
        worst = high[np.argsort(-rhat[high], kind="stable")][:n_worst]
        problems.append(
            f"R-hat up to {rhat[worst[0]]:.3f} (above {RHAT_WARN}) in {high.size} of {len(names)} "
            f"entries, worst {', '.join(f'{names[i]} {rhat[i]:.3f}' for i in worst)}"
        )
    low = np.flatnonzero(np.nan_to_num(ess, nan=np.inf) < ess_min)
    if low.size:
        worst = low[np.argsort(ess[low], kind="stable")][:n_worst]
        problems.append(
            f"bulk ESS down to {np.floor(ess[worst[0]]):.0f} (below {ess_min}: {ESS_PER_CHAIN_WARN} per chain "
            f"for {n_chain} chain{'s' if n_chain > 1 else ''}) in {low.size} of {len(names)} entries, "
            f"worst {', '.join(f'{names[i]} {np.floor(ess[i]):.0f}' for i in worst)}"
        )
    if not problems:
        return None
    return (
        "convergence checks failed: " + "; ".join(problems) + ".  Summaries of these draws "
        "are unreliable: sample longer (more tune and draws) or look at the trace plots "
        "(bayes_gmm.plotting.plot_chains)."
    )


def warn_if_not_converged(posterior, covariance_type: str | None = None, stacklevel: int = 3) -> None:
    """A :class:`ConvergenceWarning` with :func:`convergence_message`, if it has one."""
    message = convergence_message(posterior, covariance_type)
    if message is not None:
        warnings.warn(message, ConvergenceWarning, stacklevel=stacklevel)


def _log_posterior_at_map(est: MapEM, X: np.ndarray) -> float:
    with np.errstate(divide="ignore"):  # log 0 of an empty component's weight (alpha = 1)
        return float(log_posterior(X, est.weights_, est.means_, est.covariances_, est.prior_))


def map_variables(est) -> dict[str, tuple[tuple[str, ...], np.ndarray]]:
    """``name -> (dims, values)`` of a fitted estimator's MAP estimate, with the posterior's
    names and dimensions (``covariances``: the family's ``covariance_dims``)."""
    check_is_fitted(est, ["weights_", "means_", "covariances_"])
    return {
        "weights": (("component",), np.asarray(est.weights_, dtype=float)),
        "means": (("component", "feature"), np.asarray(est.means_, dtype=float)),
        "covariances": (get_family(est.covariance_type).covariance_dims, np.asarray(est.covariances_, dtype=float)),
    }


def map_estimate_dataset(est: MapEM, X: np.ndarray, coords: dict) -> xr.Dataset:
    """MAP-EM's solution with the posterior's dims and ``coords``, its log posterior on ``X``
    and its prior (JSON) as attributes."""
    return xr.Dataset(
        map_variables(est),
        coords={name: coords[name] for name in ("component", "feature", "feature_bis")},
        attrs={
            "covariance_type": est.covariance_type,
            "log_posterior": _log_posterior_at_map(est, X),
            "prior": json.dumps(est.prior_.to_dict()),
        },
    )


def log_likelihood_dataset(raw: xr.Dataset, X: np.ndarray, covariance_type: str, coords) -> xr.Dataset:
    """The pointwise log-likelihood ``x`` (chain, draw, obs) of every draw, in NumPy.

    The quadratic forms are one matrix product of data features (``x x^T``, ``x``, rows
    centred) with per-component coefficients, as in the model's own log density.
    """
    n_chain, n_draw = raw.sizes["chain"], raw.sizes["draw"]
    weights, means, covariances = stacked_draws(raw, covariance_type)
    family = get_family(covariance_type)
    s, k, d = means.shape
    centre = X.mean(axis=0)
    features_t = np.ascontiguousarray(family.quadratic_features(X - centre).T)  # (F, n)
    out = np.empty((s, X.shape[0]))
    with np.errstate(divide="ignore"):
        log_w = np.log(weights)

    def fill(block):
        coef, const, logdet = family.quadratic_coefficients(means[block] - centre, covariances[block], d)
        # (S, K, n): the reductions over K run along contiguous rows (over a last axis of
        # length K they took 2.7x as long)
        comp = np.matmul(coef, features_t)
        comp *= -0.5
        comp += (log_w[block] - 0.5 * (d * _LOG_2PI + logdet + const))[:, :, None]
        top = comp.max(axis=1)
        comp -= top[:, None, :]
        np.exp(comp, out=comp)
        out[block] = np.log(comp.sum(axis=1)) + top

    # NumPy releases the GIL in these loops: the blocks run on every CPU
    blocks = list(draw_blocks(s, X.shape[0], k, available_cores()))
    with ThreadPoolExecutor(max_workers=available_cores()) as pool:
        list(pool.map(fill, blocks))
    return xr.Dataset(
        {"x": (("chain", "draw", "obs"), out.reshape(n_chain, n_draw, -1))},
        coords={"chain": raw["chain"].values, "draw": raw["draw"].values, "obs": coords["obs"]},
    )


# ----------------------------------------------------------------------------------------
# after sampling
# ----------------------------------------------------------------------------------------
def _check_new_data(X, d: int, name: str = "X") -> np.ndarray:
    X = np.asarray(check_data(X, name=name), dtype=np.float64)
    if X.shape[1] != d:
        raise ValueError(f"{name} has {X.shape[1]} columns but the posterior has d={d} features.")
    return X


def posterior_membership(idata, X, *, covariance_type: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Posterior mean and standard deviation of each row's responsibilities.

    Parameters
    ----------
    idata : xarray.DataTree or xarray.Dataset
        The result of :func:`sample_posterior` (its relabelled ``posterior``), or a posterior.
    X : array-like of shape (n_samples, n_features)

    Returns
    -------
    mean, sd : ndarray of shape (n_samples, n_components)
        Over all draws, the mean and standard deviation of
        ``r_ik = pi_k N(x_i | mu_k, Sigma_k) / sum_j pi_j N(x_i | mu_j, Sigma_j)``; each row of
        ``mean`` sums to one.  Components follow the posterior's labels (MAP-EM's after relabelling).
    """
    ds = posterior_dataset(idata)
    ct = covariance_type_of(ds, covariance_type)
    family = get_family(ct)
    weights, means, covariances = stacked_draws(ds, ct)
    s, k, d = means.shape
    X = _check_new_data(X, d)
    n = X.shape[0]
    total = np.zeros((n, k))
    total_sq = np.zeros((n, k))
    for block in draw_blocks(s, n, k, d):
        log_prob = family.log_prob_draws(X, weights[block], means[block], covariances[block])
        resp = np.exp(log_prob - logsumexp(log_prob, axis=2, keepdims=True))
        total += resp.sum(axis=0)
        total_sq += np.sum(resp * resp, axis=0)
    mean = total / s
    sd = np.sqrt(np.maximum(total_sq / s - mean * mean, 0.0))
    return mean, sd


def posterior_predictive_density(idata, X_new, covariance_type: str | None = None) -> np.ndarray:
    """Log posterior predictive density: ``log (1/S) sum_s p(x | theta_s)`` at each row.

    Parameters
    ----------
    idata : xarray.DataTree or xarray.Dataset
        The result of :func:`sample_posterior` or a posterior with ``weights``, ``means``,
        ``covariances``.
    X_new : array-like of shape (n_new, n_features)
    covariance_type : str, optional
        Inferred from the posterior if not given.

    Returns
    -------
    ndarray of shape (n_new,)
    """
    ds = posterior_dataset(idata)
    ct = covariance_type_of(ds, covariance_type)
    family = get_family(ct)
    weights, means, covariances = stacked_draws(ds, ct)
    s, k, d = means.shape
    X_new = _check_new_data(X_new, d, "X_new")
    acc = np.full(X_new.shape[0], -np.inf)
    for block in draw_blocks(s, X_new.shape[0], k, d):
        log_prob = family.log_prob_draws(X_new, weights[block], means[block], covariances[block])
        acc = np.logaddexp(acc, logsumexp(logsumexp(log_prob, axis=2), axis=0))
    return acc - np.log(s)


def sample_posterior_predictive(
    idata, n: int, random_seed=None, *, covariance_type: str | None = None
) -> xr.Dataset:
    """Simulated data sets: ``n`` new rows from the mixture of *each* posterior draw.

    Every draw gets its own component labels and its own Gaussian noise, so data sets are
    independent given the draws and no value repeats.

    Parameters
    ----------
    idata : xarray.DataTree or xarray.Dataset
        The result of :func:`sample_posterior` or a posterior.
    n : int
        Rows per simulated data set.
    random_seed : int or numpy.random.Generator, optional
    covariance_type : str, optional
        Inferred from the posterior if not given.

    Returns
    -------
    xarray.Dataset
        ``x`` (chain, draw, pp_obs, feature), float, and ``labels`` (chain, draw, pp_obs),
        the label each row was drawn from; ``chain * draw * n * n_features`` floats.
    """
    check_positive("n", n, integer=True)
    ds = posterior_dataset(idata)
    ct = covariance_type_of(ds, covariance_type)
    weights, means, covariances = stacked_draws(ds, ct)
    rng = np.random.default_rng(random_seed)
    x, labels = simulate_draws(rng, weights, means, covariances, ct, int(n))
    shape = (ds.sizes["chain"], ds.sizes["draw"])
    coords = {c: ds.coords[c] for c in ("chain", "draw", "feature") if c in ds.coords}
    coords["pp_obs"] = np.arange(n)
    return xr.Dataset(
        {
            "x": (("chain", "draw", "pp_obs", "feature"), x.reshape(*shape, n, -1)),
            "labels": (("chain", "draw", "pp_obs"), labels.reshape(*shape, n)),
        },
        coords=coords,
        attrs={"covariance_type": ct},
    )

