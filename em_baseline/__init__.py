"""Plain maximum-likelihood EM for a Gaussian mixture: the classic algorithm and its failure.

:class:`PlainEM` shares the whole EM machinery of :class:`bayes_gmm.MapEM` (same loop, same
E-step, same sufficient statistics); only the M-step (maximum likelihood instead of the
posterior mode) and the objective (log-likelihood instead of log-posterior) differ.  When a
component collapses and its covariance stops being positive definite it raises
:class:`SingularCovarianceError`, naming the iteration and the component.
"""

from bayes_gmm.em.plain_em import PlainEM, classic_start
from bayes_gmm.exceptions import SingularCovarianceError

__all__ = ["PlainEM", "SingularCovarianceError", "classic_start"]
