"""The EM layer: input checks, the blocked one-pass engine (and its Dask backend), the shared
EM loop, the estimators :class:`~bayes_gmm.MapEM` and :class:`~em_baseline.PlainEM`, and model
selection (:func:`~bayes_gmm.select`).  It stands on :mod:`bayes_gmm.model` only.
"""
