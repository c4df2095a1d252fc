"""The one pass over the data that each EM iteration makes: E-step and statistics, by chunks.

Rows are processed in blocks so that no n x K x d temporary is ever built and a block's work
stays in cache; the statistics of the blocks add up
(:class:`~bayes_gmm.model.families.RawStatistics`).  This is the only place that walks over the
rows of ``X``.

- Memory does not grow with n: a block of ``X`` is read, its statistics kept, the block's
  temporaries freed.  A ``numpy.memmap`` is read block by block, never copied whole.
- Both cores: the blocks are shared among a small pool of threads (NumPy and BLAS release the
  GIL; the triangular product goes through :mod:`bayes_gmm.model.blas` for that), each calling
  BLAS on one thread, and a threaded fit keeps BLAS at one thread throughout
  (:func:`fitting`).  The pool is as large as the BLAS thread limit in force (so
  ``threadpoolctl.threadpool_limits(1)`` gives a serial fit) and the number of available
  cores.  The blocks' statistics are always added in block order, so the result does not
  depend on the number of threads.
- The pass after the last M-step of a fit skips the moments (``moments=False``).
- float32 data are computed in float32 (see :meth:`CovarianceFamily.accumulate`), anything
  else in float64.
- A ``dask.array`` is handed to :mod:`bayes_gmm.em.dask_backend` (imported only then).
"""

from __future__ import annotations

import itertools
import os
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

import numpy as np
from scipy.special import logsumexp

from bayes_gmm.em.validation import is_dask
from bayes_gmm.model.families import CovarianceFamily, GaussianParams, RawStatistics, SufficientStatistics
from bayes_gmm.model.scaling import is_large

__all__ = [
    "accumulate",
    "chunk_rows",
    "fitting",
    "initial_statistics",
    "iter_blocks",
    "kmeans_plusplus",
    "kmeans_threads",
    "label_statistics",
    "map_blocks",
    "weighted_log_prob",
]

#: Target number of floats in the (K x (d+1) x rows) whitened block of one chunk: about what
#: keeps the per-block Python overhead small against the block's work (measured: larger
#: blocks do not slow the BLAS calls down, smaller ones pay the overhead; small d gains most;
#: 2^20 rather than 2^19 took a pass at (1e6, 10, 10) from 230 to 212 ms on an Intel Xeon).
_BLOCK_FLOATS = 1 << 20
#: Fewest and most rows per block when the size is chosen automatically.
_MIN_ROWS, _MAX_ROWS = 1024, 16384
#: Automatic blocks are no larger than a 1/_MIN_BLOCKS share of the rows (thread balance).
_MIN_BLOCKS = 8
#: Below this many floats of whitened data (n K d) a fit stays on one thread.
_MIN_PARALLEL_FLOATS = 1 << 19

_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()
_controllers: dict = {}
#: Rows x clusters x features below which the start's k-means runs on one OpenMP thread.
_KMEANS_SERIAL_WORK = 1 << 22


def chunk_rows(n_samples: int, n_components: int, n_features: int, chunk_size: int | None = None) -> int:
    """Rows per block: ``chunk_size`` if given, else sized so a block stays in cache."""
    n_samples, n_components, n_features = int(n_samples), int(n_components), int(n_features)
    if chunk_size is not None:
        return max(1, min(int(chunk_size), n_samples))
    rows = _BLOCK_FLOATS // max(1, n_components * (n_features + 1))
    rows = min(rows, _MAX_ROWS, -(-n_samples // _MIN_BLOCKS))  # enough blocks to share among threads
    return max(1, min(max(_MIN_ROWS, rows), n_samples))


def _blocks(n_samples: int, rows: int) -> list[slice]:
    return [slice(start, min(start + rows, n_samples)) for start in range(0, n_samples, rows)]


def _as_block(X: np.ndarray, block: slice) -> np.ndarray:
    """Rows ``block`` of ``X`` as float32 or float64 (a view when ``X`` already is one)."""
    part = np.asarray(X[block])
    if part.dtype not in (np.float32, np.float64):
        part = part.astype(np.float64)
    return part


def iter_blocks(X: np.ndarray, rows: int) -> Iterator[tuple[slice, np.ndarray]]:
    """``(slice, rows of X)`` by blocks of ``rows`` rows (a dask array: by its own blocks)."""
    if is_dask(X):
        from bayes_gmm.em.dask_backend import iter_blocks as iter_dask_blocks

        yield from iter_dask_blocks(X)
        return
    for block in _blocks(X.shape[0], rows):
        yield block, _as_block(X, block)


# ----------------------------------------------------------------------------------------
# threads
# ----------------------------------------------------------------------------------------
def _controller(user_api: str):
    """The process's thread pools of one kind ("blas", "openmp"), found once."""
    if user_api not in _controllers:
        from threadpoolctl import ThreadpoolController

        _controllers[user_api] = ThreadpoolController().select(user_api=user_api)
    return _controllers[user_api]


def _blas_controller():
    return _controller("blas")


@contextmanager
def kmeans_threads(n_rows: int, n_clusters: int, n_features: int):
    """Scikit-learn's ``KMeans`` on ``n_rows`` rows: on one OpenMP thread when the work is small.

    Each Lloyd iteration opens a few short OpenMP regions; below ``_KMEANS_SERIAL_WORK`` waking
    the second thread for each cost more than it saved (the start's 3 runs on 16384 rows,
    d = 10, k = 10: 31 ms on two threads against 18 ms on one; at d = 50, k = 20 two threads
    were faster, 74 against 80 ms; a 2-core Intel Xeon VM).
    """
    if n_rows * n_clusters * n_features > _KMEANS_SERIAL_WORK:
        yield
        return
    with _controller("openmp").limit(limits=1):
        yield


def available_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


#: While fits run, BLAS is held at one thread (see :func:`fitting`); ``threads`` is the limit
#: that was in force before, which still sizes the block pool.
_held = {"depth": 0, "limiter": None, "threads": None}
_hold_lock = threading.Lock()


def _blas_thread_limit() -> int | None:
    """The BLAS thread limit the caller set (the saved one while a fit holds BLAS at one)."""
    if _held["depth"]:
        return _held["threads"]
    blas_threads = [lib.num_threads for lib in _blas_controller().lib_controllers]
    return min(blas_threads) if blas_threads else None


def n_workers(n_blocks: int, work: int) -> int:
    """Threads for a pass of ``n_blocks`` blocks and ``work`` floats of whitened data."""
    if n_blocks < 2 or work < _MIN_PARALLEL_FLOATS:
        return 1
    cores = available_cores()
    if cores < 2:
        return 1
    limit = _blas_thread_limit() or cores
    return max(1, min(cores, limit, n_blocks))


@contextmanager
def fitting(n_samples: int, n_components: int, n_features: int, chunk_size: int | None = None):
    """Hold BLAS at one thread for a whole fit whose passes use the block threads.

    The passes run BLAS at one thread anyway; between them, the M-step's small BLAS calls at
    the caller's thread count woke OpenBLAS's worker threads, which kept spinning and took
    the core the next pass's second block thread needed (passes 15-40% slower at
    (1e5, 100, 5) on 2 cores).  Safe for concurrent and nested fits: the first to enter
    saves the limits, the last to leave restores them.
    """
    blocks = _blocks(n_samples, chunk_rows(n_samples, n_components, n_features, chunk_size))
    if n_workers(len(blocks), n_samples * n_components * n_features) < 2:
        yield
        return
    with _hold_lock:
        if _held["depth"] == 0:
            _held["threads"] = _blas_thread_limit()
            _held["limiter"] = _blas_controller().limit(limits=1)
        _held["depth"] += 1
    try:
        yield
    finally:
        with _hold_lock:
            _held["depth"] -= 1
            if _held["depth"] == 0:
                _held["limiter"].restore_original_limits()
                _held["limiter"] = _held["threads"] = None


def _thread_pool(workers: int) -> ThreadPoolExecutor:
    global _pool
    if _pool is None or _pool._max_workers < workers:
        if _pool is not None:
            _pool.shutdown(wait=False)
        _pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="bayes_gmm")
    return _pool


def _map_blocks(function, blocks: list[slice], work: int, threads: int | None = None) -> list:
    """``[function(block) for block in blocks]``, on several threads when it pays."""
    workers = n_workers(len(blocks), work) if threads is None else max(1, min(threads, len(blocks)))
    if workers == 1:
        return [function(block) for block in blocks]

    # each thread takes the next block as it becomes free: a core that runs slower (another
    # VM on the host, a busy sibling) does fewer blocks instead of holding up the pass; the
    # results stay in block order, so the sums do not depend on who computed what
    out = [None] * len(blocks)
    taken = itertools.count()
    take = threading.Lock()

    def run(_: int) -> None:
        while True:
            with take:
                i = next(taken)
            if i >= len(blocks):
                return
            out[i] = function(blocks[i])

    # one pass at a time sets the (process-wide) BLAS limit, so concurrent fits cannot
    # leave it wrong
    with _pool_lock, _blas_controller().limit(limits=1):
        list(_thread_pool(workers).map(run, range(workers)))
    return out


def map_blocks(function, blocks: list, work: int) -> Iterator:
    """``function(block)`` for each block, yielded in block order, on the engine's threads when
    a pass of ``work`` floats pays for them (BLAS held at one thread meanwhile).  Two blocks a
    thread are computed at a time, so that at most that many results are held at once: the
    memory of a pass does not grow with the number of rows."""
    workers = n_workers(len(blocks), work)
    step = 2 * workers
    for start in range(0, len(blocks), step):
        yield from _map_blocks(function, blocks[start : start + step], work, threads=workers)


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
    *,
    threads: int | None = None,
    moments: bool = True,
) -> RawStatistics:
    """E-step and sufficient statistics of all rows of ``X`` under ``params``.

    ``X`` is a NumPy array (a ``numpy.memmap`` included) or a ``dask.array`` chunked by rows.
    ``threads``: None chooses (see the module's docstring), 1 keeps the pass on this thread.
    ``moments=False``: log-likelihood, total weight and counts only (a pass whose moments
    nobody would use).
    """
    if is_dask(X):
        from bayes_gmm.em.dask_backend import accumulate as accumulate_dask

        return accumulate_dask(_block_pass, family, X, sample_weight, params, chunk_size, moments=moments)
    n, d = X.shape
    k = params.means.shape[0]
    blocks = _blocks(n, chunk_rows(n, k, d, chunk_size))

    def one(block: slice) -> RawStatistics:
        w = None if sample_weight is None else sample_weight[block]
        return family.accumulate(_as_block(X, block), w, params, moments)

    return _sum_in_order(_map_blocks(one, blocks, n * k * d, threads))


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
        # a row far from a component overflows its squared distance: -inf, checked by the caller
        with np.errstate(over="ignore", invalid="ignore"):
            out[block] = family.log_prob(_as_block(X, block), params.means, params.precisions_cholesky)
        out[block] += log_w

    _map_blocks(one, blocks, n * k * d)
    return out


def log_responsibilities(weighted: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-row log normaliser and log responsibilities from weighted log probabilities."""
    log_norm = logsumexp(weighted, axis=1)
    return log_norm, weighted - log_norm[:, None]


# ----------------------------------------------------------------------------------------
# initialisation and data moments by blocks (memory that does not grow with n)
# ----------------------------------------------------------------------------------------
#: Rows per block of the passes that only need a few numbers per row.
_INIT_ROWS = 1 << 15


def by_blocks(X, width: int) -> bool:
    """Whether passes over ``X`` with (n x width) temporaries must go block by block."""
    return is_dask(X) or is_large(X.shape[0], width)


def _block_pass(family, block, sample_weight, params, chunk_size, moments) -> RawStatistics:
    """One Dask block's pass: the NumPy engine on this thread."""
    return accumulate(family, np.asarray(block), sample_weight, params, chunk_size, threads=1, moments=moments)


def _squared_distances(centers: np.ndarray, Xb: np.ndarray) -> np.ndarray:
    """(t, m) squared Euclidean distances, computed as scikit-learn's ``_euclidean_distances``."""
    Xb = np.asarray(Xb, dtype=np.float64)
    distances = -2 * (centers @ Xb.T)
    distances += np.einsum("ij,ij->i", centers, centers)[:, None]
    distances += np.einsum("ij,ij->i", Xb, Xb)[None, :]
    np.maximum(distances, 0, out=distances)
    return distances


def nearest_center(Xb: np.ndarray, centers: np.ndarray) -> np.ndarray:
    """Index of the nearest center of each row.

    ``|x|^2 - 2 x.c + |c|^2`` about the centers' mean: without the centring, data far from the
    origin (an offset of 1e9 and more) lose every digit of the distances to cancellation.
    """
    origin = np.asarray(centers, dtype=np.float64).mean(axis=0)
    Xb = np.asarray(Xb, dtype=np.float64) - origin
    C = np.asarray(centers, dtype=np.float64) - origin
    d2 = -2.0 * Xb @ C.T
    d2 += np.sum(C * C, axis=1)[None, :]
    d2 += np.sum(Xb * Xb, axis=1)[:, None]
    return np.argmin(d2, axis=1)


def _row_slices(X, rows: int) -> list[slice]:
    """The row slices of the blocks :func:`iter_blocks` yields, without reading ``X``."""
    if is_dask(X):
        bounds = np.cumsum((0, *X.chunks[0]))
        return [slice(int(a), int(b)) for a, b in zip(bounds[:-1], bounds[1:], strict=True)]
    return _blocks(X.shape[0], rows)


def kmeans_plusplus(X: np.ndarray, n_clusters: int, sample_weight: np.ndarray | None, random_state) -> np.ndarray:
    """k-means++ seeds by blocks: :func:`sklearn.cluster.kmeans_plusplus` without its n x t arrays.

    The same algorithm, drawing the same random numbers from ``random_state`` (a
    ``numpy.random.RandomState``) in the same order; only sums over the rows are added by
    blocks, so the seeds equal scikit-learn's unless two candidates tie to the last bit.
    Extra memory: one float64 per row.
    """
    n, d = X.shape
    n_trials = 2 + int(np.log(n_clusters))
    w_total = float(n) if sample_weight is None else float(np.sum(sample_weight))

    def weight(block):
        return None if sample_weight is None else sample_weight[block]

    # first center: RandomState.choice(n, p=w / w.sum()), replayed by blocks
    carry = 0.0
    for block in _row_slices(X, _INIT_ROWS):
        p = np.full(block.stop - block.start, 1.0 / n) if sample_weight is None else sample_weight[block] / w_total
        p[0] += carry
        carry = np.cumsum(p)[-1]
    cdf_last = carry
    u = random_state.random_sample()
    center_id = 0
    carry = 0.0
    for block in _row_slices(X, _INIT_ROWS):
        p = np.full(block.stop - block.start, 1.0 / n) if sample_weight is None else sample_weight[block] / w_total
        p[0] += carry
        cdf = np.cumsum(p)
        carry = cdf[-1]
        cdf /= cdf_last
        center_id += int(np.searchsorted(cdf, u, side="right"))
    center_id = min(center_id, n - 1)

    centers = np.empty((n_clusters, d))
    centers[0] = X[center_id]
    closest = np.empty(n)
    pot = 0.0
    for block, Xb in iter_blocks(X, _INIT_ROWS):
        closest[block] = _squared_distances(centers[:1], Xb)[0]
        w = weight(block)
        pot += float(np.sum(closest[block]) if w is None else closest[block] @ w)
    for c in range(1, n_clusters):
        rand_vals = random_state.uniform(size=n_trials) * pot
        candidate_ids = np.zeros(n_trials, dtype=np.intp)
        carry = 0.0
        for block in _row_slices(X, _INIT_ROWS):
            w = weight(block)
            values = closest[block].copy() if w is None else w * closest[block]
            values[0] += carry
            cumulative = np.cumsum(values)
            carry = cumulative[-1]
            candidate_ids += np.searchsorted(cumulative, rand_vals)
        np.clip(candidate_ids, None, n - 1, out=candidate_ids)
        candidates = np.asarray(X[candidate_ids], dtype=np.float64)
        pots = np.zeros(n_trials)
        for block, Xb in iter_blocks(X, _INIT_ROWS):
            distances = _squared_distances(candidates, Xb)
            np.minimum(closest[block], distances, out=distances)
            w = weight(block)
            pots += distances.sum(axis=1) if w is None else distances @ w
        best = int(np.argmin(pots))
        pot = float(pots[best])
        for block, Xb in iter_blocks(X, _INIT_ROWS):
            np.minimum(closest[block], _squared_distances(candidates[best : best + 1], Xb)[0], out=closest[block])
        centers[c] = candidates[best]
    return centers


def initial_statistics(
    family: CovarianceFamily,
    X: np.ndarray,
    sample_weight: np.ndarray | None,
    block_responsibilities,
    n_components: int,
) -> SufficientStatistics:
    """Statistics of responsibilities produced block by block, without an (n x K) array.

    ``block_responsibilities(block, Xb)`` returns the (m, K) responsibilities of the rows
    ``block``; it is called once per block, in order.  The statistics are accumulated in
    coordinates centred on the first block's mean (whitening by the identity) and moved
    back with :meth:`CovarianceFamily.finalize`.
    """
    n, d = X.shape
    total: RawStatistics | None = None
    params: GaussianParams | None = None
    for block, Xb in iter_blocks(X, chunk_rows(n, n_components, d)):
        resp = np.asarray(block_responsibilities(block, Xb), dtype=np.float64)
        if params is None:
            center = np.broadcast_to(Xb.mean(axis=0, dtype=np.float64), (n_components, d)).copy()
            params = family.params(np.full(n_components, 1.0 / n_components), center, family.identity_covariances(n_components, d))
        Y = family.whiten_rows_t(Xb, params.means, params.precisions_cholesky)
        R = np.ascontiguousarray(resp.T)
        if sample_weight is not None:
            R *= sample_weight[block]
        weight = float(Xb.shape[0]) if sample_weight is None else float(np.sum(sample_weight[block]))
        nk = R.sum(axis=1)
        first, second = family.whitened_moments(Y, R.astype(Y.dtype, copy=False))
        raw = RawStatistics(0.0, weight, nk, first, second)
        total = raw if total is None else total + raw
    assert total is not None and params is not None
    return family.finalize(total, params)


def label_statistics(
    family: CovarianceFamily,
    X: np.ndarray,
    sample_weight: np.ndarray | None,
    block_labels,
    n_components: int,
) -> SufficientStatistics:
    """Statistics of a hard partition (each row in one component), by blocks of rows.

    ``block_labels(block, Xb)`` returns the component (0..K-1) of each row of the block.  Each
    row enters only its own component's sums, so a pass costs ``n d^2`` flops, not the
    ``n K d^2`` of responsibilities that are mostly zero; the blocks' counts, means and
    scatters about them are merged with the pairwise update of Chan, Golub and LeVeque (1979),
    which stays accurate however far the data lie from the origin.
    """
    n, d = X.shape
    rows = max(_MIN_ROWS, _BLOCK_FLOATS // max(d, 1))

    def block_statistics(block: slice, Xb: np.ndarray):
        """The block's weight and, per component, None or (size, mean, scatter about it)."""
        Xb = np.asarray(Xb, dtype=np.float64)
        labels = np.asarray(block_labels(block, Xb))
        wb = None if sample_weight is None else np.asarray(sample_weight[block], dtype=np.float64)
        weight = float(Xb.shape[0]) if wb is None else float(np.sum(wb))
        order = np.argsort(labels, kind="stable")
        bounds = np.searchsorted(labels[order], np.arange(n_components + 1))
        parts = []
        for j in range(n_components):
            members = order[bounds[j] : bounds[j + 1]]
            wj = None if wb is None else wb[members]
            size = float(members.size) if wj is None else float(np.sum(wj))
            if not size > 0:
                parts.append(None)
                continue
            Xj = Xb[members]
            mean_b = Xj.mean(axis=0) if wj is None else (wj / size) @ Xj
            parts.append((size, mean_b, family.component_scatter(Xj - mean_b, wj)))
        return weight, parts

    if is_dask(X):
        per_block = [block_statistics(block, Xb) for block, Xb in iter_blocks(X, rows)]
    else:  # the blocks on the engine's threads; merged below in block order, as serially
        blocks = _blocks(n, rows)
        per_block = map_blocks(lambda block: block_statistics(block, _as_block(X, block)), blocks, n * d)
    count = np.zeros(n_components)
    mean = np.zeros((n_components, d))
    scatter: list[np.ndarray | None] = [None] * n_components
    total = 0.0
    for weight, parts in per_block:
        total += weight
        for j, part in enumerate(parts):
            if part is None:
                continue
            size, mean_b, scatter_b = part
            if count[j] > 0:
                share = size / (count[j] + size)
                delta = mean_b - mean[j]
                scatter_b += family.component_scatter(delta[None, :], np.array([count[j] * share]))
                scatter_b += scatter[j]
                mean[j] += share * delta
            else:
                mean[j] = mean_b
            scatter[j] = scatter_b
            count[j] += size
    zero = family.component_scatter(np.zeros((0, d)))
    pooled = family.scatter_from_components([zero if s is None else s for s in scatter])
    return SufficientStatistics(count, mean, pooled, total)
