"""The optimisers, now in :mod:`vpf_spiking.trainers.optim`; this name is kept for existing imports."""

from .trainers.optim import OPTIMIZERS, SGD, Adam, Optimizer, make_optimizer

__all__ = ["OPTIMIZERS", "SGD", "Adam", "Optimizer", "make_optimizer"]
