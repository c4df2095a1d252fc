"""MAP-EM: the posterior mode of a Gaussian mixture under the conjugate prior of docs/MATH.md."""

from __future__ import annotations

import warnings

import numpy as np
from sklearn.utils.validation import check_is_fitted

from bayes_gmm.em import engine
from bayes_gmm.em.base import BaseGaussianMixtureEM
from bayes_gmm.em.validation import check_data
from bayes_gmm.model.families import (
    COVARIANCE_FAMILIES,
    GaussianParams,
    SufficientStatistics,
    get_family,
    same_family,
)
from bayes_gmm.model.prior import NIWPrior
from bayes_gmm.model.scaling import column_scaling, transforms_by_rows

#: ``MapEM`` warns when a spherical fit sees column scales further apart than this factor.
SPHERICAL_SCALE_RATIO = 10.0

__all__ = ["MapEM", "log_posterior", "map_weights"]


def map_weights(nk: np.ndarray, alpha: float) -> np.ndarray:
    """Posterior mode of the weights, ``(N_k + alpha - 1) / (N + K (alpha - 1))``."""
    num = nk + (alpha - 1.0)
    return num / num.sum()


def log_posterior(X, weights, means, covariances, prior: NIWPrior, sample_weight=None) -> float:
    """The objective MAP-EM climbs (docs/MATH.md), at any parameter value.

    ``sum_i w_i log sum_k pi_k N(x_i | mu_k, Sigma_k) + log p(pi) + log p(mu, Sigma)``, with
    normalised densities.  ``covariances`` has the shape of ``prior.covariance_type``.
    """
    X = check_data(X)
    family = get_family(prior.covariance_type)
    prior.check_features(X.shape[1])
    params = family.params(weights, means, np.asarray(covariances, dtype=float))
    w = None if sample_weight is None else np.asarray(sample_weight, dtype=float)
    raw = engine.accumulate(family, X, w, params, moments=False)
    return raw.log_likelihood + prior.log_density(params.weights, params.means, params.covariances)


class MapEM(BaseGaussianMixtureEM):
    r"""Gaussian mixture fitted by MAP-EM: the posterior mode under a conjugate prior.

    The prior (Dirichlet weights, normal-inverse-Wishart means and covariances; see
    :class:`~bayes_gmm.NIWPrior`) makes every covariance update positive definite whatever the
    data: duplicated points, a constant column, fewer rows than columns, a component that
    loses all its points.  No ``reg_covar`` is needed.

    Parameters
    ----------
    k : int
        Number of components.
    prior_strength : float, default=1.0
        A factor on the prior's *scale* (``Psi0``, or ``b0`` for diag/spherical), between 1e-8
        and 1e8.  With the default 1 the scale equals mclust's default prior (per column for
        diag); larger values give wider components and a higher floor under every covariance,
        smaller values approach maximum likelihood.  Ignored when ``prior`` is given.
    covariance_type : str, default="full"
        scikit-learn's ``"full"``, ``"tied"``, ``"diag"``, ``"spherical"``, or any of mclust's 14
        models by name (``"EII"``, ``"VII"``, ``"EEI"``, ``"VEI"``, ``"EVI"``, ``"VVI"``,
        ``"EEE"``, ``"VEE"``, ``"EVE"``, ``"VVE"``, ``"EEV"``, ``"VEV"``, ``"EVV"``, ``"VVV"``;
        ``VVV``, ``EEE``, ``VVI``, ``VII`` are full, tied, diag, spherical): see
        ``bayes_gmm.COVARIANCE_FAMILIES`` and docs/MATH.md, "mclust's models".
        ``"spherical"`` gives every column the same variance, so it only makes sense for columns
        in the same units: no prior can make that *model* equivariant to rescaling one column.
        It is fitted with one common scale for all columns (equivariant to a common rescaling
        and to shifts) and warns when the column standard deviations differ by more than a
        factor of 10.  To standardise the columns first, use scikit-learn's pipeline,
        ``make_pipeline(StandardScaler(), MapEM(k, covariance_type="spherical"))``, which is
        exactly a per-column standardisation undone at prediction (the parameters then describe
        the standardised data); there is no ``standardize=`` option, which would only duplicate
        it.
    alpha : float, default=None
        Dirichlet concentration of the weights, between 1 and 1e8.  None means 2 (one
        pseudo-observation per component), so no weight can reach zero; ``alpha=1`` is
        mclust's flat choice.  Ignored when ``prior`` is given.
    prior : NIWPrior or dict, optional
        An explicit prior; by default it is resolved from the data with
        :meth:`NIWPrior.from_data`.  The resolved prior is ``prior_``.
    tol : float, default=1e-3
        Stop when the log-posterior changes by at most ``tol`` per row (per unit of
        ``sample_weight``) from one iteration to the next: scikit-learn's default and criterion
        (on its mean log-likelihood).  Use a smaller value (e.g. 1e-8) when the mode itself
        matters, say as the start of :func:`~bayes_gmm.sample_posterior`.  A change of the objective does not depend on the units of X, so
        neither does the iteration at which a fit stops.  ``tol=0`` runs all ``max_iter``
        iterations.
    max_iter : int, default=500
    n_init : int, default=1
        Number of initialisations; the run with the highest log-posterior is kept.
    init_params : {"kmeans", "k-means++", "random_from_data", "random"} or array, default="kmeans"
        How to start.  "kmeans" (scikit-learn's default too): the centres of scikit-learn's
        ``KMeans`` (best of three runs, k-means++ seeding) on the standardised data, fitted to a random
        sample of 2^14 rows (64 k for k > 256) when X has more, every row then
        given to its nearest centre.  k-means iterations cost ``n k d`` flops against EM's
        ``n k d^2``, so they do most of the moving cheaply: on overlapping clusters at d=50 a
        k-means++ start needed 46 EM iterations and the k-means start 2.  "k-means++": the
        seeds alone (:func:`sklearn.cluster.kmeans_plusplus`); "random_from_data": k random rows
        of X; "random": random responsibilities; or given labels (shape (n,)) or
        responsibilities (shape (n, k)).
    weights_init, means_init, precisions_init : array, optional
        Starting parameters (precisions in the covariance type's shape), as in scikit-learn.
    random_state : int, RandomState or None
        Makes the fit reproducible bit for bit.
    chunk_size : int, optional
        Rows per block of the E-step (default: sized to stay in cache).
    verbose : int, default=0
        As scikit-learn's: 1 prints each initialisation's start, iterations and time; 2 also
        every ``verbose_interval`` iterations the time since the last line and the change of
        the log-posterior per row (the quantity ``tol`` is compared with).  To standard output.
    verbose_interval : int, default=10

    Notes
    -----
    The fit runs in standardised units (each column centred and divided by its standard
    deviation; one common scale for spherical, see :mod:`bayes_gmm.model.scaling`) and every
    parameter is reported in the units of X.  With the default prior, fitting ``X * s + t``
    therefore gives the same partition and parameters transformed exactly (tested for scales
    from 1e-150 to 1e150), and a float32 fit is computed and returned in float32.  Columns
    whose spread cannot be squared in float64 (beyond about 1e154) or whose variance underflows
    (below about 1e-154) are rejected with a ``ValueError`` naming the column.

    Attributes
    ----------
    weights_, means_, covariances_, precisions_, precisions_cholesky_
        The MAP estimate (scikit-learn's shapes and conventions).
    prior_ : NIWPrior
        The resolved prior.
    converged_ : bool
    n_iter_ : int
    log_posteriors_ : ndarray
        Log-posterior at the start and after every iteration of the best run (non-decreasing).
    log_posterior_ : float
        Its final value.

    Examples
    --------
    >>> import numpy as np
    >>> from bayes_gmm import MapEM
    >>> rng = np.random.default_rng(0)
    >>> X = np.vstack([rng.normal(0, 1, (100, 2)), rng.normal(6, 1, (100, 2))])
    >>> est = MapEM(2, random_state=0).fit(X)
    >>> np.sort(est.means_[:, 0]).round(1).tolist()
    [-0.1, 5.9]
    >>> est.converged_, est.predict([[0.0, 0.0], [6.0, 6.0]]).tolist() in ([0, 1], [1, 0])
    (True, True)
    """

    _objective_name = "log-posterior"

    _parameter_constraints: dict = {
        **BaseGaussianMixtureEM._parameter_constraints,
        # checked where the default prior is built (NIWPrior.from_standardized: the documented
        # bounds PRIOR_STRENGTH_BOUNDS and ALPHA_BOUNDS, with messages that say why), and only
        # then: both are ignored when ``prior`` is given
        "prior_strength": "no_validation",
        "alpha": "no_validation",
        # its fields are checked by NIWPrior.from_dict, its shape against X during the fit
        "prior": [NIWPrior, dict, None],
    }

    def __init__(
        self,
        k: int,
        *,
        prior_strength: float = 1.0,
        covariance_type: str = "full",
        alpha: float | None = None,
        prior: NIWPrior | dict | None = None,
        tol: float = 1e-3,
        max_iter: int = 500,
        n_init: int = 1,
        init_params="kmeans",
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
        self.prior_strength = prior_strength
        self.alpha = alpha
        self.prior = prior

    def _scaling(self, X, sample_weight):
        # the fit runs in standardised units (bayes_gmm.model.scaling): the same fit whatever the units
        # a large array is standardised as it is read: the scaling's pass also gives the
        # default prior the moments it needs, which saves it two passes over the data
        moments = self.prior is None and transforms_by_rows(X)
        work = X.shape[0] * X.shape[1]
        scaling = column_scaling(
            X,
            sample_weight,
            common=self._family.common_scale,
            moments=moments,
            map_blocks=lambda function, blocks: engine.map_blocks(function, blocks, work),
        )
        if self._family.common_scale:
            _warn_unequal_scales(scaling, self.covariance_type, self._family.common_scale_reason)
        return scaling

    def _objective_offset(self, scaling, total_weight):
        # likelihood: -sum_j log s_j per unit of weight; prior: the Jacobian of the means and
        # covariances (the prior in the data's units is the image of the standardised one)
        k = int(self.k)
        return (
            -(total_weight + k) * scaling.log_scale_sum
            - self._family.log_jacobian(k, scaling.scale, self._prior_fit)
        )

    def _prepare(self, Z, sample_weight, scaling):
        if self.prior is None:  # from_standardized checks prior_strength and alpha
            prior_fit = NIWPrior.from_standardized(
                Z,
                int(self.k),
                self.covariance_type,
                prior_strength=self.prior_strength,
                alpha=self.alpha,
                sample_weight=sample_weight,
            )
            self.prior_ = prior_fit.unscaled(scaling)
        else:
            prior = self.prior if isinstance(self.prior, NIWPrior) else NIWPrior.from_dict(self.prior)
            if not same_family(prior.covariance_type, self.covariance_type):
                raise ValueError(
                    f"the prior is for covariance_type={prior.covariance_type!r} but the "
                    f"estimator has covariance_type={self.covariance_type!r}."
                )
            prior.check_features(Z.shape[1])
            self.prior_ = prior
            prior_fit = prior.rescaled(scaling)
        self._prior_fit = prior_fit

    def _m_step(self, stats: SufficientStatistics):
        prior = self._prior_fit
        means, covariances = self._family.map_step(stats, prior)
        return map_weights(stats.nk, prior.alpha), means, covariances

    def _log_prior(self, params: GaussianParams) -> float:
        return self._prior_fit.log_density(
            params.weights, params.means, params.covariances, params.covariances_cholesky
        )

    def _store(self, result):
        super()._store(result)
        self.log_posteriors_ = self._history
        self.log_posterior_ = float(result.objective)

    def log_posterior(self, X, sample_weight=None) -> float:
        """The log-posterior (MAP-EM's objective) of the fitted parameters on ``X``."""
        check_is_fitted(self)
        return log_posterior(X, self.weights_, self.means_, self.covariances_, self.prior_, sample_weight)


def _warn_unequal_scales(scaling, covariance_type: str, reason: str) -> None:
    """A family fitted in one scale for all columns assumes they are in the same units: say so
    when they are not."""
    per_column = scaling.sd[~scaling.constant & (scaling.sd > 0)]
    if per_column.size < 2:
        return
    ratio = float(per_column.max() / per_column.min())
    if ratio > SPHERICAL_SCALE_RATIO:
        warnings.warn(
            f"covariance_type={covariance_type!r} {reason}, but the column "
            f"standard deviations of X differ by a factor of about {ratio:.3g}: the widest columns "
            "will decide the clusters. Standardise X first (sklearn.pipeline.make_pipeline("
            "StandardScaler(), MapEM(...))) or use a covariance type whose fit does not depend on "
            f"the columns' units ({', '.join(n for n, f in COVARIANCE_FAMILIES.items() if not f.common_scale)}).",
            UserWarning,
            stacklevel=4,
        )
