"""Reading and writing: fitted models as JSON (:mod:`bayes_gmm.io.model_file`).

Its public names are here (``bayes_gmm.io.save``, ``bayes_gmm.io.load``, ...).
"""

from bayes_gmm.io.model_file import *  # noqa: F403
from bayes_gmm.io.model_file import __all__  # noqa: F401
