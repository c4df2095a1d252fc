"""The diagnostics layer: MAP-EM's point estimate against the PyMC posterior, with ArviZ.

The code is in :mod:`bayes_gmm.diagnostics.comparison`; its public names are here.
"""

from bayes_gmm.diagnostics.comparison import *  # noqa: F403
from bayes_gmm.diagnostics.comparison import __all__  # noqa: F401
