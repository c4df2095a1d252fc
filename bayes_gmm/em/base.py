"""The EM loop shared by :class:`bayes_gmm.MapEM` and :class:`em_baseline.PlainEM`.

One base class owns the whole fit (validation, initialisation, restarts, the convergence test,
the warning, keeping the best run, the final E-step); subclasses supply only the M-step and the
objective, which keeps the comparison between MAP-EM and plain EM honest.
"""

from __future__ import annotations

import time
import warnings
from abc import abstractmethod
from dataclasses import dataclass
from numbers import Integral, Real

import numpy as np
from sklearn.base import BaseEstimator, DensityMixin, _fit_context
from sklearn.cluster import KMeans, kmeans_plusplus
from sklearn.exceptions import ConvergenceWarning as SklearnConvergenceWarning
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import check_is_fitted, validate_data

from bayes_gmm.em import engine
from bayes_gmm.em.validation import check_data, check_n_components, check_positive, check_sample_weight
from bayes_gmm.exceptions import ConvergenceWarning, SingularCovarianceError
from bayes_gmm.model.families import (
    ACCEPTED_COVARIANCE_TYPES,
    CovarianceFamily,
    GaussianParams,
    RawStatistics,
    SufficientStatistics,
    get_family,
)
from bayes_gmm.model.scaling import ColumnScaling

__all__ = ["INIT_METHODS", "KMEANS_MAX_ROWS", "KMEANS_N_INIT", "BaseGaussianMixtureEM", "FitResult", "bic_value"]

#: The named ways to start a fit (``init_params``).
INIT_METHODS = ("k-means++", "kmeans", "random_from_data", "random")
#: Rows the "kmeans" start clusters (a uniform sample when X has more): 2^14, or 64 per
#: component for k above 256.  On the speed benchmark's data, 2^13 to 2^17 rows gave starts
#: of the same quality (the same EM iterations and log-posterior, to the seed's variation).
KMEANS_MAX_ROWS = 1 << 14
#: k-means runs of the "kmeans" start (the one with the smallest inertia is kept).  One run
#: can stop in a poor local optimum: on the speed benchmark's overlapping clusters at
#: (1e5, 100, 5), seed 1 of six seeds merged two clusters, and EM from it took 5 iterations to
#: a mode 27 000 log-posterior units below the other seeds' (reached in 1 iteration); with three
#: runs all six seeds reach that mode in 1 iteration.  A run on the 2^14-row sample costs a
#: fraction of one EM iteration on the whole data.
KMEANS_N_INIT = 3


def bic_value(log_likelihood: float, n_parameters: int, n_samples: int) -> float:
    """Schwarz's BIC, ``-2 log L + p log n`` (lower is better; mclust reports its negative)."""
    return float(-2.0 * log_likelihood + n_parameters * np.log(n_samples))


@dataclass
class FitResult:
    params: GaussianParams
    objective: float
    history: list[float]
    converged: bool
    n_iter: int


class BaseGaussianMixtureEM(DensityMixin, BaseEstimator):
    """Base class of the EM estimators.  Not for direct use."""

    _objective_name = "objective"

    #: scikit-learn's declaration of the constructor parameters' types and ranges, checked by
    #: ``_validate_params`` when ``fit`` starts (``_fit_context``).  Subclasses extend it.  What
    #: a type and a range cannot say (k at most the number of rows, the shapes of the arrays
    #: given as a start, the prior) is checked during the fit.
    _parameter_constraints: dict = {
        "k": [Interval(Integral, 1, None, closed="left")],
        # a live view of the registry: a family registered later is accepted too
        "covariance_type": [StrOptions(ACCEPTED_COVARIANCE_TYPES)],
        "tol": [Interval(Real, 0.0, None, closed="left")],
        "max_iter": [Interval(Integral, 1, None, closed="left")],
        "n_init": [Interval(Integral, 1, None, closed="left")],
        "init_params": [StrOptions(set(INIT_METHODS)), "array-like"],
        "weights_init": ["array-like", None],
        "means_init": ["array-like", None],
        "precisions_init": ["array-like", None],
        "random_state": ["random_state"],
        "chunk_size": [Interval(Integral, 1, None, closed="left"), None],
        "verbose": ["verbose"],
        "verbose_interval": [Interval(Integral, 1, None, closed="left")],
    }

    def __init__(
        self,
        k: int,
        *,
        covariance_type: str = "full",
        tol: float = 1e-3,
        max_iter: int = 500,
        n_init: int = 1,
        init_params="k-means++",
        weights_init=None,
        means_init=None,
        precisions_init=None,
        random_state=None,
        chunk_size: int | None = None,
        verbose: int = 0,
        verbose_interval: int = 10,
    ):
        self.k = k
        self.covariance_type = covariance_type
        self.tol = tol
        self.max_iter = max_iter
        self.n_init = n_init
        self.init_params = init_params
        self.weights_init = weights_init
        self.means_init = means_init
        self.precisions_init = precisions_init
        self.random_state = random_state
        self.chunk_size = chunk_size
        self.verbose = verbose
        self.verbose_interval = verbose_interval

    # ------------------------------------------------------------------ hooks
    @abstractmethod
    def _prepare(self, X: np.ndarray, sample_weight: np.ndarray | None, scaling: ColumnScaling | None) -> None:
        """Resolve objective-specific settings (the prior, ``reg_covar``) from the data.

        ``X`` is in the units the fit runs in: standardised by ``scaling`` when it is not None
        (see :meth:`_scaling`).
        """

    def _scaling(self, X, sample_weight) -> ColumnScaling | None:
        """The standardisation the fit runs in (:mod:`bayes_gmm.model.scaling`); None: the data's units."""
        return None

    def _objective_offset(self, scaling: ColumnScaling, total_weight: float) -> float:
        """The objective in the data's units minus the objective in standardised units."""
        return -total_weight * scaling.log_scale_sum

    @abstractmethod
    def _m_step(self, stats: SufficientStatistics) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Return ``(weights, means, covariances)`` from the statistics."""

    @abstractmethod
    def _log_prior(self, params: GaussianParams) -> float:
        """The part of the objective that is not the log-likelihood (0 for plain EM)."""

    def _new_params(self, weights, means, covariances) -> GaussianParams:
        return self._family.params(weights, means, covariances)

    # ------------------------------------------------------------------ checks
    def _check_parameters(self, n_samples: int, n_features: int) -> CovarianceFamily:
        """The checks that depend on the data (types and ranges: ``_parameter_constraints``)."""
        check_n_components(self.k, n_samples)
        return get_family(self.covariance_type)

    def _given_responsibilities(self, n: int) -> np.ndarray:
        """Responsibilities (n, k) from ``init_params`` given as labels or as an array."""
        k = self.k
        arr = np.asarray(self.init_params)
        if arr.ndim == 1:
            if arr.shape[0] != n or arr.dtype.kind not in "iu" or arr.min() < 0 or arr.max() >= k:
                raise ValueError(
                    f"init_params given as labels must be {n} integers in [0, {k - 1}], one "
                    "per row of X."
                )
            resp = np.zeros((n, k))
            resp[np.arange(n), arr] = 1.0
            return resp
        if arr.shape != (n, k) or not np.all(np.isfinite(arr)) or np.any(arr < 0):
            raise ValueError(
                f"init_params given as responsibilities must be a non-negative finite "
                f"array of shape (n, k) = ({n}, {k}), got shape {arr.shape}."
            )
        total = arr.sum(axis=1, keepdims=True)
        if np.any(total <= 0):
            raise ValueError("every row of the initial responsibilities needs a positive entry.")
        return arr / total

    def _named_start_statistics(self, X, sample_weight, rng) -> SufficientStatistics:
        """Initial statistics of a named start (``init_params`` a string), by blocks of rows.

        No (n, k) array is built.  The seeded starts label every row by its nearest seed and
        take the statistics of that partition (:func:`engine.label_statistics`, ``n d^2``
        flops); "random" feeds each block's random responsibilities through the engine's
        kernels.  k-means++ seeds are scikit-learn's (``kmeans_plusplus``; for data too large
        for its (n, t) arrays the engine's version, which draws the same random numbers).
        "kmeans" seeds are the centres of scikit-learn's ``KMeans`` (the best of
        ``KMEANS_N_INIT`` runs, k-means++ seeding) fitted to at most ``KMEANS_MAX_ROWS`` (or 64 per component) rows drawn at random: more rows hardly
        move k-means centres, and the sample keeps the start's time and memory bounded on
        large arrays and memmaps.
        """
        init, k = self.init_params, int(self.k)
        if init == "random":

            def responsibilities(block, Xb):
                resp = rng.uniform(size=(Xb.shape[0], k))
                return resp / resp.sum(axis=1, keepdims=True)

            return engine.initial_statistics(self._family, X, sample_weight, responsibilities, k)
        if init == "k-means++" and engine.by_blocks(X, max(k, X.shape[1])):
            centers = engine.kmeans_plusplus(X, k, sample_weight, rng)
        elif init == "k-means++":
            centers, _ = kmeans_plusplus(np.asarray(X, dtype=float), k, random_state=rng, sample_weight=sample_weight)
        elif init == "kmeans":
            centers = self._kmeans_centers(X, sample_weight, rng)
        else:  # random_from_data
            centers = np.asarray(X[rng.choice(X.shape[0], size=k, replace=False)], dtype=float)
        return engine.label_statistics(
            self._family, X, sample_weight, lambda block, Xb: engine.nearest_center(Xb, centers), k
        )

    def _kmeans_centers(self, X, sample_weight, rng) -> np.ndarray:
        """Centres of scikit-learn's ``KMeans`` on X, or on ``KMEANS_MAX_ROWS`` (or 64 per component) random rows."""
        n, cap = X.shape[0], max(KMEANS_MAX_ROWS, 64 * int(self.k))
        rows = slice(None) if n <= cap else np.sort(rng.choice(n, size=cap, replace=False))
        sample = np.asarray(X[rows], dtype=float)
        weight = None if sample_weight is None else np.asarray(sample_weight)[rows]
        if weight is not None and np.count_nonzero(weight) < self.k:
            raise ValueError(
                f"the k-means start needs at least k={self.k} rows with a positive sample_weight"
                + ("" if n <= cap else f" among the {cap} rows it samples")
                + '; use init_params="k-means++" or give more weight to more rows.'
            )
        with warnings.catch_warnings():
            # fewer distinct points than k: the components left empty start from the prior
            warnings.filterwarnings("ignore", message="Number of distinct clusters", category=SklearnConvergenceWarning)
            with engine.kmeans_threads(sample.shape[0], int(self.k), sample.shape[1]):
                kmeans = KMeans(self.k, n_init=KMEANS_N_INIT, random_state=rng).fit(sample, sample_weight=weight)
            return kmeans.cluster_centers_

    def _initialize(self, X, sample_weight, rng) -> GaussianParams:
        """Starting parameters in the fit's units (``weights_init`` etc. are in the data's)."""
        family = self._family
        scaling = self._fit_scaling
        n, d = X.shape
        k = self.k
        need_resp = self.weights_init is None or self.means_init is None or self.precisions_init is None
        if need_resp:
            if isinstance(self.init_params, str):
                stats = self._named_start_statistics(X, sample_weight, rng)
            else:
                resp = self._given_responsibilities(n)
                stats = family.statistics_from_responsibilities(np.asarray(X, dtype=float), resp, sample_weight)
            weights, means, covariances = self._m_step(stats)
        else:
            weights = means = covariances = None
        if self.weights_init is not None:
            weights = np.asarray(self.weights_init, dtype=float)
            if weights.shape != (k,) or np.any(weights <= 0) or not np.isclose(weights.sum(), 1.0):
                raise ValueError(f"weights_init must be {k} positive numbers summing to 1.")
        if self.means_init is not None:
            means = np.asarray(self.means_init, dtype=float)
            if means.shape != (k, d) or not np.all(np.isfinite(means)):
                raise ValueError(f"means_init must be a finite array of shape (k, d) = ({k}, {d}), got {means.shape}.")
            if scaling is not None:
                means = scaling.means_from_data(means)
                _check_far("means_init", means)
        if self.precisions_init is not None:
            covariances = _covariances_from_precisions(family, self.precisions_init, k, d)
            if scaling is not None:
                covariances = family.rescale_covariances(covariances, 1.0 / scaling.scale)
                _check_far("precisions_init", covariances)
        return self._new_params(weights, means, covariances)

    # ------------------------------------------------------------------ EM
    def _objective(self, raw: RawStatistics, params: GaussianParams) -> float:
        return raw.log_likelihood + self._log_prior(params)

    def _run_em(self, X, sample_weight, rng) -> FitResult:
        family = self._family
        try:
            params = self._initialize(X, sample_weight, rng)
        except SingularCovarianceError as exc:
            exc.iteration = 0
            exc.history = []
            exc.args = (f"initialisation: {exc.args[0]}",)
            self._failed_history = []
            raise
        raw = engine.accumulate(family, X, sample_weight, params, self.chunk_size)
        objective = self._objective(raw, params)
        history = [objective]
        tick = time.perf_counter()
        converged = False
        n_iter = 0
        for n_iter in range(1, self.max_iter + 1):
            stats = family.finalize(raw, params)
            stats.start = params.covariances
            try:
                params = self._new_params(*self._m_step(stats))
            except SingularCovarianceError as exc:
                exc.iteration = n_iter
                exc.history = history
                exc.args = (f"EM iteration {n_iter}: {exc.args[0]}",)
                self._failed_history = history
                raise
            # the last iteration's statistics would feed no M-step: its pass skips the moments
            last = n_iter == self.max_iter
            raw = engine.accumulate(family, X, sample_weight, params, self.chunk_size, moments=not last)
            objective = self._objective(raw, params)
            if not np.isfinite(objective):
                raise FloatingPointError(
                    f"the {self._objective_name} became {objective} at EM iteration {n_iter}; "
                    "the data may hold values too large to square in float64: rescale X."
                )
            history.append(objective)
            if self.verbose >= 2 and n_iter % self.verbose_interval == 0:
                now = time.perf_counter()
                print(
                    f"  Iteration {n_iter}\t time lapse {now - tick:.5f}s\t {self._objective_name} change "
                    f"per row {(objective - history[-2]) / raw.total_weight:.3g}",
                    flush=True,
                )
                tick = now
            # per unit of weight, as scikit-learn's mean log-likelihood: a change of the
            # objective does not depend on the units of X (the objective itself does), so the
            # stopping iteration is the same whatever the units.  tol=0 runs max_iter iterations.
            if self.tol > 0 and abs(objective - history[-2]) <= self.tol * raw.total_weight:
                converged = True
                break
        return FitResult(params, objective, history, converged, n_iter)

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None, sample_weight=None):
        """Estimate the parameters with EM (``n_init`` runs, the best objective kept).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : ignored
        sample_weight : array-like of shape (n_samples,), optional
            Non-negative row weights; an integer weight counts as that many copies of the row
            and a zero weight drops it.

        Returns
        -------
        self
        """
        self._fit(X, sample_weight)
        return self

    def _fit(self, X, sample_weight) -> np.ndarray:
        X = self._validate_X(X, reset=True)
        n, d = X.shape
        # a float32 fit keeps its results in float32, as scikit-learn's estimators do
        self._fit_dtype = np.float32 if X.dtype == np.float32 else np.float64
        self._family = self._check_parameters(n, d)
        sample_weight = check_sample_weight(sample_weight, n)
        scaling = self._fit_scaling = self._scaling(X, sample_weight)
        Z = X if scaling is None else scaling.transform(X)
        self._prepare(Z, sample_weight, scaling)
        rng = check_random_state(self.random_state)
        best: FitResult | None = None
        with engine.fitting(n, int(self.k), d, self.chunk_size):
            for init in range(self.n_init):
                if self.verbose:
                    print(f"Initialization {init}", flush=True)
                start = time.perf_counter()
                result = self._run_em(Z, sample_weight, rng)
                if self.verbose:
                    state = "converged" if result.converged else "did not converge"
                    print(
                        f"Initialization {state} after {result.n_iter} iterations. time lapse "
                        f"{time.perf_counter() - start:.5f}s",
                        flush=True,
                    )
                if best is None or result.objective > best.objective:
                    best = result
        assert best is not None
        if scaling is not None:
            total = float(n) if sample_weight is None else float(np.sum(sample_weight))
            best = self._to_data_units(best, scaling, total)
        if not best.converged:
            warnings.warn(
                f"{type(self).__name__} did not converge in max_iter={self.max_iter} iterations "
                f"(change of the {self._objective_name} per row above tol={self.tol}). Increase "
                "max_iter, loosen tol, or try n_init > 1 or fewer components.",
                ConvergenceWarning,
                stacklevel=3,
            )
        self._store(best)
        return best

    def _to_data_units(self, result: FitResult, scaling: ColumnScaling, total_weight: float) -> FitResult:
        """A fit in standardised units, moved to the data's: ``x = c + s z``."""
        family, p = self._family, result.params
        covariances = family.rescale_covariances(p.covariances, scaling.scale)
        # precision factor S^-1 P, covariance factor S L: both rows scaled, nothing refactored
        prec_chol = family.scale_factor_rows(p.precisions_cholesky, 1.0 / scaling.scale)
        cov_chol = family.scale_factor_rows(p.covariances_cholesky, scaling.scale)
        params = GaussianParams(p.weights, scaling.means_to_data(p.means), covariances, prec_chol, cov_chol)
        if not all(np.all(np.isfinite(a)) for a in (params.means, covariances, prec_chol, params.covariances_cholesky)):
            raise ValueError(
                "the fitted covariances cannot be written in the units of X: they overflow or "
                "underflow float64 (columns spanning about 1e154 or more, or 1e-154 or less). "
                "Rescale the columns of X (e.g. by powers of ten) and fit again."
            )
        offset = self._objective_offset(scaling, total_weight)
        history = [h + offset for h in result.history]
        return FitResult(params, result.objective + offset, history, result.converged, result.n_iter)

    def _store(self, result: FitResult) -> None:
        p = result.params
        dtype = self._fit_dtype
        self.weights_ = p.weights.astype(dtype)
        self.means_ = p.means.astype(dtype)
        self.covariances_ = np.asarray(p.covariances).astype(dtype)
        self.precisions_cholesky_ = np.asarray(p.precisions_cholesky).astype(dtype)
        self.precisions_ = self._family.precisions(p.precisions_cholesky).astype(dtype)
        self.converged_ = result.converged
        self.n_iter_ = result.n_iter
        self._history = np.asarray(result.history)

    def fit_predict(self, X, y=None, sample_weight=None):
        """Fit and return the labels of ``X`` under the fitted parameters."""
        return self.fit(X, sample_weight=sample_weight).predict(X)

    # ------------------------------------------------------------------ prediction
    def _validate_X(self, X, reset: bool):
        # check_data converts and checks the values (its messages say where and what to do;
        # a Dask array stays lazy, a float memmap is not copied); scikit-learn's validate_data
        # sets or checks the feature names and count on the X as given (a DataFrame's columns)
        Xc = check_data(X)
        if not reset:
            check_is_fitted(self)
        validate_data(self, X, reset=reset, skip_check_array=True)
        return Xc

    def _params(self) -> GaussianParams:
        check_is_fitted(self)
        family = get_family(self.covariance_type)
        prec_chol = np.asarray(self.precisions_cholesky_, dtype=float)
        cov_chol = family.covariances_cholesky_from_precisions(prec_chol)
        return GaussianParams(
            np.asarray(self.weights_, dtype=float),
            np.asarray(self.means_, dtype=float),
            np.asarray(self.covariances_, dtype=float),
            prec_chol,
            cov_chol,
        )

    def _estimate_weighted_log_prob(self, X) -> np.ndarray:
        X = self._validate_X(X, reset=False)
        weighted = engine.weighted_log_prob(get_family(self.covariance_type), X, self._params(), self.chunk_size)
        lost = ~np.isfinite(weighted).any(axis=1)
        if lost.any():
            rows = np.flatnonzero(lost)
            more = f" (and {rows.size - 1} more)" if rows.size > 1 else ""
            raise ValueError(
                f"row {rows[0]}{more} of X is so far from every component that its density "
                "underflows float64 (its squared distance overflows): the model gives it no "
                "membership probabilities. Check the row for a unit or entry error, or remove it."
            )
        return weighted

    def _output_dtype(self):
        # a float32 fit keeps float32 results; a model loaded from a file says so by its weights
        return np.float32 if np.asarray(self.weights_).dtype == np.float32 else np.float64

    def score_samples(self, X) -> np.ndarray:
        """Log density of the fitted mixture at each row of ``X``, shape (n_samples,)."""
        return engine.log_responsibilities(self._estimate_weighted_log_prob(X))[0]

    def score(self, X, y=None) -> float:
        """Mean log density per row (scikit-learn's convention)."""
        return float(np.mean(self.score_samples(X)))

    def predict_proba(self, X) -> np.ndarray:
        """Membership probabilities (responsibilities), shape (n_samples, k)."""
        proba = np.exp(engine.log_responsibilities(self._estimate_weighted_log_prob(X))[1])
        return proba.astype(self._output_dtype(), copy=False)

    def predict(self, X) -> np.ndarray:
        """Most probable component of each row."""
        return np.argmax(self._estimate_weighted_log_prob(X), axis=1)

    def sample(self, n_samples: int = 1, random_state=None):
        """Draw ``n_samples`` rows from the fitted mixture; returns ``(X, labels)``."""
        check_is_fitted(self)
        check_positive("n_samples", n_samples, integer=True)
        family = get_family(self.covariance_type)
        rng = np.random.default_rng(random_state)
        params = self._params()
        k, d = self.means_.shape
        counts = rng.multinomial(n_samples, self.weights_)
        out = np.empty((n_samples, d))
        labels = np.repeat(np.arange(k), counts)
        start = 0
        for j, c in enumerate(counts):
            L = family.component_cholesky(params.covariances_cholesky, j, d)
            out[start : start + c] = self.means_[j] + rng.standard_normal((c, d)) @ L.T
            start += c
        return out, labels

    # ------------------------------------------------------------------ model selection
    def _n_parameters(self) -> int:
        d = self.means_.shape[1]
        return get_family(self.covariance_type).n_parameters(self.k, d)

    def bic(self, X) -> float:
        """Bayesian information criterion at the fitted parameters (lower is better)."""
        n_samples = self._validate_X(X, reset=False).shape[0]
        return bic_value(float(np.sum(self.score_samples(X))), self._n_parameters(), n_samples)

    def aic(self, X) -> float:
        """Akaike information criterion at the fitted parameters (lower is better)."""
        return float(-2.0 * np.sum(self.score_samples(X)) + 2.0 * self._n_parameters())

    def icl(self, X) -> float:
        """Integrated completed likelihood: ``BIC - 2 sum_i log r_{i, z_i}`` (lower is better)."""
        log_resp = engine.log_responsibilities(self._estimate_weighted_log_prob(X))[1]
        return self.bic(X) - 2.0 * float(np.sum(np.max(log_resp, axis=1)))

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = False
        tags.input_tags.sparse = False
        return tags


# ----------------------------------------------------------------------------------------
#: Starting values further than this from the data (in standardised units) cannot be
#: whitened without overflow.
_FAR = 1e150


def _check_far(name: str, values: np.ndarray) -> None:
    if not np.all(np.abs(values) < _FAR):
        raise ValueError(
            f"{name} holds values about 1e150 or more times the spread of the data: they cannot be "
            f"compared with the data in float64. Give {name} in the units of X, near the data."
        )


def _covariances_from_precisions(family: CovarianceFamily, precisions, k: int, d: int) -> np.ndarray:
    """Covariances from ``precisions_init`` given in the covariance type's shape."""
    prec = np.asarray(precisions, dtype=float)
    if not np.all(np.isfinite(prec)):
        raise ValueError("precisions_init must be finite.")
    try:
        family.check_covariances(prec, k, d)
    except ValueError as exc:
        raise ValueError(f"precisions_init has the wrong shape: {exc}") from None
    family.check_positive_definite(prec, "precisions_init")
    return family.inverse(prec)
