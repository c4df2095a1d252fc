"""bayes_gmm.save / bayes_gmm.load: portable JSON, bit-for-bit predictions, strict loading."""

import json
import os
import pickle
import stat
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone
from sklearn.exceptions import NotFittedError

from bayes_gmm import COVARIANCE_FAMILIES, MapEM, NIWPrior, load, save
from bayes_gmm.io.model_file import FORMAT_VERSION, from_dict, to_dict

TYPES = (*COVARIANCE_FAMILIES, "VVV")  # every model, and one by its mclust name


def _data(rng, n=120, d=3):
    centers = np.array([[0.0, 0.0, 0.0], [6.0, 1.0, -2.0], [-3.0, 7.0, 3.0]])[:, :d]
    return centers[rng.integers(0, 3, n)] + rng.normal(size=(n, d))


@pytest.fixture(scope="module", params=TYPES)
def fitted(request):
    rng = np.random.default_rng(3)
    X = _data(rng)
    est = MapEM(3, covariance_type=request.param, random_state=0, n_init=2).fit(X)
    return est, X


def _assert_same_fit(a, b):
    for name in ("weights_", "means_", "covariances_", "precisions_cholesky_", "precisions_", "log_posteriors_"):
        x, y = getattr(a, name), getattr(b, name)
        assert x.dtype == y.dtype and x.shape == y.shape, name
        if name == "precisions_" and x.dtype == np.float32:
            # not stored: recomputed from the float32 factors, where fit used the float64 ones
            np.testing.assert_allclose(x, y, rtol=1e-4, atol=1e-6 * np.abs(x).max(), err_msg=name)
            continue
        np.testing.assert_array_equal(x, y, err_msg=name)
    assert a.converged_ == b.converged_ and a.n_iter_ == b.n_iter_
    assert a.log_posterior_ == b.log_posterior_
    assert a.prior_ == b.prior_
    assert a.get_params()["k"] == b.get_params()["k"]


def test_save_load_predict_bit_for_bit(fitted, tmp_path):
    est, X = fitted
    path = save(est, tmp_path / "model.json")
    loaded = load(path)
    _assert_same_fit(est, loaded)
    new = _data(np.random.default_rng(99), n=50)
    for data in (X, new):
        np.testing.assert_array_equal(loaded.predict(data), est.predict(data))
        np.testing.assert_array_equal(loaded.predict_proba(data), est.predict_proba(data))
        np.testing.assert_array_equal(loaded.score_samples(data), est.score_samples(data))
    assert loaded.log_posterior(X) == est.log_posterior(X)
    assert loaded.bic(X) == est.bic(X)
    s1, l1 = est.sample(20, random_state=1)
    s2, l2 = loaded.sample(20, random_state=1)
    np.testing.assert_array_equal(s1, s2)
    np.testing.assert_array_equal(l1, l2)


def test_the_file_is_plain_json_with_versions(fitted, tmp_path):
    est, _ = fitted
    path = save(est, tmp_path / "model.json")
    content = json.loads(path.read_text())
    assert content["format"] == "bayes_gmm.MapEM"
    assert content["format_version"] == FORMAT_VERSION
    import bayes_gmm

    assert content["bayes_gmm_version"] == bayes_gmm.__version__
    assert content["prior"] == est.prior_.to_dict()
    assert content["fit"]["n_iter"] == est.n_iter_
    # floats are stored losslessly (shortest round-trip repr)
    means = np.array(content["parameters"]["means"]["data"]).reshape(est.means_.shape)
    np.testing.assert_array_equal(means, est.means_)
    assert b"pickle" not in path.read_bytes()


def test_pickle_keeps_working(fitted, tmp_path):
    est, X = fitted
    for obj in (est, load(save(est, tmp_path / "m.json"))):
        again = pickle.loads(pickle.dumps(obj))
        np.testing.assert_array_equal(again.predict_proba(X), est.predict_proba(X))


def test_feature_names_round_trip(tmp_path, rng):
    X = pd.DataFrame(_data(rng, d=2), columns=["height", "width"])
    est = MapEM(2, random_state=0).fit(X)
    loaded = load(save(est, tmp_path / "m.json"))
    assert list(loaded.feature_names_in_) == ["height", "width"]
    np.testing.assert_array_equal(loaded.predict_proba(X), est.predict_proba(X))


def test_constructor_arguments_round_trip(tmp_path, rng):
    X = _data(rng, d=2)
    prior = NIWPrior.from_data(X, 2, "diag", prior_strength=2.0)
    est = MapEM(
        2, covariance_type="diag", prior=prior, tol=1e-5, max_iter=300, n_init=2,
        init_params="random_from_data", random_state=np.random.RandomState(0), chunk_size=64,
        means_init=X[:2],
    ).fit(X)
    loaded = load(save(est, tmp_path / "m.json"))
    params = loaded.get_params()
    assert params["prior"] == prior
    assert params["tol"] == 1e-5 and params["max_iter"] == 300 and params["chunk_size"] == 64
    assert params["init_params"] == "random_from_data"
    assert params["random_state"] is None  # a RandomState object has no portable form
    np.testing.assert_array_equal(params["means_init"], X[:2])
    # the loaded estimator refits like any scikit-learn estimator
    refit = clone(loaded).set_params(random_state=0).fit(X)
    assert refit.converged_


def test_from_dict_and_to_dict_round_trip(fitted):
    est, X = fitted
    again = from_dict(json.loads(json.dumps(to_dict(est))))
    np.testing.assert_array_equal(again.predict_proba(X), est.predict_proba(X))


def test_cannot_save_unfitted_or_foreign(tmp_path):
    from sklearn.mixture import GaussianMixture

    with pytest.raises(NotFittedError):
        save(MapEM(2), tmp_path / "m.json")
    with pytest.raises(TypeError, match="MapEM"):
        save(GaussianMixture(2), tmp_path / "m.json")


# ----------------------------------------------------------------------------------------
# rejected files
# ----------------------------------------------------------------------------------------
@pytest.fixture
def saved(tmp_path, rng):
    est = MapEM(2, random_state=0).fit(_data(rng, d=2))
    path = save(est, tmp_path / "model.json")
    return path, json.loads(path.read_text())


def _edit(path, content):
    path.write_text(json.dumps(content))
    return path


def test_truncated_file_is_rejected(saved):
    path, _ = saved
    text = path.read_text()
    path.write_text(text[: len(text) // 2])
    with pytest.raises(ValueError, match="malformed or truncated JSON"):
        load(path)


def test_empty_and_missing_files(tmp_path):
    (tmp_path / "empty.json").write_text("")
    with pytest.raises(ValueError, match="empty"):
        load(tmp_path / "empty.json")
    with pytest.raises(FileNotFoundError, match="no such model file"):
        load(tmp_path / "absent.json")
    (tmp_path / "list.json").write_text("[1, 2]")
    with pytest.raises(ValueError, match="must be a JSON object"):
        load(tmp_path / "list.json")
    (tmp_path / "bin.json").write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(ValueError, match="not a bayes_gmm model file"):
        load(tmp_path / "bin.json")


def _set(content, dotted, value):
    """Set (or delete) the field at ``dotted``; a number in the path indexes a list."""
    *head, last = dotted.split(".")
    target = content
    for key in head:
        target = target[int(key)] if isinstance(target, list) else target[key]
    if isinstance(target, list):
        last = int(last)
    if value is _DELETE:
        del target[last]
    else:
        target[last] = value


_DELETE = object()


@pytest.mark.parametrize(
    ("field", "value", "match"),
    [
        ("format", "sklearn.GaussianMixture", "format is"),
        ("format_version", FORMAT_VERSION + 1, "newer bayes_gmm"),
        ("format_version", "1", "must be an integer"),
        ("parameters", _DELETE, "missing field"),
        ("parameters.weights", _DELETE, "missing field"),
        ("fit.converged", "yes", "fit.converged"),
        ("fit.n_features_in", 3, "prior.m0 has 2 entries for 3 features"),
        ("estimator.params.k", 3, "expected shape"),
        ("estimator.params.k", 2.5, "must be an integer"),
        ("estimator.params.covariance_type", "diagonal", "covariance_type"),
        ("estimator.params.covariance_type", "diag", "prior.covariance_type"),
        ("estimator.params.colour", "red", "unknown field"),
        ("estimator.class", "PlainEM", "estimator.class"),
        ("prior.nu0", -1.0, "prior: nu0"),
        ("prior.kappa0", None, "prior: kappa0"),
        ("prior.psi0", [[1.0, 0.0], [0.0, -1.0]], "positive definite"),
        ("parameters.means.data", [0.0, 1.0, 2.0], "do not fill the shape"),
        ("parameters.means.data", [0.0, 1.0, 2.0, "x"], "flat list of numbers"),
        ("parameters.means.dtype", "complex128", "unsupported dtype"),
        ("parameters.weights.data", [0.7, 0.7], "sum to 1"),
        ("parameters.weights.data", [1.5, -0.5], "positive"),
        ("fit.log_posteriors", [], "non-empty list"),
        ("fit.feature_names_in", ["a"], "feature_names_in"),
    ],
)
def test_an_edited_invalid_file_is_rejected_with_a_message(saved, field, value, match):
    path, content = saved
    _set(content, field, value)
    with pytest.raises(ValueError, match=match) as info:
        load(_edit(path, content))
    assert str(path) in str(info.value)
    assert "not a valid bayes_gmm model file" in str(info.value)


def test_edited_covariance_that_disagrees_with_the_precision_is_rejected(saved):
    path, content = saved
    data = content["parameters"]["covariances"]["data"]
    data[0] *= 1.5
    with pytest.raises(ValueError, match="disagree"):
        load(_edit(path, content))


def test_non_upper_triangular_precision_factor_is_rejected(saved):
    path, content = saved
    data = content["parameters"]["precisions_cholesky"]["data"]
    data[2] = 0.25  # entry (0, 1, 0): below the diagonal
    with pytest.raises(ValueError, match="upper triangular"):
        load(_edit(path, content))


def test_nan_and_infinity_are_rejected(saved):
    path, _ = saved
    text = path.read_text()
    content = json.loads(text)
    first = repr(content["parameters"]["means"]["data"][0])
    assert first in text
    path.write_text(text.replace(first, "NaN", 1))
    with pytest.raises(ValueError, match="NaN"):
        load(path)
    path.write_text(text.replace(first, "1e999", 1))
    with pytest.raises(ValueError, match="not finite"):
        load(path)


def test_an_edited_but_valid_file_loads(saved):
    path, content = saved
    content["fit"]["n_iter"] = 99  # metadata, still consistent
    assert load(_edit(path, content)).n_iter_ == 99


# ----------------------------------------------------------------------------------------
# malformed files: always a ValueError that names the file, never a model predicting NaN
# ----------------------------------------------------------------------------------------
_RAW = "@raw-json@"


def _write_raw(path, content, field, raw):
    """Write ``content`` with ``field`` replaced by the JSON text ``raw`` (which json.dumps
    could not write: 1e999, an integer of 5000 digits, nesting 100000 deep)."""
    _set(content, field, _RAW)
    text = json.dumps(content)
    assert text.count(json.dumps(_RAW)) == 1
    path.write_text(text.replace(json.dumps(_RAW), raw))
    return path


def _rejected(path, match):
    with pytest.raises(ValueError, match=match) as info:
        load(path)
    message = str(info.value)
    assert str(path) in message
    assert "not a valid bayes_gmm model file" in message
    return message


_HUGE = "1" + "0" * 400  # an integer literal beyond float64 (1e400)


@pytest.mark.parametrize("where", ["the whole file", "a field"])
def test_deeply_nested_json_is_a_value_error(saved, where):
    path, content = saved
    deep = "[" * 100_000 + "]" * 100_000
    if where == "the whole file":
        path.write_text(deep)
    else:
        _write_raw(path, content, "fit.feature_names_in", deep)
    _rejected(path, "nested too deeply")


@pytest.mark.parametrize(
    ("field", "raw", "match"),
    [
        ("parameters.means.shape", f"[{10**30}]", "shape .* is too large"),
        ("parameters.weights.shape", f"[{10**30}, 0]", "too large"),
        ("estimator.params.means_init", f'{{"dtype": "float64", "shape": [{10**30}, 0], "data": []}}', "too large"),
        ("parameters.means.data.0", _HUGE, r"parameters.means: 1000.* is not finite in float64"),
        ("estimator.params.init_params", f'{{"dtype": "int64", "shape": [1], "data": [{2**70}]}}', "does not fit in int64"),
        ("estimator.params.init_params", f'{{"dtype": "int32", "shape": [1], "data": [{2**40}]}}', "does not fit in int32"),
        ("fit.log_posterior", _HUGE, "fit.log_posterior must be a finite number"),
        ("fit.log_posteriors", f"[{_HUGE}]", "fit.log_posteriors"),
        ("fit.n_iter", str(10**30), "fit.n_iter"),
        ("fit.n_features_in", str(10**30), "n_features_in"),
        ("prior.alpha", _HUGE, "prior: alpha"),
        ("prior.kappa0", _HUGE, "prior: kappa0"),
        ("prior.m0", f"[{_HUGE}, 0]", "prior: m0"),
        ("prior.psi0", f"[[{_HUGE}, 0], [0, 1]]", "prior: psi0"),
        ("estimator.params.prior", f'{{"covariance_type": "full", "alpha": {_HUGE}, "m0": [0, 0], '
         '"kappa0": 1, "nu0": 4, "psi0": [[1, 0], [0, 1]]}', "estimator.params.prior: alpha"),
        ("estimator.params.tol", _HUGE, "estimator.params.tol"),
        ("estimator.params.max_iter", str(10**30), "estimator.params.max_iter"),
        ("estimator.params.k", str(10**30), "estimator.params.k"),
        ("estimator.params.random_state", str(2**64), "estimator.params.random_state"),
        ("format_version", "1" + "0" * 5000, "integer with more than"),
    ],
)
def test_huge_integers_are_a_value_error(saved, field, raw, match):
    path, content = saved
    _rejected(_write_raw(path, content, field, raw), match)


def test_from_dict_names_a_huge_integer_without_printing_it(saved):
    _, content = saved
    content["fit"]["n_iter"] = 10**5000  # too long for str(): the message must still be built
    with pytest.raises(ValueError, match="fit.n_iter must be an integer") as info:
        from_dict(content)
    assert len(str(info.value)) < 300


@pytest.mark.parametrize(
    ("field", "raw", "match"),
    [
        ("prior.nu0", '"4.0"', "prior: nu0 must be a number"),
        ("prior.alpha", "true", "prior: alpha must be a number"),
        ("prior.m0", '"ab"', "prior: m0"),
        ("prior.m0", "[[0.0, 0.0]]", "prior: m0"),
        ("prior.m0", '{"x": 1}', "prior: m0"),
        ("prior.psi0", "[1.0, 0.0]", "prior: psi0"),
        ("prior.covariance_type", '["full"]', "prior: covariance_type"),
        ("prior", '"full"', "prior must be a JSON object"),
        ("estimator.params.prior", '{"covariance_type": "full"}', "estimator.params.prior"),
        ("estimator.params", '"k=2"', "estimator.params must be a JSON object"),
        ("estimator.params.init_params", "[1, 2]", "init_params"),
        ("estimator.params.tol", '"1e-6"', "estimator.params.tol must be a number"),
        ("parameters", "[]", "parameters must be a JSON object"),
        ("fit", "null", "fit must be a JSON object"),
        ("parameters.means.shape", '"2x2"', "shape must be a list"),
        ("parameters.means.dtype", "null", "unsupported dtype"),
        ("parameters.means.data", "[[0.0, 1.0], [2.0, 3.0]]", "flat list of numbers"),
        ("parameters.means.data.0", "true", "flat list of numbers"),
        ("bayes_gmm_version", "1.0", "bayes_gmm_version must be a string"),
        ("fit.feature_names_in", '["a", 2]', "feature_names_in"),
        ("fit.log_posteriors", '"abc"', "fit.log_posteriors"),
        ("fit.converged", "1", "fit.converged"),
    ],
)
def test_wrong_types_are_a_value_error(saved, field, raw, match):
    path, content = saved
    _rejected(_write_raw(path, content, field, raw), match)


@pytest.mark.parametrize(
    ("field", "raw", "match"),
    [
        ("fit.log_posterior", "1e999", "fit.log_posterior must be a finite number"),
        ("fit.log_posterior", "-1e999", "fit.log_posterior must be a finite number"),
        ("fit.log_posteriors.0", "1e999", "fit.log_posteriors"),
        ("fit.n_iter", "-1", "fit.n_iter"),
        ("fit.n_iter", "2.0", "fit.n_iter must be an integer"),
        ("estimator.params.tol", "1e999", "estimator.params.tol must be a finite number"),
        ("estimator.params.tol", "-1.0", "estimator.params.tol"),
        ("estimator.params.prior_strength", "0.0", "estimator.params.prior_strength"),
        ("estimator.params.alpha", "0.5", "estimator.params.alpha"),
        ("estimator.params.max_iter", "0", "estimator.params.max_iter"),
        ("estimator.params.n_init", "0", "estimator.params.n_init"),
        ("estimator.params.chunk_size", "0", "estimator.params.chunk_size"),
        ("estimator.params.random_state", "-1", "estimator.params.random_state"),
        ("estimator.params.init_params", '"k-means"', "estimator.params.init_params"),
        ("estimator.params.init_params", '{"dtype": "int64", "shape": [3], "data": [0, 1, 2]}', "init_params"),
        ("estimator.params.init_params", '{"dtype": "float64", "shape": [2, 2], "data": [1, 0, -1, 2]}', "init_params"),
        ("estimator.params.weights_init", '{"dtype": "float64", "shape": [3], "data": [0.2, 0.3, 0.5]}', "weights_init"),
        ("estimator.params.weights_init", '{"dtype": "float64", "shape": [2], "data": [0.2, 0.3]}', "weights_init"),
        ("estimator.params.means_init", '{"dtype": "float64", "shape": [3, 2], "data": [0, 0, 1, 1, 2, 2]}', "means_init"),
        ("estimator.params.precisions_init", '{"dtype": "float64", "shape": [2, 2, 2], "data": [1, 0, 0, -1, 1, 0, 0, 1]}', "precisions_init"),
        ("estimator.params.means_init", '{"dtype": "float32", "shape": [2, 2], "data": [1e39, 0, 1, 1]}', "not finite in float32"),
    ],
)
def test_values_that_save_never_writes_are_a_value_error(saved, field, raw, match):
    path, content = saved
    _rejected(_write_raw(path, content, field, raw), match)


@pytest.mark.parametrize("name", ["weights", "means", "covariances", "precisions_cholesky"])
def test_float32_overflow_is_rejected_not_turned_into_infinity(saved, name):
    path, content = saved
    array = content["parameters"][name]
    array["dtype"] = "float32"
    array["data"][-1] = 1e39  # finite in float64, infinite once stored as float32
    _rejected(_edit(path, content), f"parameters.{name}: 1e\\+39 is not finite in float32")


def test_log_posterior_must_be_the_last_of_the_history(saved):
    path, content = saved
    content["fit"]["log_posterior"] = content["fit"]["log_posteriors"][-1] + 1.0
    _rejected(_edit(path, content), "fit.log_posterior must equal the last entry of fit.log_posteriors")


def test_a_covariance_that_is_not_positive_definite_is_rejected(saved):
    # component 0 gets the covariance diag(1, -1e-12): within the tolerance of the
    # covariance diag(1, 1e-12) that its precision factor diag(1, 1e6) describes
    path, content = saved
    content["parameters"]["covariances"]["data"][:4] = [1.0, 0.0, 0.0, -1e-12]
    content["parameters"]["precisions_cholesky"]["data"][:4] = [1.0, 0.0, 0.0, 1e6]
    _rejected(_edit(path, content), "parameters.covariances must be positive definite")


def test_parameters_that_would_predict_nan_are_rejected(saved):
    # finite numbers, consistent with each other (covariances 0.25 I, precision factors 2 I),
    # but whitening a mean of 1e308 overflows float64: the model would predict NaN
    path, content = saved
    parameters = content["parameters"]
    parameters["covariances"]["data"] = [0.25, 0.0, 0.0, 0.25] * 2
    parameters["precisions_cholesky"]["data"] = [2.0, 0.0, 0.0, 2.0] * 2
    parameters["means"]["data"] = [1e308, 1e308, -1e308, 1e308]
    _rejected(_edit(path, content), "not finite at the components' own means")


def test_a_mean_that_float64_cannot_whiten_is_rejected(saved, rng):
    # 1e308 is finite, but about 1e308 standard deviations out: whitening overflows, so every
    # prediction would overflow (and warn) and nothing near that mean could be told apart
    path, content = saved
    content["parameters"]["means"]["data"][0] = 1e308
    _rejected(_edit(path, content), "at the origin")


@pytest.mark.parametrize(("field", "value"), [("nu0", 1e308), ("kappa0", 1e308), ("m0", [1e308, 0.0])])
def test_a_prior_with_a_non_finite_density_is_rejected(saved, field, value):
    # a valid NIWPrior on its own, but log_posterior(X) of the loaded model would not be finite
    path, content = saved
    content["prior"][field] = value
    _rejected(_edit(path, content), "prior: its log-density at the fitted parameters is not finite")


def _leaves(obj, prefix=""):
    """Dotted paths of every field (lists of up to 8 items entered too)."""
    if prefix:
        yield prefix
    if isinstance(obj, dict):
        children = obj.items()
    elif isinstance(obj, list) and len(obj) <= 8:
        children = enumerate(obj)
    else:
        children = ()
    for key, value in children:
        yield from _leaves(value, f"{prefix}.{key}" if prefix else str(key))


_GARBAGE = [None, True, -1, 0, 1e308, 1e-320, 1e39, 10**30, "x", [], {}, [0.0, 0.0, 0.0, 0.0]]


@pytest.mark.parametrize("ct", ["full", "spherical"])
def test_any_edited_field_loads_a_usable_model_or_is_a_value_error(ct, tmp_path):
    X = _data(np.random.default_rng(3), d=2)
    est = MapEM(2, covariance_type=ct, random_state=0, means_init=X[:2]).fit(X)
    path = save(est, tmp_path / "model.json")
    original = json.loads(path.read_text())
    n_loaded = 0
    for field in list(_leaves(original)):
        for value in _GARBAGE:
            content = json.loads(json.dumps(original))
            _set(content, field, value)
            _edit(path, content)
            try:
                loaded = load(path)  # any other exception, or a warning, fails the test
            except ValueError as exc:
                assert str(path) in str(exc), (field, value)
                continue
            n_loaded += 1
            assert np.all(np.isfinite(loaded.predict_proba(X))), (field, value)
            assert np.all(np.isfinite(loaded.score_samples(X))), (field, value)
            assert np.isfinite(loaded.log_posterior(X)), (field, value)
            assert np.all(np.isfinite(loaded.sample(5, random_state=0)[0])), (field, value)
    assert n_loaded > 0  # harmless edits (n_iter, converged, tol, ...) still load


@pytest.mark.parametrize("scale", [1e-150, 1e150])
def test_a_model_of_extremely_scaled_data_still_loads(scale, tmp_path):
    # the checks above reject what float64 cannot compute, not what is merely large or small
    X = _data(np.random.default_rng(3)) * scale
    for ct in TYPES:
        est = MapEM(3, covariance_type=ct, random_state=0, n_init=2).fit(X)
        loaded = load(save(est, tmp_path / f"{ct}.json"))
        _assert_same_fit(est, loaded)
        np.testing.assert_array_equal(loaded.predict_proba(X), est.predict_proba(X))


def _ill_conditioned(seed):
    """Four columns, two of them almost collinear, on scales from 1e-3 to 1e3."""
    rng = np.random.default_rng(seed)
    mixing = rng.normal(size=(4, 4))
    mixing[1] = mixing[0] + 1e-3 * mixing[1]
    centers = 5.0 * rng.normal(size=(3, 4))
    noise = rng.normal(size=(400, 4)) @ mixing * 10.0 ** rng.uniform(-3, 3, 4)
    return centers[rng.integers(0, 3, 400)] + noise


@pytest.mark.parametrize("seed", [3, 10])
@pytest.mark.parametrize("ct", ["full", "tied", "diag"])
def test_a_float32_fit_round_trips_bit_for_bit(ct, seed, tmp_path):
    # a float32 fit stores float32 parameters, each rounded on its own: the consistency
    # check must allow for that rounding (here up to ~1e-3 relative) and predict_proba must
    # stay float32
    X = _ill_conditioned(seed).astype(np.float32)
    est = MapEM(3, covariance_type=ct, random_state=0).fit(X)
    assert est.weights_.dtype == np.float32
    loaded = load(save(est, tmp_path / "model.json"))
    _assert_same_fit(est, loaded)
    for method in ("predict_proba", "score_samples", "predict"):
        expected, got = getattr(est, method)(X), getattr(loaded, method)(X)
        assert got.dtype == expected.dtype, method
        np.testing.assert_array_equal(got, expected, err_msg=method)


def test_an_edited_float32_file_is_still_rejected(tmp_path):
    est = MapEM(3, random_state=0).fit(_ill_conditioned(3).astype(np.float32))
    path = save(est, tmp_path / "model.json")
    content = json.loads(path.read_text())
    content["parameters"]["covariances"]["data"][0] *= 1.01
    _rejected(_edit(path, content), "disagree")


def test_a_loaded_model_refits_like_a_fresh_one(saved, rng):
    path, _ = saved
    X = _data(rng, d=2)
    loaded = load(path).set_params(random_state=0)
    fresh = clone(loaded)
    _assert_same_fit(loaded.fit(X), fresh.fit(X))


# ----------------------------------------------------------------------------------------
# saving: atomic, unique temporary files, no leftovers
# ----------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def four_models():
    X = _data(np.random.default_rng(3))
    return {ct: MapEM(3, covariance_type=ct, random_state=0, n_init=2).fit(X) for ct in TYPES}


def _names(folder):
    return sorted(p.name for p in folder.iterdir())


def test_save_to_a_directory_is_a_clear_value_error(four_models, tmp_path):
    target = tmp_path / "models"
    target.mkdir()
    with pytest.raises(ValueError, match="is a directory") as info:
        save(four_models["full"], target)
    assert str(target) in str(info.value)
    assert _names(tmp_path) == ["models"]  # no temporary file beside it
    assert _names(target) == []


def test_save_into_a_missing_folder_says_so(four_models, tmp_path):
    folder = tmp_path / "absent"
    with pytest.raises(FileNotFoundError, match="is not an existing folder") as info:
        save(four_models["full"], folder / "model.json")
    assert str(folder) in str(info.value)
    assert _names(tmp_path) == []


def test_a_failed_save_leaves_no_temporary_file_and_the_old_model(four_models, tmp_path, monkeypatch):
    path = save(four_models["diag"], tmp_path / "model.json")

    def disk_full(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", disk_full)
    with pytest.raises(OSError, match="disk full"):
        save(four_models["full"], path)
    monkeypatch.undo()
    assert _names(tmp_path) == ["model.json"]
    _assert_same_fit(load(path), four_models["diag"])


def test_two_saves_to_one_path_do_not_share_a_temporary_file(four_models, tmp_path, monkeypatch):
    # both threads write their temporary file before either renames it
    barrier = threading.Barrier(2, timeout=30)
    real_replace = os.replace

    def replace(src, dst):
        barrier.wait()
        return real_replace(src, dst)

    monkeypatch.setattr(os, "replace", replace)
    path = tmp_path / "model.json"
    with ThreadPoolExecutor(2) as pool:
        futures = [pool.submit(save, four_models[ct], path) for ct in ("full", "spherical")]
        assert [f.result() for f in futures] == [path, path]
    monkeypatch.undo()
    loaded = load(path)
    _assert_same_fit(loaded, four_models[loaded.covariance_type])
    assert _names(tmp_path) == ["model.json"]


def test_a_thread_pool_of_concurrent_saves_all_load_back_equal(four_models, tmp_path):
    jobs = [(TYPES[i % 4], tmp_path / f"model{i}.json") for i in range(24)]
    jobs += [(TYPES[i % 4], tmp_path / "shared.json") for i in range(16)]
    with ThreadPoolExecutor(8) as pool:
        written = list(pool.map(lambda job: save(four_models[job[0]], job[1]), jobs))
    assert written == [path for _, path in jobs]
    for ct, path in jobs[:24]:
        _assert_same_fit(load(path), four_models[ct])
    shared = load(tmp_path / "shared.json")
    _assert_same_fit(shared, four_models[shared.covariance_type])
    assert _names(tmp_path) == sorted({path.name for _, path in jobs})


def test_a_saved_file_gets_the_usual_permissions(four_models, tmp_path):
    path = save(four_models["tied"], tmp_path / "model.json")
    reference = tmp_path / "reference.txt"
    reference.write_text("x")
    assert stat.S_IMODE(path.stat().st_mode) == stat.S_IMODE(reference.stat().st_mode)
