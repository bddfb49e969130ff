"""vpf-spiking: Boltzmann machines that learn by Variational Probability Flow, in batch and as spiking networks."""

from .errors import ConfigError, DataError, ModelError, TrainingDiverged, VPFError
from .model import BoltzmannMachine
from .networks import load_network

__version__ = "0.1.0"

__all__ = [
    "BoltzmannMachine", "load_network",
    "VPFError", "ModelError", "DataError", "ConfigError", "TrainingDiverged",
]
