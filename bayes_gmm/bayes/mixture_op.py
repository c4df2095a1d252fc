"""One PyTensor Op for the mixture likelihood's log-sum-exp, with a fused numba kernel.

``mixture_logsumexp(features, coef, bias)`` returns, for every row ``i``,

    ll_i  = log sum_k exp(c_ik),    c_ik = bias_k - 0.5 * sum_f features_if coef_kf
    r_ki  = exp(c_ik - ll_i)        (the responsibilities, transposed: (K, n))

and its gradient reuses ``r``: ``d ll_i / d bias_k = r_ik``, ``d ll_i / d coef_kf =
-0.5 r_ik features_if``.  The exponentials are computed once per entry (PyTensor's
``logsumexp`` graph computed them for the value and again for the gradient) and, in the numba
kernel the sampler runs, by a vectorisable ``exp`` (range reduction and a degree-12 Taylor
polynomial, within 1.5 ulp of the C library's; ``libm``'s scalar ``exp`` cost 5 ns an entry,
half the gradient's time on the seed problem).  The data's gradient is left undefined (the
sampler never asks for it).
"""

from __future__ import annotations

import numpy as np
import pytensor.tensor as pt
from pytensor.gradient import DisconnectedType, grad_undefined
from pytensor.graph.basic import Apply
from pytensor.graph.op import Op

__all__ = ["MixtureLogSumExp", "mixture_logsumexp"]

#: Changes when the numba kernel changes (PyTensor's on-disk numba cache keys on it).
_KERNEL_VERSION = 5

_LOG2E = 1.4426950408889634
_LN2_HI = 0.6931471803691238
_LN2_LO = 1.9082149292705877e-10


def _exp_nonpositive(values, out):
    """``exp`` of entries <= 0 into ``out`` (another array: see :func:`_kernel`): ``2^m p(r)``, ``x = m ln 2 + r``."""
    bits = out.view(np.int64)
    for i in range(values.size):
        x = max(values[i], -708.0)  # below: exp underflows to a subnormal; 2^-1022 p is close
        m = np.floor(x * _LOG2E + 0.5)
        r = (x - m * _LN2_HI) - m * _LN2_LO
        p = 2.08767569878680989792e-09  # 1 / 12!, then Horner down to 1 / 0!
        p = p * r + 2.50521083854417187751e-08
        p = p * r + 2.75573192239858906526e-07
        p = p * r + 2.75573192239858906526e-06
        p = p * r + 2.48015873015873015873e-05
        p = p * r + 1.98412698412698412698e-04
        p = p * r + 1.38888888888888888889e-03
        p = p * r + 8.33333333333333333333e-03
        p = p * r + 4.16666666666666666667e-02
        p = p * r + 1.66666666666666666667e-01
        p = p * r + 0.5
        p = p * r + 1.0
        p = p * r + 1.0
        out[i] = p
        bits[i] = bits[i] + (np.int64(m) << 52)
    return out


def _kernel(features, coef, bias):
    """``ll`` (n,) and the responsibilities transposed, (K, n): the loops run along the rows.

    The exponentials go to a new array: written in place (``values`` and ``out`` the same
    array) the loop did not vectorise and took 4x as long (52 against 13 us on 10^4 entries).
    """
    comp = np.dot(coef, np.ascontiguousarray(features.T))  # (K, n)
    k, n = comp.shape
    top = np.empty(n)
    for i in range(n):
        top[i] = bias[0] - 0.5 * comp[0, i]
    for j in range(k):
        b = bias[j]
        for i in range(n):
            v = b - 0.5 * comp[j, i]
            comp[j, i] = v
            t = top[i]
            top[i] = v if v > t else t  # not max(): the comparison vectorises
    for j in range(k):
        for i in range(n):
            comp[j, i] -= top[i]
    resp = np.empty((k, n))
    _exp_nonpositive_jit(comp.reshape(k * n), resp.reshape(k * n))
    total = np.zeros(n)
    for j in range(k):
        for i in range(n):
            total[i] += resp[j, i]
    ll = np.empty(n)
    for i in range(n):
        ll[i] = top[i] + np.log(total[i])
        total[i] = 1.0 / total[i]
    for j in range(k):
        for i in range(n):
            resp[j, i] *= total[i]
    return ll, resp


class MixtureLogSumExp(Op):
    """``(features (n, F), coef (K, F), bias (K,)) -> (ll (n,), resp (K, n))``; see the module."""

    __props__ = ()

    def make_node(self, features, coef, bias):
        features = pt.as_tensor_variable(features)
        coef = pt.as_tensor_variable(coef)
        bias = pt.as_tensor_variable(bias)
        if (features.ndim, coef.ndim, bias.ndim) != (2, 2, 1):
            raise TypeError("features, coef and bias must have 2, 2 and 1 dimensions.")
        ll = pt.tensor(dtype="float64", shape=(features.type.shape[0],))
        resp = pt.tensor(dtype="float64", shape=(bias.type.shape[0], features.type.shape[0]))
        return Apply(self, [features, coef, bias], [ll, resp])

    def perform(self, node, inputs, outputs):
        features, coef, bias = (np.asarray(v, dtype=np.float64) for v in inputs)
        comp = bias[None, :] - 0.5 * (features @ coef.T)
        top = comp.max(axis=1, keepdims=True)
        with np.errstate(invalid="ignore", divide="ignore"):
            exp = np.exp(comp - top)
            total = exp.sum(axis=1, keepdims=True)
            outputs[0][0] = (top + np.log(total))[:, 0]
            outputs[1][0] = np.ascontiguousarray((exp / total).T)

    def infer_shape(self, node, shapes):
        (n, _), _, (k,) = shapes
        return [(n,), (k, n)]

    def pullback(self, inputs, outputs, cotangents):
        features, coef, bias = inputs
        _, resp = outputs
        g_ll, g_resp = cotangents
        if not isinstance(g_resp.type, DisconnectedType):
            raise NotImplementedError("the gradient through the responsibilities is not implemented.")
        weighted = resp * g_ll[None, :]  # (K, n)
        return [
            grad_undefined(self, 0, features, "the data's gradient is not needed by the sampler"),
            -0.5 * pt.dot(weighted, features),
            pt.sum(weighted, axis=1),
        ]


mixture_logsumexp = MixtureLogSumExp()
_exp_nonpositive_jit = None


def _register_numba() -> None:
    global _exp_nonpositive_jit
    try:
        from pytensor.link.numba.dispatch import basic as numba_basic
    except ImportError:  # pragma: no cover - numba not installed: Python and C modes only
        return
    # only "contract" (fused multiply-adds): with PyTensor's default flags ("reassoc") the
    # two-part reduction x - m ln2_hi - m ln2_lo became one product,
    # 100 ulp off at x = -130; "nnan" and "ninf" would let a NaN through as a number
    _exp_nonpositive_jit = numba_basic.numba_njit(_exp_nonpositive, fastmath={"contract"})

    @numba_basic.register_funcify_default_op_cache_key(MixtureLogSumExp)
    def _numba_mixture_logsumexp(op, node=None, **kwargs):
        return numba_basic.numba_njit(_kernel), _KERNEL_VERSION


_register_numba()
