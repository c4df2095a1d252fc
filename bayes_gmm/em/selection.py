"""Model selection over the number of components and the covariance type (mclust's BIC table).

:func:`select` fits :class:`~bayes_gmm.MapEM` on every cell of a grid ``k x covariance_type``
and returns a :class:`SelectionResult`: a tidy table, the best fitted estimator and the BIC /
ICL plot, one line per covariance type, as mclust draws it.

Criteria follow ``docs/MATH.md`` and scikit-learn's sign (lower is better; mclust reports ``-BIC``)::

    BIC = -2 log p(X | theta_hat) + n_params log N
    ICL = BIC - 2 sum_i log r_{i, z_i},   z_i = argmax_k r_ik
    AIC = -2 log p(X | theta_hat) + 2 n_params

with ``theta_hat`` the MAP estimate.
"""

from __future__ import annotations

import numbers
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from bayes_gmm.em.base import bic_value
from bayes_gmm.em.map_em import MapEM
from bayes_gmm.em.validation import check_data
from bayes_gmm.exceptions import ConvergenceWarning
from bayes_gmm.model.families import COVARIANCE_FAMILIES, covariance_type_names, get_family

__all__ = ["SelectionResult", "select", "cell_seeds"]

_CRITERIA = ("bic", "icl", "aic")
#: Canonical order of the covariance types: the registry's.  A cell's seed depends on its
#: type's place here, not on its place in the grid, so adding a type to the grid leaves the
#: other fits unchanged (and a type registered later gets the next place, leaving the seeds of
#: the earlier ones as they are).
#: Markers of the plot's lines, given to the types by their place in the registry.
_MARKER_CYCLE = "os^Dv<>ph*"
#: Grids with at least this many cells show a progress bar when ``progress=None``.
_PROGRESS_MIN_CELLS = 20

TABLE_COLUMNS = (
    "k",
    "covariance_type",
    "log_likelihood",
    "log_posterior",
    "n_parameters",
    "bic",
    "icl",
    "aic",
    "converged",
    "n_iter",
    "error",
)


# ----------------------------------------------------------------------------------------
# argument checks
# ----------------------------------------------------------------------------------------
def _check_k_grid(k) -> list[int]:
    if isinstance(k, numbers.Integral) and not isinstance(k, bool):
        k = [k]
    if isinstance(k, (str, bytes)) or not isinstance(k, Iterable):
        raise TypeError(f"k must be an integer or an iterable of integers (e.g. range(1, 10)), got {k!r}.")
    out: list[int] = []
    for value in k:
        if isinstance(value, bool) or not isinstance(value, numbers.Integral):
            raise TypeError(f"k must hold integers, got {value!r}.")
        if value < 1:
            raise ValueError(f"every k must be at least 1, got {value}.")
        if int(value) not in out:
            out.append(int(value))
    if not out:
        raise ValueError("k is empty: give at least one number of components.")
    return sorted(out)


def _check_types(covariance_types) -> list[str]:
    if isinstance(covariance_types, str):
        covariance_types = [covariance_types]
    try:
        types = list(dict.fromkeys(covariance_types))
    except TypeError:
        raise TypeError(
            f"covariance_types must be a sequence of names, got {covariance_types!r}."
        ) from None
    if not types:
        raise ValueError("covariance_types is empty: give at least one covariance type.")
    accepted = covariance_type_names()
    bad = [t for t in types if not isinstance(t, str) or t not in accepted]
    if bad:
        raise ValueError(f"unknown covariance type(s) {bad}; choose from {accepted}.")
    by_family = {}
    for t in types:  # "VVV" and "full" are one model: the first name given is kept
        by_family.setdefault(get_family(t).name, t)
    return list(by_family.values())


def _check_criterion(criterion) -> str:
    if criterion not in _CRITERIA:
        raise ValueError(f"criterion must be one of {_CRITERIA}, got {criterion!r}.")
    return criterion


def _root_entropy(random_state) -> int:
    """One integer from which every cell's seed is derived."""
    if random_state is None:
        return int(np.random.SeedSequence().entropy)
    if isinstance(random_state, numbers.Integral) and not isinstance(random_state, bool):
        if random_state < 0:
            raise ValueError(f"random_state must be a non-negative integer, got {random_state}.")
        return int(random_state)
    if isinstance(random_state, np.random.Generator):
        return int(random_state.integers(2**63))
    if isinstance(random_state, np.random.RandomState):
        return int(random_state.randint(np.iinfo(np.int32).max))
    raise TypeError(
        f"random_state must be None, an int, a numpy Generator or RandomState, got {random_state!r}."
    )


def cell_seeds(random_state, k_values: Sequence[int], covariance_types: Sequence[str]) -> dict:
    """The seed of every cell ``(k, covariance_type)``, derived from ``random_state``.

    Each seed comes from ``numpy.random.SeedSequence(root, spawn_key=(k, type_index))``, so it
    depends only on the cell itself (not on the grid around it, nor on the order in which
    the fits run in parallel).

    Examples
    --------
    >>> small = cell_seeds(0, [1, 2], ["full"])
    >>> large = cell_seeds(0, [1, 2, 3], ["diag", "full"])
    >>> small[(2, "full")] == large[(2, "full")]
    True
    """
    root = _root_entropy(random_state)
    order = list(COVARIANCE_FAMILIES)  # a type's seed depends on its place in the registry
    return {
        (k, ct): int(
            np.random.SeedSequence(root, spawn_key=(k, order.index(get_family(ct).name))).generate_state(1)[0]
        )
        for k in k_values
        for ct in covariance_types
    }


# ----------------------------------------------------------------------------------------
# one cell
# ----------------------------------------------------------------------------------------
def _fit_cell(X: np.ndarray, k: int, covariance_type: str, seed: int, estimator_params: dict):
    """Fit one cell; never raises: a failure is a row with its reason."""
    row: dict[str, Any] = dict.fromkeys(TABLE_COLUMNS, np.nan)
    row.update(k=k, covariance_type=covariance_type, converged=False, n_iter=0, error=None)
    est = MapEM(k, covariance_type=covariance_type, random_state=seed, **estimator_params)
    try:
        # a ConvergenceWarning is reported in the ``converged`` column, not raised
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            est.fit(X)
            n = X.shape[0]
            log_likelihood = float(np.sum(est.score_samples(X)))
            n_parameters = get_family(covariance_type).n_parameters(k, X.shape[1])
            bic = bic_value(log_likelihood, n_parameters, n)
            proba = est.predict_proba(X)
            # log r_{i, z_i}; the largest responsibility is >= 1/K, so its log is accurate
            icl = bic - 2.0 * float(np.sum(np.log(np.max(proba, axis=1))))
        row.update(
            log_likelihood=log_likelihood,
            log_posterior=float(est.log_posterior_),
            n_parameters=int(n_parameters),
            bic=float(bic),
            icl=float(icl),
            aic=float(-2.0 * log_likelihood + 2.0 * n_parameters),
            converged=bool(est.converged_),
            n_iter=int(est.n_iter_),
        )
        if not all(np.isfinite([row["bic"], row["icl"], row["log_posterior"]])):
            raise FloatingPointError("a criterion is not finite")
    except Exception as exc:  # noqa: BLE001 - a failing cell is a row, not a crash
        row.update({c: np.nan for c in ("log_likelihood", "log_posterior", "bic", "icl", "aic")})
        row.update(n_parameters=np.nan, converged=False, error=f"{type(exc).__name__}: {exc}")
        return row, None
    return row, est


# ----------------------------------------------------------------------------------------
# the result
# ----------------------------------------------------------------------------------------
#: mclust's colour and plotting symbol of each model (``mclust.options("bicPlotColors")`` and
#: ``"bicPlotSymbols"``, the R symbols drawn with the nearest matplotlib marker; filled or open).
MCLUST_STYLE = {
    "EII": ("gray", "^", True), "VII": ("black", "^", False), "EEI": ("#218B21", "o", True),
    "EVI": ("#41884F", "8", False), "VEI": ("#508476", "X", False), "VVI": ("#58819C", "o", False),
    "EEE": ("#597DC3", "s", True), "VEE": ("#5178EA", "*", True), "EVE": ("#716EE7", "D", False),
    "VVE": ("#9B60B8", "P", True), "EEV": ("#B2508B", "p", False), "VEV": ("#C03F60", "x", True),
    "EVV": ("#C82A36", "h", False), "VVV": ("#CC0000", "s", False),
}


def model_label(covariance_type: str) -> str:
    """mclust's name of a model, with the registered name where they differ: ``"VVV (full)"``."""
    family = get_family(covariance_type)
    names = [n for n in dict.fromkeys((family.mclust_name, covariance_type, family.name)) if n]
    return names[0] if len(names) == 1 else f"{names[0]} ({', '.join(names[1:])})"


def model_style(covariance_type: str) -> tuple[str, str, bool]:
    """(colour, marker, filled) of a model in the BIC plot: mclust's, else one of a cycle."""
    family = get_family(covariance_type)
    if family.mclust_name in MCLUST_STYLE:
        return MCLUST_STYLE[family.mclust_name]
    i = list(COVARIANCE_FAMILIES).index(family.name)
    return f"C{i % 10}", _MARKER_CYCLE[i % len(_MARKER_CYCLE)], True


@dataclass
class SelectionResult:
    """What :func:`select` returns.

    Attributes
    ----------
    table : pandas.DataFrame
        One row per cell, columns ``k, covariance_type, log_likelihood, log_posterior,
        n_parameters, bic, icl, aic, converged, n_iter, error``; a failed fit has NaN criteria
        and its reason in ``error`` (None otherwise).  Sorted by ``k`` then covariance type.
    criterion : str
        The criterion used to choose the best cell.
    best_estimator_ : MapEM
        The fitted estimator of the best cell (lowest criterion).
    best_params_ : dict
        ``{"k": ..., "covariance_type": ...}`` of the best cell.
    estimators_ : dict
        Every fitted estimator by ``(k, covariance_type)`` (failed cells are absent).
    seeds_ : dict
        The ``random_state`` given to each cell's fit, by ``(k, covariance_type)``.
    """

    table: Any
    criterion: str
    best_estimator_: MapEM
    best_params_: dict
    estimators_: dict = field(repr=False)
    seeds_: dict = field(repr=False)

    def plot(self, ax=None, criterion: str | None = None):
        """Criterion against ``k``, one line per covariance type (mclust's BIC plot).

        Lower is better (mclust plots ``-BIC``, higher is better: the same picture upside
        down).  Failed cells leave a gap; the best cell is circled.

        Parameters
        ----------
        ax : matplotlib Axes, optional
        criterion : {"bic", "icl", "aic"}, default: the criterion used for the selection

        Returns
        -------
        ax : matplotlib Axes
        """
        criterion = _check_criterion(self.criterion if criterion is None else criterion)
        if ax is None:
            import matplotlib.pyplot as plt

            _, ax = plt.subplots(figsize=(6.5, 4.5))
        table = self.table
        for ct, group in table.groupby("covariance_type", sort=False):
            group = group.sort_values("k")
            color, marker, filled = model_style(ct)
            ax.plot(
                group["k"].to_numpy(),
                group[criterion].to_numpy(dtype=float),
                marker=marker,
                color=color,
                mfc=color if filled else "none",
                label=model_label(ct),
                lw=1.2,
                ms=6,
            )
        values = table[criterion].to_numpy(dtype=float)
        if np.any(np.isfinite(values)):
            best = int(np.nanargmin(values))
            ax.plot(
                table["k"].iloc[best],
                values[best],
                "o",
                ms=14,
                mfc="none",
                mec="k",
                mew=1.5,
                label=f"best: k={table['k'].iloc[best]}, {model_label(table['covariance_type'].iloc[best])}",
            )
        ax.set_xlabel("number of components k")
        ax.set_ylabel(f"{criterion.upper()} (lower is better)")
        ax.set_xticks(sorted(table["k"].unique()))
        ax.legend(title="model", fontsize="small", ncols=2 if table["covariance_type"].nunique() > 7 else 1)
        ax.set_title(f"{criterion.upper()} by number of components and covariance type")
        return ax

    def __repr__(self) -> str:
        return (
            f"SelectionResult(criterion={self.criterion!r}, best={self.best_params_}, "
            f"cells={len(self.table)}, failed={int(self.table['error'].notna().sum())})"
        )


# ----------------------------------------------------------------------------------------
# the grid
# ----------------------------------------------------------------------------------------
def select(
    X,
    k: int | Iterable[int] = range(1, 10),
    covariance_types: str | Sequence[str] | None = None,
    criterion: str = "bic",
    *,
    n_init: int = 1,
    random_state=None,
    n_jobs: int | None = None,
    progress: bool | None = False,
    prior_strength: float = 1.0,
    alpha: float | None = None,
    **estimator_params,
) -> SelectionResult:
    """Fit :class:`~bayes_gmm.MapEM` over ``k x covariance_types`` and pick the best model.

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features)
        A pandas DataFrame's column names are kept by the fitted estimators
        (``feature_names_in_``).
    k : int or iterable of int, default=range(1, 10)
        Numbers of components to try.  A ``k`` larger than the number of rows gives a failed row.
    covariance_types : str or sequence of str, optional
        Covariance types to try (names in :data:`bayes_gmm.COVARIANCE_FAMILIES`); default:
        every registered type, in the registry's order.
    criterion : {"bic", "icl", "aic"}, default="bic"
        How the best cell is chosen (lowest value; ties go to the smaller ``k``, then the
        earlier covariance type in ``covariance_types``).
    n_init : int, default=1
        Initialisations per cell (the highest log-posterior is kept).
    random_state : int, numpy Generator/RandomState or None
        Seeds every cell deterministically (see :func:`cell_seeds`): the same ``random_state``
        gives the same table whatever ``n_jobs``.
    n_jobs : int or None, default=None
        Parallel fits with joblib (processes); None means 1 unless inside a
        ``joblib.parallel_config`` context, -1 means every core.
    progress : bool or None, default=False
        A tqdm progress bar on stderr; None shows it for grids of 20 cells or more.
    prior_strength, alpha
        Passed to every :class:`~bayes_gmm.MapEM`.
    **estimator_params
        Any other :class:`~bayes_gmm.MapEM` argument (``tol``, ``max_iter``, ``init_params``,
        ``chunk_size``), the same for every cell.

    Returns
    -------
    SelectionResult
        ``.table`` (pandas DataFrame), ``.best_estimator_``, ``.best_params_``, ``.plot()``.

    Raises
    ------
    ValueError
        If ``X`` is invalid, or every fit of the grid failed (the reasons are in the message).

    Examples
    --------
    >>> import numpy as np
    >>> from bayes_gmm import select
    >>> rng = np.random.default_rng(0)
    >>> X = np.vstack([rng.normal(0, 1, (100, 2)), rng.normal(8, 1, (100, 2))])
    >>> result = select(X, k=range(1, 4), covariance_types=["full", "spherical"], random_state=0)
    >>> result.best_params_["k"]
    2
    >>> list(result.table.columns[:4])
    ['k', 'covariance_type', 'log_likelihood', 'log_posterior']
    """
    import pandas as pd

    array = np.asarray(check_data(X), dtype=np.float64)
    # a DataFrame is fitted as it is, so that the estimators keep its column names
    X = X if hasattr(X, "columns") and hasattr(X, "iloc") else array
    k_values = _check_k_grid(k)
    types = _check_types(tuple(COVARIANCE_FAMILIES) if covariance_types is None else covariance_types)
    criterion = _check_criterion(criterion)
    for reserved in ("k", "covariance_type", "random_state"):
        if reserved in estimator_params:
            raise TypeError(f"{reserved!r} is set by select for each cell; it cannot be passed.")
    params = dict(n_init=n_init, prior_strength=prior_strength, alpha=alpha, **estimator_params)
    MapEM(1, **params)  # an unknown argument fails here, once, not in every cell
    seeds = cell_seeds(random_state, k_values, types)
    cells = [(kk, ct) for kk in k_values for ct in types]

    show = (len(cells) >= _PROGRESS_MIN_CELLS) if progress is None else bool(progress)
    outputs = _run_grid(X, cells, seeds, params, n_jobs, show)

    rows = [row for row, _ in outputs]
    table = pd.DataFrame(rows, columns=list(TABLE_COLUMNS))
    table["n_parameters"] = table["n_parameters"].astype("Int64")
    table["error"] = table["error"].astype(object).where(table["error"].notna(), None)
    estimators = {(row["k"], row["covariance_type"]): est for row, est in outputs if est is not None}
    if not estimators:
        reasons = "; ".join(f"k={r['k']} {r['covariance_type']}: {r['error']}" for r in rows[:3])
        raise ValueError(f"every fit of the grid failed ({len(rows)} cells), e.g. {reasons}")
    values = table[criterion].to_numpy(dtype=float)
    best = int(np.nanargmin(values))  # first minimum: smaller k, then earlier type
    best_key = (int(table["k"].iloc[best]), str(table["covariance_type"].iloc[best]))
    return SelectionResult(
        table=table,
        criterion=criterion,
        best_estimator_=estimators[best_key],
        best_params_={"k": best_key[0], "covariance_type": best_key[1]},
        estimators_=estimators,
        seeds_=seeds,
    )


def _run_grid(X, cells, seeds, params, n_jobs, show_progress):
    from joblib import Parallel, delayed

    bar = None
    if show_progress:
        from tqdm import tqdm

        bar = tqdm(total=len(cells), desc="bayes_gmm.select", unit="fit", leave=False)
    try:
        parallel = Parallel(n_jobs=n_jobs, return_as="generator")
        jobs = (delayed(_fit_cell)(X, kk, ct, seeds[(kk, ct)], params) for kk, ct in cells)
        outputs = []
        for out in parallel(jobs):
            outputs.append(out)
            if bar is not None:
                bar.update(1)
    finally:
        if bar is not None:
            bar.close()
    return outputs
