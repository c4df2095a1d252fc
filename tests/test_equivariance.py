"""The same fit whatever the units: rescaling and shifting columns, float32, extreme scales.

Each test here failed before MapEM fitted in standardised units (bayes_gmm.model.scaling), except
where a docstring says otherwise.  ``X * s + t`` must give the same partition (ARI 1) and every
parameter transformed exactly (relative 1e-8):

    means -> means * s + t,  covariances -> S C S (full, tied), C s^2 (diag), C s0^2 (spherical)

Shifts are limited by what float64 keeps of the data: a shift of ``t`` leaves about
``16 - log10(t / sd)`` digits of a column whose standard deviation is ``sd``, so the exact
comparisons shift by up to 1e6 column sds (10 digits left), and the partition tests shift by
up to 1e15 in absolute terms.
"""

import warnings

import numpy as np
import pytest
from conftest import COVARIANCE_TYPES
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy.optimize import linear_sum_assignment
from sklearn.datasets import load_breast_cancer, load_iris, load_wine
from sklearn.metrics import adjusted_rand_score

from bayes_gmm import MapEM, NIWPrior, SingularCovarianceError, get_family, make_seed_problem
from bayes_gmm.em import engine as _engine


def _wine():
    return load_wine().data


def _iris():
    return load_iris().data


def _seed():
    return make_seed_problem()[0][:400]


DATASETS = {"wine": (_wine, 3), "iris": (_iris, 3), "seed": (_seed, 5)}


def _relative(a, b, scale):
    return float(np.max(np.abs(np.asarray(a) - np.asarray(b)) / scale))


def _transform(est, X, s, t):
    """A fit on ``X * s + t`` and the parameters the fit on ``X`` predicts for it."""
    family = get_family(est.covariance_type)
    Y = X * s + t
    other = _fit(est.k, est.covariance_type, Y)
    return other, Y, est.means_ * s + t, family.rescale_covariances(est.covariances_, s)


def _assert_equivariant(est, X, s, t):
    other, Y, means, covariances = _transform(est, X, s, t)
    assert adjusted_rand_score(est.predict(X), other.predict(Y)) == 1.0
    spread = np.std(Y, axis=0)
    # restarts that reach the same mode tie up to rounding: either may be kept, so the
    # components are matched before they are compared
    cost = (((other.means_[:, None, :] - means[None]) / spread) ** 2).sum(axis=2)
    _, order = linear_sum_assignment(cost.T)
    np.testing.assert_array_less(_relative(other.means_[order], means, spread), 1e-8)
    family = get_family(est.covariance_type)
    k, d = est.means_.shape
    dense = family.dense(other.covariances_, k, d)
    dense = dense if "component" not in family.covariance_dims else dense[order]
    dense_expected = family.dense(covariances, k, d)
    diag = np.sqrt(np.abs(np.diagonal(dense_expected, axis1=-2, axis2=-1)))
    scale = diag[..., :, None] * diag[..., None, :]
    assert np.max(np.abs(dense - dense_expected) / scale) < 1e-8
    np.testing.assert_allclose(other.weights_[order], est.weights_, rtol=1e-8, atol=1e-12)


def _scales(rng, d, common, low=-150, high=150):
    if common:
        return np.full(d, 10.0 ** rng.uniform(low, high))
    return 10.0 ** rng.uniform(low, high, size=d)


def _fit(k, ct, X):
    """A fit of a fixed number of iterations (tol=0): a stopping rule is a threshold, and the
    rounding of transformed data may move a run across it by one iteration (1e-5 apart)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "MapEM did not converge")
        # raw wine: spherical is told that its columns are in different units
        warnings.filterwarnings("ignore", "covariance_type=.* but the column standard deviations", UserWarning)
        return MapEM(k, covariance_type=ct, n_init=2, random_state=0, tol=0, max_iter=150).fit(X)


@pytest.fixture(scope="module")
def reference_fits():
    return {
        (name, ct): _fit(k, ct, load()) for name, (load, k) in DATASETS.items() for ct in COVARIANCE_TYPES
    }


@pytest.mark.parametrize("ct", COVARIANCE_TYPES)
def test_default_fit_gives_the_same_partition_at_any_scale(ct):
    X = _wine()
    rng = np.random.default_rng(7)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "covariance_type=.* but the column standard deviations", UserWarning)
        base = MapEM(3, covariance_type=ct, n_init=3, random_state=0).fit(X)
        for exponent in (-150, -20, 60, 150):
            s = _scales(rng, X.shape[1], get_family(ct).common_scale, exponent - 1, min(exponent + 1, 150))
            Y = X * s + 1e4 * np.std(X, axis=0) * s
            other = MapEM(3, covariance_type=ct, n_init=3, random_state=0).fit(Y)
            assert adjusted_rand_score(base.predict(X), other.predict(Y)) == 1.0
            # the stopping rule is a change per row, which does not depend on the units
            assert other.n_iter_ == base.n_iter_
            rel = np.abs(other.log_posterior_ - base.log_posterior_ - _log_jacobian(base, s))
            assert rel < 1e-6 * abs(base.log_posterior_)


def _log_jacobian(est, s):
    """log p(X s + t) - log p(X) of the objective: likelihood and prior in the new units."""
    n = 178
    family = get_family(est.covariance_type)
    return -(n + est.k) * np.sum(np.log(s)) - family.log_jacobian(est.k, s, est.prior_)


@pytest.mark.filterwarnings("ignore:covariance_type=.* but the column standard deviations:UserWarning")
@pytest.mark.parametrize("ct", COVARIANCE_TYPES)
@pytest.mark.parametrize("dataset", list(DATASETS))
@pytest.mark.parametrize("exponent", [-150, -40, 0, 40, 150])
def test_rescaling_and_shifting_columns_transforms_the_fit_exactly(reference_fits, dataset, ct, exponent):
    X = DATASETS[dataset][0]()
    rng = np.random.default_rng(abs(exponent) + len(dataset))
    common = get_family(ct).common_scale  # spherical: one scale for all columns (the model's own)
    s = _scales(rng, X.shape[1], common, exponent - 2, min(exponent + 2, 150))
    t = rng.choice([-1.0, 1.0], X.shape[1]) * 10.0 ** rng.uniform(0, 6, X.shape[1]) * np.std(X, axis=0) * s
    _assert_equivariant(reference_fits[dataset, ct], X, s, t)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(
    data=st.sampled_from(list(DATASETS)),
    ct=st.sampled_from(COVARIANCE_TYPES),
    exponents=st.lists(st.floats(-150, 150), min_size=1, max_size=1),
    seed=st.integers(0, 2**16),
    shift_sds=st.floats(0, 6),
)
@pytest.mark.filterwarnings("ignore:covariance_type=.* but the column standard deviations:UserWarning")
def test_equivariance_property(reference_fits, data, ct, exponents, seed, shift_sds):
    X = DATASETS[data][0]()
    rng = np.random.default_rng(seed)
    centre = exponents[0]
    s = _scales(rng, X.shape[1], get_family(ct).common_scale, max(centre - 3, -150), min(centre + 3, 150))
    t = rng.normal(size=X.shape[1]) * 10.0**shift_sds * np.std(X, axis=0) * s
    _assert_equivariant(reference_fits[data, ct], X, s, t)


# ----------------------------------------------------------------------------------------
# the cases of issue 10, one by one
# ----------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "loader, floor", [(load_wine, 0.8), (load_breast_cancer, 0.6)]
)
def test_diag_on_raw_data_follows_each_column(loader, floor):
    """Raw wine put 98.9% of the rows in one component (ARI 0.00); breast cancer ARI 0.03."""
    data = loader()
    est = MapEM(len(np.unique(data.target)), covariance_type="diag", n_init=5, random_state=0).fit(data.data)
    assert adjusted_rand_score(data.target, est.predict(data.data)) > floor
    assert est.weights_.max() < 0.7


def test_diag_on_iris_with_one_column_in_other_units():
    """Multiplying one column by 1000 took the diag ARI from 0.76 to 0.00."""
    data = load_iris()
    X = data.data.copy()
    base = MapEM(3, covariance_type="diag", n_init=5, random_state=0).fit(X)
    X[:, 0] *= 1000.0
    scaled = MapEM(3, covariance_type="diag", n_init=5, random_state=0).fit(X)
    assert adjusted_rand_score(base.predict(data.data), scaled.predict(X)) == 1.0
    assert adjusted_rand_score(data.target, scaled.predict(X)) > 0.7


def _blobs(rng, n=200):
    X = np.vstack([rng.normal(0.0, 1.0, (n // 2, 2)), rng.normal(6.0, 1.0, (n // 2, 2))])
    return X, np.repeat([0, 1], n // 2)


@pytest.mark.parametrize("ct", COVARIANCE_TYPES)
def test_a_large_offset_is_not_a_constant_column(rng, ct):
    """At an offset of 1e15 a column with sd < 7 counted as constant (ARI 0.00)."""
    X, y = _blobs(rng)
    Y = X * 3.0 + 1e15  # sd about 10, float64 resolution 0.125 at 1e15
    est = MapEM(2, covariance_type=ct, random_state=0).fit(Y)
    assert adjusted_rand_score(y, est.predict(Y)) == 1.0
    assert np.all(est.prior_.m0 > 0.99e15)
    scale = est.prior_.psi0.diagonal() if est.prior_.psi0 is not None else np.asarray(est.prior_.b0)
    assert np.all(scale < 1e3)  # was ~6e23: a floor taken from the offset


@pytest.mark.parametrize("ct", COVARIANCE_TYPES)
def test_tiny_scales_are_not_constant_columns(rng, ct):
    """At an overall scale of 1e-150 all four types returned identical components."""
    X, y = _blobs(rng)
    est = MapEM(2, covariance_type=ct, random_state=0).fit(X * 1e-150)
    assert adjusted_rand_score(y, est.predict(X * 1e-150)) == 1.0
    assert np.ptp(est.means_[:, 0]) > 5e-150


@pytest.mark.parametrize("offset", [1e9, 1e10, 1e12])
def test_nearest_centre_is_exact_far_from_the_origin(rng, offset):
    """|x|^2 - 2 x.c + |c|^2 at an offset of 1e9 gave effectively random labels (ARI 0.08)."""
    X = rng.normal(size=(500, 3))
    centers = X[:4] + 0.0
    expected = np.argmin(((X[:, None, :] - centers[None]) ** 2).sum(axis=2), axis=1)
    assert np.array_equal(_engine.nearest_center(X + offset, centers + offset), expected)


@pytest.mark.parametrize("ct", COVARIANCE_TYPES)
@pytest.mark.parametrize("offset", [1e9, 1e10])
def test_large_offsets_reach_the_same_mode(rng, ct, offset):
    """Tied at an offset of 1e10 stayed at a worse mode than without the offset."""
    X, y = _blobs(rng, 300)
    a = MapEM(2, covariance_type=ct, random_state=0).fit(X)
    b = MapEM(2, covariance_type=ct, random_state=0).fit(X + offset)
    assert adjusted_rand_score(a.predict(X), b.predict(X + offset)) == 1.0


@pytest.mark.parametrize("ct", COVARIANCE_TYPES)
def test_float32_objective_never_goes_down(rng, ct):
    """float32 data at 1e7 + N(0, 10): the trace went -4912.39, -4913.56, -4912.39 (2e-4 down).

    The objective of a float32 fit is a sum of float32 log densities (7 digits), so the test
    allows a decrease of 1e-6 relative (about 16 float32 roundings), no more.
    """
    X = np.vstack([rng.normal(0, 10, (500, 2)), rng.normal(40, 10, (500, 2))])
    X32 = (1e7 + X).astype(np.float32)
    est = MapEM(2, covariance_type=ct, random_state=0, tol=0, max_iter=30)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tol=0: "did not converge" by design
        est.fit(X32)
    steps = np.diff(est.log_posteriors_)
    assert steps.min() >= -1e-6 * abs(est.log_posterior_)
    for name in ("weights_", "means_", "covariances_", "precisions_", "precisions_cholesky_"):
        assert getattr(est, name).dtype == np.float32, name
    assert est.predict_proba(X32).dtype == np.float32
    assert est.score_samples(X32).dtype == np.float64  # log densities keep float64's range


def test_float64_fit_keeps_float64(rng):
    X, _ = _blobs(rng)
    est = MapEM(2, random_state=0).fit(X)
    assert est.means_.dtype == np.float64 and est.predict_proba(X).dtype == np.float64


# ----------------------------------------------------------------------------------------
# errors that name the real cause
# ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("ct", COVARIANCE_TYPES)
def test_an_overflowing_cell_names_its_column(rng, ct):
    """One 1e200 cell raised SingularCovarianceError in diag/spherical."""
    X, _ = _blobs(rng)
    X[3, 1] = 1e200
    with pytest.raises(ValueError, match="column 1 of X spans 1e\\+200.*Rescale") as info:
        MapEM(2, covariance_type=ct).fit(X)
    assert not isinstance(info.value, SingularCovarianceError)


@pytest.mark.parametrize("scale", [1e153, 1e-150])
def test_data_near_the_ends_of_the_double_range_fit(rng, scale):
    """Data at 1e153 failed with "psi0 must be finite", a field the user never set."""
    X, y = _blobs(rng)
    for ct in COVARIANCE_TYPES:
        est = MapEM(2, covariance_type=ct, random_state=0).fit(X * scale)
        assert adjusted_rand_score(y, est.predict(X * scale)) == 1.0
        assert np.all(np.isfinite(est.covariances_)) and np.all(est.covariances_ > 0)


@pytest.mark.parametrize("scale, message", [(1e156, "overflow"), (1e-160, "underflows")])
def test_data_beyond_the_double_range_is_a_clear_error(rng, scale, message):
    X, _ = _blobs(rng)
    with pytest.raises(ValueError, match=f"column 0 of X .*{message}") as info:
        MapEM(2).fit(X * scale)
    assert not any(field in str(info.value) for field in ("psi0", "b0", "m0"))


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        (dict(alpha=1e308), ValueError, "alpha must be at most"),
        (dict(alpha="2"), TypeError, "alpha must be a real number"),
        (dict(alpha=True), TypeError, "alpha must be a real number"),
        (dict(prior_strength=1e-16), ValueError, "prior_strength must be between"),
        (dict(prior_strength=1e9), ValueError, "prior_strength must be between"),
        (dict(prior_strength="1"), TypeError, "prior_strength must be a real number"),
        (dict(prior_strength=False), TypeError, "prior_strength must be a real number"),
        (dict(means_init=[[0.0, 0.0], [1e300, 1e300]]), ValueError, "means_init holds values"),
    ],
)
def test_arguments_out_of_range_name_the_argument(rng, kwargs, error, message):
    X, _ = _blobs(rng)
    with pytest.raises(error, match=message):
        MapEM(2, **kwargs).fit(X)


def test_documented_bounds_fit(rng):
    X, y = _blobs(rng)
    for kwargs in (dict(prior_strength=1e-8), dict(prior_strength=1e8), dict(alpha=1e8)):
        est = MapEM(2, random_state=0, **kwargs).fit(X)
        assert np.all(np.isfinite(est.covariances_)), kwargs


@pytest.mark.parametrize("ct", COVARIANCE_TYPES)
def test_weights_from_1e_minus_300_to_1e300(rng, ct):
    """Mixed tiny and huge weights raised SingularCovarianceError (first**2 overflowed)."""
    X, y = _blobs(rng)
    odd = np.arange(X.shape[0]) % 2 == 1
    est = MapEM(2, covariance_type=ct, random_state=0).fit(X, sample_weight=np.where(odd, 1e-300, 1e300))
    assert adjusted_rand_score(y, est.predict(X)) == 1.0
    assert np.all(np.isfinite(est.covariances_)) and np.isfinite(est.log_posterior_)
    # a weight of 1e-300 is a row left out
    light = MapEM(2, covariance_type=ct, random_state=0).fit(X, sample_weight=np.where(odd, 1e-300, 1.0))
    unweighted = MapEM(2, covariance_type=ct, random_state=0).fit(X[~odd])
    np.testing.assert_allclose(np.sort(light.means_[:, 0]), np.sort(unweighted.means_[:, 0]), rtol=1e-6)


def test_numpy_integer_k(rng):
    """MapEM(np.uint8(2)) overflowed in the chunk sizing."""
    X, y = _blobs(rng)
    est = MapEM(np.uint8(2), random_state=0).fit(X)
    assert adjusted_rand_score(y, est.predict(X)) == 1.0


def test_a_row_too_far_for_any_component_is_a_clear_error(rng):
    """predict_proba on a 1e300 row returned NaN and predict silently returned 0."""
    X, _ = _blobs(rng)
    est = MapEM(2, random_state=0).fit(X)
    far = np.array([[1e300, 0.0], [1.0, 1.0]])
    for method in (est.predict_proba, est.predict, est.score_samples):
        with pytest.raises(ValueError, match="row 0 of X is so far from every component"):
            method(far)
    proba = est.predict_proba(np.array([[1e6, 0.0]]))  # far but representable: probabilities
    assert np.all(np.isfinite(proba)) and proba.sum() == pytest.approx(1.0)


def test_mclust_prior_stays_reachable(rng):
    """diag's default prior is per column; mclust's pooled prior is an explicit option."""
    X = rng.normal(size=(300, 3)) * [1.0, 10.0, 100.0]
    prior = NIWPrior.from_data(X, 3, "diag", alpha=1.0, pooled_variance=True)
    est = MapEM(3, covariance_type="diag", prior=prior, random_state=0).fit(X)
    assert est.prior_ == prior
    assert np.ptp(prior.b0) == 0.0


def test_spherical_warns_when_columns_are_in_different_units(rng):
    X, _ = _blobs(rng)
    with pytest.warns(UserWarning, match="spherical.*differ by a factor of about 99"):
        MapEM(2, covariance_type="spherical", random_state=0).fit(X * [1.0, 1000.0])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        MapEM(2, covariance_type="spherical", random_state=0).fit(X * [1.0, 3.0])


def test_spherical_through_a_standardising_pipeline_is_equivariant_per_column():
    """The documented route for spherical with columns in different units."""
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    X = _wine()
    s = 10.0 ** np.random.default_rng(3).uniform(-100, 100, X.shape[1])
    a = make_pipeline(StandardScaler(), MapEM(3, covariance_type="spherical", n_init=3, random_state=0)).fit(X)
    b = make_pipeline(StandardScaler(), MapEM(3, covariance_type="spherical", n_init=3, random_state=0)).fit(X * s)
    assert adjusted_rand_score(a.predict(X), b.predict(X * s)) == 1.0
    assert adjusted_rand_score(load_wine().target, a.predict(X)) > 0.8
    np.testing.assert_allclose(np.sort(a[-1].covariances_), np.sort(b[-1].covariances_), rtol=1e-8)
