"""Bad input gets a clear ValueError/TypeError; float32, integer and pandas input work."""

import re

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from sklearn.utils._param_validation import InvalidParameterError

from bayes_gmm import MapEM, NIWPrior
from em_baseline import PlainEM


def _invalid(name, value, estimator="MapEM"):
    """scikit-learn's message for a constructor parameter of the wrong type or range."""
    return rf"The '{name}' parameter of {estimator} must be .*\. Got {re.escape(repr(value))} instead\."


@pytest.fixture
def X(rng):
    return rng.normal(size=(40, 2))


def test_nan_says_where(X):
    X[7, 1] = np.nan
    with pytest.raises(ValueError, match=r"NaN at row 7, column 1.*impute"):
        MapEM(2).fit(X)


def test_inf_says_where(X):
    X[3, 0] = np.inf
    X[5, 1] = -np.inf
    with pytest.raises(ValueError, match=r"infinity at row 3, column 0 \(and 1 more cells\)"):
        MapEM(2).fit(X)


def test_empty_and_one_dimensional():
    with pytest.raises(ValueError, match="0 sample"):
        MapEM(1).fit(np.empty((0, 2)))
    with pytest.raises(ValueError, match=r"reshape\(-1, 1\)"):
        MapEM(1).fit(np.arange(5.0))
    with pytest.raises(ValueError, match="3 dimensions"):
        MapEM(1).fit(np.zeros((2, 2, 2)))


@pytest.mark.parametrize("k, exc, match", [(0, InvalidParameterError, _invalid("k", 0)),
                                           (-2, InvalidParameterError, _invalid("k", -2)),
                                           (41, ValueError, "larger than the number of rows"),
                                           (2.5, InvalidParameterError, _invalid("k", 2.5)),
                                           ("3", InvalidParameterError, _invalid("k", "3"))])
def test_bad_k(X, k, exc, match):
    with pytest.raises(exc, match=match):
        MapEM(k).fit(X)


@pytest.mark.parametrize(
    "kwargs, exc, match",
    [
        (dict(prior_strength=-1.0), ValueError, "prior_strength must be a finite positive"),
        (dict(prior_strength=np.inf), ValueError, "prior_strength must be a finite positive"),
        (dict(prior_strength=0.0), ValueError, "prior_strength must be a finite positive"),
        (dict(alpha=0.5), ValueError, "alpha must be >= 1"),
        (dict(alpha=np.nan), ValueError, "alpha must be a finite"),
        (dict(tol=-1e-3), InvalidParameterError, _invalid("tol", -1e-3)),
        (dict(tol=np.inf), InvalidParameterError, _invalid("tol", np.inf)),
        (dict(max_iter=0), InvalidParameterError, _invalid("max_iter", 0)),
        (dict(n_init=1.5), InvalidParameterError, _invalid("n_init", 1.5)),
        (dict(covariance_type="banana"), InvalidParameterError, _invalid("covariance_type", "banana")),
        (dict(init_params="magic"), InvalidParameterError, _invalid("init_params", "magic")),
        (dict(init_params=None), InvalidParameterError, _invalid("init_params", None)),
        (dict(prior="full"), InvalidParameterError, _invalid("prior", "full")),
        (dict(init_params=np.zeros(3, int)), ValueError, "labels must be 40 integers"),
        (dict(init_params=np.ones((40, 3))), ValueError, r"shape \(n, k\) = \(40, 2\)"),
        (dict(means_init=np.zeros((3, 2))), ValueError, r"means_init must be a finite array of shape \(k, d\)"),
        (dict(weights_init=[0.2, 0.2]), ValueError, "weights_init must be 2 positive numbers summing to 1"),
        (dict(chunk_size=0), InvalidParameterError, _invalid("chunk_size", 0)),
    ],
)
def test_bad_hyper_parameters(X, kwargs, exc, match):
    with pytest.raises(exc, match=match):
        MapEM(2, **kwargs).fit(X)


def test_bad_reg_covar(X):
    with pytest.raises(InvalidParameterError, match=_invalid("reg_covar", -1.0, "PlainEM")):
        PlainEM(2, reg_covar=-1.0).fit(X)


def test_wrong_shaped_explicit_prior(X):
    prior = NIWPrior.from_data(np.zeros((5, 3)) + np.arange(15).reshape(5, 3) ** 1.5, 2)
    with pytest.raises(ValueError, match="the prior is for d=3 features but X has 2 columns"):
        MapEM(2, prior=prior).fit(X)
    with pytest.raises(ValueError, match="the prior is for covariance_type='full'"):
        MapEM(2, covariance_type="diag", prior=NIWPrior.from_data(X, 2)).fit(X)
    with pytest.raises(ValueError, match="unknown prior fields"):
        MapEM(2, prior={"covariance_type": "full", "alpha": 2, "m0": [0, 0], "kappa0": 1, "nu": 3}).fit(X)


def test_sparse_input_is_refused_with_advice(X):
    with pytest.raises(TypeError, match=r"sparse input is not supported.*toarray\(\)"):
        MapEM(2).fit(sp.csr_matrix(X))


def test_non_numeric_input(X):
    bad = X.astype(object)
    bad[0, 0] = "abc"
    with pytest.raises(TypeError, match="must contain only numbers"):
        MapEM(2).fit(bad)
    with pytest.raises(ValueError, match="Complex data not supported"):
        MapEM(2).fit(X + 1j)


def test_sample_weight_checks(X):
    with pytest.raises(ValueError, match=r"sample_weight must have shape \(40,\)"):
        MapEM(2).fit(X, sample_weight=np.ones(3))
    with pytest.raises(ValueError, match="non-negative"):
        MapEM(2).fit(X, sample_weight=-np.ones(40))
    with pytest.raises(ValueError, match="sums to zero"):
        MapEM(2).fit(X, sample_weight=np.zeros(40))


def test_predict_checks_columns_and_fitted(X):
    from sklearn.exceptions import NotFittedError

    with pytest.raises(NotFittedError):
        MapEM(2).predict(X)
    est = MapEM(2, random_state=0).fit(X)
    with pytest.raises(ValueError, match="X has 3 features, but MapEM is expecting 2"):
        est.predict(np.zeros((4, 3)))


def test_float32_integer_and_pandas_input(X):
    ref = MapEM(2, random_state=0).fit(X)
    as32 = MapEM(2, random_state=0).fit(X.astype(np.float32))
    np.testing.assert_allclose(as32.means_, ref.means_, rtol=1e-4, atol=1e-5)
    ints = (X * 10).round().astype(np.int64)
    est = MapEM(2, random_state=0).fit(ints)
    assert est.means_.dtype == np.float64 and np.all(np.isfinite(est.means_))
    df = pd.DataFrame(X, columns=["a", "b"])
    est = MapEM(2, random_state=0).fit(df)
    np.testing.assert_allclose(est.means_, ref.means_)
    np.testing.assert_array_equal(est.feature_names_in_, ["a", "b"])
    np.testing.assert_array_equal(est.predict(df), ref.predict(X))


@pytest.mark.parametrize(
    "ct, precisions, match",
    [
        ("diag", np.ones(3), "precisions_init has the wrong shape"),
        ("full", np.ones((2, 2, 2)), "precisions_init must be symmetric positive definite"),
        ("spherical", -np.ones(2), "precisions_init must be positive"),
    ],
)
def test_bad_precisions_init(X, ct, precisions, match):
    with pytest.raises(ValueError, match=match):
        MapEM(2, covariance_type=ct, precisions_init=precisions).fit(X)


@pytest.mark.parametrize("estimator", [MapEM(2, random_state=0), PlainEM(2, reg_covar=1e-6, random_state=0)])
def test_every_parameter_is_declared_to_scikit_learn(estimator):
    # scikit-learn's own check: a constraint for every constructor parameter, and fit refuses
    # a value of the wrong type or range with its InvalidParameterError
    from sklearn.utils.estimator_checks import check_param_validation

    check_param_validation(type(estimator).__name__, estimator)
