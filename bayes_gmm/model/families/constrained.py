"""The bases of mclust's constrained models (EII ... EVV; docs/MATH.md, "mclust's models").

Each constrained model stores its covariances in the shape of the unconstrained family it
narrows (full ``(K, d, d)``, diag ``(K, d)``, spherical ``(K,)``), so the E-step, the
statistics, the units and the saved files are that family's; what a constrained model adds is
its M-step (:mod:`~bayes_gmm.model.families.decomposition`), its parameter count (mclust's
``nVarParams``) and the prior its M-step is the mode of.

Every M-step minimises ``sum_k c_k log|Sigma_k| + tr(Sigma_k^-1 T_k)`` over the model's set,
with counts ``c_k = n_k + q_k + 1`` and scatters
``T_k = P_k + W_k + kappa0 n_k / (kappa0 + n_k) (xbar_k - m0)(xbar_k - m0)^T``, where the
prior gives the pseudo-counts ``q_k`` and the positive definite scales ``P_k`` (so every
``T_k``, and every covariance returned, is positive definite), and the means are shrunk,
``mu_k = (n_k xbar_k + kappa0 m0) / (n_k + kappa0)``.  That is the joint posterior mode under
the prior whose log-density is, up to a constant,

    sum_k  -q_k/2 log|Sigma_k| - 1/2 tr(Sigma_k^-1 P_k) + log N(mu_k | m0, Sigma_k / kappa0)

restricted to the model's set.  Two priors are used:

- :class:`RestrictedConjugate` (VEE, EVE, VVE, EVV, which mclust has no prior for): each
  covariance has the unconstrained family's conjugate prior, ``IW(nu0, Psi0)``, restricted to
  the set (``q_k = nu0 + d + 1``, ``P_k = Psi0``); its log-prior is the inverse-Wishart's, so
  fits report the same numbers as a full fit would at the same covariances.
- :class:`MclustPrior` (EII, EEI, VEI, EVI, EEV, VEV): the counts and scales mclust's EM
  routines (``me*p``, what ``mclustBIC`` runs) use under ``priorControl()``, so that MapEM
  reaches mclust's estimate; each model lists them.  Its log-prior is the density above with no
  constant (the models' counts are not those of a normalisable product of standard densities:
  mclust counts the means' prior once per shared volume, and for VEV not at all).
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from bayes_gmm.model.densities import log_mvnormal
from bayes_gmm.model.families.diag import DiagCovariance
from bayes_gmm.model.families.full import FullCovariance
from bayes_gmm.model.families.kernels import ordered_safe
from bayes_gmm.model.families.spherical import SphericalCovariance

#: Why the constrained models have no PyMC form yet (``CovarianceFamily.posterior_form_missing``).
NO_POSTERIOR_FORM = (
    "its prior is a conjugate prior restricted to a constrained set of covariances (a volume, "
    "shape and orientation decomposition), which PyMC has no distribution for; the posterior "
    "layer samples the unconstrained models full (VVV), tied (EEE), diag (VVI) and spherical (VII)"
)


class _Constrained:
    """What every constrained model shares: its M-step from counts and scatters, mclust's
    parameter count, no PyMC form and no prior draws."""

    posterior_form_missing = NO_POSTERIOR_FORM
    #: ``n_cov_parameters`` as mclust's ``nVarParams``: a function of (K, d).
    _count: ClassVar

    def n_cov_parameters(self, k, d):
        return int(type(self)._count(k, d))

    def draw_prior_covariances(self, prior, n_components, rng):
        raise NotImplementedError(
            f"covariance_type={self.name!r} has no prior to draw from: {self.posterior_form_missing}."
        )

    # -- the model: what each one fills in ----------------------------------------------
    def _solve(self, T: np.ndarray, c: np.ndarray, d: int, start: np.ndarray | None = None) -> np.ndarray:
        """The model's covariances minimising ``sum_k c_k log|Sigma_k| + tr(Sigma_k^-1 T_k)``,
        from (K, d, d) scatters (or their (K, d) diagonals for the diagonal models); ``start``
        the current covariances, for the models whose M-step iterates."""
        raise NotImplementedError

    def _pseudo_counts(self, prior, k: int, d: int) -> np.ndarray:
        """``q_k`` (K,)."""
        raise NotImplementedError

    def _prior_scales(self, prior, k: int, d: int) -> np.ndarray:
        """``P_k`` as (K, d, d) matrices (diagonal models: (K, d) diagonals)."""
        raise NotImplementedError

    # -- the M-steps ----------------------------------------------------------------------
    def _scatter_part(self, scatter: np.ndarray, diff: np.ndarray, shrink: np.ndarray) -> np.ndarray:
        """``W_k + shrink_k diff_k diff_k^T`` in the shape ``_solve`` takes."""
        raise NotImplementedError

    def _map_covariances(self, stats, prior, diff, shrink):
        k, d = diff.shape
        T = self._prior_scales(prior, k, d) + self._scatter_part(stats.scatter, diff, shrink)
        return self._solve(T, stats.nk + self._pseudo_counts(prior, k, d) + 1.0, d, stats.start)

    def ml_step(self, stats, reg_covar=0.0):
        k, d = stats.xbar.shape
        T = self._scatter_part(stats.scatter, stats.xbar, np.zeros(k))
        cov = self._solve(T, ordered_safe(stats.nk), d, stats.start)
        return stats.xbar.copy(), cov + self.identity_covariances(k, d) * reg_covar


class ConstrainedMatrix(_Constrained, FullCovariance):
    """A constrained model stored as full (K, d, d) covariances."""

    #: The reason models with one shape for several orientations (EVE, VVE, EEV, VEV) are
    #: fitted in one scale for all columns: their set is not closed under rescaling one column.
    common_scale_reason = "shares eigenvalues or eigenvectors between components, which rescaling one column changes"

    def _scatter_part(self, scatter, diff, shrink):
        return scatter + shrink[:, None, None] * np.einsum("ki,kj->kij", diff, diff)


class ConstrainedDiagonal(_Constrained, DiagCovariance):
    """A constrained model stored as diagonal (K, d) variances (its prior: inverse-gamma)."""

    def _scatter_part(self, scatter, diff, shrink):
        return scatter + shrink[:, None] * diff**2


class ConstrainedSpherical(_Constrained, SphericalCovariance):
    """A constrained model stored as (K,) variances; ``_solve`` takes the (K,) traces."""

    def _scatter_part(self, scatter, diff, shrink):
        return scatter + shrink * np.sum(diff**2, axis=1)


class RestrictedConjugate(ConstrainedMatrix):
    """Each covariance's prior is ``IW(nu0, Psi0)`` restricted to the model's set (and each
    mean's ``N(m0, Sigma_k / kappa0)``): the log-prior is the full family's."""

    def _pseudo_counts(self, prior, k, d):
        return np.full(k, prior.nu0 + d + 1.0)

    def _prior_scales(self, prior, k, d):
        return np.broadcast_to(prior.psi0, (k, d, d))


class MclustPrior(_Constrained):
    """mclust's counts and scales (``me*p``), with the unnormalised log-prior of the module's
    docstring; its change under a change of units depends on the counts, so
    :meth:`log_jacobian` needs the prior."""

    def log_prior(self, means, covariances, prior, covariances_cholesky=None):
        k, d = means.shape
        cov = self.dense(covariances, k, d)
        P = self._prior_scales(prior, k, d)
        if P.ndim == 1:  # spherical: the traces
            P = (P / d)[:, None, None] * np.eye(d)
        elif P.ndim == 2:  # diagonal
            P = P[..., None] * np.eye(d)
        chol = np.linalg.cholesky(cov)
        logdet = 2.0 * np.sum(np.log(np.diagonal(chol, axis1=1, axis2=2)), axis=1)
        trace = np.einsum("kij,kji->k", np.linalg.inv(cov), P)
        log_normal = log_mvnormal(means, prior.m0, chol / np.sqrt(prior.kappa0))  # N(m0, Sigma_k / kappa0)
        q = self._pseudo_counts(prior, k, d)
        return float(np.sum(-0.5 * q * logdet - 0.5 * trace + log_normal))

    def log_jacobian(self, n_components, scale, prior=None):
        if prior is None:
            raise TypeError(f"the log-prior of covariance_type={self.name!r} changes with its prior's counts: pass prior.")
        d = prior.n_features
        scale = np.broadcast_to(np.asarray(scale, dtype=float), (d,))
        return float(np.sum(self._pseudo_counts(prior, n_components, d)) * np.sum(np.log(scale)))
