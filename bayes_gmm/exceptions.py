"""Errors and warnings of bayes_gmm."""

from __future__ import annotations

from sklearn.exceptions import ConvergenceWarning

__all__ = ["ConvergenceWarning", "SingularCovarianceError"]


class SingularCovarianceError(ValueError):
    """A covariance stopped being positive definite (plain maximum-likelihood EM).

    Attributes
    ----------
    component : int or None
        The component whose covariance failed (None for a tied covariance).
    iteration : int or None
        The EM iteration at which it failed, when known.
    """

    def __init__(self, message: str, *, component: int | None = None, iteration: int | None = None):
        super().__init__(message)
        self.component = component
        self.iteration = iteration
