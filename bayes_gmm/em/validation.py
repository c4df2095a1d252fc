"""Input checks with messages that say what is wrong and what to do."""

from __future__ import annotations

import numbers

import numpy as np
import scipy.sparse as sp

__all__ = ["check_dask_array", "check_data", "check_n_components", "check_positive", "check_sample_weight", "is_dask"]


def is_dask(X) -> bool:
    return type(X).__module__.startswith("dask.")


def _first_bad(mask: np.ndarray) -> str:
    rows, cols = np.nonzero(mask)
    n_bad = rows.size
    where = f"row {rows[0]}, column {cols[0]}"
    more = f" (and {n_bad - 1} more cells)" if n_bad > 1 else ""
    return where + more


def check_finite(X: np.ndarray, name: str = "X") -> None:
    """Raise a ValueError naming the first NaN or infinite cell."""
    if X.dtype.kind not in "fc":
        return
    if np.isfinite(X).all():
        return
    nan = np.isnan(X)
    if nan.any():
        raise ValueError(
            f"Input {name} contains NaN at {_first_bad(nan)}: remove or impute missing values "
            "before fitting."
        )
    raise ValueError(
        f"Input {name} contains infinity at {_first_bad(~np.isfinite(X))}: remove these rows or "
        "clip the values before fitting."
    )


def check_data(X, *, name: str = "X", allow_memmap: bool = True) -> np.ndarray:
    """Turn ``X`` into a finite 2-D float array (float32 stays float32), or raise.

    A ``numpy.memmap`` is kept as it is (no copy) when it is already float and C-contiguous.
    """
    if sp.issparse(X):
        raise TypeError(
            f"sparse input is not supported: {name} is a {type(X).__name__}. "
            f"Convert it with {name}.toarray() (a mixture of Gaussians is fitted on dense data)."
        )
    if isinstance(X, (str, bytes)) or X is None:
        raise TypeError(f"{name} must be a 2-D array of numbers, got {type(X).__name__}.")
    if is_dask(X) and hasattr(X, "chunks"):  # stays lazy; finiteness checked per block
        return check_dask_array(X, name)
    if hasattr(X, "to_numpy") and not isinstance(X, np.ndarray):  # pandas
        X = X.to_numpy()
    if isinstance(X, np.memmap) and allow_memmap and X.dtype in (np.float32, np.float64) and X.flags.c_contiguous:
        arr = X
    else:
        try:
            arr = np.asarray(X)
        except (TypeError, ValueError) as exc:
            raise TypeError(f"{name} must be a 2-D array of numbers: {exc}") from None
        if arr.dtype.kind == "O":
            try:
                arr = arr.astype(np.float64)
            except (TypeError, ValueError):
                raise TypeError(
                    f"{name} must contain only numbers: float() argument must be a string or a real "
                    "number, and some cells are neither. Convert or drop the non-numeric columns."
                ) from None
        if arr.dtype.kind in "biu":
            arr = arr.astype(np.float64)
        elif arr.dtype.kind == "c":
            raise ValueError(f"Complex data not supported: {name} is complex; a Gaussian mixture needs real numbers.")
        elif arr.dtype.kind != "f":
            raise TypeError(f"{name} must contain numbers, got dtype {arr.dtype}.")
        if arr.dtype not in (np.float32, np.float64):
            arr = arr.astype(np.float64)
    if arr.ndim != 2:
        if arr.ndim == 1:
            raise ValueError(
                f"Expected a 2-D array for {name}, got a 1-D array of shape {arr.shape}. "
                f"Reshape your data with {name}.reshape(-1, 1) if it holds one feature, or "
                f"{name}.reshape(1, -1) if it is a single sample."
            )
        raise ValueError(f"Expected a 2-D array for {name}, got {arr.ndim} dimensions (shape {arr.shape}).")
    if arr.shape[0] == 0:
        raise ValueError(f"{name} is empty: found array with 0 sample(s) (shape={arr.shape}) while a minimum of 1 is required.")
    if arr.shape[1] == 0:
        raise ValueError(f"{name} has 0 feature(s) (shape={arr.shape}) while a minimum of 1 is required.")
    check_finite(arr, name)
    return arr


def check_sample_weight(sample_weight, n_samples: int, dtype=np.float64) -> np.ndarray | None:
    if sample_weight is None:
        return None
    if sp.issparse(sample_weight):
        raise TypeError("sample_weight must be a dense 1-D array.")
    if isinstance(sample_weight, numbers.Number):
        sample_weight = np.full(n_samples, float(sample_weight))
    w = np.asarray(sample_weight)
    if w.dtype.kind not in "biuf":
        raise TypeError(f"sample_weight must be numeric, got dtype {w.dtype}.")
    w = w.astype(np.float64)
    if w.ndim != 1 or w.shape[0] != n_samples:
        raise ValueError(
            f"sample_weight must have shape ({n_samples},) to match X, got {w.shape}."
        )
    if not np.all(np.isfinite(w)):
        raise ValueError("sample_weight contains NaN or infinity.")
    if np.any(w < 0):
        raise ValueError("sample_weight must be non-negative; a zero weight drops the row.")
    if not w.sum() > 0:
        raise ValueError("sample_weight sums to zero: at least one row needs a positive weight.")
    return w


def check_n_components(k, n_samples: int) -> int:
    if isinstance(k, bool) or not isinstance(k, numbers.Integral):
        raise TypeError(f"k (the number of components) must be an integer, got {k!r}.")
    if k < 1:
        raise ValueError(f"k (the number of components) must be at least 1, got {k}.")
    if k > n_samples:
        raise ValueError(
            f"k={k} components is larger than the number of rows (n_samples={n_samples}): "
            "use fewer components or more data."
        )
    return int(k)


def check_positive(name: str, value, *, integer: bool = False, allow_zero: bool = False) -> float:
    kind = numbers.Integral if integer else numbers.Real
    if isinstance(value, bool) or not isinstance(value, kind):
        what = "an integer" if integer else "a real number"
        raise TypeError(f"{name} must be {what}, got {value!r}.")
    if not np.isfinite(value) or value < 0 or (value == 0 and not allow_zero):
        bound = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"{name} must be finite and {bound}, got {value!r}.")
    return value


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
