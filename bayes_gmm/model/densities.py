"""Normalised log densities of the prior's distributions (Dirichlet, normal, inverse-Wishart,
inverse-gamma), in scipy.stats's parametrisations: pure NumPy/SciPy, shared by the prior
(:mod:`bayes_gmm.model.prior`) and the covariance families (:mod:`bayes_gmm.model.families`).
"""

from __future__ import annotations

import numpy as np
from scipy.special import gammaln, multigammaln

__all__ = ["invwishart_from_parts", "log_dirichlet", "log_invgamma", "log_invwishart", "log_mvnormal"]

_LOG_2PI = np.log(2.0 * np.pi)


def log_dirichlet(weights: np.ndarray, alpha: float) -> float:
    """Log density of a symmetric ``Dirichlet(alpha, ..., alpha)`` at ``weights`` (shape (K,))."""
    weights = np.asarray(weights, dtype=float)
    k = weights.shape[-1]
    norm = gammaln(k * alpha) - k * gammaln(alpha)
    if alpha == 1.0:
        return float(norm)
    return float(norm + (alpha - 1.0) * np.sum(np.log(weights)))


def log_mvnormal(x: np.ndarray, mean: np.ndarray, cov_chol: np.ndarray) -> np.ndarray:
    """Log density of ``N(mean, L L^T)`` with ``cov_chol = L`` lower triangular.

    ``x`` has shape (..., d); ``mean`` (d,) or broadcastable; ``cov_chol`` (..., d, d).
    """
    from scipy.linalg import solve_triangular

    diff = np.asarray(x, dtype=float) - mean
    d = diff.shape[-1]
    cov_chol = np.asarray(cov_chol, dtype=float)
    if cov_chol.ndim == 2:
        z = solve_triangular(cov_chol, diff.T, lower=True).T
        logdet = 2.0 * np.sum(np.log(np.diag(cov_chol)))
    else:
        z = np.stack([solve_triangular(c, v, lower=True) for c, v in zip(cov_chol, diff, strict=True)])
        logdet = 2.0 * np.sum(np.log(np.diagonal(cov_chol, axis1=-2, axis2=-1)), axis=-1)
    return -0.5 * (d * _LOG_2PI + logdet + np.sum(z * z, axis=-1))


def log_invwishart(
    cov: np.ndarray, nu0: float, psi0: np.ndarray, cov_chol: np.ndarray | None = None,
    psi0_chol: np.ndarray | None = None,
) -> np.ndarray:
    """Log density of ``InvWishart(nu0, Psi0)`` at ``cov`` of shape (..., d, d).

    Same parametrisation as :func:`scipy.stats.invwishart` (``df=nu0, scale=Psi0``).  The lower
    Cholesky factors of ``cov`` and ``psi0`` may be passed when the caller has them.
    """
    cov = np.asarray(cov, dtype=float)
    d = cov.shape[-1]
    chol = np.linalg.cholesky(cov) if cov_chol is None else np.asarray(cov_chol, dtype=float)
    logdet = 2.0 * np.sum(np.log(np.diagonal(chol, axis1=-2, axis2=-1)), axis=-1)
    psi_chol = np.linalg.cholesky(psi0) if psi0_chol is None else psi0_chol
    logdet_psi = 2.0 * np.sum(np.log(np.diag(psi_chol)))
    # tr(Psi0 Sigma^{-1}) = ||L^{-1} C||_F^2 with Sigma = L L^T, Psi0 = C C^T
    trace = np.sum(np.linalg.solve(chol, np.broadcast_to(psi_chol, chol.shape)) ** 2, axis=(-2, -1))
    return invwishart_from_parts(nu0, d, logdet_psi, logdet, trace, multigammaln(0.5 * nu0, d))


def invwishart_from_parts(nu, d: int, logdet_psi, logdet, trace, log_multigamma):
    """The inverse-Wishart log density from its parts: ``log det Psi``, ``log det Sigma``,
    ``tr(Psi Sigma^-1)`` and ``log Gamma_d(nu / 2)``.

    Plain arithmetic, so the PyMC model (:mod:`bayes_gmm.bayes.posterior`) assembles its
    PyTensor density with the same function (its parts come from the precision's factor).
    """
    return (
        0.5 * nu * logdet_psi
        - 0.5 * nu * d * np.log(2.0)
        - log_multigamma
        - 0.5 * (nu + d + 1.0) * logdet
        - 0.5 * trace
    )


def log_invgamma(x: np.ndarray, a: float, b: np.ndarray) -> np.ndarray:
    """Log density of ``InvGamma(a, b)`` (shape ``a``, scale ``b``) at ``x``, elementwise.

    Same parametrisation as :func:`scipy.stats.invgamma` (``a=a, scale=b``).
    """
    x = np.asarray(x, dtype=float)
    return a * np.log(b) - gammaln(a) - (a + 1.0) * np.log(x) - b / x
