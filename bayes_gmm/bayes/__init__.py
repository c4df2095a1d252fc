"""The posterior layer: the same model as MAP-EM's, sampled in PyMC.

- :mod:`~bayes_gmm.bayes.posterior`: the PyMC model, sampling (nutpie or PyMC's NUTS), the
  compiled-model cache (:class:`~bayes_gmm.bayes.posterior.PosteriorSampler`), relabelling and
  the posterior predictive;
- :mod:`~bayes_gmm.bayes.mixture_op`: the PyTensor Op of the mixture likelihood;
- :mod:`~bayes_gmm.bayes.sbc`: simulation-based calibration.

Importing this package does not import PyMC; its modules do.

The model is compiled once per shape and reused across data sets: a
:class:`~bayes_gmm.bayes.posterior.PosteriorSampler` holds the PyMC model of :func:`bayes_gmm.bayes.posterior.build_model` for
one ``(covariance_type, n_components, n_features)``, with everything that comes from an
estimator and its data as *shared inputs* of the graph, not constants:

- the data ``X`` (any number of rows) and their quadratic features,
- the prior's hyper-parameters (``alpha``, ``m0``, ``kappa0``, and ``nu0``, ``Psi0`` or
  ``a0``, ``b0``),
- the MAP anchor of the transforms NUTS moves in (the Cholesky factor of each MAP precision,
  the MAP means and their posterior spread).

nutpie compiles that graph (numba) once; each call swaps the inputs with nutpie's
``CompiledPyMCModel.with_data`` and samples.  Anchoring the transforms at another estimator's
MAP changes the coordinates NUTS moves in, not the density.  :func:`bayes_gmm.sample_posterior`
consults a process-wide cache of samplers (:func:`bayes_gmm.get_posterior_sampler`), so the second call
on data of the same shape does not compile.

Across processes: nutpie's compiled log density is a numba ``cfunc`` that numba does not cache
on disk ("uses dynamic globals"; ``compile_pymc_model(..., cache=True)`` compiled as long in a
second process as in the first), so every new process compiles once (PyTensor's own numba cache,
under ``~/.pytensor``, keeps the pieces it can).
"""
