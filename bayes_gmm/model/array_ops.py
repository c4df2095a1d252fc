"""The few array operations the covariance families' posterior pieces are written with.

A family writes the quadratic form of its Gaussian once (``CovarianceFamily.quadratic_coefficients``)
against this small interface; :data:`NUMPY_OPS` runs it on NumPy arrays (with a leading axis of
posterior draws), and the posterior layer passes PyTensor's equivalents to build the PyMC model
from the same code.  Indexing (``x[..., None]``, ``x[..., rows, cols]``) and arithmetic are
written directly: both libraries share them.
"""

from __future__ import annotations

import numpy as np

__all__ = ["NUMPY_OPS", "NumpyOps"]


class NumpyOps:
    """The operations on NumPy arrays (float64)."""

    matmul = staticmethod(np.matmul)
    swapaxes = staticmethod(np.swapaxes)
    concatenate = staticmethod(np.concatenate)
    sum = staticmethod(np.sum)
    log = staticmethod(np.log)
    ones_like = staticmethod(np.ones_like)

    @staticmethod
    def precision_cholesky(covariances):
        """Lower Cholesky factor ``P`` of each ``covariance^-1`` (``Sigma^-1 = P P^T``) and
        ``log det Sigma``, over the leading axes."""
        P = np.linalg.cholesky(np.linalg.inv(covariances))
        logdet = -2.0 * np.sum(np.log(np.diagonal(P, axis1=-2, axis2=-1)), axis=-1)
        return P, logdet


NUMPY_OPS = NumpyOps()
