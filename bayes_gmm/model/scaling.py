"""Per-column centring and scaling: why a fit is the same whatever the units of the columns.

Pure numerics (NumPy only).  :class:`MapEM <bayes_gmm.MapEM>` fits in *standardised units*
``z = (x - c) / s`` and reports every parameter back in the data's units.  Because the default
prior is built from the standardised data, fitting ``X * a + b`` gives the same partition and
parameters transformed exactly, from ``a = 1e-150`` to ``1e150`` and offsets far larger than the
spread of a column; the initialisation (k-means++ distances) is computed on the standardised
data too, so it does not depend on the units either.

- ``c`` is the (weighted) column mean; a *constant* column (every row with a positive weight
  holds exactly the same number) takes that number as its centre, so it is exactly 0 in
  standardised units.
- ``s`` is the column's standard deviation (so that the standardised data, on which the
  k-means++ start is drawn, are the same numbers whatever the units); for a constant column
  ``1e-3 |c|`` (or 1 for a column of zeros), which makes the prior's
  floor under that column's variance about ``1e-6 c^2`` (a constant column has no scale of its
  own).
- ``common=True`` (the spherical family, whose model assumes every column in the same units)
  uses one scale for all columns, the root mean column variance, so that the model is left
  unchanged; that family is then equivariant to a common rescaling and to per-column shifts.

Columns whose spread cannot be squared in float64 (values beyond about 1e154 apart) or whose
variance underflows (a spread below about 1e-154) are rejected with a ``ValueError`` naming the
column and what to do.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import numpy as np

__all__ = ["ColumnScaling", "ScaledRows", "column_moments", "column_scaling", "is_large", "transforms_by_rows"]

#: Above this many floats in an (n x width) temporary, passes over the data go by blocks of
#: rows (the engine's initialisation, the prior's data moments); below it the plain
#: whole-array code runs (whose results, bit for bit, earlier versions reproduce).
_LARGE_FLOATS = 1 << 22


def is_large(n_samples: int, width: int) -> bool:
    """Whether an (n_samples x width) float64 temporary is too large to build whole."""
    return n_samples * max(width, 8) > _LARGE_FLOATS


def transforms_by_rows(X) -> bool:
    """Whether :meth:`ColumnScaling.transform` wraps ``X`` in a :class:`ScaledRows` view."""
    return isinstance(X, np.memmap) or (
        not type(X).__module__.startswith("dask.") and X.shape[0] * X.shape[1] > _LARGE_FLOATS
    )

#: A constant column takes ``CONSTANT_SCALE * |value|`` as its scale (power of two).
CONSTANT_SCALE = 1e-3
#: Rows per block when the column statistics are computed from a large array.
_ROWS = 1 << 15
_HUGE = np.sqrt(np.finfo(np.float64).max)
_SMALL = np.sqrt(np.finfo(np.float64).tiny) * 4.0


def _pow2(x: np.ndarray) -> np.ndarray:
    """The power of two nearest to ``x`` (> 0) on a log scale."""
    return np.ldexp(1.0, np.round(np.log2(x)).astype(int))


def _unit(magnitude: np.ndarray) -> np.ndarray:
    """The working unit of columns whose largest absolute value is ``magnitude``: a power of
    two near it, 1 for a column of zeros."""
    return np.where(magnitude > 0, _pow2(np.where(magnitude > 0, magnitude, 1.0)), 1.0)


@dataclass(frozen=True)
class ColumnScaling:
    """The map ``z = (x - center) / scale`` between data and standardised units.

    Attributes
    ----------
    center, scale : ndarray of shape (d,)
        Column centres and scales (> 0).
    constant : ndarray of bool, shape (d,)
        Columns whose rows (those with positive weight) all hold the same number.
    sd : ndarray of shape (d,)
        The column standard deviations (``scale`` is the common one where ``common=True``).
    moments : tuple of ndarray or None
        With ``column_scaling(..., moments=True)``: the standardised data's column means
        (d,), covariance (d, d) (n - 1 denominator) and means of squares (d,), under the
        weights the scaling was computed with, from the scaling's own pass over the rows (what
        :func:`column_moments` of the standardised rows gives, to rounding, without two more
        passes).  None otherwise.
    """

    center: np.ndarray
    scale: np.ndarray
    constant: np.ndarray
    sd: np.ndarray
    moments: tuple[np.ndarray, np.ndarray, np.ndarray] | None = field(default=None, compare=False, repr=False)

    @property
    def log_scale_sum(self) -> float:
        """``sum_j log scale_j``: minus the log-Jacobian of ``x -> z`` per row."""
        return float(np.sum(np.log(self.scale)))

    def transform(self, X):
        """``(X - center) / scale`` in ``X``'s floating dtype (computed in float64).

        A NumPy array small enough is transformed whole; a large one or a ``numpy.memmap`` is
        wrapped in a :class:`ScaledRows` view that transforms rows when they are read (no copy of the data);
        a ``dask.array`` stays lazy.
        """
        if type(X).__module__.startswith("dask."):
            dtype = X.dtype
            return ((X - self.center) / self.scale).astype(dtype)
        if transforms_by_rows(X):
            return ScaledRows(X, self)
        return self.transform_block(X)

    def transform_block(self, X: np.ndarray, columns=slice(None)) -> np.ndarray:
        """:meth:`transform` of an in-memory block holding the columns ``columns`` of X."""
        X = np.asarray(X)
        dtype = X.dtype if X.dtype in (np.float32, np.float64) else np.float64
        Z = np.subtract(X, self.center[columns], dtype=np.float64)
        Z *= 1.0 / self.scale[columns]  # a product is cheaper than a quotient, row after row
        return Z.astype(dtype, copy=False)

    def means_to_data(self, means: np.ndarray) -> np.ndarray:
        return np.asarray(means, dtype=float) * self.scale + self.center

    def means_from_data(self, means: np.ndarray) -> np.ndarray:
        return (np.asarray(means, dtype=float) - self.center) / self.scale


class ScaledRows:
    """Rows of a large array, standardised when read (``ScaledRows(X, s)[rows]``).

    Supports what the EM engine reads: ``shape``, ``dtype``, ``ndim``, rows by a slice or an
    index array, and ``[rows, columns]``; never copies ``X`` whole.
    """

    def __init__(self, X: np.ndarray, scaling: ColumnScaling):
        self.base = X
        self.scaling = scaling
        self.shape = X.shape
        self.ndim = 2
        self.dtype = X.dtype if X.dtype in (np.float32, np.float64) else np.dtype(np.float64)

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, key):
        if isinstance(key, tuple):  # [rows, columns]: only those cells are read
            rows, cols = key
            return self.scaling.transform_block(self.base[rows, cols], cols)
        block = np.asarray(self.base[key])
        if block.ndim == 1:
            return self.scaling.transform_block(block[None, :])[0]
        return self.scaling.transform_block(block)

    def __array__(self, dtype=None, copy=None):
        out = self.scaling.transform_block(self.base)
        return out if dtype is None else out.astype(dtype)


def _row_blocks(X, sample_weight):
    """``(rows, their weights or None)`` by blocks; rows of weight 0 are left out (such a row
    can hold anything: its square may overflow, and 0 * inf is NaN)."""
    for Xb, wb in _raw_row_blocks(X, sample_weight):
        yield _live_rows(Xb, wb)


def _live_rows(Xb, wb):
    if wb is not None:
        live = wb > 0
        if not live.all():
            Xb, wb = Xb[live], wb[live]
    return Xb, wb


def _map_row_blocks(function, X, sample_weight, map_blocks):
    """``function(rows, weights)`` of each block (rows of weight 0 left out), yielded in block
    order; through ``map_blocks`` (``map_blocks(f, items)``, e.g. the EM engine's threads) for
    an in-memory array."""
    if map_blocks is None or type(X).__module__.startswith("dask."):
        for Xb, wb in _row_blocks(X, sample_weight):
            yield function(Xb, wb)
        return
    n = X.shape[0]

    def one(rows: slice):
        return function(*_live_rows(np.asarray(X[rows]), None if sample_weight is None else sample_weight[rows]))

    yield from map_blocks(one, [slice(start, min(start + _ROWS, n)) for start in range(0, n, _ROWS)])


def _raw_row_blocks(X, sample_weight):
    if type(X).__module__.startswith("dask."):
        offset = 0
        for block in X.to_delayed().ravel():
            Xb = np.asarray(block.compute())
            rows = slice(offset, offset + Xb.shape[0])
            offset += Xb.shape[0]
            yield Xb, None if sample_weight is None else sample_weight[rows]
        return
    n = X.shape[0]
    for start in range(0, n, _ROWS):
        rows = slice(start, min(start + _ROWS, n))
        yield np.asarray(X[rows]), None if sample_weight is None else sample_weight[rows]


def column_scaling(
    X,
    sample_weight: np.ndarray | None = None,
    *,
    common: bool = False,
    moments: bool = False,
    map_blocks: Callable[[Callable, list], Iterable] | None = None,
) -> ColumnScaling:
    """Centres and power-of-two scales of the columns of ``X`` (see the module's docstring).

    ``X`` is a finite 2-D array (NumPy, memmap or dask, read by blocks of rows); rows with a
    zero weight are ignored.  Raises ``ValueError`` for a column whose spread cannot be
    squared in float64.  ``moments=True`` also keeps the standardised data's moments
    (:attr:`ColumnScaling.moments`): the pass that sums the squared deviations sums their
    products too (``n d^2`` flops), which spares the prior two more passes over a large array.
    ``map_blocks(f, items)``, if given, yields ``f(item)`` for each item in that order (e.g.
    computed on several threads, a few at a time): the passes over the blocks of an in-memory
    array go through it, and the result does not depend on it.
    """
    d = X.shape[1]
    lo = np.full(d, np.inf)
    hi = np.full(d, -np.inf)
    # work in units of a power of two near each column's magnitude: no overflow in the sums.
    # One pass finds the range and sums each block in its own unit; a block's sum is then
    # brought to the final unit by a power of two, exactly: the same sums as a second pass
    # in the final unit would give, one pass over the data fewer.

    def first_pass(Xb, wb):
        if not Xb.shape[0]:
            return None
        block_lo, block_hi = Xb.min(axis=0), Xb.max(axis=0)
        block_unit = _unit(np.maximum(np.abs(block_lo), np.abs(block_hi)).astype(np.float64))
        Yb = np.multiply(Xb, 1.0 / block_unit, dtype=np.float64)  # a power of two: exact, as / is
        weight = Yb.shape[0] if wb is None else float(np.sum(wb))
        return block_lo, block_hi, (Yb.sum(axis=0) if wb is None else wb @ Yb), block_unit, weight

    total = 0.0
    block_sums = []
    for part in _map_row_blocks(first_pass, X, sample_weight, map_blocks):
        if part is None:
            continue
        block_lo, block_hi, block_sum, block_unit, weight = part
        lo = np.minimum(lo, block_lo)
        hi = np.maximum(hi, block_hi)
        block_sums.append((block_sum, block_unit))
        total += weight
    constant = lo == hi
    with np.errstate(over="ignore"):
        spread = hi.astype(np.float64) - lo.astype(np.float64)
    magnitude = np.maximum(np.abs(lo), np.abs(hi)).astype(np.float64)
    unit = _unit(magnitude)
    first = np.zeros(d)
    for block_sum, block_unit in block_sums:
        first += block_sum * (block_unit / unit)
    mean_u = first / total

    def second_pass(Xb, wb):
        Db = np.multiply(Xb, 1.0 / unit, dtype=np.float64)
        Db -= mean_u
        if moments:  # its diagonal is the sum of squares
            return Db.T @ (Db if wb is None else Db * wb[:, None])
        Db *= Db
        return Db.sum(axis=0) if wb is None else wb @ Db

    second = np.zeros(d)
    cross = np.zeros((d, d)) if moments else None
    for part in _map_row_blocks(second_pass, X, sample_weight, map_blocks):
        if cross is not None:
            cross += part
        else:
            second += part
    if cross is not None:
        second = np.diagonal(cross).copy()
    var_u = second / (total - 1.0 if total > 1.0 else 1.0)
    center = np.where(constant, lo, mean_u * unit)
    sd = np.sqrt(var_u) * unit
    _check_range(spread, constant)
    if common:
        live = ~constant & (sd > 0)
        pooled = np.sqrt(np.mean((sd[live] / unit[live].max()) ** 2)) * unit[live].max() if live.any() else 0.0
        if not pooled > 0:  # every column constant
            tiny = CONSTANT_SCALE * magnitude
            pooled = float(np.max(tiny)) if np.max(tiny) > 0 else 1.0
        scale = np.full(d, float(pooled))
    else:
        fallback = np.where(magnitude > 0, CONSTANT_SCALE * magnitude, 1.0)
        scale = np.where(constant | ~(sd > 0), fallback, sd)
    standardized = None
    if cross is not None:
        cross[constant, :] = cross[:, constant] = 0.0  # exactly 0 in standardised units
        standardized = _standardized_moments(cross, unit / scale, total)
    return ColumnScaling(center.astype(np.float64), scale.astype(np.float64), constant, sd, standardized)


def _standardized_moments(cross: np.ndarray, factor: np.ndarray, total: float):
    """Mean, covariance and mean of squares of ``z`` from the scatter of ``x / unit`` about its mean.

    ``z = (x - c) / s`` with ``c`` the mean (or, for a constant column, its value), so every
    column of ``z`` has mean 0 and ``z_j = (x_j / unit_j - mean) * factor_j`` with
    ``factor = unit / s``.
    """
    scatter = cross * factor[:, None] * factor[None, :]
    scatter = 0.5 * (scatter + scatter.T)
    denom = total - 1.0 if total > 1.0 else 1.0
    return np.zeros(factor.shape[0]), scatter / denom, np.diag(scatter) / total


def _check_range(spread: np.ndarray, constant: np.ndarray) -> None:
    for j in np.flatnonzero(~constant):
        if not spread[j] <= _HUGE:
            raise ValueError(
                f"column {j} of X spans {spread[j]:.3g}: squares of values this far apart overflow "
                "float64 (largest 1.8e308). Rescale that column (e.g. divide it by a power of ten) "
                "before fitting."
            )
        if spread[j] < _SMALL:
            raise ValueError(
                f"column {j} of X varies by only {spread[j]:.3g}: its variance underflows float64 "
                "(smallest normal 2.2e-308). Rescale that column (e.g. multiply it by a power of "
                "ten) before fitting."
            )


def column_moments(X, sample_weight: np.ndarray | None):
    """Weighted column mean, covariance (n - 1 denominator) and mean of squares, by blocks.

    The same quantities as the prior's whole-array computation, in two passes over blocks of
    rows (the mean, then the scatter about it) with no (n x d) temporary: for memmaps,
    :class:`ScaledRows` views and dask arrays.
    """
    d = X.shape[1]
    total = float(X.shape[0]) if sample_weight is None else float(np.sum(sample_weight))
    first = np.zeros(d)
    for Xb, wb in _row_blocks(X, sample_weight):
        Xb = _as_float(Xb)
        first += Xb.sum(axis=0, dtype=np.float64) if wb is None else wb @ Xb
    mean = first / total
    scatter = np.zeros((d, d))
    square = np.zeros(d)
    for Xb, wb in _row_blocks(X, sample_weight):
        Xb = _as_float(Xb)
        diff = Xb - mean
        weighted = diff if wb is None else diff * wb[:, None]
        scatter += weighted.T @ diff
        xw = Xb if wb is None else Xb * wb[:, None]
        square += np.einsum("ij,ij->j", xw, Xb, dtype=np.float64)
    denom = total - 1.0 if total > 1.0 else 1.0
    cov = scatter / denom
    return mean, 0.5 * (cov + cov.T), square / total


def _as_float(Xb: np.ndarray) -> np.ndarray:
    return Xb if Xb.dtype in (np.float32, np.float64) else Xb.astype(np.float64)
