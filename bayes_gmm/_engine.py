"""The one pass over the data that each EM iteration makes: E-step and statistics, by chunks.

Rows are processed in blocks so that no n x K x d temporary is ever built and a block's work
stays in cache; the statistics of the blocks add up
(:class:`~bayes_gmm.covariance.RawStatistics`).  This is the only place that walks over the
rows of ``X``.

- Memory does not grow with n: a block of ``X`` is read, its statistics kept, the block's
  temporaries freed.  A ``numpy.memmap`` is read block by block, never copied whole.
- Both cores: the blocks are shared among a small pool of threads (NumPy and BLAS release the
  GIL), each calling BLAS on one thread.  The pool is as large as the BLAS thread limit in
  force (so ``threadpoolctl.threadpool_limits(1)`` gives a serial fit) and the number of
  available cores.  The blocks' statistics are always added in block order, so the result
  does not depend on the number of threads.
- float32 data are computed in float32 (see :meth:`CovarianceFamily.accumulate`), anything
  else in float64.
- A ``dask.array`` is handed to :mod:`bayes_gmm._dask` (imported only then).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from scipy.special import logsumexp

from ._validation import _is_dask
from .covariance import CovarianceFamily, GaussianParams, RawStatistics

__all__ = ["accumulate", "chunk_rows", "iter_blocks", "weighted_log_prob"]

#: Target number of floats in the (rows x K x d) whitened block of one chunk.
_BLOCK_FLOATS = 1 << 19
#: Fewest and most rows per block when the size is chosen automatically.
_MIN_ROWS, _MAX_ROWS = 1024, 4096
#: Below this many floats of whitened data (n K d) a fit stays on one thread.
_MIN_PARALLEL_FLOATS = 1 << 19

_pool: ThreadPoolExecutor | None = None
_blas = None


def chunk_rows(n_samples: int, n_components: int, n_features: int, chunk_size: int | None = None) -> int:
    """Rows per block: ``chunk_size`` if given, else sized so a block stays in cache."""
    if chunk_size is not None:
        return max(1, min(int(chunk_size), n_samples))
    rows = _BLOCK_FLOATS // max(1, n_components * n_features)
    return max(1, min(max(_MIN_ROWS, min(rows, _MAX_ROWS)), n_samples))


def _blocks(n_samples: int, rows: int) -> list[slice]:
    return [slice(start, min(start + rows, n_samples)) for start in range(0, n_samples, rows)]


def _as_block(X: np.ndarray, block: slice) -> np.ndarray:
    """Rows ``block`` of ``X`` as float32 or float64 (a view when ``X`` already is one)."""
    part = np.asarray(X[block])
    if part.dtype not in (np.float32, np.float64):
        part = part.astype(np.float64)
    return part


def iter_blocks(X: np.ndarray, rows: int) -> Iterator[tuple[slice, np.ndarray]]:
    """``(slice, rows of X)`` by blocks of ``rows`` rows, for passes over the data elsewhere."""
    for block in _blocks(X.shape[0], rows):
        yield block, _as_block(X, block)


# ----------------------------------------------------------------------------------------
# threads
# ----------------------------------------------------------------------------------------
def _blas_controller():
    global _blas
    if _blas is None:
        from threadpoolctl import ThreadpoolController

        _blas = ThreadpoolController().select(user_api="blas")
    return _blas


def _available_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def n_workers(n_blocks: int, work: int) -> int:
    """Threads for a pass of ``n_blocks`` blocks and ``work`` floats of whitened data."""
    if n_blocks < 2 or work < _MIN_PARALLEL_FLOATS:
        return 1
    cores = _available_cores()
    if cores < 2:
        return 1
    blas_threads = [lib.num_threads for lib in _blas_controller().lib_controllers]
    limit = min(blas_threads) if blas_threads else cores
    return max(1, min(cores, limit, n_blocks))


def _thread_pool(workers: int) -> ThreadPoolExecutor:
    global _pool
    if _pool is None or _pool._max_workers < workers:
        if _pool is not None:
            _pool.shutdown(wait=False)
        _pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="bayes_gmm")
    return _pool


def _map_blocks(function, blocks: list[slice], work: int) -> list:
    """``[function(block) for block in blocks]``, on several threads when it pays."""
    workers = n_workers(len(blocks), work)
    if workers == 1:
        return [function(block) for block in blocks]

    def run(first: int) -> list:
        return [function(block) for block in blocks[first::workers]]

    with _blas_controller().limit(limits=1):
        parts = list(_thread_pool(workers).map(run, range(workers)))
    out = [None] * len(blocks)
    for first, part in enumerate(parts):
        out[first::workers] = part
    return out


# ----------------------------------------------------------------------------------------
# passes
# ----------------------------------------------------------------------------------------
def _sum_in_order(parts: list[RawStatistics]) -> RawStatistics:
    total = parts[0]
    for part in parts[1:]:
        total = total + part
    return total


def accumulate(
    family: CovarianceFamily,
    X: np.ndarray,
    sample_weight: np.ndarray | None,
    params: GaussianParams,
    chunk_size: int | None = None,
) -> RawStatistics:
    """E-step and sufficient statistics of all rows of ``X`` under ``params``.

    ``X`` is a NumPy array (a ``numpy.memmap`` included) or a ``dask.array`` chunked by rows.
    """
    if _is_dask(X):
        from ._dask import accumulate as accumulate_dask

        return accumulate_dask(family, X, sample_weight, params)
    n, d = X.shape
    k = params.means.shape[0]
    blocks = _blocks(n, chunk_rows(n, k, d, chunk_size))

    def one(block: slice) -> RawStatistics:
        w = None if sample_weight is None else sample_weight[block]
        return family.accumulate(_as_block(X, block), w, params)

    return _sum_in_order(_map_blocks(one, blocks, n * k * d))


def weighted_log_prob(
    family: CovarianceFamily, X: np.ndarray, params: GaussianParams, chunk_size: int | None = None
) -> np.ndarray:
    """``log pi_k + log N(x_i | mu_k, Sigma_k)``, shape (n, K), float64, computed by blocks."""
    n, d = X.shape
    k = params.means.shape[0]
    out = np.empty((n, k))
    log_w = np.log(params.weights)
    blocks = _blocks(n, chunk_rows(n, k, d, chunk_size))

    def one(block: slice) -> None:
        out[block] = family.log_prob(_as_block(X, block), params.means, params.precisions_cholesky)
        out[block] += log_w

    _map_blocks(one, blocks, n * k * d)
    return out


def log_responsibilities(weighted: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-row log normaliser and log responsibilities from weighted log probabilities."""
    log_norm = logsumexp(weighted, axis=1)
    return log_norm, weighted - log_norm[:, None]
