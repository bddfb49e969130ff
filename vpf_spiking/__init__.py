"""vpf-spiking: Boltzmann machines that learn by Variational Probability Flow, in batch and as spiking networks."""

from .errors import ConfigError, DataError, ModelError, TrainingDiverged, VPFError
from .model import BoltzmannMachine
from .networks import load_network

from ._version import __version__


def __getattr__(name):
    # vpf_spiking.sweep(protocol, grid, ...) without importing the sweep layer (and pandas) at
    # ``import vpf_spiking``: the subpackage is loaded on first use, and it is callable
    if name == "sweep":
        from .sweep import engine  # noqa: F401  (importing the subpackage binds vpf_spiking.sweep)

        return globals()["sweep"]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

__all__ = [
    "BoltzmannMachine", "load_network", "sweep",
    "VPFError", "ModelError", "DataError", "ConfigError", "TrainingDiverged",
]
