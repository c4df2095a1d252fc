"""Covariance families: one small class per covariance type, found through a registry.

Pure numerics (NumPy and SciPy only).  Each family knows

- the shapes of its parameters (scikit-learn's conventions: ``covariances_`` is (K, d, d) for
  ``full``, (d, d) for ``tied``, (K, d) for ``diag``, (K,) for ``spherical``; the precision
  Cholesky factor is upper triangular, ``precision = P P^T``);
- its log-density (``log_prob``) and the one-pass E-step that also accumulates the
  sufficient statistics (``accumulate``);
- its M-step from sufficient statistics, MAP (``map_step``) and maximum likelihood
  (``ml_step``);
- its parameter count and its part of the prior log-density.

Sufficient statistics are accumulated *in the whitened coordinates of the current parameters*
(``y = (x - mu_k) P_k``): the E-step computes ``y`` anyway, the statistics of several blocks of
rows simply add (chunked, weighted or distributed data), and the scatter about the new mean is
recovered with a d x d transform, without the cancellation of raw second moments.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

import numpy as np
from scipy.linalg import lapack

from bayes_gmm.exceptions import SingularCovarianceError
from bayes_gmm.model.blas import trmm_right_upper
from bayes_gmm.model.densities import log_invgamma, log_invwishart

if TYPE_CHECKING:
    from bayes_gmm.model.prior import NIWPrior

__all__ = [
    "COVARIANCE_FAMILIES",
    "CovarianceFamily",
    "GaussianParams",
    "RawStatistics",
    "SufficientStatistics",
    "get_family",
]

_LOG_2PI = np.log(2.0 * np.pi)
#: Up to this dimension the full family factors all covariances in one batched call.
_BATCHED_CHOLESKY_MAX_D = 8
#: Up to this dimension the full family gets a block's moments from batched general products;
#: above it, from one symmetric product (SYRK) per component, which does half the flops.
_GEMM_MAX_D = 24
#: Up to this dimension the full family whitens a block with one general matrix product for
#: all components; above it, with one triangular product (TRMM) per component, half the flops.
#: One product is as fast as K TRMMs on one thread up to d = 100 (measured on an Intel Xeon VM,
#: OpenBLAS SkylakeX: 382 vs 379 ms per iteration at (1e5, 100, 5)) and far faster on two:
#: K small calls per block, each with its copy, made the two block threads wait on each other
#: (two threads 1316 ms per iteration at (2e5, 50, 20) against 795 ms on one; with the one
#: product 617 ms).  At d = 200 TRMM is faster (408 against 483 ms per iteration, one thread).
_STACKED_GEMM_MAX_D = 128


# ----------------------------------------------------------------------------------------
# containers
# ----------------------------------------------------------------------------------------
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


# ----------------------------------------------------------------------------------------
# helpers
# ----------------------------------------------------------------------------------------
def _singular(component: int | None, family: str, reason: str) -> SingularCovarianceError:
    where = "the tied covariance" if component is None else f"the covariance of component {component}"
    return SingularCovarianceError(
        f"{where} ({family}) is not positive definite: {reason}. "
        "This happens when a component collapses onto a few points. bayes_gmm.MapEM puts a "
        "conjugate prior on the covariances and cannot fail this way; with plain EM, raise "
        "reg_covar or change the initialisation.",
        component=component,
    )


def _triangular_inverse(lower: np.ndarray) -> np.ndarray:
    inv, info = lapack.dtrtri(lower, lower=1)
    if info != 0:  # pragma: no cover - only reachable on a zero pivot, caught before
        raise np.linalg.LinAlgError("singular triangular factor")
    return inv


def _ordered_safe(nk: np.ndarray) -> np.ndarray:
    return np.where(nk > 0, nk, 1.0)


def _work_dtype(X: np.ndarray) -> type:
    """float32 data are computed in float32, anything else in float64."""
    return np.float32 if X.dtype == np.float32 else np.float64


def _centered_t(X: np.ndarray, means: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(X - c)^T`` (d, m) in the working dtype and ``means - c`` (K, d) in float64.

    ``c``, the mean of the component means, keeps ``x P - mu P`` accurate for data far from
    the origin.
    """
    dtype = _work_dtype(X)
    # the centre rounded to the working dtype, so that the data and the means are shifted by
    # the same number (a float32 fit far from the origin otherwise whitens with a bias)
    center = means.mean(axis=0).astype(dtype).astype(np.float64)
    Xc = np.subtract(X, center.astype(dtype), dtype=dtype)
    return Xc.T, means - center


def _squared_norms_t(Y: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """``sum_j Y[:, j, :]**2``, shape (K, m), from Y (K, d, m), into ``out`` if given."""
    if Y.shape[1] > 3:
        return np.einsum("kdm,kdm->km", Y, Y, out=out)
    out = np.multiply(Y[:, 0, :], Y[:, 0, :], out=out)
    for j in range(1, Y.shape[1]):
        row = Y[:, j, :]
        out += row * row
    return out


_workspace = threading.local()


def _scratch(name: str, shape: tuple[int, ...], dtype) -> np.ndarray:
    """A scratch array of this thread, reused from block to block (no page faults per block).

    Its contents are undefined; it is valid until the next call with the same ``name`` on
    this thread, so it never leaves the function that asked for it.
    """
    buffers = getattr(_workspace, "buffers", None)
    if buffers is None:
        buffers = _workspace.buffers = {}
    size = int(np.prod(shape))
    buf = buffers.get(name)
    if buf is None or buf.dtype != dtype or buf.size < size:
        buf = buffers[name] = np.empty(max(size, 1), dtype=dtype)
    return buf[:size].reshape(shape)


#: Smallest log responsibility kept (relative to the row's largest), per working dtype.
_LOG_RESPONSIBILITY_FLOOR = {np.float64: -345.0, np.float32: -40.0}


def _responsibilities_inplace(log_prob: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Turn weighted log-probabilities (K, m) into responsibilities (K, m), in place.

    Returns ``(resp, log_norm)`` with ``log_norm`` (m,) the float64 log normaliser.
    """
    col_max = log_prob.max(axis=0)
    log_prob -= col_max
    # no subnormal numbers: exp() of a very negative number and every product with it run
    # through slow microcode on many CPUs (measured 6x slower per iteration on an Intel Xeon
    # when most of a row's responsibilities underflow, as with k above the number of
    # clusters).  Below the floor a responsibility is raised to exp(floor) (1e-150 in float64,
    # 4e-18 in float32, far below each type's resolution), so that it and its products with the
    # whitened data stay normal numbers.
    np.maximum(log_prob, _LOG_RESPONSIBILITY_FLOOR[log_prob.dtype.type], out=log_prob)
    np.exp(log_prob, out=log_prob)
    total = log_prob.sum(axis=0)
    log_prob *= 1.0 / total
    log_norm = col_max.astype(np.float64) + np.log(total, dtype=np.float64)
    return log_prob, log_norm


def _diagonal_moments(Y: np.ndarray, resp: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``sum_i r_ik y_ik`` and ``sum_i r_ik y_ik**2`` (both (K, d), float64); Y (K, d, m) overwritten."""
    column = resp[:, :, None]
    first = np.matmul(Y, column)[:, :, 0].astype(np.float64)
    Y *= Y
    second = np.matmul(Y, column)[:, :, 0].astype(np.float64)
    return first, second


class CovarianceFamily:
    """Base of the covariance families.  Subclasses are stateless."""

    name: ClassVar[str]
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

    def rescale_covariances(self, covariances: np.ndarray, scale: np.ndarray) -> np.ndarray:
        """Covariances (family shape; leading axes kept) of the data ``x * scale`` (scale (d,))."""
        raise NotImplementedError

    def scale_factor_rows(self, factor: np.ndarray, row_scale: np.ndarray) -> np.ndarray:
        """A Cholesky factor (or standard deviation) with row ``j`` multiplied by ``row_scale_j``.

        For the data ``x * s``: the covariance factor is ``S L`` (``row_scale = s``) and the
        precision factor ``S^-1 P`` (``row_scale = 1 / s``).
        """
        raise NotImplementedError

    def log_jacobian(self, n_components: int, scale: np.ndarray) -> float:
        """``log |d Sigma_x / d Sigma_z|`` of :meth:`rescale_covariances` over all free entries."""
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
                raise _singular(self._component(j), self.name, "it has non-finite entries")
            if values.min() <= 0 or values.min() <= rel_tol * max(abs(values.max()), np.finfo(float).tiny):
                raise _singular(
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
    def _whiten_t(self, X: np.ndarray, means: np.ndarray, prec_chol: np.ndarray) -> np.ndarray:
        """The whitened block in the layout the kernels use: shape (K, d, m), C-contiguous.

        With the rows last every elementwise step and every reduction runs over long
        contiguous rows, and each component's second moment is one SYRK of a (d, m) matrix.
        """
        raise NotImplementedError

    def log_det_precision_cholesky(self, prec_chol: np.ndarray, d: int) -> np.ndarray:
        raise NotImplementedError

    def _log_prob_t(self, X: np.ndarray, params_means, prec_chol, log_weights=None):
        d = X.shape[1]
        Y = self._whiten_t(X, params_means, prec_chol)
        log_prob = _squared_norms_t(Y)
        log_prob *= -0.5
        const = self.log_det_precision_cholesky(prec_chol, d) - 0.5 * d * _LOG_2PI
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
        resp, log_norm = _responsibilities_inplace(log_prob)
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
        """:meth:`_moments` of the block :meth:`_block_log_prob` returned (under ``params``)."""
        return self._moments(Y, resp)

    def _moments(self, Y: np.ndarray, resp: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
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
        xbar = (w.T @ X) / _ordered_safe(nk)[:, None]
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


# ----------------------------------------------------------------------------------------
# full
# ----------------------------------------------------------------------------------------
class _MatrixFamily(CovarianceFamily):
    """Families whose covariances are matrices (full, tied): upper precision factors."""

    def _spectra(self, covariances):
        stack = covariances.reshape(-1, *covariances.shape[-2:])
        return [np.linalg.eigvalsh(c) if np.all(np.isfinite(c)) else c.ravel() for c in stack]

    def check_covariances(self, cov, k, d):
        cov = super().check_covariances(cov, k, d)
        if not np.allclose(cov, np.swapaxes(cov, -1, -2)):
            raise ValueError(f"{self.name} covariances must be symmetric.")
        return cov

    wishart_prior = True
    positive_definite_words = "symmetric positive definite"

    def is_positive_definite(self, matrices):
        try:
            lower = np.linalg.cholesky(np.asarray(matrices, dtype=np.float64))
        except np.linalg.LinAlgError:
            return False
        return bool(np.all(np.isfinite(lower)) and np.all(np.diagonal(lower, axis1=-2, axis2=-1) > 0))

    def inverse(self, matrices):
        return np.linalg.inv(np.asarray(matrices, dtype=float))

    def precision_factor_diagonal(self, prec_chol, name="the precision factors"):
        if np.any(np.tril(prec_chol, -1) != 0):
            raise ValueError(f"{name} must be upper triangular")
        return np.diagonal(prec_chol, axis1=-2, axis2=-1)

    def whitening_residual(self, covariances, prec_chol):
        d = covariances.shape[-1]
        c, p = covariances.reshape(-1, d, d), prec_chol.reshape(-1, d, d)
        residual = np.abs(np.swapaxes(p, 1, 2) @ c @ p - np.eye(d)).max(axis=(1, 2))
        sd = np.sqrt(np.diagonal(c, axis1=1, axis2=2))
        bound = d * np.linalg.norm(sd[:, :, None] * p, ord=2, axis=(1, 2)) ** 2
        return residual, bound

    def precisions(self, prec_chol):
        prec_chol = np.asarray(prec_chol, dtype=float)
        return prec_chol @ np.swapaxes(prec_chol, -1, -2)

    def rescale_covariances(self, covariances, scale):
        return np.asarray(covariances, dtype=float) * np.multiply.outer(scale, scale)

    def scale_factor_rows(self, factor, row_scale):
        return np.asarray(factor, dtype=float) * np.asarray(row_scale, dtype=float)[:, None]

    def _matrices(self, n_components: int) -> int:
        raise NotImplementedError

    def log_jacobian(self, n_components, scale):
        # entry (i, j) of each matrix is multiplied by s_i s_j: prod_{i <= j} s_i s_j = |S|^(d+1)
        d = len(scale)
        return float(self._matrices(n_components) * (d + 1) * np.sum(np.log(scale)))

    def log_prior(self, means, covariances, prior, covariances_cholesky=None):
        chol = np.linalg.cholesky(covariances) if covariances_cholesky is None else covariances_cholesky
        return float(
            np.sum(log_invwishart(covariances, prior.nu0, prior.psi0, chol, prior.psi0_cholesky))
            + np.sum(_log_mvnormal_batched(means, prior.m0, chol / np.sqrt(prior.kappa0)))
        )


class FullCovariance(_MatrixFamily):
    name = "full"
    covariance_dims = ("component", "feature", "feature_bis")

    def _matrices(self, n_components):
        return n_components

    def identity_covariances(self, n_components, n_features):
        return np.broadcast_to(np.eye(n_features), (n_components, n_features, n_features)).copy()

    def n_cov_parameters(self, k, d):
        return k * d * (d + 1) // 2

    def covariance_shape(self, k, d):
        return (k, d, d)

    def dense(self, covariances, k, d):
        return np.asarray(covariances, dtype=float)

    def covariances_cholesky_from_precisions(self, prec_chol):
        return np.stack([_triangular_inverse(p.T) for p in np.asarray(prec_chol, dtype=float)])

    def cholesky(self, covariances):
        cov = np.asarray(covariances, dtype=float)
        k, d, _ = cov.shape
        if d <= _BATCHED_CHOLESKY_MAX_D and np.all(np.isfinite(cov)):
            # small matrices: one batched call each instead of k LAPACK calls from Python
            try:
                lower = np.linalg.cholesky(cov)
            except np.linalg.LinAlgError:
                pass  # the loop below names the component that failed
            else:
                diag = np.diagonal(lower, axis1=1, axis2=2)
                if np.all(diag > 0) and np.all(np.isfinite(lower)):
                    prec_chol = np.triu(np.linalg.inv(lower).transpose(0, 2, 1))
                    return lower, prec_chol
        cov_chol = np.empty_like(cov)
        prec_chol = np.empty_like(cov)
        for j in range(k):
            cov_chol[j], prec_chol[j] = _cholesky_pair(cov[j], j, self.name)
        return cov_chol, prec_chol

    def covariances_from_precisions_cholesky(self, prec_chol):
        prec_chol = np.asarray(prec_chol, dtype=float)
        out = np.empty_like(prec_chol)
        for j, p in enumerate(prec_chol):
            inv = _triangular_inverse(p.T)  # (P^T)^-1: precision = P P^T, so Sigma = P^-T P^-1
            out[j] = inv @ inv.T
        return out

    def _whiten_t(self, X, means, prec_chol):
        k, d, _ = prec_chol.shape
        Xt, shifted = _centered_t(X, means)
        dtype = Xt.dtype
        # one matrix product whitens the block for all components: rows k*d..(k+1)*d are P_k^T
        stacked = prec_chol.transpose(0, 2, 1).reshape(k * d, d).astype(dtype)
        shift = np.einsum("kd,kde->ke", shifted, prec_chol).reshape(k * d, 1)
        Y = stacked @ Xt
        Y -= shift.astype(dtype)
        return Y.reshape(k, d, -1)

    def log_det_precision_cholesky(self, prec_chol, d):
        return np.sum(np.log(np.diagonal(prec_chol, axis1=1, axis2=2)), axis=1)

    def _block_log_prob(self, X, params):
        """Augmented whitened block ``Z`` (K, d+1, m): ``Z[:, 0]`` is 1, ``Z[:, 1:]`` is y.

        The row of ones makes each component's count and first moment come out of the same
        matrix product as its second moment.  ``Z`` and the log-densities are scratch arrays
        of this thread.
        """
        k, d = params.means.shape
        m = X.shape[0]
        dtype = _work_dtype(X)
        if dtype == np.float64 and d <= _PAIRS_MAX_D:
            return _pairwise_log_prob(X, params, _block_constants(self, params, dtype))
        Z = _scratch("Z", (k, d + 1, m), dtype)
        log_prob = _scratch("log_prob", (k, m), dtype)
        center, A, Q = _augmented_whitener(params, dtype)
        Xa = _augmented_rows(X, center)
        if d <= _STACKED_GEMM_MAX_D:  # all components in one general product
            np.matmul(A, Xa, out=Z.reshape(k * (d + 1), m))
            _squared_norms_t(Z[:, 1:], out=log_prob)
        else:  # half the flops; each component's norms while its block is still in cache
            for j in range(k):
                _whiten_component(Xa, Q[j], Z[j])
                np.einsum("dm,dm->m", Z[j, 1:], Z[j, 1:], out=log_prob[j])
        log_prob *= -0.5
        log_prob += _block_constants(self, params, dtype)[:, None]
        return Z, log_prob

    def _block_moments(self, Z, resp, params=None):
        """First and second moments (K, d) and (K, d, d) from the Gram matrices of ``Z``.

        ``G_k = sum_i r_ik z_ik z_ik^T`` (K, d+1, d+1) holds the first moment in ``[1:, 0]``
        and the second in ``[1:, 1:]``.  Small d: one batched product of ``r Z`` and ``Z``;
        large d: one SYRK per component of ``Z`` scaled by ``sqrt(r)``, without the rows whose
        responsibility is negligible (:func:`_weighted_rows`).
        """
        if Z.ndim == 2:  # the pairwise products of _pairwise_log_prob
            return _pairwise_moments(Z, resp, params)
        d = Z.shape[1] - 1
        if d <= _GEMM_MAX_D:
            W = np.multiply(Z, resp[:, None, :], out=_scratch("W", Z.shape, Z.dtype))
            G = np.matmul(W, Z.transpose(0, 2, 1))
        else:
            root = np.sqrt(resp)
            keep = resp > _NEGLIGIBLE_SHARE * resp.sum(axis=1, dtype=np.float64, keepdims=True)
            sparse = np.count_nonzero(keep, axis=1) <= (1.0 - _SPARSE_ZERO_SHARE) * resp.shape[1]
            G = np.empty((Z.shape[0], d + 1, d + 1), dtype=Z.dtype)
            for j, Zj in enumerate(Z):
                W = _weighted_rows(Zj, root[j], keep[j] if sparse[j] else None)
                np.matmul(W, W.T, out=G[j])
        G = G.astype(np.float64, copy=False)
        # the per-block second moments need not be symmetric: finalize symmetrises the scatter
        return G[:, 1:, 0].copy(), G[:, 1:, 1:].copy()

    def _moments(self, Y, resp):
        # scaled by sqrt(r), each second moment is a symmetric rank-m update (SYRK)
        root = np.sqrt(resp)
        Y *= root[:, None, :]
        k, d, _ = Y.shape
        first = np.empty((k, d))
        second = np.empty((k, d, d))
        for j in range(k):
            first[j] = Y[j] @ root[j]
            second[j] = Y[j] @ Y[j].T
        return first, second

    def finalize(self, raw, params):
        L = params.covariances_cholesky
        nk = raw.nk
        safe = _ordered_safe(nk)
        xbar = params.means + np.einsum("kij,kj->ki", L, raw.first) / safe[:, None]
        # mean first, then the product: first**2 overflows for weights near 1e300
        inner = raw.second - np.einsum("ki,kj->kij", raw.first / safe[:, None], raw.first)
        scatter = L @ inner @ L.transpose(0, 2, 1)
        scatter = 0.5 * (scatter + scatter.transpose(0, 2, 1))
        return SufficientStatistics(nk, xbar, scatter, raw.total_weight, raw.log_likelihood)

    def _reference_scatter(self, X, w, xbar):
        out = np.empty((xbar.shape[0], X.shape[1], X.shape[1]))
        for j in range(xbar.shape[0]):
            diff = X - xbar[j]
            out[j] = (w[:, j][:, None] * diff).T @ diff
        return out

    def _map_covariances(self, stats, prior, diff, shrink):
        d = diff.shape[1]
        B = shrink[:, None, None] * np.einsum("ki,kj->kij", diff, diff)
        denom = prior.nu0 + stats.nk + d + 2.0
        return (prior.psi0 + stats.scatter + B) / denom[:, None, None]

    def ml_step(self, stats, reg_covar=0.0):
        nk = stats.nk
        d = stats.xbar.shape[1]
        cov = stats.scatter / _ordered_safe(nk)[:, None, None]
        cov = cov + reg_covar * np.eye(d)
        return stats.xbar.copy(), cov

    def component_cholesky(self, cov_chol, k, d):
        return cov_chol[k]


# ----------------------------------------------------------------------------------------
# tied
# ----------------------------------------------------------------------------------------
class TiedCovariance(_MatrixFamily):
    name = "tied"
    covariance_dims = ("feature", "feature_bis")

    def _component(self, j):
        return None

    def _matrices(self, n_components):
        return 1

    def identity_covariances(self, n_components, n_features):
        return np.eye(n_features)

    def n_cov_parameters(self, k, d):
        return d * (d + 1) // 2

    def covariance_shape(self, k, d):
        return (d, d)

    def dense(self, covariances, k, d):
        cov = np.asarray(covariances, dtype=float)
        return np.broadcast_to(cov[..., None, :, :], (*cov.shape[:-2], k, d, d))

    def covariances_cholesky_from_precisions(self, prec_chol):
        return _triangular_inverse(np.asarray(prec_chol, dtype=float).T)

    def cholesky(self, covariances):
        return _cholesky_pair(np.asarray(covariances, dtype=float), None, self.name)

    def covariances_from_precisions_cholesky(self, prec_chol):
        inv = _triangular_inverse(np.asarray(prec_chol, dtype=float).T)
        return inv @ inv.T

    def _whiten_t(self, X, means, prec_chol):
        Xt, shifted = _centered_t(X, means)
        dtype = Xt.dtype
        whitened = prec_chol.T.astype(dtype) @ Xt
        return whitened[None, :, :] - (shifted @ prec_chol).astype(dtype)[:, :, None]

    def log_det_precision_cholesky(self, prec_chol, d):
        return np.sum(np.log(np.diag(prec_chol)))

    def _moments(self, Y, resp):
        root = np.sqrt(resp)
        Y *= root[:, None, :]
        k, d, _ = Y.shape
        first = np.empty((k, d))
        second = np.zeros((d, d))
        for j in range(k):
            first[j] = Y[j] @ root[j]
            second += Y[j] @ Y[j].T
        return first, second

    def finalize(self, raw, params):
        L = params.covariances_cholesky
        nk = raw.nk
        safe = _ordered_safe(nk)
        xbar = params.means + (raw.first @ L.T) / safe[:, None]
        inner = raw.second - (raw.first / safe[:, None]).T @ raw.first
        scatter = L @ inner @ L.T
        scatter = 0.5 * (scatter + scatter.T)
        return SufficientStatistics(nk, xbar, scatter, raw.total_weight, raw.log_likelihood)

    def _reference_scatter(self, X, w, xbar):
        out = np.zeros((X.shape[1], X.shape[1]))
        for j in range(xbar.shape[0]):
            diff = X - xbar[j]
            out += (w[:, j][:, None] * diff).T @ diff
        return out

    def scatter_from_components(self, scatters):
        return np.sum(scatters, axis=0)  # one matrix: the components' scatters pooled

    def _map_covariances(self, stats, prior, diff, shrink):
        k, d = diff.shape
        B = (diff * shrink[:, None]).T @ diff
        denom = prior.nu0 + stats.total_weight + k + d + 1.0
        return (prior.psi0 + stats.scatter + B) / denom

    def ml_step(self, stats, reg_covar=0.0):
        d = stats.xbar.shape[1]
        cov = stats.scatter / stats.total_weight + reg_covar * np.eye(d)
        return stats.xbar.copy(), cov

    def component_cholesky(self, cov_chol, k, d):
        return cov_chol


# ----------------------------------------------------------------------------------------
# diag
# ----------------------------------------------------------------------------------------
def _check_variances(var: np.ndarray, family: str) -> tuple[np.ndarray, np.ndarray]:
    var = np.asarray(var, dtype=float)
    bad = ~(np.isfinite(var) & (var > 0))
    if np.any(bad):
        comp = int(np.argwhere(bad)[0][0]) if var.ndim else 0
        raise _singular(comp, family, "a variance is zero, negative or not finite")
    std = np.sqrt(var)
    return std, 1.0 / std


class _VarianceFamily(CovarianceFamily):
    """Families whose covariances are variances (diag, spherical): the factor is the sd.

    Up to ``_GEMM_MAX_D`` features a block goes through the full family's kernel with diagonal
    precision factors: one matrix product whitens it for all components and one Gram product
    per component gives the moments (of which the diagonal is kept).  That does more flops
    than the elementwise path but fewer passes over memory: diag fits were 1.7x faster per
    iteration at (1e6, 10, 10) and 2.6x at (1e5, 2, 10) (one thread).  Above ``_GEMM_MAX_D``
    the elementwise path (``_whiten_t``), whose work grows as d rather than d^2, is kept.
    """

    _spectrum_name = "variances"

    def _spectra(self, covariances):
        return list(covariances.reshape(covariances.shape[0], -1))

    def is_positive_definite(self, matrices):
        return bool(np.all(np.asarray(matrices, dtype=np.float64) > 0))

    def cholesky(self, covariances):
        return _check_variances(covariances, self.name)

    def covariances_from_precisions_cholesky(self, prec_chol):
        return 1.0 / np.asarray(prec_chol, dtype=float) ** 2

    def _as_full(self, params: GaussianParams) -> GaussianParams:
        """The same mixture with dense (K, d, d) factors, for the full family's kernel."""

        def compute():
            k, d = params.means.shape
            return GaussianParams(
                params.weights,
                params.means,
                self.dense(params.covariances, k, d),
                self.dense(params.precisions_cholesky, k, d),
                self.dense(params.covariances_cholesky, k, d),
            )

        return _params_cache(params, "as_full", compute)

    def _block_log_prob(self, X, params):
        if params.means.shape[1] > _GEMM_MAX_D:
            return super()._block_log_prob(X, params)
        return COVARIANCE_FAMILIES["full"]._block_log_prob(X, self._as_full(params))

    def _block_moments(self, Y, resp, params):
        if params.means.shape[1] > _GEMM_MAX_D:
            return self._moments(Y, resp)
        first, second = COVARIANCE_FAMILIES["full"]._block_moments(Y, resp, self._as_full(params))
        return first, self._second_from_diagonal(np.diagonal(second, axis1=1, axis2=2))

    def _second_from_diagonal(self, diagonal: np.ndarray) -> np.ndarray:
        """The family's second moment from the diagonals (K, d) of the full second moments."""
        raise NotImplementedError


class DiagCovariance(_VarianceFamily):
    name = "diag"
    covariance_dims = ("component", "feature")

    def prior_rate_shape(self, n_features):
        return (n_features,)

    def default_prior_rate(self, column_variances, raw_variances, live):
        return column_variances  # one rate per column

    def rescale_covariances(self, covariances, scale):
        return np.asarray(covariances, dtype=float) * np.asarray(scale, dtype=float) ** 2

    def scale_factor_rows(self, factor, row_scale):
        return np.asarray(factor, dtype=float) * np.asarray(row_scale, dtype=float)

    def log_jacobian(self, n_components, scale):
        return float(2.0 * n_components * np.sum(np.log(scale)))

    def identity_covariances(self, n_components, n_features):
        return np.ones((n_components, n_features))

    def n_cov_parameters(self, k, d):
        return k * d

    def covariance_shape(self, k, d):
        return (k, d)

    def dense(self, covariances, k, d):
        return np.asarray(covariances, dtype=float)[..., :, None] * np.eye(d)

    def _whiten_t(self, X, means, prec_chol):
        Xt, shifted = _centered_t(X, means)
        dtype = Xt.dtype
        Y = Xt[None, :, :] - shifted.astype(dtype)[:, :, None]
        Y *= prec_chol.astype(dtype)[:, :, None]
        return Y

    def log_det_precision_cholesky(self, prec_chol, d):
        return np.sum(np.log(prec_chol), axis=1)

    def _moments(self, Y, resp):
        return _diagonal_moments(Y, resp)

    def _second_from_diagonal(self, diagonal):
        return diagonal.copy()

    def finalize(self, raw, params):
        std = params.covariances_cholesky
        nk = raw.nk
        safe = _ordered_safe(nk)
        xbar = params.means + std * raw.first / safe[:, None]
        scatter = std**2 * (raw.second - (raw.first / safe[:, None]) * raw.first)
        return SufficientStatistics(nk, xbar, np.maximum(scatter, 0.0), raw.total_weight, raw.log_likelihood)

    def _reference_scatter(self, X, w, xbar):
        return np.stack([w[:, j] @ (X - xbar[j]) ** 2 for j in range(xbar.shape[0])])

    def _map_covariances(self, stats, prior, diff, shrink):
        B = shrink[:, None] * diff**2
        return (2.0 * prior.b0 + stats.scatter + B) / (2.0 * prior.a0 + stats.nk + 3.0)[:, None]

    def ml_step(self, stats, reg_covar=0.0):
        return stats.xbar.copy(), stats.scatter / _ordered_safe(stats.nk)[:, None] + reg_covar

    def log_prior(self, means, covariances, prior, covariances_cholesky=None):
        var = covariances / prior.kappa0
        return float(
            np.sum(log_invgamma(covariances, prior.a0, prior.b0))
            + np.sum(-0.5 * (_LOG_2PI + np.log(var) + (means - prior.m0) ** 2 / var))
        )

    def component_cholesky(self, cov_chol, k, d):
        return np.diag(cov_chol[k])


# ----------------------------------------------------------------------------------------
# spherical
# ----------------------------------------------------------------------------------------
class SphericalCovariance(_VarianceFamily):
    name = "spherical"
    covariance_dims = ("component",)
    common_scale = True

    def prior_rate_shape(self, n_features):
        return ()

    def default_prior_rate(self, column_variances, raw_variances, live):
        # one rate: the mean variance of the columns that are not constant
        return float(np.mean(raw_variances[live]) if live.any() else np.mean(column_variances))

    @staticmethod
    def _common(scale) -> float:
        scale = np.asarray(scale, dtype=float).reshape(-1)
        if not np.all(scale == scale[0]):
            raise ValueError("a spherical covariance can only be rescaled by one scale for all columns.")
        return float(scale[0])

    def rescale_covariances(self, covariances, scale):
        return np.asarray(covariances, dtype=float) * self._common(scale) ** 2

    def scale_factor_rows(self, factor, row_scale):
        return np.asarray(factor, dtype=float) * self._common(row_scale)

    def log_jacobian(self, n_components, scale):
        return float(2.0 * n_components * np.log(self._common(scale)))

    def identity_covariances(self, n_components, n_features):
        return np.ones(n_components)

    def n_cov_parameters(self, k, d):
        return k

    def covariance_shape(self, k, d):
        return (k,)

    def dense(self, covariances, k, d):
        return np.asarray(covariances, dtype=float)[..., None, None] * np.eye(d)

    def _whiten_t(self, X, means, prec_chol):
        Xt, shifted = _centered_t(X, means)
        dtype = Xt.dtype
        Y = Xt[None, :, :] - shifted.astype(dtype)[:, :, None]
        Y *= prec_chol.astype(dtype)[:, None, None]
        return Y

    def log_det_precision_cholesky(self, prec_chol, d):
        return d * np.log(prec_chol)

    def _moments(self, Y, resp):
        first, second = _diagonal_moments(Y, resp)
        return first, second.sum(axis=1)

    def _second_from_diagonal(self, diagonal):
        return diagonal.sum(axis=1)

    def finalize(self, raw, params):
        std = params.covariances_cholesky
        nk = raw.nk
        safe = _ordered_safe(nk)
        xbar = params.means + std[:, None] * raw.first / safe[:, None]
        scatter = std**2 * (raw.second - np.sum((raw.first / safe[:, None]) * raw.first, axis=1))
        return SufficientStatistics(nk, xbar, np.maximum(scatter, 0.0), raw.total_weight, raw.log_likelihood)

    def _reference_scatter(self, X, w, xbar):
        return np.array([w[:, j] @ np.sum((X - xbar[j]) ** 2, axis=1) for j in range(xbar.shape[0])])

    def _map_covariances(self, stats, prior, diff, shrink):
        d = diff.shape[1]
        B = shrink * np.sum(diff**2, axis=1)
        return (2.0 * prior.b0 + stats.scatter + B) / (2.0 * prior.a0 + (stats.nk + 1.0) * d + 2.0)

    def ml_step(self, stats, reg_covar=0.0):
        d = stats.xbar.shape[1]
        return stats.xbar.copy(), stats.scatter / (d * _ordered_safe(stats.nk)) + reg_covar

    def log_prior(self, means, covariances, prior, covariances_cholesky=None):
        d = means.shape[1]
        var = covariances / prior.kappa0
        sq = np.sum((means - prior.m0) ** 2, axis=1)
        return float(
            np.sum(log_invgamma(covariances, prior.a0, prior.b0))
            + np.sum(-0.5 * (d * (_LOG_2PI + np.log(var)) + sq / var))
        )

    def component_cholesky(self, cov_chol, k, d):
        return cov_chol[k] * np.eye(d)


def _params_cache(params: GaussianParams, key, compute):
    """``compute()``, kept on ``params`` (which are never modified) for the next blocks."""
    cache = params.__dict__.setdefault("_block_cache", {})
    if key not in cache:
        cache[key] = compute()
    return cache[key]


def _block_constants(family: CovarianceFamily, params: GaussianParams, dtype) -> np.ndarray:
    """``log pi_k + log det P_k - d/2 log(2 pi)`` (K,) in ``dtype``."""

    def compute():
        d = params.means.shape[1]
        const = np.log(params.weights) + family.log_det_precision_cholesky(params.precisions_cholesky, d)
        return (const - 0.5 * d * _LOG_2PI).astype(dtype)

    return _params_cache(params, ("constants", dtype), compute)


def _augmented_whitener(params: GaussianParams, dtype) -> tuple[np.ndarray, np.ndarray, list[np.ndarray]]:
    """The augmented precision factors of the components (see ``FullCovariance._block_log_prob``).

    ``Q_k = [[1, -(mu_k - c) P_k], [0, P_k]]`` ((d+1) x (d+1), upper triangular) maps the row
    ``[1, x - c]`` to ``[1, (x - mu_k) P_k]``; ``c`` (d,), the mean of the means, keeps this
    accurate far from the origin.  Returns ``(c, A, Q)`` in ``dtype``: ``A`` (K (d+1), d+1)
    stacks the ``Q_k^T`` (one product whitens for all components) and ``Q`` lists the
    ``Q_k`` in Fortran order (one TRMM each).
    """

    def compute():
        P = params.precisions_cholesky
        k, d, _ = P.shape
        # rounded to dtype first: the rows are shifted by exactly this number (see _centered_t)
        center = params.means.mean(axis=0).astype(dtype).astype(np.float64)
        Q = np.zeros((k, d + 1, d + 1))
        Q[:, 0, 0] = 1.0
        Q[:, 0, 1:] = -np.einsum("kd,kde->ke", params.means - center, P)
        Q[:, 1:, 1:] = P
        Q = Q.astype(dtype)
        A = np.ascontiguousarray(Q.transpose(0, 2, 1)).reshape(k * (d + 1), d + 1)
        return center.astype(dtype), A, [np.asfortranarray(q) for q in Q]

    return _params_cache(params, ("whitener", dtype), compute)


#: Up to this dimension float64 blocks go through the pairwise-product kernel.
_PAIRS_MAX_D = 16


def _pairwise_whitener(params: GaussianParams) -> tuple[np.ndarray, np.ndarray, np.ndarray, tuple]:
    """What the pairwise-product kernel needs (see :func:`_pairwise_log_prob`), cached on params.

    Returns ``(c, C, Q, (rows, cols))``: ``c`` (d,) the mean of the means; ``C`` (K, p) the
    quadratic-form weights, ``-1/2 (B_k)_ij`` (doubled off the diagonal) with
    ``B_k = Q_k[:, 1:] Q_k[:, 1:]^T`` so that ``C @ pairs = -1/2 ||(x - mu_k) P_k||^2``; ``Q``
    (K, d+1, d+1) the augmented factors of :func:`_augmented_whitener`; the pair indices.
    """

    def compute():
        center, _, Q_list = _augmented_whitener(params, np.float64)
        Q = np.stack(Q_list)
        D = Q.shape[1]
        rows, cols = np.triu_indices(D)
        B = np.einsum("kij,klj->kil", Q[:, :, 1:], Q[:, :, 1:])
        C = -0.5 * B[:, rows, cols] * np.where(rows == cols, 1.0, 2.0)
        return center, np.ascontiguousarray(C), Q, (rows, cols)

    return _params_cache(params, "pairwise", compute)


def _pairwise_log_prob(X: np.ndarray, params: GaussianParams, constants: np.ndarray):
    """Weighted log-densities (K, m) of a float64 block with small d, and its pair products.

    The squared whitened distance ``||Q_k^T xa||^2`` is a quadratic form in ``xa = [1, x - c]``,
    so for all components at once it is one product of the weights ``C`` (K, p) with the
    ``p = (d+1)(d+2)/2`` products ``xa_i xa_j`` (i <= j) of each row, and the same products
    give each component's Gram matrix ``sum_i r_ik xa xa^T`` with one more product
    (:func:`_pairwise_moments`).  That is about half the flops and a third of the memory
    traffic of whitening each component (measured 2x faster per block at d = 10, K = 10 on
    an Intel Xeon).  In the standardised units MapEM fits in, ``|x - c|`` stays near the
    data's spread, so the quadratic form loses at most a few digits to cancellation.
    """
    center, C, _, _ = _pairwise_whitener(params)
    m, d = X.shape
    D = d + 1
    pairs = _scratch("pairs", (D * (D + 1) // 2, m), np.float64)
    Xa = pairs[:D]  # the products with xa_0 = 1 are xa itself
    Xa[0] = 1.0
    np.subtract(X.T, center[:, None], out=Xa[1:])
    row = D
    for i in range(1, D):
        np.multiply(Xa[i:], Xa[i], out=pairs[row : row + D - i])
        row += D - i
    log_prob = _scratch("log_prob", (C.shape[0], m), np.float64)
    np.matmul(C, pairs, out=log_prob)
    log_prob += constants[:, None]
    return pairs, log_prob


def _pairwise_moments(pairs: np.ndarray, resp: np.ndarray, params: GaussianParams):
    """First and second moments in whitened coordinates from the pair products of a block."""
    _, _, Q, (rows, cols) = _pairwise_whitener(params)
    k, D = Q.shape[0], Q.shape[1]
    sums = (pairs @ resp.T).T  # (K, p): sum_i r_ik xa_i xa_j (this orientation was faster)
    M = np.zeros((k, D, D))
    M[:, rows, cols] = sums
    M[:, cols, rows] = sums
    G = np.einsum("kji,kjl,klm->kim", Q, M, Q)  # Q_k^T M_k Q_k
    return G[:, 1:, 0].copy(), G[:, 1:, 1:].copy()


def _augmented_rows(X: np.ndarray, center: np.ndarray) -> np.ndarray:
    """``[1, X - c]^T`` (d+1, m) in ``center``'s dtype, a scratch array of this thread."""
    m, d = X.shape
    Xa = _scratch("Xa", (d + 1, m), center.dtype)
    Xa[0] = 1.0
    np.subtract(X.T, center[:, None], out=Xa[1:])
    return Xa


def _whiten_component(Xa: np.ndarray, Q: np.ndarray, out: np.ndarray) -> None:
    """``out`` (d+1, m) <- ``(Xa^T Q)^T`` with ``Q`` upper triangular: one in-place TRMM
    (GIL released, so the block threads run it concurrently)."""
    out[...] = Xa
    trmm_right_upper(Q, out)


#: A component's rows whose responsibility is negligible are left out of its SYRK when they
#: are at least this share of the block.  With well-separated components in many dimensions
#: most (row, component) pairs are: at (1e5, 100, 5) of the speed benchmark 80% of the
#: responsibilities are below 1e-30 (48% exactly 0), at (2e5, 50, 20) 95%.
_SPARSE_ZERO_SHARE = 0.25
#: Negligible: below this fraction of the component's total responsibility in the block, so
#: that dropping a row changes the block's moments by at most this fraction times the row's
#: squared whitened distance; the counts ``N_k`` always include every row.
_NEGLIGIBLE_SHARE = 1e-20


def _weighted_rows(Zj: np.ndarray, root: np.ndarray, keep: np.ndarray | None) -> np.ndarray:
    """``Zj * root`` (d+1, m), or only its columns where the mask ``keep`` is True.

    ``Zj`` (d+1, m) is overwritten (scaled in place) when all its columns are kept.
    """
    if keep is None:
        Zj *= root
        return Zj
    index = np.flatnonzero(keep)
    W = np.take(Zj, index, axis=1, out=_scratch("W", (Zj.shape[0], index.size), Zj.dtype))
    W *= root[index]
    return W


def _log_mvnormal_batched(x: np.ndarray, mean: np.ndarray, cov_chol: np.ndarray) -> np.ndarray:
    """:func:`~bayes_gmm.model.prior.log_mvnormal` for a stack of factors (K, d, d), in one call."""
    diff = x - mean
    d = diff.shape[-1]
    z = np.linalg.solve(cov_chol, diff[..., None])[..., 0]
    logdet = 2.0 * np.sum(np.log(np.diagonal(cov_chol, axis1=-2, axis2=-1)), axis=-1)
    return -0.5 * (d * _LOG_2PI + logdet + np.sum(z * z, axis=-1))


def _cholesky_pair(cov: np.ndarray, component: int | None, family: str) -> tuple[np.ndarray, np.ndarray]:
    """Lower Cholesky factor of ``cov`` and the upper precision factor ``inv(L).T``.

    The single place where a covariance that is not positive definite is turned into an error.
    """
    if not np.all(np.isfinite(cov)):
        raise _singular(component, family, "it has non-finite entries")
    lower, info = lapack.dpotrf(cov, lower=1, clean=1)
    if info != 0:
        raise _singular(component, family, f"its Cholesky factorisation failed at pivot {info}")
    diag = np.diag(lower)
    if diag.min() <= 0 or not np.all(np.isfinite(lower)):
        raise _singular(component, family, "its Cholesky factor has a zero pivot")
    return lower, _triangular_inverse(lower).T


COVARIANCE_FAMILIES: dict[str, CovarianceFamily] = {
    family.name: family
    for family in (FullCovariance(), TiedCovariance(), DiagCovariance(), SphericalCovariance())
}


def get_family(covariance_type: str) -> CovarianceFamily:
    """The covariance family registered under ``covariance_type``."""
    try:
        return COVARIANCE_FAMILIES[covariance_type]
    except (KeyError, TypeError):
        raise ValueError(
            f"covariance_type must be one of {tuple(COVARIANCE_FAMILIES)}, got {covariance_type!r}."
        ) from None
