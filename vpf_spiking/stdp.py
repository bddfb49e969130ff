"""Old import path of the STDP library, now :mod:`vpf_spiking.spiking.stdp`; its names are re-exported here.

Kept because notebooks and benchmarks import ``vpf_spiking.stdp``.  The ``stdp`` protocol kind
is :mod:`vpf_spiking.protocols.stdp`, ``vpf stdp`` is :mod:`vpf_spiking.cli.stdp`.
"""

from .spiking.stdp import *  # noqa: F401,F403  (the library's __all__)
from .spiking.stdp import __all__  # noqa: F401
