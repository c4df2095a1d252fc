"""The fused mixture log-sum-exp Op against PyTensor's own logsumexp graph."""

import numpy as np
import pytest

pytensor = pytest.importorskip("pytensor")
import pytensor.tensor as pt  # noqa: E402

from bayes_gmm.bayes import mixture_op as posterior_ops  # noqa: E402


@pytest.mark.parametrize("mode", ["FAST_COMPILE", "NUMBA"])
def test_value_and_gradient_match_logsumexp(mode, rng):
    n, n_feat, k = 300, 5, 4
    features = rng.normal(size=(n, n_feat))
    coef = 0.3 * rng.normal(size=(k, n_feat))
    bias = rng.normal(size=k)
    bias[0] = -800.0  # a component far below the others (its exponential underflows)
    weights = rng.uniform(size=n)  # a weighted sum: every row's gradient counts
    f = pt.matrix("f", shape=(None, n_feat))
    c = pt.matrix("c", shape=(k, n_feat))
    b = pt.vector("b", shape=(k,))
    w = pt.vector("w")
    ll, resp = posterior_ops.mixture_logsumexp(f, c, b)
    ours = pt.sum(ll * w)
    reference = pt.sum(pt.logsumexp(b - 0.5 * pt.matmul(f, c.T), axis=1) * w)
    fn = pytensor.function([f, c, b, w], [ours, *pt.grad(ours, [c, b]), ll, resp], mode=mode)
    ref = pytensor.function([f, c, b, w], [reference, *pt.grad(reference, [c, b])], mode="FAST_COMPILE")
    value, d_coef, d_bias, rows, r = fn(features, coef, bias, weights)
    want = ref(features, coef, bias, weights)
    np.testing.assert_allclose(value, want[0], rtol=1e-13)
    np.testing.assert_allclose(d_coef, want[1], rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(d_bias, want[2], rtol=1e-12, atol=1e-12)
    assert rows.shape == (n,) and r.shape == (k, n)
    np.testing.assert_allclose(r.sum(axis=0), 1.0, rtol=1e-14)
    with pytest.raises(NotImplementedError, match="responsibilities"):
        pt.grad(pt.sum(resp), c)


def test_vectorisable_exp_is_within_two_ulp():
    x = -np.concatenate([np.linspace(0.0, 1.0, 2001), np.geomspace(1e-300, 745.0, 5000), [0.0, 700.0, 708.0]])
    out = posterior_ops._exp_nonpositive(x, np.empty_like(x))  # the kernel's code, run by Python
    want = np.exp(np.maximum(x, -708.0))
    assert np.all(np.abs(out - want) <= 2 * np.spacing(want))
    np.testing.assert_array_equal(posterior_ops._exp_nonpositive(np.zeros(3), np.empty(3)), 1.0)


def test_compiled_kernel_exp_and_responsibilities_are_accurate(rng):
    # the numba kernel as the sampler runs it (PyTensor's fastmath flags): responsibilities of
    # two components whose log-ratio spans the exponential's whole range, against NumPy
    x = -np.concatenate([np.linspace(0.0, 1.0, 501), np.geomspace(1e-300, 745.0, 2000)])
    f = pt.matrix("f", shape=(None, 1))
    c = pt.matrix("c", shape=(2, 1))
    b = pt.vector("b", shape=(2,))
    fn = pytensor.function([f, c, b], posterior_ops.mixture_logsumexp(f, c, b), mode="NUMBA")
    # component 1: c_i1 = -0.5 * (-2 x_i) = x_i; component 0: 0
    ll, resp = fn(x[:, None], np.array([[0.0], [-2.0]]), np.zeros(2))
    e = np.exp(np.maximum(x, -708.0))
    np.testing.assert_allclose(ll, np.log1p(e), rtol=4e-16, atol=4e-16)
    np.testing.assert_allclose(resp[1], e / (1.0 + e), rtol=4 * np.finfo(float).eps, atol=0)
    np.testing.assert_allclose(resp[0], 1.0 / (1.0 + e), rtol=4 * np.finfo(float).eps)
