"""Reading and writing: fitted models as JSON (:mod:`bayes_gmm.io.model_file`) and data files,
CSVs of numbers (:mod:`bayes_gmm.io.csv_data`).

Their public names are here (``bayes_gmm.io.save``, ``bayes_gmm.io.load``,
``bayes_gmm.io.read_data``, ...).
"""

from bayes_gmm.io import csv_data, model_file
from bayes_gmm.io.csv_data import *  # noqa: F403
from bayes_gmm.io.model_file import *  # noqa: F403

__all__ = [*model_file.__all__, *csv_data.__all__]
