"""nutpie's numba compilation of a PyMC model, with its two C callbacks cached on disk.

Why: ``nutpie.compile_pymc_model`` compiles the model's log density and gradient with
PyTensor's numba backend, whose pieces PyTensor caches on disk (``~/.pytensor/numba``), and
then wraps them in two ``numba.cfunc`` callbacks (the log density with its gradient, and the
expansion of a draw into the model's variables).  Those callbacks are never cached: they close
over the model's shared arrays as constants and key them by random (``uuid4``) names, so every
process links the cached pieces into a new module and runs LLVM's optimiser and code generator
on all of it again.  On the seed problem's model (full, K = 10, d = 2) that was 11-16 s of a
17-24 s compilation in every fresh process (2-core Intel Xeon VM, measured 2026-12-03).

What this module changes, and only this: the shared arrays get deterministic keys (``s0``,
``s1``, ...), and the two callbacks are generated as source that reads each array from nutpie's
user-data record (pointer, size, shape) instead of closing over it, compiled through PyTensor's
numba cache (:func:`pytensor.link.numba.cache.compile_numba_function_src` with a key of the
source, the graph's own cache key and the record's layout) and ``numba.cfunc(..., cache=True)``.
A fresh process then loads both callbacks from disk: compiling the same model took 1.7-3.2 s
instead of 17-24 s.  The first compilation on a machine (an empty cache) is as slow as before.

It uses nutpie's internals (``nutpie.compile_pymc._make_functions``, ``make_user_data``,
``_prepare_dims_and_coords``, ``address_as_void_pointer``, ``CompiledPyMCModel``), checked for
nutpie 0.16; :func:`compile_pymc_model_cached` is only tried for the versions in
:data:`TESTED_NUTPIE`, and :meth:`bayes_gmm.bayes.posterior.PosteriorSampler.compile` falls
back to ``nutpie.compile_pymc_model`` when it raises.  The log density, its gradient and the
draws are the same as nutpie's own compilation of the model (tested, bit for bit).
"""

from __future__ import annotations

import hashlib
import warnings

import numba
import numpy as np

__all__ = ["TESTED_NUTPIE", "compile_pymc_model_cached", "supported"]

#: nutpie versions whose internals this module was written against (major, minor).
TESTED_NUTPIE = ((0, 16),)
#: Changes when the generated callbacks change (part of their cache key).
_WRAPPER_VERSION = 1


def _nutpie_version() -> str:
    """The installed nutpie's version (its internals this module uses change with it)."""
    import nutpie

    return nutpie.__version__


def supported() -> bool:
    """Whether the installed nutpie is one this module was written against."""
    try:
        major, minor = (int(part) for part in _nutpie_version().split(".")[:2])
    except ValueError:  # pragma: no cover - a development version
        return False
    return (major, minor) in TESTED_NUTPIE


@numba.extending.intrinsic
def _as_readonly(typingctx, arr):
    """The same array, typed read-only (nutpie passes the shared arrays so: the graph's
    compiled overload is the one for read-only arrays)."""
    sig = arr.copy(readonly=True)(arr)

    def codegen(context, builder, signature, args):
        context.nrt.incref(builder, signature.args[0], args[0])
        return args[0]

    return sig, codegen


_LOGP_SIGNATURE = numba.types.int64(
    numba.types.uint64,
    numba.types.CPointer(numba.types.double),
    numba.types.CPointer(numba.types.double),
    numba.types.CPointer(numba.types.double),
    numba.types.voidptr,
)
_EXPAND_SIGNATURE = numba.types.int64(
    numba.types.uint64,
    numba.types.uint64,
    numba.types.CPointer(numba.types.double),
    numba.types.CPointer(numba.types.double),
    numba.types.voidptr,
)

# The callbacks follow nutpie's C interface: return 0 on success, a positive code for a
# non-finite log density or gradient (3, 4) or an error (1), -1 for a size mismatch.
_LOGP_SOURCE = """
def nutpie_logp_cfunc(dim, x_, out_, logp_, user_data_):
    if dim != {n_dim}:
        return -1
    try:
        shared = numba.carray(user_data_, (), RECORD)['shared']
{arrays}
        x = numba.carray(x_, ({n_dim},))
        out = numba.carray(out_, ({n_dim},))
        logp = numba.carray(logp_, ())
        logp_value, grad = inner(x{args})
        logp[()] = logp_value
        out[...] = grad
        if not np.all(np.isfinite(out)):
            return 3
        if not np.isfinite(logp_value):
            return 4
    except Exception:
        return 1
    return 0
"""
_EXPAND_SOURCE = """
def nutpie_expand_cfunc(dim, expanded, x_, out_, user_data_):
    if dim != {n_dim}:
        return -1
    if expanded != {n_expanded}:
        return -1
    try:
        shared = numba.carray(user_data_, (), RECORD)['shared']
{arrays}
        x = numba.carray(x_, ({n_dim},))
        out = numba.carray(out_, ({n_expanded},))
        (values,) = inner(x{args})
        out[...] = values
    except Exception:
        return -2
    return 0
"""


def _array_lines(keys: list[str], ndims: list[int]) -> str:
    """Source lines that rebuild each shared array ``a<i>`` from the user-data record."""
    lines = []
    for i, (key, ndim) in enumerate(zip(keys, ndims, strict=True)):
        shape = "(" + "".join(f"int(shared['shape']['{key}'][{j}]), " for j in range(ndim)) + ")"
        lines.append(
            f"        a{i} = as_readonly(numba.carray(address_as_void_pointer(shared['data']['{key}'][()]), "
            f"int(shared['size']['{key}'][()]), DTYPE{i}).reshape({shape}))"
        )
    return "\n".join(lines)


def _callback(kind: str, inner, n_dim: int, n_expanded: int, keys: list[str], shared_data: dict, record_dtype):
    """The ``numba.cfunc`` of ``kind`` ("logp" or "expand") around the graph's function ``inner``."""
    from nutpie import compile_pymc as nutpie_internals
    from pytensor.link.numba.cache import CACHED_SRC_FUNCTIONS, compile_numba_function_src

    graph_key = CACHED_SRC_FUNCTIONS.get(inner.py_func)
    if graph_key is None:
        raise RuntimeError("the model's numba function has no PyTensor cache key")
    dtypes = {f"DTYPE{i}": shared_data[key].dtype for i, key in enumerate(keys)}
    template, name, signature = {
        "logp": (_LOGP_SOURCE, "nutpie_logp_cfunc", _LOGP_SIGNATURE),
        "expand": (_EXPAND_SOURCE, "nutpie_expand_cfunc", _EXPAND_SIGNATURE),
    }[kind]
    source = template.format(
        n_dim=n_dim,
        n_expanded=n_expanded,
        arrays=_array_lines(keys, [shared_data[key].ndim for key in keys]),
        args="".join(f", a{i}" for i in range(len(keys))),
    )
    cache_key = hashlib.sha256(
        repr((
            _WRAPPER_VERSION, _nutpie_version(), source, graph_key, record_dtype.descr,
            sorted((k, str(v)) for k, v in dtypes.items()),
        )).encode()
    ).hexdigest()
    function = compile_numba_function_src(
        source,
        name,
        global_env={
            "__name__": "bayes_gmm.bayes.nutpie_cache",  # numba's cache needs a module name
            "numba": numba,
            "np": np,
            "inner": inner,
            "RECORD": record_dtype,
            "address_as_void_pointer": nutpie_internals.address_as_void_pointer,
            "as_readonly": _as_readonly,
            **dtypes,
        },
        cache_key=cache_key,
    )
    # Load (or compile) the graph's own overload first, as typing nutpie's callback does: its
    # machine code then backs the callback's copies of the inner functions, so the numbers are
    # those of nutpie's own compilation (without it they differed by up to 2e-12).
    arg_types = [numba.types.Array(numba.float64, 1, "C")] + [
        numba.types.Array(numba.from_dtype(shared_data[key].dtype), shared_data[key].ndim, "C", readonly=True)
        for key in keys
    ]
    inner.compile((numba.types.StarArgTuple(tuple(arg_types)),))
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Cannot cache compiled function", category=numba.NumbaWarning)
        return numba.cfunc(signature, cache=True)(function)


def compile_pymc_model_cached(model, *, jitter_rvs=None):
    """``nutpie.compile_pymc_model(model, jitter_rvs=jitter_rvs)`` (numba backend, starting at
    the model's support points), with both callbacks cached on disk (module docstring)."""
    from nutpie import compile_pymc as nutpie_internals
    from pymc.initial_point import make_initial_point_fn

    if not supported():
        raise RuntimeError("untested nutpie version")
    initial_point_fn = nutpie_internals._wrap_with_lock(
        make_initial_point_fn(
            model=model,
            overrides=None,
            default_strategy="support_point",
            jitter_rvs=set(model.free_RVs) if jitter_rvs is None else jitter_rvs,
            return_transformed=True,
        )
    )
    (n_dim, n_expanded, logp_fn, expand_fn, initial_point, shape_info, reparameterized) = (
        nutpie_internals._make_functions(
            model,
            mode="NUMBA",
            compute_grad=True,
            join_expanded=True,
            pymc_initial_point_fn=initial_point_fn,
            var_names=None,
        )
    )
    shared_data, shared_var_keys = {}, {}
    for var in [*logp_fn.get_shared(), *expand_fn.get_shared()]:
        if var in shared_var_keys:
            continue
        key = f"s{len(shared_var_keys)}"  # deterministic: part of the callbacks' cache key
        shared_data[key] = np.array(var.get_value(), order="C", copy=True)
        shared_data[key].flags.writeable = False
        shared_var_keys[var] = key
    user_data = nutpie_internals.make_user_data(shared_var_keys, shared_data)
    callbacks = {
        kind: _callback(
            kind, fn.vm.jit_fn, n_dim, n_expanded, [shared_var_keys[v] for v in fn.get_shared()],
            shared_data, user_data.dtype,
        )
        for kind, fn in (("logp", logp_fn), ("expand", expand_fn))
    }
    dims, coords = nutpie_internals._prepare_dims_and_coords(model, shape_info, reparameterized)
    return nutpie_internals.CompiledPyMCModel(
        _n_dim=n_dim,
        dims=dims,
        _coords=coords,
        _shapes={name: tuple(shape) for name, _, shape in zip(*shape_info, strict=False)},
        compiled_logp_func=callbacks["logp"],
        compiled_expand_func=callbacks["expand"],
        initial_point_func=initial_point,
        shared_data=shared_data,
        shared_var_keys=shared_var_keys,
        user_data=user_data,
        n_expanded=n_expanded,
        shape_info=shape_info,
        logp_func=logp_fn,
        expand_func=expand_fn,
        reparameterized_names=reparameterized,
    )
