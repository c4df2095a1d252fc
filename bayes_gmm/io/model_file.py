"""Save and load a fitted :class:`~bayes_gmm.MapEM` as portable JSON (no pickle).

The file holds the fitted parameters, the resolved prior (:meth:`NIWPrior.to_dict`), the
constructor arguments, the fit metadata (convergence, iterations, the log-posterior history,
the feature names) and the versions of the file format and of ``bayes_gmm``.

Floats are written with Python's shortest round-trip ``repr`` (what :mod:`json` does), which
parses back to the very same double, so a loaded model predicts bit for bit what the saved one
did: the precision Cholesky factors (what prediction uses) are stored as they are, not
recomputed from the covariances.  Loading checks every field against what :func:`save` writes
and raises a ``ValueError`` that names the file and the field when anything is missing,
malformed, truncated, out of range or inconsistent: never another exception type, and never a
model whose parameters float64 cannot predict with (they would give NaN).

Pickle keeps working as well (``pickle.dumps(est)``); JSON is for files that outlive a Python
environment, can be read from other languages and can be inspected by eye.
"""

from __future__ import annotations

import json
import math
import numbers
import os
import secrets
import sys
from pathlib import Path
from typing import Any

import numpy as np

from bayes_gmm.em.base import INIT_METHODS
from bayes_gmm.em.map_em import MapEM
from bayes_gmm.model.families import COVARIANCE_FAMILIES, CovarianceFamily, get_family
from bayes_gmm.model.prior import NIWPrior, check_alpha, check_prior_strength

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
# what an array may be stored as (``dtype.name`` of the saved array)
_FLOAT_DTYPES = ("float64", "float32", "float16")
_INT_DTYPES = ("int64", "int32", "int16", "int8", "uint64", "uint32", "uint16", "uint8")
_MAX_NDIM = 32
# every integer of a model file fits in an int64; a seed is what numpy's RandomState takes
_INT_MAX = 2**63 - 1
_SEED_MAX = 2**32 - 1


class _FormatError(ValueError):
    """Raised inside :func:`from_dict`; :func:`load` prefixes it with the file name."""


# ----------------------------------------------------------------------------------------
# encoding
# ----------------------------------------------------------------------------------------
def _array(a) -> dict[str, Any]:
    a = np.asarray(a)
    return {"dtype": a.dtype.name, "shape": list(a.shape), "data": a.ravel().tolist()}


def _package_version() -> str:
    from bayes_gmm import __version__

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
        Destination file (conventionally ``*.json``); its folder must exist.  Written to a
        uniquely named temporary file in that folder and renamed over ``path``, so an
        interrupted save never leaves a truncated model, a failed one removes its temporary
        file, and saves running at the same time never collide (to one path, the last rename
        wins and the file is always one whole model).

    Returns
    -------
    pathlib.Path
        The path written.

    Raises
    ------
    ValueError
        If ``path`` is a directory.
    FileNotFoundError
        If the folder of ``path`` does not exist.

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
    text = json.dumps(content, indent=1, allow_nan=False) + "\n"
    path = Path(path)
    if path.is_dir():
        raise ValueError(
            f"cannot save the model to {path}: it is a directory. Give a file name, "
            f"e.g. {path / 'model.json'}."
        )
    folder = path.parent
    if not folder.is_dir():
        raise FileNotFoundError(
            f"cannot save the model to {path}: {folder} is not an existing folder; create it first."
        )
    fd, tmp = _new_temporary_file(path)
    try:
        with open(fd, "w", encoding="utf-8") as file:
            file.write(text)
            file.flush()
            os.fsync(file.fileno())  # the bytes are on disk before the rename makes them the model
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    return path


def _new_temporary_file(path: Path) -> tuple[int, Path]:
    """Create a new, uniquely named file beside ``path``: ``(file descriptor, its path)``.

    ``O_EXCL`` makes the name this call's alone; the mode 0o666 lets the umask give the
    permissions an ordinary ``open`` would (``tempfile.mkstemp`` would give 0o600).
    """
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    for _ in range(100):
        tmp = path.with_name(f".{path.name[:128]}.{secrets.token_hex(6)}.tmp")
        try:
            return os.open(tmp, flags, 0o666), tmp
        except FileExistsError:  # pragma: no cover - 48 random bits
            continue
    raise FileExistsError(f"could not create a temporary file beside {path}.")  # pragma: no cover


# ----------------------------------------------------------------------------------------
# decoding and validation
# ----------------------------------------------------------------------------------------
def _reject_constant(name: str):
    raise _FormatError(f"the JSON holds {name}, which is not a valid number in a model file")


def _short(value) -> str:
    """``repr(value)`` cut to a readable length: a hand-edited file can hold anything."""
    try:
        text = repr(value)
    except (ValueError, RecursionError):  # an integer too long for str(), a list nested too deep
        kind = "an integer" if isinstance(value, int) else f"a {type(value).__name__}"
        return f"{kind} too large to show"
    return text if len(text) <= 60 else text[:50] + "..."


def _is_number(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def _check_keys(mapping, expected: set[str], where: str) -> None:
    if not isinstance(mapping, dict):
        raise _FormatError(f"{where} must be a JSON object, got {type(mapping).__name__}")
    missing = expected - set(mapping)
    if missing:
        raise _FormatError(f"{where} is missing field(s) {sorted(missing)}")
    unknown = set(mapping) - expected
    if unknown:
        raise _FormatError(f"{where} has unknown field(s) {_short(sorted(map(str, unknown)))}")


def _decode_int(value, where: str, *, low: int, high: int = _INT_MAX, allow_none: bool = False):
    """An integer in ``[low, high]`` (a JSON number without a fraction; not ``true``)."""
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise _FormatError(f"{where} must be an integer, got {_short(value)}")
    if value < low:
        raise _FormatError(f"{where} must be an integer >= {low}, got {_short(value)}")
    if value > high:
        raise _FormatError(f"{where} must be an integer <= {high}, got {_short(value)}")
    return value


def _decode_float(value, where: str, *, low: float | None = None, allow_none: bool = False):
    """A finite number (``>= low``), returned as written (an integer stays an integer)."""
    if value is None and allow_none:
        return None
    if not _is_number(value):
        raise _FormatError(f"{where} must be a number, got {_short(value)}")
    try:
        number = float(value)
    except OverflowError:  # an integer beyond float64
        number = math.inf
    if not math.isfinite(number):
        raise _FormatError(f"{where} must be a finite number, got {_short(value)}")
    if low is not None and number < low:
        raise _FormatError(f"{where} must be >= {low}, got {_short(value)}")
    return value


def _finite_floats(data: list, where: str, dtype: str = "float64") -> np.ndarray:
    """A flat list of JSON numbers as a ``dtype`` array, every value finite *in that dtype*."""
    try:
        wide = np.array(data, dtype=np.float64)
    except OverflowError:  # an integer beyond float64: find it below
        wide = np.array([x if isinstance(x, float) or abs(x) < 2**1024 else math.inf for x in data])
    arr = wide.astype(dtype)  # under from_dict's errstate: overflow gives inf, checked here
    bad = ~np.isfinite(arr)
    if np.any(bad):
        value = data[int(np.argmax(bad))]
        limit = "" if dtype == "float64" else f" (a {dtype} holds at most {np.finfo(dtype).max:.4g})"
        raise _FormatError(f"{where}: {_short(value)} is not finite in {dtype}{limit}")
    return arr


def _decode_array(value, where: str, shape: tuple[int, ...] | None = None) -> np.ndarray:
    _check_keys(value, {"dtype", "shape", "data"}, where)
    dtype = value["dtype"]
    if not isinstance(dtype, str) or dtype not in _FLOAT_DTYPES + _INT_DTYPES:
        raise _FormatError(
            f"{where}: unsupported dtype {_short(dtype)}; expected one of {_FLOAT_DTYPES + _INT_DTYPES}"
        )
    stored_shape = value["shape"]
    if not isinstance(stored_shape, list) or len(stored_shape) > _MAX_NDIM or not all(
        isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in stored_shape
    ):
        raise _FormatError(
            f"{where}: shape must be a list of at most {_MAX_NDIM} non-negative integers, "
            f"got {_short(stored_shape)}"
        )
    if any(s > _INT_MAX for s in stored_shape):
        raise _FormatError(f"{where}: shape {_short(stored_shape)} is too large")
    data = value["data"]
    if not isinstance(data, list) or not all(_is_number(x) for x in data):
        raise _FormatError(f"{where}: data must be a flat list of numbers")
    if len(data) != math.prod(stored_shape):
        raise _FormatError(
            f"{where}: {len(data)} numbers do not fill the shape {_short(tuple(stored_shape))}"
        )
    if shape is not None and tuple(stored_shape) != shape:
        raise _FormatError(f"{where}: expected shape {_short(shape)}, got {_short(tuple(stored_shape))}")
    if dtype in _INT_DTYPES:
        if not all(isinstance(x, int) for x in data):
            raise _FormatError(f"{where}: data of dtype {dtype} must be integers")
        info = np.iinfo(dtype)
        for x in data:
            if not info.min <= x <= info.max:
                raise _FormatError(f"{where}: {_short(x)} does not fit in {dtype}")
        arr = np.array(data, dtype=dtype)
    else:
        arr = _finite_floats(data, where, dtype)
    return arr.reshape(stored_shape)


def _decode_float_list(value, where: str, ndim: int) -> np.ndarray:
    """A JSON list (``ndim`` 1) or list of equally long lists (``ndim`` 2) of finite numbers."""
    what = "a list of numbers" if ndim == 1 else "a list of equally long lists of numbers"
    if not isinstance(value, list):
        raise _FormatError(f"{where} must be {what}, got {_short(value)}")
    rows = [value] if ndim == 1 else value
    if not all(isinstance(row, list) for row in rows) or len({len(row) for row in rows}) > 1:
        raise _FormatError(f"{where} must be {what}, got {_short(value)}")
    flat = [x for row in rows for x in row]
    if not all(_is_number(x) for x in flat):
        raise _FormatError(f"{where} must be {what}, got {_short(value)}")
    arr = _finite_floats(flat, where)
    return arr if ndim == 1 else arr.reshape(len(rows), -1)


def _decode_prior(value, where: str) -> NIWPrior:
    """The prior as :meth:`NIWPrior.to_dict` writes it: exactly its fields, finite numbers."""
    if not isinstance(value, dict):
        raise _FormatError(f"{where} must be a JSON object, got {type(value).__name__}")
    ct = value.get("covariance_type")
    if not isinstance(ct, str) or ct not in COVARIANCE_FAMILIES:
        raise _FormatError(
            f"{where}: covariance_type must be one of {sorted(COVARIANCE_FAMILIES)}, got {_short(ct)}"
        )
    family = get_family(ct)
    matrix = family.wishart_prior
    _check_keys(value, {"covariance_type", "alpha", "m0", "kappa0"} | ({"nu0", "psi0"} if matrix else {"a0", "b0"}), where)
    fields: dict[str, Any] = {"covariance_type": ct}
    for name in ("alpha", "kappa0", "nu0" if matrix else "a0"):
        fields[name] = _decode_float(value[name], f"{where}: {name}")
    fields["m0"] = _decode_float_list(value["m0"], f"{where}: m0", 1)
    if matrix:
        fields["psi0"] = _decode_float_list(value["psi0"], f"{where}: psi0", 2)
    elif family.prior_rate_shape(1):  # one rate per column
        fields["b0"] = _decode_float_list(value["b0"], f"{where}: b0", 1)
    else:
        fields["b0"] = _decode_float(value["b0"], f"{where}: b0")
    try:
        return NIWPrior.from_dict(fields)
    except (TypeError, ValueError) as exc:
        raise _FormatError(f"{where}: {exc}") from None


def _decode_params(params) -> dict[str, Any]:
    """The constructor's scalar arguments and prior, each checked as ``fit`` checks it."""
    where = "estimator.params"
    _check_keys(
        params, set(_SCALAR_PARAMS + _ARRAY_PARAMS) | {"init_params", "random_state", "prior"}, where
    )
    out: dict[str, Any] = {}
    out["k"] = _decode_int(params["k"], f"{where}.k", low=1)
    ct = params["covariance_type"]
    if not isinstance(ct, str):
        raise _FormatError(f"{where}.covariance_type must be a string, got {_short(ct)}")
    try:
        get_family(ct)
    except ValueError as exc:
        raise _FormatError(f"{where}.covariance_type: {exc}") from None
    out["covariance_type"] = ct
    prior = params["prior"]
    out["prior"] = None if prior is None else _decode_prior(prior, f"{where}.prior")
    out["prior_strength"] = _decode_float(params["prior_strength"], f"{where}.prior_strength")
    out["alpha"] = _decode_float(params["alpha"], f"{where}.alpha", allow_none=True)
    if out["prior"] is None:  # as fit, which uses (and checks) them only when no prior is given
        for name, check in (("prior_strength", check_prior_strength), ("alpha", check_alpha)):
            if out[name] is not None:
                try:
                    check(out[name])
                except (TypeError, ValueError) as exc:
                    raise _FormatError(f"{where}.{name}: {exc}") from None
    out["tol"] = _decode_float(params["tol"], f"{where}.tol", low=0.0)
    for name in ("max_iter", "n_init"):
        out[name] = _decode_int(params[name], f"{where}.{name}", low=1)
    out["chunk_size"] = _decode_int(params["chunk_size"], f"{where}.chunk_size", low=1, allow_none=True)
    out["random_state"] = _decode_int(
        params["random_state"], f"{where}.random_state", low=0, high=_SEED_MAX, allow_none=True
    )
    init = params["init_params"]
    if isinstance(init, str) and init not in INIT_METHODS:
        raise _FormatError(f"{where}.init_params must be one of {INIT_METHODS} or an array, got {_short(init)}")
    return out


def _decode_init_arrays(params, family: CovarianceFamily, k: int, d: int) -> dict[str, Any]:
    """``weights_init``, ``means_init``, ``precisions_init`` and an array ``init_params``,
    checked as ``fit`` checks them."""
    where = "estimator.params"
    shapes = {"weights_init": (k,), "means_init": (k, d), "precisions_init": family.covariance_shape(k, d)}
    out: dict[str, Any] = {}
    for name in _ARRAY_PARAMS:
        value = params[name]
        out[name] = None if value is None else _decode_array(value, f"{where}.{name}", shapes[name])
    weights, prec = out["weights_init"], out["precisions_init"]
    if weights is not None and (np.any(weights <= 0) or not np.isclose(weights.sum(), 1.0)):
        raise _FormatError(f"{where}.weights_init must be {k} positive numbers summing to 1")
    if prec is not None:
        if not family.is_positive_definite(prec):
            raise _FormatError(f"{where}.precisions_init must be {family.positive_definite_words}")
    init = params["init_params"]
    if isinstance(init, str):
        out["init_params"] = init
        return out
    arr = _decode_array(init, f"{where}.init_params")
    # fit reads an array init_params only when some of the three *_init is missing
    if any(out[name] is None for name in _ARRAY_PARAMS):
        if arr.ndim == 1:
            if arr.dtype.kind not in "iu" or arr.size == 0 or arr.min() < 0 or arr.max() >= k:
                raise _FormatError(
                    f"{where}.init_params given as labels must be integers in [0, {k - 1}]"
                )
        elif arr.ndim != 2 or arr.shape[1] != k or np.any(arr < 0) or np.any(arr.sum(axis=1) <= 0):
            raise _FormatError(
                f"{where}.init_params given as responsibilities must be a non-negative (n, {k}) "
                "array with a positive entry in every row"
            )
    out["init_params"] = arr
    return out


def _check_fitted_parameters(arrays: dict[str, np.ndarray], family: CovarianceFamily, k: int, d: int) -> None:
    """The fitted parameters describe a proper mixture whose densities float64 can compute."""
    weights = arrays["weights"]
    tolerance = max(1e-9, k * float(np.finfo(weights.dtype).eps))
    if np.any(weights <= 0) or not abs(float(np.sum(weights, dtype=np.float64)) - 1.0) <= tolerance:
        raise _FormatError("parameters.weights must be positive and sum to 1")
    try:
        family.check_covariances(arrays["covariances"], k, d)
    except ValueError as exc:
        raise _FormatError(f"parameters.covariances: {exc}") from None
    if not family.is_positive_definite(arrays["covariances"]):
        raise _FormatError("parameters.covariances must be positive definite (the file was edited or corrupted)")
    prec = arrays["precisions_cholesky"]
    try:
        diag = family.precision_factor_diagonal(prec, "parameters.precisions_cholesky")
    except ValueError as exc:
        raise _FormatError(str(exc)) from None
    if np.any(diag <= 0):
        raise _FormatError("parameters.precisions_cholesky must have a positive diagonal")
    # the two parametrisations must describe the same covariances
    if not _describe_the_same_covariances(family, arrays["covariances"], prec):
        raise _FormatError(
            "parameters.covariances and parameters.precisions_cholesky disagree "
            "(the file was edited or corrupted)"
        )
    # what prediction and sampling compute from them must be finite too: every component's
    # log-density at its own mean and at the origin (a mean that float64 cannot whiten, about
    # 1e154 standard deviations out, overflows there) is the least a usable model gives
    prec = prec.astype(np.float64)  # prediction computes in float64 whatever the stored dtype
    derived = (family.precisions(prec), family.covariances_cholesky_from_precisions(prec))
    means = arrays["means"].astype(np.float64)
    log_prob = family.log_prob(np.vstack([means, np.zeros((1, d))]), means, prec)
    if not all(np.all(np.isfinite(a)) for a in derived) or not (
        np.all(np.isfinite(np.diagonal(log_prob))) and np.all(np.isfinite(log_prob[-1]))
    ):
        raise _FormatError(
            "parameters.means and parameters.precisions_cholesky give a log-density that is not "
            "finite at the components' own means or at the origin: the values are beyond float64 "
            "arithmetic (the file was edited or corrupted)"
        )


def _describe_the_same_covariances(family: CovarianceFamily, cov: np.ndarray, prec: np.ndarray) -> bool:
    """Whether the covariances and the precision factors agree up to their own rounding."""
    eps = max(np.finfo(cov.dtype).eps, np.finfo(prec.dtype).eps)
    cov, prec = cov.astype(np.float64), prec.astype(np.float64)
    if eps <= np.finfo(np.float64).eps:
        implied = family.covariances_from_precisions_cholesky(prec)
        scale = np.max(np.abs(cov))
        return bool(np.all(np.isfinite(implied)) and np.allclose(implied, cov, rtol=1e-6, atol=1e-9 * scale))
    # float32 (a float32 fit) or narrower: each array was rounded on its own, which moves the
    # covariances their precision factors imply by up to the conditioning of the correlation
    # times eps.  Measured instead: how far the factors are from whitening the covariances,
    # P^T Sigma P - I, against eps * d * ||D P||^2 (D the standard deviations), which bounds it.
    residual, bound = family.whitening_residual(cov, prec)
    return bool(np.all(np.isfinite(residual)) and np.all(residual <= 32 * eps * bound))


def _decode_history(fit) -> tuple[float, np.ndarray]:
    history = fit["log_posteriors"]
    where = "fit.log_posteriors"
    if not isinstance(history, list) or not history or not all(_is_number(x) for x in history):
        raise _FormatError(f"{where} must be a non-empty list of finite numbers")
    history = _finite_floats(history, where)
    log_post = float(_decode_float(fit["log_posterior"], "fit.log_posterior"))
    if log_post != history[-1]:
        raise _FormatError(
            f"fit.log_posterior must equal the last entry of {where} ({history[-1]!r}), got {log_post!r}"
        )
    return log_post, history


def from_dict(content: dict[str, Any]) -> MapEM:
    """Rebuild a fitted :class:`~bayes_gmm.MapEM` from :func:`to_dict`'s output, checking it all.

    Raises
    ------
    ValueError
        Naming the first field that is missing, malformed, out of range or inconsistent.
        Nothing else is raised, whatever ``content`` holds.
    """
    try:
        with np.errstate(all="ignore"):  # overflow is looked for, never warned about
            return _from_dict(content)
    except _FormatError:
        raise
    except (ArithmeticError, LookupError, RecursionError, TypeError, ValueError) as exc:
        # every field is checked above; this keeps the promise should a check miss a case
        raise _FormatError(f"a field cannot be read ({type(exc).__name__}: {exc})") from exc


def _from_dict(content) -> MapEM:
    _check_keys(content, _TOP_KEYS, "the model file")
    if content["format"] != FORMAT_NAME:
        raise _FormatError(f"format is {_short(content['format'])}, expected {FORMAT_NAME!r}")
    if not isinstance(content["bayes_gmm_version"], str):
        raise _FormatError("bayes_gmm_version must be a string")
    version = _decode_int(content["format_version"], "format_version", low=1)
    if version > FORMAT_VERSION:
        raise _FormatError(
            f"format_version {version} was written by a newer bayes_gmm "
            f"({_short(content['bayes_gmm_version'])}); this one ({_package_version()}) reads up "
            f"to {FORMAT_VERSION}: upgrade bayes_gmm"
        )

    estimator = content["estimator"]
    _check_keys(estimator, {"class", "params"}, "estimator")
    if estimator["class"] != "MapEM":
        raise _FormatError(f"estimator.class is {_short(estimator['class'])}, expected 'MapEM'")
    params = _decode_params(estimator["params"])
    family = get_family(params["covariance_type"])
    k = params["k"]

    fit = content["fit"]
    _check_keys(fit, _FIT_KEYS, "fit")
    d = _decode_int(fit["n_features_in"], "fit.n_features_in", low=1)

    prior = _decode_prior(content["prior"], "prior")
    if prior.covariance_type != family.name:
        raise _FormatError(
            f"prior.covariance_type is {prior.covariance_type!r} but the estimator's is {family.name!r}"
        )
    if prior.m0.shape[0] != d:
        raise _FormatError(f"prior.m0 has {prior.m0.shape[0]} entries for {_short(d)} features")
    params.update(_decode_init_arrays(estimator["params"], family, k, d))

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
    _check_fitted_parameters(arrays, family, k, d)
    # log_posterior(X) adds the prior's log-density at the fitted parameters: finite for a fit
    try:
        log_prior = prior.log_density(arrays["weights"], arrays["means"], arrays["covariances"])
    except (ArithmeticError, ValueError):  # np.linalg.LinAlgError is a ValueError
        log_prior = math.nan
    if not math.isfinite(log_prior):
        raise _FormatError(
            "prior: its log-density at the fitted parameters is not finite, so log_posterior "
            "could not be computed (the file was edited or corrupted)"
        )

    converged = fit["converged"]
    if not isinstance(converged, bool):
        raise _FormatError(f"fit.converged must be true or false, got {_short(converged)}")
    n_iter = _decode_int(fit["n_iter"], "fit.n_iter", low=0)
    log_post, history = _decode_history(fit)
    names = fit["feature_names_in"]
    if names is not None:
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names) or len(names) != d:
            raise _FormatError(f"fit.feature_names_in must be null or a list of {d} strings")

    est = MapEM(**params)
    # the fitted attributes, as fit sets them; the private fit state (the covariance family,
    # the history's working copy) is rebuilt by the next fit and prediction does not read it
    est.prior_ = prior
    est.weights_ = arrays["weights"]
    est.means_ = arrays["means"]
    est.covariances_ = arrays["covariances"]
    est.precisions_cholesky_ = arrays["precisions_cholesky"]
    prec = arrays["precisions_cholesky"]
    est.precisions_ = family.precisions(prec).astype(prec.dtype, copy=False)
    est.converged_ = converged
    est.n_iter_ = n_iter
    est.log_posteriors_ = history
    est.log_posterior_ = log_post
    est.n_features_in_ = d
    if names is not None:
        est.feature_names_in_ = np.asarray(names, dtype=object)
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
        If the file is not valid JSON (e.g. truncated or nested too deeply), not a bayes_gmm
        model, written by a newer format version, or has a missing, malformed, out-of-range or
        inconsistent field (a wrong type, a non-finite or overflowing number, parameters that
        are not a proper mixture or that float64 cannot predict with); the message names the
        file and the field.  No other exception comes from the file's content.

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
    invalid = f"{path} is not a valid bayes_gmm model file"
    try:
        content = json.loads(text, parse_constant=_reject_constant)
    except json.JSONDecodeError as exc:
        raise ValueError(
            f"{invalid}: malformed or truncated JSON "
            f"({exc.msg} at line {exc.lineno}, column {exc.colno})."
        ) from None
    except _FormatError as exc:
        raise ValueError(f"{invalid}: {exc}.") from None
    except RecursionError:
        raise ValueError(f"{invalid}: its JSON is nested too deeply (a model file nests a few levels).") from None
    except ValueError as exc:  # an integer literal longer than Python converts
        if "integer string conversion" in str(exc):
            raise ValueError(
                f"{invalid}: it holds an integer with more than {sys.get_int_max_str_digits()} digits."
            ) from None
        raise ValueError(f"{invalid}: {exc}.") from None  # pragma: no cover - no other known case
    try:
        return from_dict(content)
    except _FormatError as exc:
        raise ValueError(f"{invalid}: {exc}.") from None
