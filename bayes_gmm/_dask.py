"""Distributed fits on Dask: statistics per row block on the workers, reduced on the driver.

Optional: imported only when ``MapEM.fit`` (or any entry point that walks the rows) receives
a ``dask.array``.  Each EM iteration sends the current parameters to every block of ``X``;
each block runs the NumPy engine (:func:`bayes_gmm._engine.accumulate`, one thread) and
returns only its :class:`~bayes_gmm.covariance.RawStatistics` (a few K x d x d numbers); the
driver adds them in block order.  The answer therefore equals the NumPy fit's to round-off.

Works with whatever scheduler is active: the local threaded scheduler by default, or a
``dask.distributed.Client`` (for example on a ``LocalCluster``, or a real cluster).  Persist
``X`` on the cluster first (``X = client.persist(X)``) so that each iteration reads the blocks
where they already are.

The initialisation (k-means++ seeds, the data moments of the default prior) reads the
blocks one at a time on the driver; give ``means_init``/``weights_init``/``precisions_init``
and an explicit ``prior`` to skip these passes on very large data.
"""

from __future__ import annotations

import dask
import numpy as np

from ._validation import check_finite
from .covariance import CovarianceFamily, GaussianParams, RawStatistics

__all__ = ["accumulate", "check_dask_array", "iter_blocks"]


def _check_block(block: np.ndarray, name: str = "X", block_info=None) -> np.ndarray:
    try:
        check_finite(block, name)
    except ValueError as exc:
        start = block_info[0]["array-location"][0][0] if block_info else 0
        raise ValueError(f"{exc.args[0]} (rows counted from row {start}, where its block starts)") from None
    return block


def check_dask_array(X, name: str = "X"):
    """A 2-D float ``dask.array`` chunked by rows only, with finiteness checked lazily per block.

    Integer data become float64 and other float types float64 (float32 stays float32); the
    columns are put in one chunk.  Row counts must be known (``X.compute_chunk_sizes()``).
    """
    if X.ndim != 2:
        raise ValueError(f"Expected a 2-D array for {name}, got {X.ndim} dimensions (shape {X.shape}).")
    if any(np.isnan(c) for c in X.chunks[0]):
        raise ValueError(f"{name} has unknown chunk sizes: call {name}.compute_chunk_sizes() first.")
    if X.shape[0] == 0 or X.shape[1] == 0:
        raise ValueError(f"{name} is empty (shape {X.shape}).")
    kind = X.dtype.kind
    if kind not in "biuf":
        raise TypeError(f"{name} must contain real numbers, got dtype {X.dtype}.")
    if X.dtype not in (np.float32, np.float64):
        X = X.astype(np.float64)
    if X.numblocks[1] != 1:
        X = X.rechunk({1: -1})
    return X.map_blocks(_check_block, name, dtype=X.dtype)


def _offsets(X) -> list[slice]:
    edges = np.concatenate([[0], np.cumsum(X.chunks[0])]).astype(int)
    return [slice(int(a), int(b)) for a, b in zip(edges[:-1], edges[1:], strict=True)]


def iter_blocks(X):
    """``(slice, numpy block)`` for each row block of ``X``, computed one at a time."""
    for block, part in zip(_offsets(X), X.to_delayed().ravel(), strict=True):
        yield block, np.asarray(part.compute())


def _block_statistics(family, block, sample_weight, params, chunk_size, moments) -> RawStatistics:
    from ._engine import accumulate

    return accumulate(family, np.asarray(block), sample_weight, params, chunk_size, threads=1, moments=moments)


def accumulate(
    family: CovarianceFamily,
    X,
    sample_weight: np.ndarray | None,
    params: GaussianParams,
    chunk_size: int | None = None,
    *,
    moments: bool = True,
) -> RawStatistics:
    """:func:`bayes_gmm._engine.accumulate` for a ``dask.array``: one task per row block."""
    tasks = []
    for block, part in zip(_offsets(X), X.to_delayed().ravel(), strict=True):
        w = None if sample_weight is None else np.asarray(sample_weight[block])
        tasks.append(dask.delayed(_block_statistics)(family, part, w, params, chunk_size, moments))
    parts = dask.compute(*tasks)
    total = parts[0]
    for part in parts[1:]:
        total = total + part
    return total
