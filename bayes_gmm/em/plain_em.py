"""Maximum-likelihood EM on bayes_gmm's machinery."""

from __future__ import annotations

from numbers import Real

import numpy as np
from sklearn.utils._param_validation import Interval

from bayes_gmm.em.base import BaseGaussianMixtureEM
from bayes_gmm.em.validation import check_data, check_positive
from bayes_gmm.model.families import GaussianParams, SufficientStatistics, get_family

__all__ = ["PlainEM", "classic_start"]

# scipy.stats.multivariate_normal treats eigenvalues below this factor times the largest as
# zero and raises "singular matrix"; the classic hand-written EM dies there, and so do we.
_SINGULAR_FACTOR = 1e6 * np.finfo(np.float64).eps


def classic_start(X, k: int, covariance_type: str = "full", random_state=None) -> dict:
    """The textbook start: means drawn uniformly within the data's range, identity covariances,
    equal weights.

    Returns keyword arguments for :class:`PlainEM` or :class:`bayes_gmm.MapEM`
    (``weights_init``, ``means_init``, ``precisions_init``).
    """
    X = check_data(X)
    check_positive("k", k, integer=True)
    d = X.shape[1]
    rng = np.random.default_rng(random_state)
    means = rng.uniform(X.min(axis=0), X.max(axis=0), size=(k, d))
    precisions = get_family(covariance_type).identity_covariances(k, d)  # the identity is its own inverse
    return {"weights_init": np.full(k, 1.0 / k), "means_init": means, "precisions_init": precisions}


class PlainEM(BaseGaussianMixtureEM):
    """Plain maximum-likelihood EM (the classic algorithm), for comparison with MAP-EM.

    Parameters are those of :class:`bayes_gmm.MapEM` without the prior, plus ``reg_covar``.

    Parameters
    ----------
    k : int
    reg_covar : float, default=0.0
        Added to the diagonal of every covariance after each M-step, as in scikit-learn's
        ``GaussianMixture`` (whose default is 1e-6).  With 0 this is the textbook algorithm.

    Raises
    ------
    SingularCovarianceError
        From ``fit``, when a covariance stops being positive definite: the message names the
        EM iteration and the component.  ``log_likelihoods_`` then holds the log-likelihood of
        every iteration until the failure.

    Attributes
    ----------
    log_likelihoods_ : ndarray
        Log-likelihood at the start and after every iteration (of the best run, or until the
        failure).
    """

    _objective_name = "log-likelihood"

    _parameter_constraints: dict = {
        **BaseGaussianMixtureEM._parameter_constraints,
        "reg_covar": [Interval(Real, 0.0, None, closed="left")],
    }

    def __init__(
        self,
        k: int,
        *,
        reg_covar: float = 0.0,
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
        super().__init__(
            k,
            covariance_type=covariance_type,
            tol=tol,
            max_iter=max_iter,
            n_init=n_init,
            init_params=init_params,
            weights_init=weights_init,
            means_init=means_init,
            precisions_init=precisions_init,
            random_state=random_state,
            chunk_size=chunk_size,
            verbose=verbose,
            verbose_interval=verbose_interval,
        )
        self.reg_covar = reg_covar

    def _prepare(self, X, sample_weight, scaling):
        """Nothing to resolve from the data (``reg_covar`` is checked by ``_parameter_constraints``)."""

    def _m_step(self, stats: SufficientStatistics):
        means, covariances = self._family.ml_step(stats, self.reg_covar)
        return stats.nk / stats.total_weight, means, covariances

    def _new_params(self, weights, means, covariances) -> GaussianParams:
        self._family.check_not_singular(covariances, _SINGULAR_FACTOR)
        return super()._new_params(weights, means, covariances)

    def _log_prior(self, params: GaussianParams) -> float:
        return 0.0

    def _fit(self, X, sample_weight):
        self._failed_history = None
        try:
            return super()._fit(X, sample_weight)
        finally:
            if self._failed_history is not None:
                self.log_likelihoods_ = np.asarray(self._failed_history)

    def _store(self, result):
        super()._store(result)
        self.log_likelihoods_ = self._history
        self.log_likelihood_ = float(result.objective)
