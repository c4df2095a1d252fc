"""The full posterior of the MAP-EM model, sampled with PyMC (nutpie or PyMC's NUTS).

The PyMC model uses *exactly* the prior that :class:`~bayes_gmm.MapEM` resolved (its ``prior_``;
see ``docs/MATH.md``): Dirichlet weights, normal-inverse-Wishart (full, tied) or normal-inverse-gamma
(diag, spherical) means and covariances.  Its free variables are the mixture parameters
themselves, in scikit-learn's shapes::

    weights      (component,)                       Dirichlet(alpha)
    covariances  (component, feature, feature_bis)  full:      InvWishart(nu0, Psi0)
                 (feature, feature_bis)             tied:      InvWishart(nu0, Psi0)
                 (component, feature)               diag:      InvGamma(a0, b0_j)
                 (component,)                       spherical: InvGamma(a0, b0)
    means        (component, feature)               N(m0, Sigma_k / kappa0)
    x            (obs, feature)                     sum_k pi_k N(x | mu_k, Sigma_k)  (marginalised)

so the model's log density *without* Jacobian (``model.compile_logp(jacobian=False)``) is, term
for term, MAP-EM's objective :func:`bayes_gmm.log_posterior`.

The inverse-Wishart has its own normalised log density on the covariance matrix; NUTS moves in
Bartlett coordinates through a transform with an explicit Jacobian: with ``R`` a fixed lower
triangular matrix (the Cholesky factor of the MAP precision), ``Sigma^{-1} = (R A)(R A)^T`` and
the unconstrained vector holds ``log A_jj`` and the ``A_ij`` below the diagonal.  With ``R`` the
Cholesky factor of ``Psi0^{-1}`` these are exactly the Bartlett variables of ``docs/MATH.md``; anchoring
``R`` at the MAP estimate (and the means at the MAP means, scaled by their posterior spread) only
changes the coordinates NUTS moves in, not the density, and makes the posterior close to a
standard normal there.  Chains start next to the MAP-EM solution (0.001 away in each of these
coordinates: nutpie refuses a starting point where a gradient entry is exactly 0, as it is at the
solution in the directions of a constant column), without jitter.

Label switching: every draw is relabelled to MAP-EM's components by optimal assignment
(:func:`scipy.optimize.linear_sum_assignment`) on the Kullback-Leibler divergence between each
draw's components and MAP-EM's (:func:`relabel`).

This module imports PyMC; ``import bayes_gmm`` does not import it.
"""

from __future__ import annotations

import dataclasses
import logging
import sys
import threading
import time
from collections.abc import Mapping

import numpy as np
import pymc as pm
import pytensor
import pytensor.tensor as pt
import xarray as xr
from pymc.initial_point import make_initial_point_fn
from pymc.logprob.transforms import Transform
from pytensor.assumptions import assume
from scipy import stats
from sklearn.utils.validation import validate_data
from threadpoolctl import threadpool_limits

from bayes_gmm.bayes import nutpie_cache
from bayes_gmm.bayes.draws import (
    check_estimator,
    log_likelihood_dataset,
    map_estimate_dataset,
    relabel,
    simulate_draws,
    warn_if_label_switching,
    warn_if_not_converged,
)
from bayes_gmm.bayes.mixture_op import mixture_logsumexp
from bayes_gmm.em.engine import available_cores
from bayes_gmm.em.map_em import MapEM
from bayes_gmm.em.validation import check_data, check_positive
from bayes_gmm.model.densities import invwishart_from_parts
from bayes_gmm.model.families import COVARIANCE_FAMILIES, CovarianceFamily, get_family


def _posterior_family(covariance_type: str) -> CovarianceFamily:
    """The family of ``covariance_type`` if the posterior layer has its PyMC form; a
    ``NotImplementedError`` naming the models that have none, and why, otherwise."""
    family = get_family(covariance_type)  # a ValueError naming the accepted types
    if not family.posterior_form:
        missing = [name for name, f in COVARIANCE_FAMILIES.items() if not f.posterior_form]
        raise NotImplementedError(
            f"covariance_type={covariance_type!r} has no posterior (PyMC) form yet: "
            f"{family.posterior_form_missing}. The models without one: {', '.join(missing)}. "
            "Fit it with MapEM (the MAP estimate), or sample one of "
            f"{', '.join(name for name, f in COVARIANCE_FAMILIES.items() if f.posterior_form)}."
        )
    return family

__all__ = [
    "PosteriorSampler",
    "build_model",
    "clear_posterior_cache",
    "get_posterior_sampler",
    "sample_posterior",
]

_LOG_2PI = float(np.log(2.0 * np.pi))


_SAMPLERS = ("nutpie", "pymc")


# ----------------------------------------------------------------------------------------
# input checks
# ----------------------------------------------------------------------------------------
def _check_X(est: MapEM, X) -> np.ndarray:
    """X as a float64 array with the estimator's columns (names and count checked as predict
    does, by scikit-learn's ``validate_data``)."""
    Xc = check_data(X)
    validate_data(est, X, reset=False, skip_check_array=True)
    return np.asarray(Xc, dtype=np.float64)


def _feature_labels(est: MapEM, d: int) -> list:
    names = getattr(est, "feature_names_in_", None)
    return [str(v) for v in names] if names is not None else list(range(d))


# ----------------------------------------------------------------------------------------
# transforms (value in constrained space; NUTS moves in the unconstrained one)
# ----------------------------------------------------------------------------------------
class PrecisionCholeskyTransform(Transform):
    r"""Covariance matrix <-> packed log-Cholesky factor of its precision, relative to ``R``.

    ``backward``: ``u`` (..., d(d+1)/2) -> lower triangular ``A`` (exponentiated diagonal, packed
    row-major as :func:`numpy.tril_indices`) -> ``B = R A`` -> ``Sigma = (B B^T)^{-1}``.

    With ``i = 1..d``, the log Jacobian of ``u -> Sigma`` is

    .. math::

        \log |J| = d \log 2 - \sum_i (d + i)\, u_{ii} - (d + 1) \sum_i \log R_{ii}

    (``u -> A``: ``sum u_ii``; ``A -> R A``: ``sum_i i log R_ii``; ``B -> B B^T``:
    ``d log 2 + sum_i (d - i + 1) log B_ii``; ``Lambda -> Lambda^{-1}``: ``-(d + 1) log|Lambda|``).

    Parameters
    ----------
    reference : ndarray of shape (..., d, d), optional
        Lower triangular ``R`` with a positive diagonal, one per batch entry.  If not given,
        ``R`` is the last parameter of the distribution (a graph input).
    d : int, optional
        The matrix size, when ``reference`` is not given.
    """

    name = "bartlett"
    ndim_supp = 2

    def __init__(self, reference=None, *, d: int | None = None):
        # reference=None: R is the distribution's last parameter (an input of the graph, so that
        # a compiled model is reused across data sets: see bayes_gmm.bayes)
        self.reference = None if reference is None else pt.as_tensor_variable(np.asarray(reference, dtype=np.float64))
        if d is None:
            if self.reference is None:
                raise ValueError("give the reference or the matrix size d.")
            d = self.reference.type.shape[-1]
        self.d = d
        rows, cols = np.tril_indices(d)
        self.rows, self.cols = rows, cols
        self.diag_pos = np.flatnonzero(rows == cols)

    def _reference(self, inputs):
        return self.reference if self.reference is not None else pt.as_tensor_variable(inputs[-1])

    def _lower(self, value):
        packed = pt.set_subtensor(value[..., self.diag_pos], pt.exp(value[..., self.diag_pos]))
        A = pt.zeros((*value.shape[:-1], self.d, self.d), dtype=value.dtype)
        return pt.set_subtensor(A[..., self.rows, self.cols], packed)

    def backward(self, value, *inputs):
        value = pt.as_tensor_variable(value)
        # Declared lower triangular, so that PyTensor's rewrites turn the log densities'
        # cholesky(inv(Sigma)) back into B: the sampled graph has no factorisation or solve.
        B = assume(pt.matmul(self._reference(inputs), self._lower(value)), lower_triangular=True)
        return pt.linalg.inv(pt.matmul(B, pt.swapaxes(B, -1, -2)))

    def forward(self, value, *inputs):
        value = pt.as_tensor_variable(value)
        B = pt.linalg.cholesky(pt.linalg.inv(value), lower=True, check_finite=False)
        ref = pt.broadcast_to(self._reference(inputs), B.shape)
        A = pt.linalg.solve_triangular(ref, B, lower=True, check_finite=False)
        packed = A[..., self.rows, self.cols]
        return pt.set_subtensor(packed[..., self.diag_pos], pt.log(packed[..., self.diag_pos]))

    def log_jac_det(self, value, *inputs):
        value = pt.as_tensor_variable(value)
        d = self.d
        coef = (d + np.arange(1, d + 1)).astype(np.float64)
        return (
            d * np.log(2.0)
            - pt.sum(coef * value[..., self.diag_pos], axis=-1)
            - (d + 1) * pt.sum(pt.log(pt.diagonal(self._reference(inputs), axis1=-2, axis2=-1)), axis=-1)
        )


class AffineTransform(Transform):
    """``x = loc + scale z``: a fixed affine change of coordinates (log Jacobian constant).

    ``loc`` (..., d) and ``scale`` (..., d, d) (lower triangular, ``multivariate=True``) or
    (..., d) (elementwise) are the distribution's last two parameters (graph inputs).

    Parameters
    ----------
    multivariate : bool
        Whether the distribution's log density sums over the last axis (an ``MvNormal``) or is
        elementwise (a ``Normal``); the log Jacobian has the matching shape.
    """

    name = "affine"

    def __init__(self, *, multivariate: bool):
        self.multivariate = multivariate
        self.ndim_supp = 1 if multivariate else 0

    def _loc_scale(self, inputs):
        return pt.as_tensor_variable(inputs[-2]), pt.as_tensor_variable(inputs[-1])

    def backward(self, value, *inputs):
        value = pt.as_tensor_variable(value)
        loc, scale = self._loc_scale(inputs)
        if self.multivariate:
            return loc + pt.matmul(scale, value[..., None])[..., 0]
        return loc + scale * value

    def forward(self, value, *inputs):
        value = pt.as_tensor_variable(value)
        loc, scale = self._loc_scale(inputs)
        if self.multivariate:
            centred = (value - loc)[..., None]
            return pt.linalg.solve_triangular(scale, centred, lower=True, b_ndim=2, check_finite=False)[..., 0]
        return (value - loc) / scale

    def log_jac_det(self, value, *inputs):
        value = pt.as_tensor_variable(value)
        _, scale = self._loc_scale(inputs)
        if self.multivariate:
            log_det = pt.sum(pt.log(pt.diagonal(scale, axis1=-2, axis2=-1)), axis=-1)
            return pt.zeros_like(value[..., 0]) + log_det
        return pt.zeros_like(value) + pt.log(scale)


# ----------------------------------------------------------------------------------------
# log densities (PyTensor)
# ----------------------------------------------------------------------------------------
def _log_multigamma(a, d: int):
    j = np.arange(d, dtype=np.float64)
    return 0.25 * d * (d - 1) * np.log(np.pi) + pt.sum(pt.gammaln(a[..., None] - 0.5 * j), axis=-1)


def _precision_cholesky(covariance):
    """Lower Cholesky factor of ``covariance^{-1}`` and ``log det covariance``.

    Written as ``cholesky(inv(Sigma))`` so that, when ``Sigma`` comes from
    :class:`PrecisionCholeskyTransform`, PyTensor's rewrites (``inv_of_inv``,
    ``cholesky_ldotlt``) reduce it to the transform's own factor.
    """
    P = pt.linalg.cholesky(pt.linalg.inv(covariance), lower=True, check_finite=False)
    logdet = -2.0 * pt.sum(pt.log(pt.diagonal(P, axis1=-2, axis2=-1)), axis=-1)
    return P, logdet


class _PyTensorOps:
    """PyTensor's versions of :class:`bayes_gmm.model.array_ops.NumpyOps`: the families'
    quadratic forms build the model's likelihood from the same code as the NumPy numerics."""

    matmul = staticmethod(pt.matmul)
    swapaxes = staticmethod(pt.swapaxes)
    concatenate = staticmethod(pt.concatenate)
    sum = staticmethod(pt.sum)
    log = staticmethod(pt.log)
    ones_like = staticmethod(pt.ones_like)
    precision_cholesky = staticmethod(_precision_cholesky)


PYTENSOR_OPS = _PyTensorOps()


def invwishart_logp(value, nu, psi):
    """Log density of ``InvWishart(nu, Psi)`` (scipy's ``df=nu, scale=Psi``) at ``value``.

    ``value`` has shape (..., d, d); the result has shape (...,).
    """
    psi = pt.as_tensor_variable(psi)
    return _invwishart_logp_chol(value, nu, pt.linalg.cholesky(psi, lower=True, check_finite=False))


def _invwishart_logp_chol(value, nu, psi_chol):
    """:func:`invwishart_logp` with ``Psi = C C^T`` given by its lower Cholesky factor ``C``."""
    value = pt.as_tensor_variable(value)
    nu = pt.as_tensor_variable(nu)
    C = pt.as_tensor_variable(psi_chol)
    d = value.type.shape[-1]
    if d is None:
        raise ValueError("the inverse-Wishart needs a static matrix size.")
    P, logdet = _precision_cholesky(value)
    logdet_psi = 2.0 * pt.sum(pt.log(pt.diagonal(C, axis1=-2, axis2=-1)), axis=-1)
    # trace(Psi Sigma^-1) = ||C^T P||_F^2
    trace = pt.sum(pt.matmul(pt.swapaxes(C, -1, -2), P) ** 2, axis=(-2, -1))
    return invwishart_from_parts(nu, d, logdet_psi, logdet, trace, _log_multigamma(0.5 * nu, d))


def _mean_logp(value, m0, kappa0, covariance):
    """Log density of ``N(m0, Sigma / kappa0)`` at ``value`` (..., d), through the precision factor."""
    d = value.type.shape[-1]
    P, logdet = _precision_cholesky(covariance)
    z = pt.matmul(pt.swapaxes(P, -1, -2), (value - m0)[..., None])[..., 0]
    return 0.5 * d * (pt.log(kappa0) - _LOG_2PI) - 0.5 * logdet - 0.5 * kappa0 * pt.sum(z**2, axis=-1)


def _mean_random(m0, kappa0, covariance, rng=None, size=None):
    """Draws of ``N(m0, Sigma / kappa0)``, shape (*size, d)."""
    rng = np.random.default_rng(rng)
    L = np.linalg.cholesky(np.asarray(covariance, dtype=float) / np.asarray(kappa0, dtype=float))
    shape = np.broadcast_shapes(np.shape(m0), L.shape[:-1]) if size is None else (*np.atleast_1d(size), L.shape[-1])
    eps = rng.standard_normal(shape)
    return m0 + np.einsum("...ij,...j->...i", np.broadcast_to(L, (*shape, L.shape[-1])), eps)


def _normal_mean_logp(value, m0, kappa0, variance):
    """Log density of ``N(m0, variance / kappa0)`` at ``value``, elementwise (diag, spherical)."""
    return 0.5 * (pt.log(kappa0) - _LOG_2PI - pt.log(variance)) - 0.5 * kappa0 * (value - m0) ** 2 / variance


def _normal_mean_random(m0, kappa0, variance, rng=None, size=None):
    rng = np.random.default_rng(rng)
    sd = np.sqrt(np.asarray(variance, dtype=float) / kappa0)
    shape = np.broadcast_shapes(np.shape(m0), np.shape(sd)) if size is None else tuple(np.atleast_1d(size))
    return m0 + sd * rng.standard_normal(shape)


def _anchored(fn, n_anchor: int):
    """``logp(value, *params)`` or ``support_point(rv, size, *params)`` of a distribution whose
    last ``n_anchor`` parameters only anchor its transform."""

    def without_anchor(*args):
        return fn(*args[: len(args) - n_anchor])

    return without_anchor


def _anchored_random(fn, n_anchor: int):
    """``random(*params, rng=, size=)`` of such a distribution."""

    def without_anchor(*params, rng=None, size=None):
        return fn(*params[: len(params) - n_anchor], rng=rng, size=size)

    return without_anchor


def _invwishart_random_chol(nu, psi_chol, rng=None, size=None):
    psi_chol = np.asarray(psi_chol, dtype=float)
    return _invwishart_random(nu, psi_chol @ np.swapaxes(psi_chol, -1, -2), rng=rng, size=size)


def _invwishart_random(nu, psi, rng=None, size=None):
    """Draws of ``InvWishart(nu, Psi)`` (:data:`scipy.stats.invwishart`), shape (*size, d, d)."""
    rng = np.random.default_rng(rng)
    psi = np.asarray(psi, dtype=float)
    d = psi.shape[-1]
    if np.size(nu) != 1 or psi.size != d * d:
        raise NotImplementedError("inverse-Wishart draws need unbatched parameters.")
    size = () if size is None else tuple(np.atleast_1d(size))
    distribution = stats.invwishart(df=float(np.reshape(nu, -1)[0]), scale=psi.reshape(d, d))
    return np.reshape(distribution.rvs(size=int(np.prod(size)), random_state=rng), (*size, d, d))


def _core(param, core_ndim: int):
    """Drop the leading broadcastable (size-1) batch dims PyMC adds to a parameter."""
    extra = param.ndim - core_ndim
    if extra <= 0:
        return param
    if not all(param.type.broadcastable[:extra]):
        raise NotImplementedError("the mixture density needs unbatched parameters.")
    return pt.squeeze(param, axis=tuple(range(extra)))


def _mixture_logp_factory(covariance_type: str, d: int):
    """The marginal log density of each row, ``log sum_k pi_k N(x | mu_k, Sigma_k)``, shape (n,)."""
    family = _posterior_family(covariance_type)
    cov_ndim = len(family.covariance_dims)

    def logp(value, weights, means, covariances, features, centre):
        # features: the data's quadratic features (the family's quadratic_features of the rows
        # minus centre), inputs of the graph like the data themselves, computed once per data set
        weights = _core(weights, 1)
        means = _core(means, 2)
        covariances = _core(covariances, cov_ndim)
        centre = _core(centre, 1)
        # quad_ik = (x_i - mu_k)^T Lambda_k (x_i - mu_k) as one matrix product of data features
        # (x x^T, x) with per-component coefficients; centring keeps the expansion accurate
        coef, const, logdet = family.quadratic_coefficients(means - centre, covariances, d, PYTENSOR_OPS)
        # log sum_k exp(bias_k - 0.5 features_i . coef_k), one fused kernel with its gradient
        # from the responsibilities (bayes_gmm.bayes.mixture_op)
        bias = pt.log(weights) - 0.5 * (d * _LOG_2PI + logdet + const)
        log_density, _ = mixture_logsumexp(_core(features, 2), coef, bias)
        return log_density

    return logp


def _invwishart_support_point(rv, size, nu, psi):
    """The mode ``Psi / (nu + d + 1)``, broadcast to the variable's shape."""
    d = rv.type.shape[-1]
    return pt.broadcast_to(psi / (nu[..., None, None] + d + 1.0), rv.shape)


def _invwishart_support_point_chol(rv, size, nu, psi_chol):
    return _invwishart_support_point(rv, size, nu, pt.matmul(psi_chol, pt.swapaxes(psi_chol, -1, -2)))


def _mixture_random_factory(covariance_type: str):
    def random(weights, means, covariances, features, centre, rng=None, size=None):
        rng = np.random.default_rng(rng)
        if np.ndim(weights) != 1:
            raise NotImplementedError("draws of the mixture need unbatched parameters.")
        n = 1 if size is None else int(np.prod(size))
        x, _ = simulate_draws(rng, weights[None], means[None], covariances[None], covariance_type, n)
        return x[0].reshape((*(() if size is None else tuple(np.atleast_1d(size))), means.shape[-1]))

    return random


# ----------------------------------------------------------------------------------------
# the model
# ----------------------------------------------------------------------------------------
def _map_scales(est: MapEM, X: np.ndarray):
    """Reference points for the transforms: MAP precision Cholesky (families with an
    inverse-Wishart prior) and the posterior spread of the means."""
    family = _posterior_family(est.covariance_type)
    with np.errstate(divide="ignore"):  # log 0 of an empty component's weight (alpha = 1)
        nk = est.predict_proba(X).sum(axis=0)
    spread = 1.0 / np.sqrt(nk + est.prior_.kappa0)  # (K,)
    cov = np.asarray(est.covariances_, dtype=float)
    ref = np.linalg.cholesky(np.linalg.inv(cov)) if family.wishart_prior else None
    return ref, family.mean_scale(cov, spread, est.means_.shape[1])


def build_model(est: MapEM, X, *, coords: Mapping | None = None) -> pm.Model:
    """The PyMC model of the Gaussian mixture under MAP-EM's prior.

    Parameters
    ----------
    est : MapEM
        A fitted estimator: its ``prior_``, ``covariance_type`` and number of components define
        the model; its MAP solution anchors the coordinates NUTS moves in (not the density).
    X : array-like of shape (n_samples, n_features)
        The data the likelihood is conditioned on (usually the data ``est`` was fitted on).
    coords : mapping, optional
        Overrides of the coordinates ``component``, ``feature``, ``feature_bis``, ``obs``.

    Returns
    -------
    pymc.Model
        Every number taken from ``est`` and ``X`` (the data, the prior's hyper-parameters, the
        MAP anchor of the transforms) is a PyTensor shared variable (``model_inputs``); the
        graph depends only on ``(covariance_type, n_components, n_features)``.
        Free variables ``weights`` (component), ``means`` (component, feature) and
        ``covariances`` (shape of the covariance type, see the module docstring), all in the
        parameters' own (constrained) coordinates; the observed ``x`` (obs, feature) has the
        marginal mixture density, so ``pm.compute_log_likelihood`` gives a pointwise
        log-likelihood for LOO.

    Examples
    --------
    >>> import numpy as np
    >>> from bayes_gmm import MapEM, build_model
    >>> X = np.random.default_rng(0).normal(size=(50, 2))
    >>> model = build_model(MapEM(2, random_state=0).fit(X), X)
    >>> sorted(v.name for v in model.free_RVs)
    ['covariances', 'means', 'weights']
    """
    est = check_estimator(est)
    X = _check_X(est, X)
    n, d = X.shape
    k = int(est.weights_.shape[0])
    features = _feature_labels(est, d)
    all_coords = {
        "component": list(range(k)),
        "feature": features,
        "feature_bis": list(features),
        "obs": list(range(n)),
    }
    if coords is not None:
        unknown = set(coords) - set(all_coords)
        if unknown:
            raise ValueError(f"unknown coords {sorted(unknown)}; allowed: {sorted(all_coords)}.")
        all_coords.update({name: list(values) for name, values in coords.items()})
    for name, size in (("component", k), ("feature", d), ("feature_bis", d), ("obs", n)):
        if len(all_coords[name]) != size:
            raise ValueError(f"coords[{name!r}] must have {size} entries, got {len(all_coords[name])}.")
    model, inputs = _shared_model(est.covariance_type, k, d, all_coords)
    set_model_inputs(inputs, model_input_values(est, X))
    return model


def _input_shapes(covariance_type: str, k: int, d: int) -> dict[str, tuple]:
    """Static shapes of the model's shared inputs (``None``: any length)."""
    family = _posterior_family(covariance_type)
    shapes = {"bgmm_x": (None, d), "bgmm_features": (None, family.n_quadratic_features(d)), "bgmm_centre": (d,),
              "bgmm_alpha": (), "bgmm_m0": (d,), "bgmm_kappa0": (), "bgmm_mean_loc": (k, d)}
    mean_scale = family.mean_scale(family.identity_covariances(k, d), np.ones(k), d).shape
    if family.wishart_prior:
        shapes.update(bgmm_nu0=(), bgmm_psi0_chol=(d, d), bgmm_cov_ref=family.covariance_shape(k, d))
    else:
        shapes.update(bgmm_a0=(), bgmm_b0=family.prior_rate_shape(d))
    shapes["bgmm_mean_scale"] = mean_scale
    return shapes


def model_input_values(est: MapEM, X) -> dict[str, np.ndarray]:
    """Values of the model's shared inputs for a fitted estimator and data.

    The data ``bgmm_x``, their quadratic features ``bgmm_features`` about their mean
    ``bgmm_centre`` (the likelihood's matrix product); the prior (``bgmm_alpha``, ``bgmm_m0``, ``bgmm_kappa0``, and
    ``bgmm_nu0``, ``bgmm_psi0_chol`` (the Cholesky factor of ``Psi0``) or ``bgmm_a0``, ``bgmm_b0``); the MAP anchor of the transforms
    (``bgmm_cov_ref``: Cholesky factor of each MAP precision, full/tied; ``bgmm_mean_loc``,
    ``bgmm_mean_scale``: MAP means and their posterior spread).
    """
    est = check_estimator(est)
    X = _check_X(est, X)
    prior = est.prior_
    family = _posterior_family(est.covariance_type)
    ref, mean_scale = _map_scales(est, X)
    centre = X.mean(axis=0)
    values = {
        "bgmm_x": X,
        "bgmm_features": family.quadratic_features(X - centre),
        "bgmm_centre": centre,
        "bgmm_alpha": prior.alpha,
        "bgmm_m0": prior.m0,
        "bgmm_kappa0": prior.kappa0,
        "bgmm_mean_loc": est.means_,
        "bgmm_mean_scale": mean_scale,
    }
    if family.wishart_prior:
        values.update(bgmm_nu0=prior.nu0, bgmm_psi0_chol=prior.psi0_cholesky, bgmm_cov_ref=ref)
    else:
        values.update(bgmm_a0=prior.a0, bgmm_b0=prior.b0)
    return {name: np.asarray(value, dtype=np.float64) for name, value in values.items()}


def set_model_inputs(inputs: Mapping, values: Mapping) -> None:
    """Set the shared inputs (``{name: shared variable}``) to ``values`` (``{name: array}``)."""
    for name, var in inputs.items():
        value = np.asarray(values[name], dtype=np.float64)
        if value.ndim != var.type.ndim:
            raise ValueError(f"{name} must have {var.type.ndim} dimensions, got shape {value.shape}.")
        var.set_value(value)


def _shared_model(covariance_type: str, k: int, d: int, coords: Mapping) -> tuple[pm.Model, dict]:
    """The model's graph for ``(covariance_type, k, d)``, with its inputs as shared variables.

    ``coords`` must hold ``component``, ``feature`` and ``feature_bis``; with ``obs`` as well,
    the observed ``x`` has dims (obs, feature), else none (its length then follows the data).
    Returns the model and ``{name: shared variable}``; the inputs hold placeholders until
    :func:`set_model_inputs`.
    """
    family = _posterior_family(covariance_type)
    inputs = {}
    for name, shape in _input_shapes(covariance_type, k, d).items():
        placeholder = np.ones(tuple(1 if s is None else s for s in shape))
        if len(shape) >= 2 and shape[-2:] == (d, d) and name not in ("bgmm_x", "bgmm_features"):
            placeholder = np.broadcast_to(np.eye(d), placeholder.shape).copy()
        inputs[name] = pytensor.shared(placeholder, name=name, shape=shape)
    x_dims = ("obs", "feature") if "obs" in coords else None
    with pm.Model(coords=coords) as model:
        weights = pm.Dirichlet("weights", a=pt.alloc(inputs["bgmm_alpha"], k), dims="component")
        kappa0 = inputs["bgmm_kappa0"]
        # the transforms' anchors are the distributions' last parameters: graph inputs that
        # every rewrite and clone of the model (remove_value_transforms, ...) carries along
        anchor = (inputs["bgmm_mean_loc"], inputs["bgmm_mean_scale"])
        if family.wishart_prior:
            # Psi0 enters as its Cholesky factor: no factorisation of an input in the graph
            covariances = pm.CustomDist(
                "covariances",
                inputs["bgmm_nu0"],
                inputs["bgmm_psi0_chol"],
                inputs["bgmm_cov_ref"],
                logp=_anchored(_invwishart_logp_chol, 1),
                random=_anchored_random(_invwishart_random_chol, 1),
                support_point=_anchored(_invwishart_support_point_chol, 1),
                signature="(),(p,p),(p,p)->(p,p)",
                transform=PrecisionCholeskyTransform(d=d),
                dims=family.covariance_dims,
            )
            # mu_k | Sigma_k ~ N(m0, Sigma_k / kappa0)
            mean_scale, mean_logp, mean_random = covariances, _mean_logp, _mean_random
            mean_signature, multivariate = "(p),(),(p,p),(p),(p,p)->(p)", True
        else:
            # the hyper-parameters are inputs, not constants: PyTensor's constant folding of
            # gammaln(a0) (a Python implementation) was 1.9e-9 off scipy's, inputs are exact
            covariances = pm.InverseGamma(
                "covariances", alpha=inputs["bgmm_a0"], beta=inputs["bgmm_b0"], dims=family.covariance_dims
            )
            # mu_kj | sigma2_kj ~ N(m0_j, sigma2_kj / kappa0)
            mean_scale = family.variances_per_feature(covariances)
            mean_logp, mean_random = _normal_mean_logp, _normal_mean_random
            mean_signature, multivariate = "(),(),(),(),()->()", False
        means = pm.CustomDist(
            "means",
            inputs["bgmm_m0"],
            kappa0,
            mean_scale,
            *anchor,
            logp=_anchored(mean_logp, 2),
            random=_anchored_random(mean_random, 2),
            signature=mean_signature,
            dims=("component", "feature"),
            transform=AffineTransform(multivariate=multivariate),
        )
        pm.CustomDist(
            "x",
            weights,
            means,
            covariances,
            inputs["bgmm_features"],
            inputs["bgmm_centre"],
            logp=_mixture_logp_factory(covariance_type, d),
            random=_mixture_random_factory(covariance_type),
            signature=f"(k),(k,p),{family.core_signature()},(f),(p)->(p)",
            observed=inputs["bgmm_x"],
            dims=x_dims,
        )
    return model, inputs


# ----------------------------------------------------------------------------------------
# the chains' starting point
# ----------------------------------------------------------------------------------------
#: Distance of the chains' starting point from MAP-EM's solution in every coordinate NUTS moves
#: in (``+-START_OFFSET``; the means' coordinates are in units of their posterior spread).
START_OFFSET = 1e-3

_FAST = "FAST_COMPILE"


def _initvals(est: MapEM, n: int) -> dict[str, np.ndarray]:
    """MAP-EM's solution, with every weight at least ``1 / (n + K)``.

    A weight can be 0 (or 1e-150) only with ``alpha = 1`` and a component that holds no data
    (close to it with ``1 <= alpha < 2``; with ``alpha >= 2`` every MAP weight is at least
    ``1 / (n + K)``): the posterior is still proper, but its log density is ``-inf`` there (or
    the sampler would start hundreds of units away on the log scale).  ``1 / (n + K)`` is the
    posterior mean of an empty component's weight under ``alpha = 1``.
    """
    weights = np.asarray(est.weights_, dtype=float)
    floor = 1.0 / (n + weights.shape[0])
    low = weights < floor
    if np.any(low):  # the others keep their proportions
        weights = np.where(low, floor, weights * (1.0 - floor * low.sum()) / weights[~low].sum())
    return {
        "weights": weights,
        "means": np.asarray(est.means_, dtype=float),
        "covariances": np.asarray(est.covariances_, dtype=float),
    }


def _start_point(model: pm.Model, est: MapEM, n: int) -> dict[str, np.ndarray]:
    """The chains' starting point in the sampler's (unconstrained) coordinates.

    MAP-EM's solution moved by ``+-START_OFFSET`` (a fixed pattern of signs) in every coordinate
    of the transformed variables.  At MAP-EM's solution itself the gradient of the log density
    vanishes, to rounding, and *exactly* in directions the data do not inform: the mean of a
    constant column (every ``x_ij - mu_kj`` and ``m0_j - mu_kj`` is exactly 0), the same
    coordinates when every row is identical, and more with fewer rows than columns.  nutpie
    (nuts-rs) rejects an initial point whose gradient has an exactly zero entry ("Invalid initial
    point"), and, without jitter, every retry is the same point.  The offset makes the gradient
    about ``H @ offset`` (``H`` the Hessian), nonzero, while the chains still start far inside
    the posterior (the coordinates are scaled by the posterior spread or are logarithms of
    scales).  Variables added to the model by the user start at their own initial values.
    """
    point = make_initial_point_fn(
        model=model, overrides=_initvals(est, n), jitter_rvs=set(), return_transformed=True
    )(0)
    rng = np.random.default_rng(0)
    start = {}
    for rv in model.free_RVs:
        name = model.rvs_to_values[rv].name
        value = np.asarray(point[name], dtype=float)
        if rv.name in ("weights", "means", "covariances") and model.rvs_to_transforms.get(rv) is not None:
            value = value + START_OFFSET * rng.choice([-1.0, 1.0], size=value.shape)
        start[name] = value
    return start


def _entry_names(name: str, mask: np.ndarray) -> list[str]:
    """``name[i, j]`` for every true entry of ``mask``."""
    mask = np.asarray(mask, dtype=bool)
    if mask.ndim == 0:
        return [name] if mask else []
    return [f"{name}[{', '.join(str(int(i)) for i in idx)}]" for idx in zip(*np.nonzero(mask), strict=True)]


def _check_start(model: pm.Model, start: dict[str, np.ndarray], sampler: str) -> None:
    """Raise a ValueError, in seconds, where the sampler could not start.

    The log density and its gradient are evaluated at ``start`` with PyTensor's Python
    implementations (``mode="FAST_COMPILE"``: no C or numba compilation).
    """
    value_vars = model.continuous_value_vars
    logp = model.logp()
    grads = pt.grad(logp, value_vars)
    fn = model.compile_fn([logp, *grads], inputs=model.value_vars, mode=_FAST, on_unused_input="ignore")
    with np.errstate(all="ignore"):
        logp_value, *grad_values = fn(start)
    _raise_for_bad_start(float(logp_value), [(var.name, g) for var, g in zip(value_vars, grad_values, strict=True)], sampler)


def _raise_for_bad_start(logp_value: float, named_grads, sampler: str) -> None:
    """The ValueError of a start with a non-finite log density or gradient, or (nutpie) a zero
    gradient entry; ``named_grads``: ``(value variable name, gradient array)`` pairs."""
    bad = []
    zero = []
    for name, grad in named_grads:
        grad = np.asarray(grad)
        bad += _entry_names(name, ~np.isfinite(grad))
        zero += _entry_names(name, grad == 0)
    if not np.isfinite(logp_value) or bad:
        where = f"; the gradient is not finite in {_short_list(bad)}" if bad else ""
        raise ValueError(
            f"the model's log density at the starting point (next to MAP-EM's solution) is "
            f"{float(logp_value)}{where}: the sampler cannot start there.  Check the estimator's "
            "parameters (est.weights_, est.means_, est.covariances_) and any variable added to "
            "the model."
        )
    if sampler == "nutpie" and zero:
        raise ValueError(
            f"the gradient of the log density is exactly 0 in {_short_list(zero)} at the "
            "starting point, which nutpie rejects ('Invalid initial point'); use "
            "sampler='pymc'."
        )


def _short_list(items: list[str], n: int = 5) -> str:
    more = f" and {len(items) - n} more" if len(items) > n else ""
    return ", ".join(items[:n]) + more


# ----------------------------------------------------------------------------------------
# sampling
# ----------------------------------------------------------------------------------------

def sample_posterior(
    est: MapEM,
    X,
    *,
    draws: int = 1000,
    tune: int = 1000,
    chains: int = 4,
    sampler: str = "nutpie",
    random_seed: int | None = None,
    progressbar: bool = True,
    model: pm.Model | None = None,
    cores: int | None = None,
    target_accept: float | None = None,
    ambiguity_tol: float = 1.0,
    log_likelihood: bool = True,
) -> xr.DataTree:
    """Sample the posterior of the mixture under MAP-EM's prior, starting at MAP-EM's solution.

    Parameters
    ----------
    est : MapEM
        A fitted estimator (its prior, covariance type and solution).
    X : array-like of shape (n_samples, n_features)
        The data (usually those ``est`` was fitted on).
    draws, tune, chains : int
        Draws kept per chain, warm-up steps per chain, number of chains.
    sampler : {"nutpie", "pymc"}, default="nutpie"
        nutpie (compiled with numba) or PyMC's own NUTS.
    random_seed : int, optional
        Makes the run reproducible (bit for bit with nutpie).
    progressbar : bool, default=True
        The sampler's progress bar, and a "Compiling the posterior model ..." line on stderr
        before a compilation.
    model : pymc.Model, optional
        A model from :func:`build_model` (possibly changed by the user), sampled through
        ``pm.sample`` (compiled on every call).  If not given (with ``sampler="nutpie"``), the
        process-wide compiled model of ``est``'s covariance type and shape is used
        (:func:`bayes_gmm.get_posterior_sampler`): compiled on the first call, reused after.
    cores : int, optional
        Chains run in parallel.  Default: every CPU this process may use, at most ``chains``
        (PyMC's own default halves the CPU count, assuming hyper-threads: on a 2-core machine
        that ran the chains one after the other, twice as slow).
    target_accept : float, optional
        NUTS target acceptance rate (the sampler's default, 0.8, if not given).
    ambiguity_tol : float, default=1.0
        See :func:`relabel`.
    log_likelihood : bool, default=True
        Add the pointwise ``log_likelihood`` group (for LOO).

    Returns
    -------
    xarray.DataTree
        Groups ``posterior`` (``weights``, ``means``, ``covariances`` relabelled to MAP-EM's
        components; attrs ``covariance_type``), ``posterior_raw`` (the same before relabelling),
        ``relabelling`` (see :func:`relabel`), ``map_estimate`` (MAP-EM's solution and its
        log-posterior), ``sample_stats``, ``log_likelihood`` (``x`` with dims chain, draw, obs;
        unchanged by relabelling) and ``observed_data``.

    Raises
    ------
    ValueError
        Before any compilation, when the log density or its gradient is not finite at the
        starting point (for instance a model changed by the user), or, for nutpie, when a
        gradient entry is exactly 0 there; after compilation, when nutpie still cannot start.

    Warns
    -----
    ConvergenceWarning
        When more than 1% of the draws had to be relabelled or were ambiguous: the chains left
        MAP-EM's mode (a local optimum, or a component the data barely support).
    ConvergenceWarning
        When, on the relabelled draws, the largest rank-normalised R-hat exceeds ``RHAT_WARN``
        (1.01) or the smallest bulk ESS is below ``ESS_PER_CHAIN_WARN`` (100) per chain; the
        message names the worst entries.

    Notes
    -----
    Every chain starts, without jitter (nutpie: ``jitter_rvs=set()``; PyMC:
    ``init="adapt_diag"``), at MAP-EM's solution moved by ``START_OFFSET`` (0.001) in each
    coordinate NUTS moves in: at the solution itself a gradient entry can be exactly 0 (a
    constant column, identical rows), which nutpie refuses as an initial point.  Weights below
    ``1 / (n + K)`` (an empty component with ``alpha = 1``) start at that value.  BLAS runs
    single-threaded while sampling.

    Examples
    --------
    >>> import bayes_gmm  # doctest: +SKIP
    >>> X, _ = bayes_gmm.make_seed_problem()  # doctest: +SKIP
    >>> est = bayes_gmm.MapEM(10, random_state=0).fit(X)  # doctest: +SKIP
    >>> idata = bayes_gmm.sample_posterior(est, X, draws=1000, chains=4)  # doctest: +SKIP
    >>> idata["relabelling"].attrs["n_permuted_draws"]  # doctest: +SKIP
    0
    """
    est = check_estimator(est)
    X = _check_X(est, X)
    draws, tune, chains, cores = _check_sampling_args(draws, tune, chains, cores)
    if sampler not in _SAMPLERS:
        raise ValueError(f"sampler must be one of {_SAMPLERS}, got {sampler!r}.")
    if model is None and sampler == "nutpie":
        return get_posterior_sampler(est).sample(
            est, X, draws=draws, tune=tune, chains=chains, random_seed=random_seed, progressbar=progressbar,
            cores=cores, target_accept=target_accept, ambiguity_tol=ambiguity_tol, log_likelihood=log_likelihood,
        )
    if model is None:
        model = build_model(est, X)
    elif not isinstance(model, pm.Model):
        raise TypeError(f"model must be a pymc.Model from build_model, got {type(model).__name__}.")
    missing = {"weights", "means", "covariances", "x"} - set(model.named_vars)
    if missing:
        raise ValueError(f"the model lacks the variables {sorted(missing)}; build it with build_model.")

    start = _start_point(model, est, X.shape[0])
    _check_start(model, start, sampler)
    kwargs = dict(
        draws=draws,
        tune=tune,
        chains=chains,
        cores=cores,
        random_seed=random_seed,
        progressbar=progressbar,
        initvals=start,
        model=model,
        compute_convergence_checks=False,
    )
    nuts = {} if target_accept is None else {"target_accept": target_accept}
    # The graph calls BLAS/LAPACK on tiny matrices from every chain: multi-threaded BLAS made
    # each gradient 100x slower on a busy 2-core machine, so it runs single-threaded.
    with threadpool_limits(limits=1, user_api="blas"):
        if sampler == "nutpie":
            if progressbar:
                sys.stderr.write("Compiling the posterior model (a model given by the caller: not cached) ...\n")
            try:
                idata = pm.sample(nuts_sampler="nutpie", compile_kwargs={"jitter_rvs": set()}, nuts=nuts, **kwargs)
            except RuntimeError as err:  # nuts-rs: a Rust error with its backtrace in the message
                raise _nutpie_start_error(err) from None
        else:
            idata = pm.sample(nuts_sampler="pymc", init="adapt_diag", nuts=nuts, **kwargs)
        if log_likelihood:
            pm.compute_log_likelihood(idata, model=model, extend_inferencedata=True, progressbar=progressbar)

    raw = idata["posterior"].to_dataset()
    coords = {name: list(values) for name, values in model.coords.items()}
    return _finish(idata, raw, est, X, coords, ambiguity_tol)


def _check_sampling_args(draws, tune, chains, cores) -> tuple[int, int, int, int]:
    for name, value in (("draws", draws), ("chains", chains)):
        check_positive(name, value, integer=True)
    check_positive("tune", tune, integer=True, allow_zero=True)
    if cores is None:
        cores = min(chains, available_cores())
    else:
        check_positive("cores", cores, integer=True)
    return int(draws), int(tune), int(chains), int(cores)


def _nutpie_start_error(err: RuntimeError) -> Exception:
    """nuts-rs's failure to start (a Rust error with its backtrace) as a ValueError; others as they are."""
    if "initialization points failed" not in str(err):
        return err
    reason = " ".join(str(err).split("Stack backtrace")[0].split())
    return ValueError(f"nutpie could not start next to MAP-EM's solution ({reason}); try sampler='pymc'.")


def _model_coords(est: MapEM, n: int) -> dict[str, list]:
    d = est.means_.shape[1]
    features = _feature_labels(est, d)
    return {
        "component": list(range(est.means_.shape[0])),
        "feature": features,
        "feature_bis": list(features),
        "obs": list(range(n)),
    }



def _finish(idata: xr.DataTree, raw: xr.Dataset, est: MapEM, X: np.ndarray, coords, ambiguity_tol) -> xr.DataTree:
    """Symmetrised, relabelled draws and MAP-EM's solution in ``idata``; the warnings."""
    raw.attrs = dict(raw.attrs, covariance_type=est.covariance_type)
    # the sampler inverts B B^T with an LU solve: symmetric to rounding, made exactly so
    family = _posterior_family(est.covariance_type)
    cov = raw["covariances"].transpose(..., *family.covariance_dims)
    raw["covariances"] = cov.copy(data=family.symmetrized(cov.values))
    map_ds = map_estimate_dataset(est, X, coords)
    relabelled, relabelling = relabel(raw, map_ds, covariance_type=est.covariance_type, ambiguity_tol=ambiguity_tol)
    warn_if_label_switching(relabelling, stacklevel=4)
    warn_if_not_converged(relabelled, est.covariance_type, stacklevel=4)
    idata["posterior"] = xr.DataTree(relabelled)
    idata["posterior_raw"] = xr.DataTree(raw)
    idata["relabelling"] = xr.DataTree(relabelling)
    idata["map_estimate"] = xr.DataTree(map_ds)
    return idata


def _raw_draws(results, names) -> dict[str, np.ndarray]:
    """The draws after tuning of the variables ``names``, (chain, draw, ...), from nutpie's raw
    trace (one Arrow record batch of draws and one of statistics per chain)."""
    import pyarrow

    draw_batches, stat_batches = results.get_arrow_trace()
    out = {name: [] for name in names}
    for draw, stat in zip(draw_batches, stat_batches, strict=True):
        n_tune = int(np.sum(stat.column("tuning").to_numpy()))
        for name in names:
            column = draw.column(name)
            shape = tuple(int(s) for s in column.field.metadata[b"shape"].decode().split(","))
            values = pyarrow.array(column).flatten().to_numpy(False)
            out[name].append(values.reshape(draw.num_rows, *shape)[n_tune:])
    return {name: np.stack(chains) for name, chains in out.items()}


# ----------------------------------------------------------------------------------------
# the compiled model, reused across data sets (see bayes_gmm.bayes)
# ----------------------------------------------------------------------------------------
logger = logging.getLogger(__name__)

_CACHE: dict[tuple[str, int, int], PosteriorSampler] = {}
_CACHE_LOCK = threading.Lock()


def _key_of(est: MapEM) -> tuple[str, int, int]:
    # mclust's names of the four ("VVV", ...) share the registered name's compiled model
    return (_posterior_family(est.covariance_type).name, int(est.means_.shape[0]), int(est.means_.shape[1]))


def get_posterior_sampler(est: MapEM) -> PosteriorSampler:
    """The process-wide :class:`PosteriorSampler` for ``est``'s covariance type and shape.

    Created (not yet compiled) on first use; every later call with an estimator of the same
    ``(covariance_type, n_components, n_features)`` gets the same object, so the model is
    compiled once per process.
    """
    est = check_estimator(est)
    key = _key_of(est)
    with _CACHE_LOCK:
        if key not in _CACHE:
            _CACHE[key] = PosteriorSampler(*key)
        return _CACHE[key]


def clear_posterior_cache() -> None:
    """Forget every cached :class:`PosteriorSampler` (the next call compiles again)."""
    with _CACHE_LOCK:
        _CACHE.clear()


class PosteriorSampler:
    """The posterior model of one shape, compiled once with nutpie and reused across data sets.

    Parameters
    ----------
    covariance_type : {"full", "tied", "diag", "spherical"}
    n_components, n_features : int

    Attributes
    ----------
    model : pymc.Model
        The model, its inputs as shared variables (``inputs``); its observed ``x`` has no
        ``obs`` dim, so that any number of rows fits.
    n_compilations : int
        How many times nutpie compiled the model (0 or 1: :meth:`sample` compiles on first use).
    compile_seconds : float or None
        Wall time of that compilation.
    disk_cached : bool or None
        Whether nutpie's callbacks were compiled through the on-disk cache
        (:mod:`bayes_gmm.bayes.nutpie_cache`: a later process loads them instead of compiling;
        False where the installed nutpie is not one it was written against).

    Notes
    -----
    One sampler samples one data set at a time (a lock serialises :meth:`sample`).

    Examples
    --------
    >>> import bayes_gmm  # doctest: +SKIP
    >>> X, _ = bayes_gmm.make_seed_problem()  # doctest: +SKIP
    >>> est = bayes_gmm.MapEM(10, n_init=5, random_state=0).fit(X)  # doctest: +SKIP
    >>> sampler = bayes_gmm.get_posterior_sampler(est)  # doctest: +SKIP
    >>> idata = sampler.sample(est, X, random_seed=1)  # doctest: +SKIP
    >>> idata2 = sampler.sample(est2, X2, random_seed=1)  # same shape: no compilation  # doctest: +SKIP
    """

    def __init__(self, covariance_type: str, n_components: int, n_features: int):
        family = _posterior_family(covariance_type)  # a ValueError naming the registered types
        check_positive("n_components", n_components, integer=True)
        check_positive("n_features", n_features, integer=True)
        self.covariance_type = family.name  # "VVV" is "full": one compiled model for both
        self.n_components = int(n_components)
        self.n_features = int(n_features)
        k, d = self.n_components, self.n_features
        coords = {"component": list(range(k)), "feature": list(range(d)), "feature_bis": list(range(d))}
        self.model, self.inputs = _shared_model(covariance_type, k, d, coords)
        self.compiled = None
        self.n_compilations = 0
        self.compile_seconds: float | None = None
        self.disk_cached: bool | None = None
        self._lock = threading.RLock()
        self._forward = None

    def __repr__(self) -> str:
        state = "compiled" if self.compiled is not None else "not compiled"
        return (f"PosteriorSampler({self.covariance_type!r}, n_components={self.n_components}, "
                f"n_features={self.n_features}; {state})")

    # ------------------------------------------------------------------------------------
    def compile(self, *, progressbar: bool = True) -> PosteriorSampler:
        """Compile the model with nutpie (numba), once; later calls return at once.

        With ``progressbar=True`` a line "Compiling the posterior model ..." (and the time it
        took) goes to stderr before nutpie's progress bar; the same goes to the
        ``bayes_gmm.bayes.posterior`` logger at INFO level either way.
        """
        import nutpie

        with self._lock:
            if self.compiled is not None:
                return self
            what = (f"the posterior model ({self.covariance_type}, k={self.n_components}, "
                    f"d={self.n_features}) with nutpie/numba")
            logger.info("compiling %s ...", what)
            if progressbar:
                sys.stderr.write(f"Compiling {what} (once per process) ...\n")
                sys.stderr.flush()
            start = time.perf_counter()
            with threadpool_limits(limits=1, user_api="blas"):
                try:
                    self.compiled = nutpie_cache.compile_pymc_model_cached(self.model, jitter_rvs=set())
                    self.disk_cached = True
                except Exception as exc:  # an untested nutpie, or its internals changed: its own route
                    logger.info("nutpie's callbacks cannot be cached on disk (%s); compiling with nutpie", exc)
                    self.compiled = nutpie.compile_pymc_model(self.model, jitter_rvs=set())
                    self.disk_cached = False
            self.compile_seconds = time.perf_counter() - start
            self.n_compilations += 1
            logger.info("compiled in %.1f s", self.compile_seconds)
            if progressbar:
                sys.stderr.write(f"Compiled in {self.compile_seconds:.1f} s.\n")
                sys.stderr.flush()
            return self

    # ------------------------------------------------------------------------------------
    def _check_shape(self, est: MapEM) -> None:
        key = _key_of(est)
        if key != (self.covariance_type, self.n_components, self.n_features):
            raise ValueError(
                f"this sampler is for covariance_type={self.covariance_type!r}, "
                f"n_components={self.n_components}, n_features={self.n_features}; the estimator "
                f"has {key[0]!r}, {key[1]}, {key[2]}: use get_posterior_sampler(est)."
            )

    def _forward_fn(self):
        """Constrained parameter values -> the sampler's coordinates (compiled once, Python mode)."""
        if self._forward is None:
            model = self.model
            values = [rv.type() for rv in model.free_RVs]
            outs = [
                model.rvs_to_transforms[rv].forward(value, *rv.owner.inputs)
                for rv, value in zip(model.free_RVs, values, strict=True)
            ]
            self._forward = pytensor.function(values, outs, mode=_FAST, on_unused_input="ignore")
        return self._forward

    def start_point(self, est: MapEM, n: int) -> dict[str, np.ndarray]:
        """The chains' starting point in the sampler's coordinates, by value variable
        (:func:`bayes_gmm.bayes.posterior._start_point`, without compiling a function per call).

        The model's inputs must already hold ``est``'s values.
        """
        init = _initvals(est, n)
        free = self.model.free_RVs
        unconstrained = self._forward_fn()(*(init[rv.name] for rv in free))
        rng = np.random.default_rng(0)  # the sign pattern of _start_point
        start = {}
        for rv, value in zip(free, unconstrained, strict=True):
            value = np.asarray(value, dtype=float)
            start[self.model.rvs_to_values[rv].name] = value + START_OFFSET * rng.choice([-1.0, 1.0], size=value.shape)
        return start

    def _check_start(self, start: dict[str, np.ndarray]) -> np.ndarray:
        """Raise where nutpie could not start; the start, flat in nutpie's order.

        Evaluated with the compiled log density and gradient (microseconds): the compilation
        comes first, once per process (a Python-mode check before it cost 1.6 s per call).
        """
        names, _, _ = self.compiled.shape_info
        flat = np.concatenate([start[name].ravel() for name in names if name in start])
        with np.errstate(all="ignore"):
            logp, grad = self.compiled.logp_func(flat)
        grad = np.asarray(grad)
        named, offset = [], 0
        for name in names:
            if name in start:
                size = start[name].size
                named.append((name, grad[offset : offset + size].reshape(start[name].shape)))
                offset += size
        _raise_for_bad_start(float(logp), named, "nutpie")
        return flat

    # ------------------------------------------------------------------------------------
    def run(
        self,
        est: MapEM,
        X: np.ndarray,
        *,
        draws: int,
        tune: int,
        chains: int,
        random_seed: int | None,
        progressbar: bool,
        cores: int | None = None,
        target_accept: float | None = None,
        save_warmup: bool = True,
        as_arrays: bool = False,
    ) -> tuple[xr.DataTree | dict[str, np.ndarray], float]:
        """nutpie's own result (draws of the parameters, unrelabelled) and the sampling time.

        The bare sampling step of :meth:`sample` (``X`` already checked): no relabelling, no
        log-likelihood, no convergence check (what a simulation study needs, many times).
        With ``as_arrays=True`` the result is ``{"weights", "means", "covariances"}`` as arrays
        (chain, draw, ...) of the draws after tuning, read from nutpie's raw trace without
        building a DataTree (half the time of a small replicate went into building it).
        """
        import nutpie

        self._check_shape(est)
        cores = min(chains, available_cores()) if cores is None else cores
        with self._lock:
            values = model_input_values(est, X)
            self.compile(progressbar=progressbar)
            set_model_inputs(self.inputs, values)
            start = self._check_start(self.start_point(est, X.shape[0]))
            known = {var.name for var in self.compiled.shared_var_keys}
            compiled = self.compiled.with_data(**{name: v for name, v in values.items() if name in known})
            compiled = dataclasses.replace(compiled, initial_point_func=lambda seed: start.copy())
            seed = int(np.random.default_rng(random_seed).integers(2**31)) if random_seed is None else int(random_seed)
            nuts = {} if target_accept is None else {"target_accept": float(target_accept)}
            t0 = time.perf_counter()
            with threadpool_limits(limits=1, user_api="blas"):
                try:
                    idata = nutpie.sample(
                        compiled, draws=draws, tune=max(tune, 1), chains=chains, cores=cores, seed=seed,
                        save_warmup=save_warmup, progress_bar=progressbar, return_raw_trace=as_arrays, **nuts,
                    )
                except RuntimeError as err:
                    raise _nutpie_start_error(err) from None
            if as_arrays:
                idata = _raw_draws(idata, ("weights", "means", "covariances"))
            return idata, time.perf_counter() - t0

    def sample(
        self,
        est: MapEM,
        X,
        *,
        draws: int = 1000,
        tune: int = 1000,
        chains: int = 4,
        random_seed: int | None = None,
        progressbar: bool = True,
        cores: int | None = None,
        target_accept: float | None = None,
        ambiguity_tol: float = 1.0,
        log_likelihood: bool = True,
    ) -> xr.DataTree:
        """Sample the posterior for ``est`` and ``X`` (see :func:`bayes_gmm.sample_posterior`).

        Compiles on first use.  ``idata["sample_stats"].attrs`` records where the time went:
        ``compile_seconds`` (0 when the compiled model was reused), ``sampling_seconds``
        (nutpie, tuning and draws), ``log_likelihood_seconds``, ``postprocess_seconds``
        (relabelling, convergence checks) and the gradient evaluations of tuning and of the
        draws (``tuning_gradient_evaluations``, ``draw_gradient_evaluations``).
        """
        est = check_estimator(est)
        X = _check_X(est, X)
        draws, tune, chains, cores = _check_sampling_args(draws, tune, chains, cores)
        compiled_now = self.compiled is None
        idata, sampling_seconds = self.run(
            est, X, draws=draws, tune=tune, chains=chains, random_seed=random_seed, progressbar=progressbar,
            cores=cores, target_accept=target_accept,
        )
        timings = {
            "compile_seconds": float(self.compile_seconds) if compiled_now else 0.0,
            "sampling_seconds": sampling_seconds,
            "tuning_gradient_evaluations": int(idata["warmup_sample_stats"]["n_steps"].sum()),
            "draw_gradient_evaluations": int(idata["sample_stats"]["n_steps"].sum()),
        }
        out = xr.DataTree()
        raw = idata["posterior"].to_dataset()[["weights", "means", "covariances"]]
        out["sample_stats"] = xr.DataTree(idata["sample_stats"].to_dataset())
        out["warmup_sample_stats"] = xr.DataTree(idata["warmup_sample_stats"].to_dataset())
        coords = _model_coords(est, X.shape[0])
        raw = raw.assign_coords({name: coords[name] for name in ("component", "feature", "feature_bis")})
        t0 = time.perf_counter()
        if log_likelihood:
            out["log_likelihood"] = xr.DataTree(log_likelihood_dataset(raw, X, est.covariance_type, coords))
        timings["log_likelihood_seconds"] = time.perf_counter() - t0
        out["observed_data"] = xr.DataTree(
            xr.Dataset({"x": (("obs", "feature"), X)}, coords={"obs": coords["obs"], "feature": coords["feature"]})
        )
        t0 = time.perf_counter()
        out = _finish(out, raw, est, X, coords, ambiguity_tol)
        timings["postprocess_seconds"] = time.perf_counter() - t0
        out["sample_stats"].attrs.update(timings)
        return out
