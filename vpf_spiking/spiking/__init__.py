"""The spiking engine: Boltzmann machines as networks of Markov neurons with VPF synapses (Brian2).

:mod:`.equations` holds the neuron and synapse model (the contract other experiments build on).
"""

from .equations import CLAMP0, CLAMP1, FREE, HOLD, control_array, markov_neurons, vpf_synapses

__all__ = ["markov_neurons", "vpf_synapses", "control_array", "FREE", "CLAMP0", "CLAMP1", "HOLD"]
