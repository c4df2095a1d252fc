"""bayes_gmm.save / bayes_gmm.load: portable JSON, bit-for-bit predictions, strict loading."""

import json
import pickle

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone
from sklearn.exceptions import NotFittedError

from bayes_gmm import MapEM, NIWPrior, load, save
from bayes_gmm.io import FORMAT_VERSION, from_dict, to_dict

TYPES = ("full", "tied", "diag", "spherical")


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
    *head, last = dotted.split(".")
    target = content
    for key in head:
        target = target[key]
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
