"""Distributed fits on Dask: statistics per row block on the workers, reduced on the driver.

Optional: imported only when ``MapEM.fit`` (or any entry point that walks the rows) receives
a ``dask.array``.  Each EM iteration sends the current parameters to every block of ``X``;
each block runs the NumPy engine (:func:`bayes_gmm.em.engine.accumulate`, one thread) and
returns only its :class:`~bayes_gmm.model.families.RawStatistics` (a few K x d x d numbers); the
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

from bayes_gmm.model.families import CovarianceFamily, GaussianParams, RawStatistics

__all__ = ["accumulate", "iter_blocks"]


def _offsets(X) -> list[slice]:
    edges = np.concatenate([[0], np.cumsum(X.chunks[0])]).astype(int)
    return [slice(int(a), int(b)) for a, b in zip(edges[:-1], edges[1:], strict=True)]


def iter_blocks(X):
    """``(slice, numpy block)`` for each row block of ``X``, computed one at a time."""
    for block, part in zip(_offsets(X), X.to_delayed().ravel(), strict=True):
        yield block, np.asarray(part.compute())


def accumulate(
    block_pass,
    family: CovarianceFamily,
    X,
    sample_weight: np.ndarray | None,
    params: GaussianParams,
    chunk_size: int | None = None,
    *,
    moments: bool = True,
) -> RawStatistics:
    """:func:`bayes_gmm.em.engine.accumulate` for a ``dask.array``: one task per row block.

    ``block_pass(family, block, sample_weight, params, chunk_size, moments)`` is the engine's
    pass over one NumPy block (a module-level function, so a distributed scheduler can ship it).
    """
    tasks = []
    for block, part in zip(_offsets(X), X.to_delayed().ravel(), strict=True):
        w = None if sample_weight is None else np.asarray(sample_weight[block])
        tasks.append(dask.delayed(block_pass)(family, part, w, params, chunk_size, moments))
    parts = dask.compute(*tasks)
    total = parts[0]
    for part in parts[1:]:
        total = total + part
    return total
