"""Helpers and numerical kernels shared by several covariance families, and the tuning
constants of the E-step's kernels.

The families read each tuning constant from this module when they run
(``kernels.GEMM_MAX_D``), so that a test or a benchmark can patch it here.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

import numpy as np
from scipy.linalg import lapack

from bayes_gmm.exceptions import SingularCovarianceError

if TYPE_CHECKING:
    from bayes_gmm.model.families.base import GaussianParams


LOG_2PI = np.log(2.0 * np.pi)


#: Up to this dimension the full family factors all covariances in one batched call.
BATCHED_CHOLESKY_MAX_D = 8
#: Up to this dimension the full family gets a block's moments from batched general products;
#: above it, from one symmetric product (SYRK) per component, which does half the flops.
GEMM_MAX_D = 24
#: Up to this dimension the full family whitens a block with general matrix products for all
#: components at once (a few pieces of rows, below); above it, with one triangular product
#: (TRMM) per component, half the flops.  One product was as fast as K TRMMs on one thread up
#: to d = 100 (measured on an Intel Xeon VM, OpenBLAS SkylakeX: 382 vs 379 ms per iteration at
#: (1e5, 100, 5)) and far faster on two: K small calls per block, each with its copy, made the
#: two block threads wait on each other (two threads 1316 ms per iteration at (2e5, 50, 20)
#: against 795 ms on one; with the one product 617 ms).  At d = 200 TRMM was faster than one
#: product (408 against 483 ms per iteration, one thread) and as fast as the pieces.
STACKED_GEMM_MAX_D = 128
#: The stacked product whitens rows ``lo:hi`` of every component's ``Q_k^T`` (lower
#: triangular) in one product with rows ``:hi`` of the block: about this many rows a piece, at
#: most ``WHITEN_MAX_PIECES`` pieces, so that the zeros above the diagonal are mostly skipped.
#: Four pieces did 0.74 of one product's time at (d, K) = (100, 5) and 0.66 at (50, 20), one
#: thread (Intel Xeon VM, OpenBLAS SkylakeX); at d = 128 faster than K TRMMs (2.8 against 3.0 ms
#: a block), at d = 200 equal.
WHITEN_PIECE_ROWS = 20
WHITEN_MAX_PIECES = 4
#: Up to this dimension float64 blocks go through the pairwise-product kernel.
PAIRS_MAX_D = 16
#: A component's rows whose responsibility is negligible are left out of its SYRK when they
#: are at least this share of the block.  With well-separated components in many dimensions
#: most (row, component) pairs are: at (1e5, 100, 5) of the speed benchmark 80% of the
#: responsibilities are below 1e-30 (48% exactly 0), at (2e5, 50, 20) 95%.
SPARSE_ZERO_SHARE = 0.25
#: Negligible: below this fraction of the component's total responsibility in the block, so
#: that dropping a row changes the block's moments by at most this fraction times the row's
#: squared whitened distance; the counts ``N_k`` always include every row.
NEGLIGIBLE_SHARE = 1e-20


def singular(component: int | None, family: str, reason: str) -> SingularCovarianceError:
    where = "the tied covariance" if component is None else f"the covariance of component {component}"
    return SingularCovarianceError(
        f"{where} ({family}) is not positive definite: {reason}. "
        "This happens when a component collapses onto a few points. bayes_gmm.MapEM puts a "
        "conjugate prior on the covariances and cannot fail this way; with plain EM, raise "
        "reg_covar or change the initialisation.",
        component=component,
    )


def triangular_inverse(lower: np.ndarray) -> np.ndarray:
    inv, info = lapack.dtrtri(lower, lower=1)
    if info != 0:  # pragma: no cover - only reachable on a zero pivot, caught before
        raise np.linalg.LinAlgError("singular triangular factor")
    return inv


def ordered_safe(nk: np.ndarray) -> np.ndarray:
    return np.where(nk > 0, nk, 1.0)


def work_dtype(X: np.ndarray) -> type:
    """float32 data are computed in float32, anything else in float64."""
    return np.float32 if X.dtype == np.float32 else np.float64


def centered_t(X: np.ndarray, means: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(X - c)^T`` (d, m) in the working dtype and ``means - c`` (K, d) in float64.

    ``c``, the mean of the component means, keeps ``x P - mu P`` accurate for data far from
    the origin.
    """
    dtype = work_dtype(X)
    # the centre rounded to the working dtype, so that the data and the means are shifted by
    # the same number (a float32 fit far from the origin otherwise whitens with a bias)
    center = means.mean(axis=0).astype(dtype).astype(np.float64)
    Xc = np.subtract(X, center.astype(dtype), dtype=dtype)
    return Xc.T, means - center


def squared_norms_t(Y: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """``sum_j Y[:, j, :]**2``, shape (K, m), from Y (K, d, m) (any strides), into ``out`` if given.

    einsum, but a plain square for d = 1 (2.5x faster there; from d = 2 einsum is faster than
    a loop over j, and as fast on a transposed view)."""
    if Y.shape[1] == 1:
        return np.multiply(Y[:, 0, :], Y[:, 0, :], out=out)
    return np.einsum("kdm,kdm->km", Y, Y, out=out)


_workspace = threading.local()


def scratch(name: str, shape: tuple[int, ...], dtype) -> np.ndarray:
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


def responsibilities_inplace(log_prob: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
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


def diagonal_moments(Y: np.ndarray, resp: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``sum_i r_ik y_ik`` and ``sum_i r_ik y_ik**2`` (both (K, d), float64); Y (K, d, m) overwritten."""
    column = resp[:, :, None]
    first = np.matmul(Y, column)[:, :, 0].astype(np.float64)
    Y *= Y
    second = np.matmul(Y, column)[:, :, 0].astype(np.float64)
    return first, second


def params_cache(params: GaussianParams, key, compute):
    """``compute()``, kept on ``params`` (which are never modified) for the next blocks."""
    cache = params.__dict__.setdefault("_block_cache", {})
    if key not in cache:
        cache[key] = compute()
    return cache[key]


def cholesky_pair(cov: np.ndarray, component: int | None, family: str) -> tuple[np.ndarray, np.ndarray]:
    """Lower Cholesky factor of ``cov`` and the upper precision factor ``inv(L).T``.

    The single place where a covariance that is not positive definite is turned into an error.
    """
    if not np.all(np.isfinite(cov)):
        raise singular(component, family, "it has non-finite entries")
    lower, info = lapack.dpotrf(cov, lower=1, clean=1)
    if info != 0:
        raise singular(component, family, f"its Cholesky factorisation failed at pivot {info}")
    diag = np.diag(lower)
    if diag.min() <= 0 or not np.all(np.isfinite(lower)):
        raise singular(component, family, "its Cholesky factor has a zero pivot")
    return lower, triangular_inverse(lower).T
