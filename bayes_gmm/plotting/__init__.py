"""The plotting layer: figures of a fit and of its posterior (matplotlib, ArviZ's plots).

The code is in :mod:`bayes_gmm.plotting.figures`; its public names are here.
"""

from bayes_gmm.plotting.figures import *  # noqa: F403
from bayes_gmm.plotting.figures import __all__  # noqa: F401
