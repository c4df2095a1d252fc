"""The command line (``bayes-gmm``, :mod:`bayes_gmm.cli.main`) and the demo story it tells
(:mod:`bayes_gmm.cli.demo`): the top layer, which nothing in the library imports."""
