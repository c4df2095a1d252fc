"""A triangular matrix product (BLAS ``?trmm``) that releases the GIL.

``scipy.linalg.blas.dtrmm`` holds the GIL while it runs, so the engine's block threads took
turns on it (two threads: no faster than one).  SciPy also exports the same BLAS routines
for Cython (``scipy.linalg.cython_blas``) as C function pointers; called through
:mod:`ctypes`, which releases the GIL around a foreign call, they run concurrently like
NumPy's ``matmul`` does.  Same library, same routine, same results.
"""

from __future__ import annotations

import ctypes

import numpy as np
from scipy.linalg import cython_blas

__all__ = ["trmm_right_upper"]

_INT_P = ctypes.POINTER(ctypes.c_int)


def _blas_function(name: str, real: type) -> ctypes._CFuncPtr:
    """The Fortran-convention BLAS routine ``name`` (all arguments by pointer)."""
    capsule = cython_blas.__pyx_capi__[name]
    get_name = ctypes.pythonapi.PyCapsule_GetName
    get_name.restype, get_name.argtypes = ctypes.c_char_p, [ctypes.py_object]
    get_pointer = ctypes.pythonapi.PyCapsule_GetPointer
    get_pointer.restype, get_pointer.argtypes = ctypes.c_void_p, [ctypes.py_object, ctypes.c_char_p]
    address = get_pointer(capsule, get_name(capsule))
    real_p = ctypes.POINTER(real)
    # side, uplo, transa, diag, m, n, alpha, a, lda, b, ldb
    prototype = ctypes.CFUNCTYPE(
        None, *[ctypes.c_char_p] * 4, _INT_P, _INT_P, real_p, ctypes.c_void_p, _INT_P, ctypes.c_void_p, _INT_P
    )
    return prototype(address)


_TRMM = {np.dtype(np.float64): (_blas_function("dtrmm", ctypes.c_double), ctypes.c_double),
         np.dtype(np.float32): (_blas_function("strmm", ctypes.c_float), ctypes.c_float)}


def trmm_right_upper(Q: np.ndarray, out: np.ndarray) -> None:
    """``out <- (out^T Q)^T`` in place, ``Q`` upper triangular; ``out`` (p, m), rows contiguous.

    ``out`` (each row contiguous, rows ``ld`` elements apart, ``ld >= m``) is the column-major
    (m, p) matrix ``B = out^T`` with leading dimension ``ld``; BLAS computes ``B <- B Q`` (side
    right, upper, no transpose) reading only the upper triangle of ``Q`` (p, p), which must be
    in Fortran order and of ``out``'s dtype (float32 or float64).
    """
    p, m = out.shape
    item = out.dtype.itemsize
    rows_ok = out.strides[1] == item and out.strides[0] % item == 0 and out.strides[0] >= m * item
    if Q.shape != (p, p) or Q.dtype != out.dtype or not Q.flags.f_contiguous or not rows_ok:
        raise ValueError("trmm_right_upper needs a Fortran (p, p) Q and a (p, m) out with contiguous rows, one dtype.")
    trmm, real = _TRMM[out.dtype]
    rows, cols, lda, ldb = ctypes.c_int(m), ctypes.c_int(p), ctypes.c_int(p), ctypes.c_int(out.strides[0] // item)
    trmm(b"R", b"U", b"N", b"N", ctypes.byref(rows), ctypes.byref(cols), ctypes.byref(real(1.0)),
         Q.ctypes.data, ctypes.byref(lda), out.ctypes.data, ctypes.byref(ldb))
