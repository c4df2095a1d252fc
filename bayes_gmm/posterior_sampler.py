"""The posterior model compiled once per shape and reused across data sets.

A :class:`PosteriorSampler` holds the PyMC model of :func:`bayes_gmm.posterior.build_model` for
one ``(covariance_type, n_components, n_features)``, with everything that comes from an
estimator and its data as *shared inputs* of the graph, not constants:

- the data ``X`` (any number of rows),
- the prior's hyper-parameters (``alpha``, ``m0``, ``kappa0``, and ``nu0``, ``Psi0`` or
  ``a0``, ``b0``),
- the MAP anchor of the transforms NUTS moves in (the Cholesky factor of each MAP precision,
  the MAP means and their posterior spread).

nutpie compiles that graph (numba) once; each call swaps the inputs with nutpie's
``CompiledPyMCModel.with_data`` and samples.  Anchoring the transforms at another estimator's
MAP changes the coordinates NUTS moves in, not the density.  :func:`bayes_gmm.sample_posterior`
consults a process-wide cache of samplers (:func:`get_posterior_sampler`), so the second call
on data of the same shape does not compile.

Across processes: nutpie's compiled log density is a numba ``cfunc`` that numba refuses to
cache on disk ("uses dynamic globals"), so every new process compiles once (PyTensor's own numba
cache, under ``~/.pytensor``, already keeps the pieces it can).

This module imports PyMC; ``import bayes_gmm`` does not import it.
"""

from __future__ import annotations

import dataclasses
import logging
import sys
import threading
import time

import numpy as np
import pytensor
import xarray as xr
from threadpoolctl import threadpool_limits

from . import posterior as _post
from ._validation import check_positive
from .map_em import MapEM

__all__ = ["PosteriorSampler", "clear_posterior_cache", "get_posterior_sampler"]

logger = logging.getLogger(__name__)

_CACHE: dict[tuple[str, int, int], PosteriorSampler] = {}
_CACHE_LOCK = threading.Lock()


def _key_of(est: MapEM) -> tuple[str, int, int]:
    return (str(est.covariance_type), int(est.means_.shape[0]), int(est.means_.shape[1]))


def get_posterior_sampler(est: MapEM) -> PosteriorSampler:
    """The process-wide :class:`PosteriorSampler` for ``est``'s covariance type and shape.

    Created (not yet compiled) on first use; every later call with an estimator of the same
    ``(covariance_type, n_components, n_features)`` gets the same object, so the model is
    compiled once per process.
    """
    est = _post._check_estimator(est)
    key = _key_of(est)
    with _CACHE_LOCK:
        if key not in _CACHE:
            _CACHE[key] = PosteriorSampler(*key)
        return _CACHE[key]


def clear_posterior_cache() -> None:
    """Forget every cached :class:`PosteriorSampler` (the next call compiles again)."""
    with _CACHE_LOCK:
        _CACHE.clear()


class PosteriorSampler:
    """The posterior model of one shape, compiled once with nutpie and reused across data sets.

    Parameters
    ----------
    covariance_type : {"full", "tied", "diag", "spherical"}
    n_components, n_features : int

    Attributes
    ----------
    model : pymc.Model
        The model, its inputs as shared variables (``inputs``); its observed ``x`` has no
        ``obs`` dim, so that any number of rows fits.
    n_compilations : int
        How many times nutpie compiled the model (0 or 1: :meth:`sample` compiles on first use).
    compile_seconds : float or None
        Wall time of that compilation.

    Notes
    -----
    One sampler samples one data set at a time (a lock serialises :meth:`sample`).

    Examples
    --------
    >>> import bayes_gmm  # doctest: +SKIP
    >>> X, _ = bayes_gmm.make_seed_problem()  # doctest: +SKIP
    >>> est = bayes_gmm.MapEM(10, n_init=5, random_state=0).fit(X)  # doctest: +SKIP
    >>> sampler = bayes_gmm.get_posterior_sampler(est)  # doctest: +SKIP
    >>> idata = sampler.sample(est, X, random_seed=1)  # doctest: +SKIP
    >>> idata2 = sampler.sample(est2, X2, random_seed=1)  # same shape: no compilation  # doctest: +SKIP
    """

    def __init__(self, covariance_type: str, n_components: int, n_features: int):
        if covariance_type not in _post._COV_DIMS:
            raise ValueError(f"covariance_type must be one of {tuple(_post._COV_DIMS)}, got {covariance_type!r}.")
        check_positive("n_components", n_components, integer=True)
        check_positive("n_features", n_features, integer=True)
        self.covariance_type = covariance_type
        self.n_components = int(n_components)
        self.n_features = int(n_features)
        k, d = self.n_components, self.n_features
        coords = {"component": list(range(k)), "feature": list(range(d)), "feature_bis": list(range(d))}
        self.model, self.inputs = _post._shared_model(covariance_type, k, d, coords)
        self.compiled = None
        self.n_compilations = 0
        self.compile_seconds: float | None = None
        self._lock = threading.RLock()
        self._forward = None

    def __repr__(self) -> str:
        state = "compiled" if self.compiled is not None else "not compiled"
        return (f"PosteriorSampler({self.covariance_type!r}, n_components={self.n_components}, "
                f"n_features={self.n_features}; {state})")

    # ------------------------------------------------------------------------------------
    def compile(self, *, progressbar: bool = True) -> PosteriorSampler:
        """Compile the model with nutpie (numba), once; later calls return at once.

        With ``progressbar=True`` a line "Compiling the posterior model ..." (and the time it
        took) goes to stderr before nutpie's progress bar; the same goes to the
        ``bayes_gmm.posterior_sampler`` logger at INFO level either way.
        """
        import nutpie

        with self._lock:
            if self.compiled is not None:
                return self
            what = (f"the posterior model ({self.covariance_type}, k={self.n_components}, "
                    f"d={self.n_features}) with nutpie/numba")
            logger.info("compiling %s ...", what)
            if progressbar:
                sys.stderr.write(f"Compiling {what} (once per process) ...\n")
                sys.stderr.flush()
            start = time.perf_counter()
            with threadpool_limits(limits=1, user_api="blas"):
                self.compiled = nutpie.compile_pymc_model(self.model, jitter_rvs=set())
            self.compile_seconds = time.perf_counter() - start
            self.n_compilations += 1
            logger.info("compiled in %.1f s", self.compile_seconds)
            if progressbar:
                sys.stderr.write(f"Compiled in {self.compile_seconds:.1f} s.\n")
                sys.stderr.flush()
            return self

    # ------------------------------------------------------------------------------------
    def _check_shape(self, est: MapEM) -> None:
        key = _key_of(est)
        if key != (self.covariance_type, self.n_components, self.n_features):
            raise ValueError(
                f"this sampler is for covariance_type={self.covariance_type!r}, "
                f"n_components={self.n_components}, n_features={self.n_features}; the estimator "
                f"has {key[0]!r}, {key[1]}, {key[2]}: use get_posterior_sampler(est)."
            )

    def _forward_fn(self):
        """Constrained parameter values -> the sampler's coordinates (compiled once, Python mode)."""
        if self._forward is None:
            model = self.model
            values = [rv.type() for rv in model.free_RVs]
            outs = [
                model.rvs_to_transforms[rv].forward(value, *rv.owner.inputs)
                for rv, value in zip(model.free_RVs, values, strict=True)
            ]
            self._forward = pytensor.function(values, outs, mode=_post._FAST, on_unused_input="ignore")
        return self._forward

    def start_point(self, est: MapEM, n: int) -> dict[str, np.ndarray]:
        """The chains' starting point in the sampler's coordinates, by value variable
        (:func:`bayes_gmm.posterior._start_point`, without compiling a function per call).

        The model's inputs must already hold ``est``'s values.
        """
        init = _post._initvals(est, n)
        free = self.model.free_RVs
        unconstrained = self._forward_fn()(*(init[rv.name] for rv in free))
        rng = np.random.default_rng(0)  # the sign pattern of _start_point
        start = {}
        for rv, value in zip(free, unconstrained, strict=True):
            value = np.asarray(value, dtype=float)
            start[self.model.rvs_to_values[rv].name] = value + _post.START_OFFSET * rng.choice([-1.0, 1.0], size=value.shape)
        return start

    def _check_start(self, start: dict[str, np.ndarray]) -> np.ndarray:
        """Raise where nutpie could not start; the start, flat in nutpie's order.

        Evaluated with the compiled log density and gradient (microseconds): the compilation
        comes first, once per process (a Python-mode check before it cost 1.6 s per call).
        """
        names, _, _ = self.compiled.shape_info
        flat = np.concatenate([start[name].ravel() for name in names if name in start])
        with np.errstate(all="ignore"):
            logp, grad = self.compiled.logp_func(flat)
        grad = np.asarray(grad)
        named, offset = [], 0
        for name in names:
            if name in start:
                size = start[name].size
                named.append((name, grad[offset : offset + size].reshape(start[name].shape)))
                offset += size
        _post._raise_for_bad_start(float(logp), named, "nutpie")
        return flat

    # ------------------------------------------------------------------------------------
    def run(
        self,
        est: MapEM,
        X: np.ndarray,
        *,
        draws: int,
        tune: int,
        chains: int,
        random_seed: int | None,
        progressbar: bool,
        cores: int,
        target_accept: float | None = None,
        save_warmup: bool = True,
    ) -> tuple[xr.DataTree, float]:
        """nutpie's own result (draws of the parameters, unrelabelled) and the sampling time.

        The bare sampling step of :meth:`sample` (``X`` already checked): no relabelling, no
        log-likelihood, no convergence check (what a simulation study needs, many times).
        """
        import nutpie

        self._check_shape(est)
        with self._lock:
            values = _post.model_input_values(est, X)
            self.compile(progressbar=progressbar)
            _post.set_model_inputs(self.inputs, values)
            start = self._check_start(self.start_point(est, X.shape[0]))
            known = {var.name for var in self.compiled.shared_var_keys}
            compiled = self.compiled.with_data(**{name: v for name, v in values.items() if name in known})
            compiled = dataclasses.replace(compiled, initial_point_func=lambda seed: start.copy())
            seed = int(np.random.default_rng(random_seed).integers(2**31)) if random_seed is None else int(random_seed)
            nuts = {} if target_accept is None else {"target_accept": float(target_accept)}
            t0 = time.perf_counter()
            with threadpool_limits(limits=1, user_api="blas"):
                try:
                    idata = nutpie.sample(
                        compiled, draws=draws, tune=max(tune, 1), chains=chains, cores=cores, seed=seed,
                        save_warmup=save_warmup, progress_bar=progressbar, **nuts,
                    )
                except RuntimeError as err:
                    raise _post._nutpie_start_error(err) from None
            return idata, time.perf_counter() - t0

    def sample(
        self,
        est: MapEM,
        X,
        *,
        draws: int = 1000,
        tune: int = 1000,
        chains: int = 4,
        random_seed: int | None = None,
        progressbar: bool = True,
        cores: int | None = None,
        target_accept: float | None = None,
        ambiguity_tol: float = 1.0,
        log_likelihood: bool = True,
    ) -> xr.DataTree:
        """Sample the posterior for ``est`` and ``X`` (see :func:`bayes_gmm.sample_posterior`).

        Compiles on first use.  ``idata["sample_stats"].attrs`` records where the time went:
        ``compile_seconds`` (0 when the compiled model was reused), ``sampling_seconds``
        (nutpie, tuning and draws), ``log_likelihood_seconds``, ``postprocess_seconds``
        (relabelling, convergence checks) and the gradient evaluations of tuning and of the
        draws (``tuning_gradient_evaluations``, ``draw_gradient_evaluations``).
        """
        est = _post._check_estimator(est)
        X = _post._check_X(est, X)
        draws, tune, chains, cores = _post._check_sampling_args(draws, tune, chains, cores)
        compiled_now = self.compiled is None
        idata, sampling_seconds = self.run(
            est, X, draws=draws, tune=tune, chains=chains, random_seed=random_seed, progressbar=progressbar,
            cores=cores, target_accept=target_accept,
        )
        timings = {
            "compile_seconds": float(self.compile_seconds) if compiled_now else 0.0,
            "sampling_seconds": sampling_seconds,
            "tuning_gradient_evaluations": int(idata["warmup_sample_stats"]["n_steps"].sum()),
            "draw_gradient_evaluations": int(idata["sample_stats"]["n_steps"].sum()),
        }
        out = xr.DataTree()
        raw = idata["posterior"].to_dataset()[["weights", "means", "covariances"]]
        out["sample_stats"] = xr.DataTree(idata["sample_stats"].to_dataset())
        out["warmup_sample_stats"] = xr.DataTree(idata["warmup_sample_stats"].to_dataset())
        coords = _post._model_coords(est, X.shape[0])
        raw = raw.assign_coords({name: coords[name] for name in ("component", "feature", "feature_bis")})
        t0 = time.perf_counter()
        if log_likelihood:
            out["log_likelihood"] = xr.DataTree(_post._log_likelihood_dataset(raw, X, est.covariance_type, coords))
        timings["log_likelihood_seconds"] = time.perf_counter() - t0
        out["observed_data"] = xr.DataTree(
            xr.Dataset({"x": (("obs", "feature"), X)}, coords={"obs": coords["obs"], "feature": coords["feature"]})
        )
        t0 = time.perf_counter()
        out = _post._finish(out, raw, est, X, coords, ambiguity_tol)
        timings["postprocess_seconds"] = time.perf_counter() - t0
        out["sample_stats"].attrs.update(timings)
        return out
