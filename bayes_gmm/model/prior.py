"""The conjugate prior shared by :class:`~bayes_gmm.MapEM` and the PyMC posterior.

Pure numerics (NumPy and SciPy only).  The model, in the notation of ``docs/MATH.md``::

    pi             ~ Dirichlet(alpha, ..., alpha)
    Sigma_k        ~ InvWishart(nu0, Psi0)                        (full; tied: one Sigma)
    mu_k | Sigma_k ~ Normal(m0, Sigma_k / kappa0)
    diag:      sigma2_kj ~ InvGamma(a0, b0_j),  mu_kj | sigma2_kj ~ N(m0_j, sigma2_kj / kappa0)
    spherical: sigma2_k  ~ InvGamma(a0, b0),    mu_k  | sigma2_k  ~ N(m0, sigma2_k I / kappa0)

:class:`NIWPrior` is the single place where these hyper-parameters live.
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from bayes_gmm.model.densities import log_dirichlet, log_invgamma, log_invwishart, log_mvnormal
from bayes_gmm.model.families import get_family
from bayes_gmm.model.scaling import ScaledRows, column_moments, column_scaling, is_large, transforms_by_rows

__all__ = [
    "DEFAULT_ALPHA",
    "SCALE_FLOOR",
    "NIWPrior",
    "log_dirichlet",
    "log_invgamma",
    "log_invwishart",
    "log_mvnormal",
]

#: Default Dirichlet concentration.  ``alpha = 2`` is one pseudo-observation per component:
#: the MAP weights are ``(N_k + 1) / (N + K)``, so no weight can reach zero.
DEFAULT_ALPHA = 2.0

#: Relative ridge added to the *correlation* matrix of the data when it is not positive
#: definite (constant column, fewer rows than columns, collinear columns).  Working on the
#: correlation scale keeps the prior equivariant to rescaling each column.
SCALE_FLOOR = 1e-6



# ----------------------------------------------------------------------------------------
# the prior object
# ----------------------------------------------------------------------------------------
def _as_positive(name: str, value: Any, *, strict: bool = True) -> float:
    if isinstance(value, (bool, np.bool_, str, bytes)) or not isinstance(value, (numbers.Real, np.floating, np.integer)):
        raise TypeError(f"{name} must be a real number, got {value!r}.")
    value = float(value)
    if not np.isfinite(value) or value < 0 or (strict and value == 0):
        kind = "positive" if strict else "non-negative"
        raise ValueError(f"{name} must be a finite {kind} number, got {value!r}.")
    return value


#: Documented bounds of ``prior_strength``: a factor on the prior's scale.  Below 1e-8 the
#: floor under a covariance is too close to zero for a Cholesky factorisation in float64 (the
#: fit would be maximum likelihood in all but name); above 1e8 the prior swamps any data.
PRIOR_STRENGTH_BOUNDS = (1e-8, 1e8)
#: Documented bounds of ``alpha`` (Dirichlet concentration): 1 is flat, 1e8 pseudo-observations
#: per component already force equal weights on any data set that fits in memory.
ALPHA_BOUNDS = (1.0, 1e8)


def check_prior_strength(value: Any) -> float:
    """``prior_strength`` as a float in ``PRIOR_STRENGTH_BOUNDS``, or a clear error."""
    value = _as_positive("prior_strength", value)
    lo, hi = PRIOR_STRENGTH_BOUNDS
    if not lo <= value <= hi:
        raise ValueError(
            f"prior_strength must be between {lo:g} and {hi:g} (a factor on the prior's scale; 1 "
            f"is mclust's default), got {value!r}."
        )
    return value


def check_alpha(value: Any) -> float:
    """``alpha`` as a float in ``ALPHA_BOUNDS``, or a clear error."""
    value = _as_positive("alpha", value)
    lo, hi = ALPHA_BOUNDS
    if value < lo:
        raise ValueError(f"alpha must be >= 1 (the MAP weights are undefined below 1), got {value}.")
    if value > hi:
        raise ValueError(
            f"alpha must be at most {hi:g} (pseudo-observations per component; larger values "
            f"force equal weights anyway), got {value!r}."
        )
    return value


def _check_covariance_type(covariance_type: Any) -> str:
    """The registry's own check and message."""
    return get_family(covariance_type).name


def _check_prior_data(X):
    lazy = type(X).__module__.startswith(("dask.", "bayes_gmm.")) or isinstance(X, np.ndarray)
    X = X if lazy else np.asarray(X, dtype=float)  # dask arrays and ScaledRows stay as they are
    if X.ndim != 2 or X.shape[0] == 0 or X.shape[1] == 0:
        raise ValueError(f"X must be a non-empty 2-D array, got shape {X.shape}.")
    return X


def _weighted_moments(X: np.ndarray, sample_weight: np.ndarray | None):
    if isinstance(X, ScaledRows) and X.scaling.moments is not None:
        return X.scaling.moments  # from the scaling's own pass (column_scaling(moments=True))
    if not isinstance(X, np.ndarray) or is_large(X.shape[0], X.shape[1]):
        # memmaps, ScaledRows views, dask arrays: no (n, d) temporaries, dask stays lazy
        return column_moments(X, sample_weight)
    n = X.shape[0]
    w = np.ones(n) if sample_weight is None else np.asarray(sample_weight, dtype=float)
    total = w.sum()
    X = np.asarray(X, dtype=float)
    mean = (w @ X) / total
    diff = X - mean
    denom = total - 1.0 if total > 1.0 else 1.0  # mclust: cov(X) with n - 1
    cov = (diff * w[:, None]).T @ diff / denom
    cov = 0.5 * (cov + cov.T)
    magnitude2 = (w @ (X * X)) / total  # mean of z_j^2, a scale for constant columns
    return mean, cov, magnitude2


#: In standardised units a column is constant when its variance is below this (a constant
#: column is exactly 0 there; every other column has a variance near 1).
_CONSTANT_VARIANCE = 1e-20


def _is_constant(var: np.ndarray) -> np.ndarray:
    """Constant columns of *standardised* data (see :mod:`bayes_gmm.model.scaling`)."""
    return var <= _CONSTANT_VARIANCE


def _column_scale2(var: np.ndarray, magnitude2: np.ndarray) -> np.ndarray:
    """A per-column squared scale that is positive even for a constant column.

    In standardised units a constant column is 0 and takes 1, that is its scaling's
    ``(1e-3 |c|)^2`` in data units (:mod:`bayes_gmm.model.scaling`); a column that is constant but
    not at 0 (data standardised by hand) takes ``SCALE_FLOOR * mean(z_j^2)``.
    """
    scale = np.where(_is_constant(var), SCALE_FLOOR * magnitude2, var)
    return np.where(scale > _CONSTANT_VARIANCE, scale, 1.0)


def _positive_definite_scale(cov: np.ndarray, magnitude2: np.ndarray) -> np.ndarray:
    """Return ``cov`` unchanged if it is safely positive definite, else ``D^1/2 (R + eps I) D^1/2``.

    ``D`` holds the per-column scales of :func:`_column_scale2` and ``R`` the correlation
    matrix; ``eps = SCALE_FLOOR``.  Rescaling column ``j`` by ``s_j`` rescales row and column
    ``j`` of the result by ``s_j``, so the fit stays equivariant.
    """
    var = np.diag(cov).copy()
    scale = np.sqrt(_column_scale2(var, magnitude2))
    corr = cov / np.outer(scale, scale)
    d = cov.shape[0]
    constant = _is_constant(var)
    if np.any(constant):  # a constant column is uncorrelated with the others, at its floor scale
        corr[constant, :] = 0.0
        corr[:, constant] = 0.0
        corr[constant, constant] = 1.0
    eig_min = np.linalg.eigvalsh(corr)[0] if d > 0 else 1.0
    if eig_min > SCALE_FLOOR:
        return corr * np.outer(scale, scale) if np.any(constant) else cov
    # shift the spectrum of the correlation matrix so that its smallest eigenvalue is SCALE_FLOOR
    shift = SCALE_FLOOR - min(eig_min, 0.0)
    corr = corr + shift * np.eye(d)
    return corr * np.outer(scale, scale)


@dataclass(frozen=True, eq=False)
class NIWPrior:
    r"""Conjugate prior of a Gaussian mixture: Dirichlet weights, normal-inverse-Wishart
    (or normal-inverse-gamma) means and covariances.

    Parameters
    ----------
    covariance_type : {"full", "tied", "diag", "spherical"}
    alpha : float
        Symmetric Dirichlet concentration of the weights, ``>= 1`` (the MAP weights are
        ``(N_k + alpha - 1) / (N + K (alpha - 1))``).  ``alpha > 1`` keeps every weight
        strictly positive.
    m0 : ndarray of shape (d,)
        Prior mean of the component means.
    kappa0 : float
        Prior precision of the means, in pseudo-observations: ``mu_k | Sigma_k ~ N(m0, Sigma_k / kappa0)``.
    nu0 : float, optional (full, tied)
        Inverse-Wishart degrees of freedom, ``> d - 1``.
    psi0 : ndarray of shape (d, d), optional (full, tied)
        Inverse-Wishart scale matrix, symmetric positive definite.
    a0 : float, optional (diag, spherical)
        Inverse-gamma shape.
    b0 : ndarray of shape (d,) (diag) or float (spherical), optional
        Inverse-gamma scale.

    Notes
    -----
    :meth:`from_data` reproduces mclust's ``defaultPrior`` (Fraley & Raftery 2007) when
    ``prior_strength=1`` and ``alpha=1``; see its docstring for the exact numbers.

    Examples
    --------
    >>> import numpy as np
    >>> X = np.random.default_rng(0).normal(size=(100, 2))
    >>> prior = NIWPrior.from_data(X, n_components=3)
    >>> prior.nu0, prior.kappa0, prior.alpha
    (4.0, 0.01, 2.0)
    """

    covariance_type: str
    alpha: float
    m0: np.ndarray
    kappa0: float
    nu0: float | None = None
    psi0: np.ndarray | None = None
    a0: float | None = None
    b0: np.ndarray | float | None = None
    _psi0_chol: np.ndarray | None = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        family = get_family(self.covariance_type)
        ct = family.name  # mclust's names are kept as the registered name (``"VVV"`` -> ``"full"``)
        set_ = object.__setattr__
        set_(self, "covariance_type", ct)
        set_(self, "alpha", check_alpha(self.alpha))
        set_(self, "kappa0", _as_positive("kappa0", self.kappa0))
        m0 = np.asarray(self.m0, dtype=float)
        if m0.ndim != 1 or m0.size == 0 or not np.all(np.isfinite(m0)):
            raise ValueError(
                f"m0 must be a finite 1-D array of length d, got shape {m0.shape}."
            )
        m0.setflags(write=False)
        set_(self, "m0", m0)
        d = m0.shape[0]
        if family.wishart_prior:
            if self.nu0 is None or self.psi0 is None:
                raise ValueError(f"covariance_type={ct!r} needs nu0 and psi0.")
            nu0 = _as_positive("nu0", self.nu0)
            if nu0 <= d - 1:
                raise ValueError(f"nu0 must be > d - 1 = {d - 1} for a proper inverse-Wishart, got {nu0}.")
            psi0 = np.array(self.psi0, dtype=float)
            if psi0.shape != (d, d):
                raise ValueError(
                    f"psi0 must have shape (d, d) = ({d}, {d}) to match m0, got {psi0.shape}."
                )
            if not np.all(np.isfinite(psi0)):
                raise ValueError("psi0 must be a finite symmetric matrix.")
            if not np.allclose(psi0, psi0.T, rtol=1e-8, atol=1e-12 * np.max(np.abs(psi0))):
                raise ValueError("psi0 must be a finite symmetric matrix.")
            psi0 = 0.5 * (psi0 + psi0.T)
            try:
                chol = np.linalg.cholesky(psi0)
            except np.linalg.LinAlgError:
                raise ValueError(
                    "psi0 must be positive definite; use NIWPrior.from_data to get a floored scale."
                ) from None
            psi0.setflags(write=False)
            set_(self, "nu0", nu0)
            set_(self, "psi0", psi0)
            set_(self, "_psi0_chol", chol)
            set_(self, "a0", None)
            set_(self, "b0", None)
        else:
            if self.a0 is None or self.b0 is None:
                raise ValueError(f"covariance_type={ct!r} needs a0 and b0.")
            set_(self, "a0", _as_positive("a0", self.a0))
            b0 = np.asarray(self.b0, dtype=float)
            want = family.prior_rate_shape(d)
            if want and b0.shape == ():
                b0 = np.full(want, float(b0))
            if b0.shape != want:
                raise ValueError(
                    f"b0 must have shape {want} for covariance_type={ct!r}, got {b0.shape}."
                )
            if not np.all(np.isfinite(b0)) or np.any(b0 <= 0):
                raise ValueError("b0 must be finite and positive.")
            b0 = b0.copy()
            b0.setflags(write=False)
            set_(self, "b0", b0 if want else float(b0))
            set_(self, "nu0", None)
            set_(self, "psi0", None)

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_data(
        cls,
        X: np.ndarray,
        n_components: int,
        covariance_type: str = "full",
        *,
        prior_strength: float = 1.0,
        alpha: float | None = None,
        kappa0: float | None = None,
        nu0: float | None = None,
        sample_weight: np.ndarray | None = None,
        pooled_variance: bool = False,
    ) -> NIWPrior:
        r"""Data-driven defaults (after mclust's ``defaultPrior``), scaled by ``prior_strength``.

        With ``d`` columns, ``K`` components, ``C = cov(X)`` (``n - 1`` denominator) and
        ``s = prior_strength``:

        - ``m0 = mean(X)``, ``kappa0 = 0.01``, ``alpha = 2`` (``DEFAULT_ALPHA``);
        - full / tied: ``nu0 = d + 2``, ``Psi0 = s * C * K^(-2/d)`` (mclust's);
        - diag: ``a0 = (d + 2) / 2``, ``b0_j = s * K^(-2/d) * C_jj / 2``: each column its own
          scale, so that rescaling one column rescales the fit the same way.  mclust uses one
          value for every column, the mean of the ``C_jj``, which lets one wide column set the
          scale of all the others (on scikit-learn's raw wine data it put 99% of the rows in one
          component); ``pooled_variance=True`` gives mclust's exact prior;
        - spherical: ``a0 = (d + 2) / 2``, ``b0 = s * K^(-2/d) * mean_j C_jj / 2`` (mclust's).  A
          spherical component has one variance for all columns, so the *model* (not only the
          prior) assumes columns in the same units: it is equivariant to a common rescaling and
          to shifts, not to rescaling one column (``MapEM`` warns when the column scales differ
          by more than a factor 10).

        ``prior_strength`` is a factor on the prior *scale*: the prior guess of every
        covariance is multiplied by ``s`` and so is the floor below which no fitted covariance
        can go (``Sigma_k >= Psi0 / (nu0 + N + d + 2)``).  ``s -> 0`` tends to maximum
        likelihood; larger ``s`` gives wider, smoother components.

        The numbers are computed in the standardised units of :mod:`bayes_gmm.model.scaling` (see
        :meth:`from_standardized`) and mapped back.  When ``C`` is not safely positive definite
        (a constant column, fewer rows than columns, collinear columns) it is replaced by
        ``D^1/2 (R + eps I) D^1/2`` where ``R`` is the correlation matrix, ``eps = 1e-6``
        (``SCALE_FLOOR``) and ``D`` the column variances; an exactly constant column (every
        row the same number ``c``) takes a variance of about ``1e-6 c^2`` (1 for a column of
        zeros).  Constancy is decided on the column's own values, whatever its offset.
        """

        X = _check_prior_data(X)
        ct = _check_covariance_type(covariance_type)
        # a large array is standardised as it is read: the scaling's pass gives the moments too
        scaling = column_scaling(X, sample_weight, common=get_family(ct).common_scale, moments=transforms_by_rows(X))
        prior = cls.from_standardized(
            scaling.transform(X), n_components, ct, prior_strength=prior_strength, alpha=alpha,
            kappa0=kappa0, nu0=nu0, sample_weight=sample_weight,
        ).unscaled(scaling)
        if pooled_variance and np.ndim(prior.b0) == 1:  # mclust: one b0, from the mean column variance
            live = ~scaling.constant
            pooled = float(np.mean(np.where(live, prior.b0, 0.0))) if live.any() else float(np.mean(prior.b0))
            return cls(ct, prior.alpha, prior.m0, prior.kappa0, a0=prior.a0, b0=np.full(X.shape[1], pooled))
        return prior

    @classmethod
    def from_standardized(
        cls,
        Z: np.ndarray,
        n_components: int,
        covariance_type: str = "full",
        *,
        prior_strength: float = 1.0,
        alpha: float | None = None,
        kappa0: float | None = None,
        nu0: float | None = None,
        sample_weight: np.ndarray | None = None,
    ) -> NIWPrior:
        """The defaults of :meth:`from_data` for data already in standardised units.

        ``Z`` is ``(X - c) / s`` from :meth:`bayes_gmm.model.scaling.ColumnScaling.transform`: a
        constant column is 0 and every other column has a variance near 1.  ``MapEM`` fits in
        these units; :meth:`unscaled` maps the result back to the data's units.
        """
        Z = _check_prior_data(Z)
        ct = _check_covariance_type(covariance_type)
        if isinstance(n_components, bool) or not isinstance(n_components, (int, np.integer)) or n_components < 1:
            raise ValueError(f"n_components must be a positive integer, got {n_components!r}.")
        strength = check_prior_strength(prior_strength)
        d = Z.shape[1]
        mean, cov, magnitude2 = _weighted_moments(Z, sample_weight)
        factor = strength * float(n_components) ** (-2.0 / d)
        alpha = DEFAULT_ALPHA if alpha is None else check_alpha(alpha)
        kappa0 = 0.01 if kappa0 is None else kappa0
        family = get_family(ct)
        if family.wishart_prior:
            psi0 = factor * _positive_definite_scale(cov, magnitude2)
            nu0 = d + 2.0 if nu0 is None else nu0
            return cls(ct, alpha, mean, kappa0, nu0=nu0, psi0=psi0)
        var = _column_scale2(np.diag(cov).copy(), magnitude2)
        raw_var = np.diag(cov)
        b0 = 0.5 * factor * family.default_prior_rate(var, raw_var, ~_is_constant(raw_var))
        return cls(ct, alpha, mean, kappa0, a0=(d + 2.0) / 2.0, b0=b0)

    # ------------------------------------------------------------------ units
    def unscaled(self, scaling) -> NIWPrior:
        """This prior, stated in standardised units, in the data's units (``x = c + s z``)."""
        return self._mapped(scaling, to_data=True)

    def rescaled(self, scaling) -> NIWPrior:
        """This prior, stated in the data's units, in standardised units (``z = (x - c) / s``)."""
        return self._mapped(scaling, to_data=False)

    def _mapped(self, scaling, to_data: bool) -> NIWPrior:

        family = get_family(self.covariance_type)
        scale = scaling.scale if to_data else 1.0 / scaling.scale
        m0 = scaling.means_to_data(self.m0) if to_data else scaling.means_from_data(self.m0)
        if self.psi0 is not None:
            psi0 = family.rescale_covariances(self.psi0, scale)
            return NIWPrior(self.covariance_type, self.alpha, m0, self.kappa0, nu0=self.nu0, psi0=psi0)
        b0 = family.rescale_covariances(self.b0, scale)
        return NIWPrior(self.covariance_type, self.alpha, m0, self.kappa0, a0=self.a0, b0=b0)

    # ------------------------------------------------------------------ properties
    @property
    def n_features(self) -> int:
        return int(self.m0.shape[0])

    @property
    def psi0_cholesky(self) -> np.ndarray:
        """Lower Cholesky factor of ``psi0`` (full, tied)."""
        if self._psi0_chol is None:
            raise AttributeError(f"a {self.covariance_type!r} prior has no psi0.")
        return self._psi0_chol

    def check_features(self, d: int) -> None:
        if self.n_features != d:
            raise ValueError(
                f"the prior is for d={self.n_features} features but X has {d} columns."
            )

    # ------------------------------------------------------------------ densities
    def log_density(
        self, weights: np.ndarray, means: np.ndarray, covariances: np.ndarray, covariances_cholesky=None
    ) -> float:
        """Log prior density ``log p(pi) + log p(mu, Sigma)`` (normalised).

        Shapes follow scikit-learn: weights (K,), means (K, d), covariances (K, d, d) for full,
        (d, d) for tied, (K, d) for diag, (K,) for spherical.
        """

        family = get_family(self.covariance_type)
        means = np.asarray(means, dtype=float)
        covariances = np.asarray(covariances, dtype=float)
        return log_dirichlet(weights, self.alpha) + family.log_prior(
            means, covariances, self, covariances_cholesky
        )

    # ------------------------------------------------------------------ (de)serialisation
    def to_dict(self) -> dict[str, Any]:
        """Plain-Python representation (JSON-ready)."""
        out: dict[str, Any] = {
            "covariance_type": self.covariance_type,
            "alpha": self.alpha,
            "m0": self.m0.tolist(),
            "kappa0": self.kappa0,
        }
        if self.psi0 is not None:  # an inverse-Wishart covariance part
            out.update(nu0=self.nu0, psi0=np.asarray(self.psi0).tolist())
        else:
            out.update(a0=self.a0, b0=np.asarray(self.b0).tolist())
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> NIWPrior:
        if not isinstance(data, dict):
            raise TypeError(f"a prior must be given as a dict, got {type(data).__name__}.")
        allowed = {"covariance_type", "alpha", "m0", "kappa0", "nu0", "psi0", "a0", "b0"}
        unknown = set(data) - allowed
        if unknown:
            raise ValueError(f"unknown prior fields {sorted(unknown)}; allowed: {sorted(allowed)}.")
        missing = {"covariance_type", "alpha", "m0", "kappa0"} - set(data)
        if missing:
            raise ValueError(f"prior is missing fields {sorted(missing)}.")
        return cls(**data)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, NIWPrior):
            return NotImplemented
        a, b = self.to_dict(), other.to_dict()
        return a == b

    def __hash__(self) -> int:  # frozen dataclass with arrays: hash the JSON form
        return hash(repr(self.to_dict()))
