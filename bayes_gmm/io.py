"""Save and load a fitted :class:`~bayes_gmm.MapEM` as portable JSON (no pickle).

The file holds the fitted parameters, the resolved prior (:meth:`NIWPrior.to_dict`), the
constructor arguments, the fit metadata (convergence, iterations, the log-posterior history,
the feature names) and the versions of the file format and of ``bayes_gmm``.

Floats are written with Python's shortest round-trip ``repr`` (what :mod:`json` does), which
parses back to the very same double, so a loaded model predicts bit for bit what the saved one
did: the precision Cholesky factors (what prediction uses) are stored as they are, not
recomputed from the covariances.  Loading checks every field and raises a ``ValueError`` that
names the file and the field when anything is missing, malformed, truncated or inconsistent.

Pickle keeps working as well (``pickle.dumps(est)``); JSON is for files that outlive a Python
environment, can be read from other languages and can be inspected by eye.
"""

from __future__ import annotations

import json
import numbers
import os
from pathlib import Path
from typing import Any

import numpy as np

from .covariance import get_family
from .map_em import MapEM
from .prior import NIWPrior

__all__ = ["FORMAT_NAME", "FORMAT_VERSION", "load", "save", "to_dict", "from_dict"]

FORMAT_NAME = "bayes_gmm.MapEM"
#: Bumped when the layout changes; :func:`load` reads every version up to this one.
FORMAT_VERSION = 1

# constructor arguments and how each is stored
_SCALAR_PARAMS = ("k", "prior_strength", "covariance_type", "alpha", "tol", "max_iter", "n_init", "chunk_size")
_ARRAY_PARAMS = ("weights_init", "means_init", "precisions_init")
_TOP_KEYS = {"format", "format_version", "bayes_gmm_version", "estimator", "prior", "parameters", "fit"}
_PARAM_KEYS = {"weights", "means", "covariances", "precisions_cholesky"}
_FIT_KEYS = {"converged", "n_iter", "log_posterior", "log_posteriors", "n_features_in", "feature_names_in"}


class _FormatError(ValueError):
    """Raised inside :func:`from_dict`; :func:`load` prefixes it with the file name."""


# ----------------------------------------------------------------------------------------
# encoding
# ----------------------------------------------------------------------------------------
def _array(a) -> dict[str, Any]:
    a = np.asarray(a)
    return {"dtype": a.dtype.name, "shape": list(a.shape), "data": a.ravel().tolist()}


def _package_version() -> str:
    from . import __version__

    return __version__


def _encode_param(name: str, value) -> Any:
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        return float(value)
    if name in _ARRAY_PARAMS or name == "init_params":
        return _array(value)
    raise TypeError(f"cannot save the argument {name}={value!r} as JSON.")


def to_dict(est: MapEM) -> dict[str, Any]:
    """The JSON-ready content of :func:`save` (plain Python types only).

    Examples
    --------
    >>> import numpy as np
    >>> from bayes_gmm import MapEM
    >>> X = np.random.default_rng(0).normal(size=(50, 2))
    >>> d = to_dict(MapEM(2, random_state=0).fit(X))
    >>> d["format"], d["parameters"]["means"]["shape"]
    ('bayes_gmm.MapEM', [2, 2])
    """
    from sklearn.utils.validation import check_is_fitted

    if not isinstance(est, MapEM):
        raise TypeError(f"only a fitted bayes_gmm.MapEM can be saved, got {type(est).__name__}.")
    check_is_fitted(est)
    params = est.get_params(deep=False)
    estimator: dict[str, Any] = {"class": "MapEM", "params": {}}
    for name in _SCALAR_PARAMS + _ARRAY_PARAMS + ("init_params",):
        estimator["params"][name] = _encode_param(name, params[name])
    rs = params["random_state"]
    if rs is None or (isinstance(rs, numbers.Integral) and not isinstance(rs, bool)):
        estimator["params"]["random_state"] = None if rs is None else int(rs)
    else:  # a RandomState / Generator has no portable form; the fit is stored, not the seed
        estimator["params"]["random_state"] = None
    prior = params["prior"]
    estimator["params"]["prior"] = None if prior is None else (
        prior.to_dict() if isinstance(prior, NIWPrior) else NIWPrior.from_dict(prior).to_dict()
    )
    names = getattr(est, "feature_names_in_", None)
    return {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "bayes_gmm_version": _package_version(),
        "estimator": estimator,
        "prior": est.prior_.to_dict(),
        "parameters": {
            "weights": _array(est.weights_),
            "means": _array(est.means_),
            "covariances": _array(est.covariances_),
            "precisions_cholesky": _array(est.precisions_cholesky_),
        },
        "fit": {
            "converged": bool(est.converged_),
            "n_iter": int(est.n_iter_),
            "log_posterior": float(est.log_posterior_),
            "log_posteriors": np.asarray(est.log_posteriors_, dtype=float).tolist(),
            "n_features_in": int(est.n_features_in_),
            "feature_names_in": None if names is None else [str(n) for n in names],
        },
    }


def save(est: MapEM, path: str | os.PathLike) -> Path:
    """Write a fitted :class:`~bayes_gmm.MapEM` to ``path`` as JSON (no pickle).

    Parameters
    ----------
    est : MapEM
        A fitted estimator.
    path : str or path-like
        Destination file (conventionally ``*.json``); its folder must exist.  Written through a
        temporary file and renamed, so an interrupted save never leaves a truncated model.

    Returns
    -------
    pathlib.Path
        The path written.

    Examples
    --------
    >>> import numpy as np, tempfile, os
    >>> from bayes_gmm import MapEM, save, load
    >>> X = np.random.default_rng(0).normal(size=(50, 2))
    >>> est = MapEM(2, random_state=0).fit(X)
    >>> path = os.path.join(tempfile.mkdtemp(), "model.json")
    >>> _ = save(est, path)
    >>> bool(np.array_equal(load(path).predict_proba(X), est.predict_proba(X)))
    True
    """
    content = to_dict(est)
    text = json.dumps(content, indent=1, allow_nan=False)
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text + "\n", encoding="utf-8")
    os.replace(tmp, path)
    return path


# ----------------------------------------------------------------------------------------
# decoding and validation
# ----------------------------------------------------------------------------------------
def _reject_constant(name: str):
    raise _FormatError(f"the JSON holds {name}, which is not a valid number in a model file")


def _check_keys(mapping, expected: set[str], where: str) -> None:
    if not isinstance(mapping, dict):
        raise _FormatError(f"{where} must be a JSON object, got {type(mapping).__name__}")
    missing = expected - set(mapping)
    if missing:
        raise _FormatError(f"{where} is missing field(s) {sorted(missing)}")
    unknown = set(mapping) - expected
    if unknown:
        raise _FormatError(f"{where} has unknown field(s) {sorted(unknown)}")


def _decode_array(value, where: str, shape: tuple[int, ...] | None = None) -> np.ndarray:
    _check_keys(value, {"dtype", "shape", "data"}, where)
    dtype = value["dtype"]
    if dtype not in ("float64", "float32", "int64", "int32"):
        raise _FormatError(f"{where}: unsupported dtype {dtype!r}")
    stored_shape = value["shape"]
    if not isinstance(stored_shape, list) or not all(
        isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in stored_shape
    ):
        raise _FormatError(f"{where}: shape must be a list of non-negative integers")
    data = value["data"]
    if not isinstance(data, list) or not all(
        isinstance(x, (int, float)) and not isinstance(x, bool) for x in data
    ):
        raise _FormatError(f"{where}: data must be a flat list of numbers")
    if len(data) != int(np.prod(stored_shape, dtype=np.int64)):
        raise _FormatError(
            f"{where}: {len(data)} numbers do not fill the shape {tuple(stored_shape)}"
        )
    if shape is not None and tuple(stored_shape) != shape:
        raise _FormatError(f"{where}: expected shape {shape}, got {tuple(stored_shape)}")
    if dtype.startswith("int") and not all(isinstance(x, int) for x in data):
        raise _FormatError(f"{where}: data of dtype {dtype} must be integers")
    arr = np.array(data, dtype=np.float64 if dtype.startswith("float") else np.int64)
    if arr.dtype.kind == "f" and not np.all(np.isfinite(arr)):
        raise _FormatError(f"{where}: holds a value that is not finite")
    return arr.astype(dtype).reshape(stored_shape)


def _decode_number(value, where: str, *, integer: bool = False, allow_none: bool = False):
    if value is None and allow_none:
        return None
    kinds = (int,) if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, kinds):
        what = "an integer" if integer else "a number"
        raise _FormatError(f"{where} must be {what}, got {value!r}")
    return value


def _decode_params(params: dict) -> dict[str, Any]:
    where = "estimator.params"
    _check_keys(
        params, set(_SCALAR_PARAMS + _ARRAY_PARAMS) | {"init_params", "random_state", "prior"}, where
    )
    out: dict[str, Any] = {}
    out["k"] = _decode_number(params["k"], f"{where}.k", integer=True)
    ct = params["covariance_type"]
    if not isinstance(ct, str):
        raise _FormatError(f"{where}.covariance_type must be a string, got {ct!r}")
    out["covariance_type"] = ct
    for name in ("prior_strength", "tol"):
        out[name] = _decode_number(params[name], f"{where}.{name}")
    out["alpha"] = _decode_number(params["alpha"], f"{where}.alpha", allow_none=True)
    for name in ("max_iter", "n_init"):
        out[name] = _decode_number(params[name], f"{where}.{name}", integer=True)
    out["chunk_size"] = _decode_number(params["chunk_size"], f"{where}.chunk_size", integer=True, allow_none=True)
    out["random_state"] = _decode_number(
        params["random_state"], f"{where}.random_state", integer=True, allow_none=True
    )
    for name in _ARRAY_PARAMS:
        value = params[name]
        out[name] = None if value is None else _decode_array(value, f"{where}.{name}")
    init = params["init_params"]
    out["init_params"] = init if isinstance(init, str) else _decode_array(init, f"{where}.init_params")
    prior = params["prior"]
    out["prior"] = None if prior is None else _decode_prior(prior, f"{where}.prior")
    return out


def _decode_prior(value, where: str) -> NIWPrior:
    if not isinstance(value, dict):
        raise _FormatError(f"{where} must be a JSON object")
    try:
        return NIWPrior.from_dict(value)
    except (TypeError, ValueError) as exc:
        raise _FormatError(f"{where}: {exc}") from None


def _check_fitted_parameters(arrays: dict[str, np.ndarray], covariance_type: str, k: int, d: int) -> None:
    family = get_family(covariance_type)
    weights = arrays["weights"]
    if np.any(weights <= 0) or not np.isclose(weights.sum(), 1.0, rtol=0, atol=1e-9):
        raise _FormatError("parameters.weights must be positive and sum to 1")
    try:
        family.check_covariances(arrays["covariances"], k, d)
    except ValueError as exc:
        raise _FormatError(f"parameters.covariances: {exc}") from None
    prec = arrays["precisions_cholesky"]
    if covariance_type in ("full", "tied"):
        diag = np.diagonal(prec, axis1=-2, axis2=-1)
        if np.any(np.tril(prec, -1) != 0):
            raise _FormatError("parameters.precisions_cholesky must be upper triangular")
    else:
        diag = prec
    if np.any(diag <= 0):
        raise _FormatError("parameters.precisions_cholesky must have a positive diagonal")
    # the two parametrisations must describe the same covariances
    implied = family.covariances_from_precisions_cholesky(prec)
    cov = arrays["covariances"]
    scale = np.max(np.abs(cov))
    if not np.allclose(implied, cov, rtol=1e-6, atol=1e-9 * scale):
        raise _FormatError(
            "parameters.covariances and parameters.precisions_cholesky disagree "
            "(the file was edited or corrupted)"
        )


def from_dict(content: dict[str, Any]) -> MapEM:
    """Rebuild a fitted :class:`~bayes_gmm.MapEM` from :func:`to_dict`'s output, checking it all.

    Raises
    ------
    ValueError
        Naming the first field that is missing, malformed or inconsistent.
    """
    _check_keys(content, _TOP_KEYS, "the model file")
    if content["format"] != FORMAT_NAME:
        raise _FormatError(f"format is {content['format']!r}, expected {FORMAT_NAME!r}")
    version = _decode_number(content["format_version"], "format_version", integer=True)
    if version > FORMAT_VERSION:
        raise _FormatError(
            f"format_version {version} was written by a newer bayes_gmm "
            f"({content['bayes_gmm_version']}); this one ({_package_version()}) reads up to "
            f"{FORMAT_VERSION}: upgrade bayes_gmm"
        )
    if version < 1:
        raise _FormatError(f"format_version must be >= 1, got {version}")
    if not isinstance(content["bayes_gmm_version"], str):
        raise _FormatError("bayes_gmm_version must be a string")

    estimator = content["estimator"]
    _check_keys(estimator, {"class", "params"}, "estimator")
    if estimator["class"] != "MapEM":
        raise _FormatError(f"estimator.class is {estimator['class']!r}, expected 'MapEM'")
    params = _decode_params(estimator["params"])
    try:
        family = get_family(params["covariance_type"])
    except ValueError as exc:
        raise _FormatError(f"estimator.params.covariance_type: {exc}") from None
    k = params["k"]
    if k < 1:
        raise _FormatError(f"estimator.params.k must be >= 1, got {k}")

    fit = content["fit"]
    _check_keys(fit, _FIT_KEYS, "fit")
    d = _decode_number(fit["n_features_in"], "fit.n_features_in", integer=True)
    if d < 1:
        raise _FormatError(f"fit.n_features_in must be >= 1, got {d}")

    prior = _decode_prior(content["prior"], "prior")
    if prior.covariance_type != family.name:
        raise _FormatError(
            f"prior.covariance_type is {prior.covariance_type!r} but the estimator's is {family.name!r}"
        )
    if prior.m0.shape[0] != d:
        raise _FormatError(f"prior.m0 has {prior.m0.shape[0]} entries for {d} features")

    shapes = {
        "weights": (k,),
        "means": (k, d),
        "covariances": family.covariance_shape(k, d),
    }
    shapes["precisions_cholesky"] = shapes["covariances"]
    _check_keys(content["parameters"], _PARAM_KEYS, "parameters")
    arrays = {
        name: _decode_array(content["parameters"][name], f"parameters.{name}", shapes[name])
        for name in ("weights", "means", "covariances", "precisions_cholesky")
    }
    for name, arr in arrays.items():
        if arr.dtype.kind != "f":
            raise _FormatError(f"parameters.{name} must hold floats, got dtype {arr.dtype}")
    _check_fitted_parameters(arrays, family.name, k, d)

    converged = fit["converged"]
    if not isinstance(converged, bool):
        raise _FormatError(f"fit.converged must be true or false, got {converged!r}")
    n_iter = _decode_number(fit["n_iter"], "fit.n_iter", integer=True)
    log_post = float(_decode_number(fit["log_posterior"], "fit.log_posterior"))
    history = fit["log_posteriors"]
    if not isinstance(history, list) or not history or not all(
        isinstance(x, (int, float)) and not isinstance(x, bool) for x in history
    ):
        raise _FormatError("fit.log_posteriors must be a non-empty list of numbers")
    names = fit["feature_names_in"]
    if names is not None:
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names) or len(names) != d:
            raise _FormatError(f"fit.feature_names_in must be null or a list of {d} strings")

    try:
        est = MapEM(**params)
    except TypeError as exc:  # pragma: no cover - keys are checked above
        raise _FormatError(f"estimator.params: {exc}") from None
    est.prior_ = prior
    est.weights_ = arrays["weights"]
    est.means_ = arrays["means"]
    est.covariances_ = arrays["covariances"]
    est.precisions_cholesky_ = arrays["precisions_cholesky"]
    est.precisions_ = family.precisions(arrays["precisions_cholesky"])
    est.converged_ = converged
    est.n_iter_ = n_iter
    est._history = np.asarray(history, dtype=float)
    est.log_posteriors_ = est._history
    est.log_posterior_ = log_post
    est.n_features_in_ = d
    if names is not None:
        est.feature_names_in_ = np.asarray(names, dtype=object)
    est._family = family
    return est


def load(path: str | os.PathLike) -> MapEM:
    """Read a model written by :func:`save`; every field is checked.

    Parameters
    ----------
    path : str or path-like

    Returns
    -------
    MapEM
        Fitted, predicting bit for bit what the saved estimator predicted.

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    ValueError
        If the file is not valid JSON (e.g. truncated), not a bayes_gmm model, written by a
        newer format version, or has a missing, malformed or inconsistent field; the message
        names the file and the field.

    Examples
    --------
    >>> import numpy as np, tempfile, os
    >>> from bayes_gmm import MapEM, save, load
    >>> X = np.random.default_rng(1).normal(size=(40, 3))
    >>> path = save(MapEM(2, covariance_type="diag", random_state=0).fit(X),
    ...             os.path.join(tempfile.mkdtemp(), "m.json"))
    >>> load(path).covariance_type
    'diag'
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise FileNotFoundError(f"no such model file: {path}") from None
    except UnicodeDecodeError:
        raise ValueError(f"{path} is not a bayes_gmm model file: it is not UTF-8 text.") from None
    if not text.strip():
        raise ValueError(f"{path} is not a bayes_gmm model file: it is empty.")
    try:
        content = json.loads(text, parse_constant=_reject_constant)
    except json.JSONDecodeError as exc:
        raise ValueError(
            f"{path} is not a valid bayes_gmm model file: malformed or truncated JSON "
            f"({exc.msg} at line {exc.lineno}, column {exc.colno})."
        ) from None
    except _FormatError as exc:
        raise ValueError(f"{path} is not a valid bayes_gmm model file: {exc}.") from None
    try:
        return from_dict(content)
    except _FormatError as exc:
        raise ValueError(f"{path} is not a valid bayes_gmm model file: {exc}.") from None
