"""The base of the covariance families, :class:`CovarianceFamily`, and the containers the
families and the EM engine pass around: :class:`GaussianParams` (parameters with their Cholesky
factors), :class:`RawStatistics` (a block's statistics in whitened coordinates) and
:class:`SufficientStatistics` (what an M-step needs).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

import numpy as np

from bayes_gmm.model.array_ops import NUMPY_OPS
from bayes_gmm.model.families.kernels import (
    LOG_2PI,
    ordered_safe,
    responsibilities_inplace,
    singular,
    squared_norms_t,
)

if TYPE_CHECKING:
    from bayes_gmm.model.prior import NIWPrior


@dataclass
class GaussianParams:
    """Mixture parameters with the Cholesky factors the E-step needs."""

    weights: np.ndarray  # (K,)
    means: np.ndarray  # (K, d)
    covariances: np.ndarray  # family shape
    precisions_cholesky: np.ndarray  # family shape (upper triangular for full/tied)
    covariances_cholesky: np.ndarray  # family shape (lower triangular / standard deviations)


@dataclass
class RawStatistics:
    """Statistics of a block of rows in the whitened frame of the current parameters.

    They add across blocks: ``a + b`` is the statistic of the union of the rows.
    ``second`` has the family's shape: (K, d, d) full, (d, d) tied, (K, d) diag, (K,) spherical.
    ``first`` and ``second`` are None for a pass that skipped the moments (``moments=False``).
    """

    log_likelihood: float  # sum_i w_i log sum_k pi_k N(x_i | ...)
    total_weight: float  # sum_i w_i
    nk: np.ndarray  # (K,) sum_i w_i r_ik
    first: np.ndarray | None  # (K, d) sum_i w_i r_ik y_ik
    second: np.ndarray | None

    def __add__(self, other: RawStatistics) -> RawStatistics:
        return RawStatistics(
            self.log_likelihood + other.log_likelihood,
            self.total_weight + other.total_weight,
            self.nk + other.nk,
            None if self.first is None else self.first + other.first,
            None if self.second is None else self.second + other.second,
        )


@dataclass
class SufficientStatistics:
    """What an M-step needs (notation of docs/MATH.md).

    ``nk`` (K,) soft counts, ``xbar`` (K, d) weighted means, ``scatter`` the scatter about
    ``xbar`` in the family's shape (full: S_k; tied: sum_k S_k; diag: diag S_k; spherical:
    tr S_k), ``total_weight`` = N.
    """

    nk: np.ndarray
    xbar: np.ndarray
    scatter: np.ndarray
    total_weight: float
    log_likelihood: float = np.nan
    #: The covariances the statistics were computed under (EM's current estimate), where the
    #: caller has them: a warm start for the families whose M-step iterates.
    start: np.ndarray | None = None


class CovarianceFamily:
    """Base of the covariance families.  Subclasses are stateless."""

    name: ClassVar[str]
    #: mclust's name of the model (``"VVV"`` for full, ...; docs/MATH.md, "mclust's models").
    mclust_name: ClassVar[str] = ""
    #: Why the posterior layer (``bayes_gmm.bayes``) has no PyMC form of the model; empty when
    #: it has one (:attr:`posterior_form`).
    posterior_form_missing: ClassVar[str] = ""
    #: Whether the M-step is the exact maximiser of the complete-data log-posterior, so that
    #: EM's objective never decreases (False only for mclust's EEI update, which keeps the
    #: weighted means; see its docstring).
    exact_mode: ClassVar[bool] = True

    @property
    def posterior_form(self) -> bool:
        """Whether the posterior layer has a PyMC form of the model."""
        return not self.posterior_form_missing
    #: Named dimensions of ``covariances_`` (and of each draw's covariances in a posterior):
    #: ``component`` (K), ``feature`` (d) and ``feature_bis`` (d, the second matrix index).
    covariance_dims: ClassVar[tuple[str, ...]]

    # -- shapes and counts -------------------------------------------------------------
    def n_cov_parameters(self, n_components: int, n_features: int) -> int:
        raise NotImplementedError

    def n_parameters(self, n_components: int, n_features: int) -> int:
        """Free parameters of the whole mixture (covariances, means, weights)."""
        return (
            self.n_cov_parameters(n_components, n_features)
            + n_components * n_features
            + n_components
            - 1
        )

    def covariance_shape(self, k: int, d: int) -> tuple[int, ...]:
        """Shape of ``covariances_`` (and ``precisions_cholesky_``) for K components, d features."""
        raise NotImplementedError

    def check_covariances(self, covariances: np.ndarray, k: int, d: int) -> np.ndarray:
        """``covariances`` as a float array, or a ValueError naming the expected shape."""
        cov = np.asarray(covariances, dtype=float)
        shape = self.covariance_shape(k, d)
        if cov.shape != shape:
            raise ValueError(f"{self.name} covariances must have shape {shape}, got {cov.shape}.")
        return cov

    def dense(self, covariances: np.ndarray, k: int, d: int) -> np.ndarray:
        """Dense ``(..., K, d, d)`` matrices from the family's shape; leading axes (draws) kept."""
        raise NotImplementedError

    def precisions(self, prec_chol: np.ndarray) -> np.ndarray:
        """Precisions (the family's shape) from their Cholesky factors."""
        return np.asarray(prec_chol, dtype=float) ** 2

    def covariances_cholesky_from_precisions(self, prec_chol: np.ndarray) -> np.ndarray:
        """Lower Cholesky factors of the covariances (standard deviations for variances)."""
        return 1.0 / np.asarray(prec_chol, dtype=float)

    # -- units (bayes_gmm.model.scaling) -------------------------------------------------------
    #: Whether the family's model needs one scale for all columns (a spherical component
    #: has one variance for every column, so per-column scales would change the model).
    common_scale: ClassVar[bool] = False
    #: Why (for the warning when the columns' scales differ).
    common_scale_reason: ClassVar[str] = ""

    def rescale_covariances(self, covariances: np.ndarray, scale: np.ndarray) -> np.ndarray:
        """Covariances (family shape; leading axes kept) of the data ``x * scale`` (scale (d,))."""
        raise NotImplementedError

    def scale_factor_rows(self, factor: np.ndarray, row_scale: np.ndarray) -> np.ndarray:
        """A Cholesky factor (or standard deviation) with row ``j`` multiplied by ``row_scale_j``.

        For the data ``x * s``: the covariance factor is ``S L`` (``row_scale = s``) and the
        precision factor ``S^-1 P`` (``row_scale = 1 / s``).
        """
        raise NotImplementedError

    def log_jacobian(self, n_components: int, scale: np.ndarray, prior: NIWPrior | None = None) -> float:
        """How the covariances' log-prior changes from the units ``z`` to ``x = z * scale``:
        ``log p_z(Sigma_z) - log p_x(Sigma_x)``, for a proper density ``log |d Sigma_x / d
        Sigma_z|`` of :meth:`rescale_covariances` over all free entries.  ``prior`` (in either
        units) is for the families whose log-prior is not normalised (mclust's counts)."""
        raise NotImplementedError

    # -- factorisations ----------------------------------------------------------------
    def cholesky(self, covariances: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Return ``(covariances_cholesky, precisions_cholesky)``.

        Raises :class:`SingularCovarianceError` (a ``ValueError``) naming the component when a
        covariance is not numerically positive definite.
        """
        raise NotImplementedError

    def check_not_singular(self, covariances: np.ndarray, rel_tol: float) -> None:
        """Raise :class:`SingularCovarianceError` naming the component whose covariance is
        singular by ``scipy.stats.multivariate_normal``'s rule: non-finite, or an eigenvalue
        (a variance) at most ``rel_tol`` times the largest (the plain EM's check)."""
        for j, values in enumerate(self._spectra(np.asarray(covariances, dtype=float))):
            if not np.all(np.isfinite(values)):
                raise singular(self._component(j), self.name, "it has non-finite entries")
            if values.min() <= 0 or values.min() <= rel_tol * max(abs(values.max()), np.finfo(float).tiny):
                raise singular(
                    self._component(j),
                    self.name,
                    f"its {self._spectrum_name} range from {values.min():.3g} to {values.max():.3g}",
                )

    #: What :meth:`_spectra` returns, for the message.
    _spectrum_name: ClassVar[str] = "eigenvalues"

    def _spectra(self, covariances: np.ndarray) -> list[np.ndarray]:
        """Per covariance matrix of the family, its eigenvalues (or variances)."""
        raise NotImplementedError

    def _component(self, j: int) -> int | None:
        """The component that covariance ``j`` of :meth:`_spectra` belongs to (None: all)."""
        return j

    def params(self, weights, means, covariances) -> GaussianParams:
        cov_chol, prec_chol = self.cholesky(covariances)
        return GaussianParams(
            np.asarray(weights, dtype=float),
            np.asarray(means, dtype=float),
            covariances,
            prec_chol,
            cov_chol,
        )

    def covariances_from_precisions_cholesky(self, prec_chol: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def identity_covariances(self, n_components: int, n_features: int) -> np.ndarray:
        """Unit covariances in the family's shape (whitening by them only shifts the data)."""
        raise NotImplementedError

    # -- checks of given matrices (estimator arguments, saved models) ------------------
    #: What :meth:`is_positive_definite` asks of the family's matrices, for messages.
    positive_definite_words: ClassVar[str] = "positive"

    def is_positive_definite(self, matrices: np.ndarray) -> bool:
        """Whether every covariance (or precision) in the family's shape is positive definite."""
        raise NotImplementedError

    def check_positive_definite(self, matrices: np.ndarray, name: str) -> None:
        """ValueError naming ``name`` unless :meth:`is_positive_definite`."""
        if not self.is_positive_definite(matrices):
            raise ValueError(f"{name} must be {self.positive_definite_words}.")

    def inverse(self, matrices: np.ndarray) -> np.ndarray:
        """Covariances from precisions (or back), in the family's shape."""
        return 1.0 / np.asarray(matrices, dtype=float)

    def precision_factor_diagonal(self, prec_chol: np.ndarray, name: str = "the precision factors") -> np.ndarray:
        """The diagonal of precision factors; ValueError naming ``name`` if they are not in the
        family's form."""
        return np.asarray(prec_chol)

    def whitening_residual(self, covariances: np.ndarray, prec_chol: np.ndarray) -> tuple[np.ndarray, np.ndarray | float]:
        """How far the precision factors are from whitening the covariances, and its bound.

        ``|P^T Sigma P - I|`` per matrix, against ``d ||D P||^2`` (``D`` the standard
        deviations), which bounds it times ``eps`` when each array was rounded on its own.
        """
        return np.abs(covariances * prec_chol**2 - 1.0), 1.0

    # -- the conjugate prior's covariance part (docs/MATH.md) -----------------------------
    #: True: an inverse-Wishart with scale matrix ``psi0`` and ``nu0`` degrees of freedom
    #: (matrix families); False: inverse-gamma variances with shape ``a0`` and rate ``b0``.
    wishart_prior: ClassVar[bool] = False

    def prior_rate_shape(self, n_features: int) -> tuple[int, ...]:
        """Shape of the inverse-gamma rate ``b0`` (families without a Wishart prior)."""
        raise NotImplementedError

    def default_prior_rate(self, column_variances: np.ndarray, raw_variances: np.ndarray, live: np.ndarray):
        """The default ``b0`` per unit of ``prior_strength * K^(-2/d) / 2``, from the
        standardised data's column variances (floored for constant columns), their raw values
        and the mask of the columns that are not constant."""
        raise NotImplementedError

    # -- densities ---------------------------------------------------------------------
    def whiten_rows_t(self, X: np.ndarray, means: np.ndarray, prec_chol: np.ndarray) -> np.ndarray:
        """The whitened block in the layout the kernels use: shape (K, d, m), C-contiguous.

        With the rows last every elementwise step and every reduction runs over long
        contiguous rows, and each component's second moment is one SYRK of a (d, m) matrix.
        """
        raise NotImplementedError

    def log_det_precision_cholesky(self, prec_chol: np.ndarray, d: int) -> np.ndarray:
        raise NotImplementedError

    def _log_prob_t(self, X: np.ndarray, params_means, prec_chol, log_weights=None):
        d = X.shape[1]
        Y = self.whiten_rows_t(X, params_means, prec_chol)
        log_prob = squared_norms_t(Y)
        log_prob *= -0.5
        const = self.log_det_precision_cholesky(prec_chol, d) - 0.5 * d * LOG_2PI
        if log_weights is not None:
            const = const + log_weights
        log_prob += np.asarray(const, dtype=log_prob.dtype).reshape(-1, 1)
        return Y, log_prob

    def log_prob(self, X: np.ndarray, means: np.ndarray, prec_chol: np.ndarray) -> np.ndarray:
        """``log N(x_i | mu_k, Sigma_k)``, shape (n, K), in ``X``'s floating dtype."""
        return self._log_prob_t(X, means, prec_chol)[1].T

    # -- one pass: E-step and statistics ------------------------------------------------
    def accumulate(
        self, X: np.ndarray, sample_weight: np.ndarray | None, params: GaussianParams, moments: bool = True
    ) -> RawStatistics:
        """E-step on a block of rows and its statistics, in one pass over ``X``.

        ``moments=False`` skips the first and second moments (about half the work for large
        d), for a pass that only needs the log-likelihood; the log-likelihood is the same
        number, bit for bit.

        ``X`` (m, d) is float64 or float32.  float64 is computed in float64.  float32 is
        computed in float32 (whitening, densities, responsibilities and the block's sums;
        about 7 significant digits) and the statistics are returned in float64, where the
        blocks add up; the log-likelihood is summed in float64.  On well-scaled data a
        float32 fit's parameters agree with the float64 fit of the same numbers to about
        1e-4 relative (tested), its log-likelihood to about 1e-6.
        """
        Y, log_prob = self._block_log_prob(X, params)
        resp, log_norm = responsibilities_inplace(log_prob)
        if sample_weight is None:
            loglik = float(np.sum(log_norm))
            total = float(X.shape[0])
        else:
            sample_weight = np.asarray(sample_weight, dtype=np.float64)
            resp *= sample_weight.astype(resp.dtype)
            loglik = float(sample_weight @ log_norm)
            total = float(np.sum(sample_weight))
        nk = resp.sum(axis=1, dtype=np.float64)
        first, second = self._block_moments(Y, resp, params) if moments else (None, None)
        return RawStatistics(loglik, total, nk, first, second)

    def _block_log_prob(self, X: np.ndarray, params: GaussianParams) -> tuple[np.ndarray, np.ndarray]:
        """The whitened block in the layout :meth:`_block_moments` takes, and the weighted
        log-densities ``log pi_k + log N(x_i | ...)`` (K, m), which are overwritten."""
        return self._log_prob_t(X, params.means, params.precisions_cholesky, np.log(params.weights))

    def _block_moments(self, Y: np.ndarray, resp: np.ndarray, params: GaussianParams) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`whitened_moments` of the block :meth:`_block_log_prob` returned (under ``params``)."""
        return self.whitened_moments(Y, resp)

    def whitened_moments(self, Y: np.ndarray, resp: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``sum_i r_ik y_ik`` (K, d) and the family's second moment, in float64.

        ``Y`` (K, d, m) and ``resp`` (K, m); ``Y`` is overwritten.
        """
        raise NotImplementedError

    def finalize(self, raw: RawStatistics, params: GaussianParams) -> SufficientStatistics:
        """Move whitened statistics back to data coordinates: means and scatter about them."""
        raise NotImplementedError

    def statistics_from_responsibilities(
        self, X: np.ndarray, resp: np.ndarray, sample_weight: np.ndarray | None = None
    ) -> SufficientStatistics:
        """Plain reference computation of the statistics (no whitening, no chunks)."""
        w = resp if sample_weight is None else resp * np.asarray(sample_weight)[:, None]
        nk = w.sum(axis=0)
        xbar = (w.T @ X) / ordered_safe(nk)[:, None]
        total = float(X.shape[0] if sample_weight is None else np.sum(sample_weight))
        return SufficientStatistics(nk, xbar, self._reference_scatter(X, w, xbar), total)

    def _reference_scatter(self, X, w, xbar) -> np.ndarray:
        raise NotImplementedError

    def component_scatter(self, D: np.ndarray, weight: np.ndarray | None = None) -> np.ndarray:
        """Scatter ``sum_i w_i d_i d_i^T`` of rows ``D`` (m, d) that belong to one component.

        In the family's shape for one component (full ``(1, d, d)``, tied ``(d, d)``, diag
        ``(1, d)``, spherical ``(1,)``); scatters of the same component add up, and
        :meth:`scatter_from_components` turns one per component into the family's scatter.
        """
        w = np.ones((D.shape[0], 1)) if weight is None else np.asarray(weight, dtype=np.float64)[:, None]
        return self._reference_scatter(D, w, np.zeros((1, D.shape[1])))

    def scatter_from_components(self, scatters: list[np.ndarray]) -> np.ndarray:
        """The family's scatter from each component's :meth:`component_scatter`."""
        return np.concatenate(scatters)

    # -- M-steps -----------------------------------------------------------------------
    def map_step(self, stats: SufficientStatistics, prior: NIWPrior) -> tuple[np.ndarray, np.ndarray]:
        """Exact posterior mode of means and covariances given the statistics (docs/MATH.md)."""
        nk, xbar = stats.nk, stats.xbar
        kappa0, m0 = prior.kappa0, prior.m0
        means = (nk[:, None] * xbar + kappa0 * m0) / (nk + kappa0)[:, None]
        shrink = kappa0 * nk / (kappa0 + nk)
        return means, self._map_covariances(stats, prior, xbar - m0, shrink)

    def _map_covariances(self, stats, prior, diff, shrink) -> np.ndarray:
        raise NotImplementedError

    def ml_step(self, stats: SufficientStatistics, reg_covar: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
        """Maximum-likelihood means and covariances (plain EM), ``reg_covar`` on the diagonal."""
        raise NotImplementedError

    # -- prior -------------------------------------------------------------------------
    def log_prior(
        self, means: np.ndarray, covariances: np.ndarray, prior: NIWPrior, covariances_cholesky=None
    ) -> float:
        """``log p(mu, Sigma)`` under the prior (weights not included).

        ``covariances_cholesky`` (the lower factors, as in :class:`GaussianParams`) saves a
        factorisation when the caller has it.
        """
        raise NotImplementedError

    # -- sampling ----------------------------------------------------------------------
    def component_cholesky(self, cov_chol: np.ndarray, k: int, d: int) -> np.ndarray:
        """Lower Cholesky factor of component ``k``'s covariance as a dense (d, d) matrix."""
        raise NotImplementedError

    # -- the posterior's pieces: draws on a leading axis ---------------------------------
    # (bayes_gmm.bayes uses these for the PyMC model and for the numerics on its draws)
    def core_signature(self) -> str:
        """The covariances' core dims in a gufunc signature (``(k,p,p)`` for full, ...)."""
        letters = {"component": "k", "feature": "p", "feature_bis": "p"}
        return "(" + ",".join(letters[dim] for dim in self.covariance_dims) + ")"

    def n_quadratic_features(self, n_features: int) -> int:
        """Columns of :meth:`quadratic_features`."""
        raise NotImplementedError

    def quadratic_features(self, X: np.ndarray) -> np.ndarray:
        """Features (n, F) of (centred) rows whose products with :meth:`quadratic_coefficients`
        give ``(x - mu_k)^T Sigma_k^-1 (x - mu_k)``: ``x x^T`` (or what the family needs of it), ``x``."""
        raise NotImplementedError

    def quadratic_coefficients(self, mu, covariances, n_features: int, ops=NUMPY_OPS):
        """Coefficients ``(..., K, F)``, the constants ``mu_k^T Sigma_k^-1 mu_k`` and
        ``log det Sigma_k`` (``(..., K)`` each) of the quadratic form, so that
        ``(x - mu_k)^T Sigma_k^-1 (x - mu_k) = features(x) . coef_k + const_k``.

        ``mu`` (..., K, d) and ``covariances`` (..., family shape) may carry leading axes
        (draws); ``ops`` is :data:`~bayes_gmm.model.array_ops.NUMPY_OPS` or the posterior
        layer's PyTensor equivalent (the PyMC model's likelihood is this same code).
        """
        raise NotImplementedError

    def whiten_draws(self, diff: np.ndarray, covariances: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``z = L_k^-1 (x - mu_k)`` (S, n, K, d) from ``diff = x - mu_k`` (S, n, K, d), and
        ``log det Sigma_k`` (S, K), for covariances (S, family shape)."""
        raise NotImplementedError

    def log_prob_draws(self, X: np.ndarray, weights, means, covariances) -> np.ndarray:
        """``log pi_k + log N(x_i | mu_k, Sigma_k)`` of every draw (leading axis), (S, n, K)."""
        d = X.shape[1]
        z, logdet = self.whiten_draws(X[None, :, None, :] - means[:, None, :, :], covariances)
        with np.errstate(divide="ignore"):
            log_w = np.log(weights)
        return log_w[:, None, :] - 0.5 * (d * LOG_2PI + logdet[:, None, :] + np.sum(z * z, axis=-1))

    def kl_divergence_draws(self, means, covariances, ref_means, ref_covariances) -> np.ndarray:
        """``KL(N(mu_j, Sigma_j) || N(ref_mu_k, ref_Sigma_k))`` for every draw (leading axis)
        and pair of components, (S, K_draw, K_ref)."""
        s, k, d = means.shape
        cov = self.dense(covariances, k, d)
        ref = self.dense(ref_covariances, k, d)
        ref_prec = np.linalg.inv(ref)  # (K, d, d)
        _, ref_logdet = np.linalg.slogdet(ref)
        _, logdet = np.linalg.slogdet(cov)  # (S, K)
        trace = np.einsum("kab,sjba->sjk", ref_prec, cov)
        diff = ref_means[None, None, :, :] - means[:, :, None, :]  # (S, j, k, d)
        quad = np.einsum("sjka,kab,sjkb->sjk", diff, ref_prec, diff)
        return 0.5 * (trace + quad - d + ref_logdet[None, None, :] - logdet[:, :, None])

    def scale_noise(self, covariances: np.ndarray, rows: np.ndarray, labels: np.ndarray, eps: np.ndarray) -> np.ndarray:
        """``L_c eps`` (S, n, d): standard normal noise ``eps`` (S, n, d) given the covariance
        of component ``c = labels[s, i]`` of draw ``rows[s, i]`` (covariances (S, family shape))."""
        raise NotImplementedError

    def draw_prior_covariances(self, prior: NIWPrior, n_components: int, rng: np.random.Generator) -> np.ndarray:
        """One draw of the covariances (family shape) from the prior (SciPy's distributions)."""
        raise NotImplementedError

    def mean_scale(self, covariances: np.ndarray, spread: np.ndarray, n_features: int) -> np.ndarray:
        """The scale the posterior's means move in: each component's covariance factor times its
        ``spread`` (K,): (K, d, d) lower factors for matrix families, (K, d) standard deviations
        for variance families."""
        raise NotImplementedError

    def symmetrized(self, covariances: np.ndarray) -> np.ndarray:
        """Covariances (leading axes kept) made exactly symmetric where they are matrices."""
        return covariances
