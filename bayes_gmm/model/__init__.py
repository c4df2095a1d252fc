"""The model layer: the numbers of the mixture and its prior (NumPy and SciPy only).

- :mod:`~bayes_gmm.model.densities`: the log densities of the prior's distributions;
- :mod:`~bayes_gmm.model.scaling`: column scalings and moments of large arrays;
- :mod:`~bayes_gmm.model.blas`: the BLAS kernels the E-step calls;
- :mod:`~bayes_gmm.model.families`: the covariance families and their registry, the only code
  that knows a covariance type;
- :mod:`~bayes_gmm.model.prior`: the conjugate prior :class:`~bayes_gmm.NIWPrior` and the
  objective.

Nothing here imports a higher layer (EM, the posterior, diagnostics, plots, the command line).
"""
