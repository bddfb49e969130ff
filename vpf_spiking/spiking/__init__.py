"""The spiking engine: Boltzmann machines as networks of Markov neurons with VPF synapses (Brian2).

* :mod:`.equations` -- the neuron and synapse model (the contract other experiments build on);
* :mod:`.network` -- :class:`SpikingNetwork`, a Brian2 network built from any BoltzmannMachine;
* :mod:`.devices` -- runtime / cpp_standalone / cuda_standalone behind one option;
* :mod:`.training` -- :class:`SpikingTrainer`, online training by the network's own plasticity;

``vpf train --engine spiking`` is in :mod:`vpf_spiking.cli.train`, the ``spiking-train`` protocol
kind in :mod:`vpf_spiking.protocols.spiking_train`.
"""

from .devices import DEVICES, cache_dir
from .equations import CLAMP0, CLAMP1, FREE, HOLD, control_array, markov_neurons, vpf_synapses
from .network import RunResult, SpikingNetwork
from .training import SpikingTrainer

__all__ = ["markov_neurons", "vpf_synapses", "control_array", "FREE", "CLAMP0", "CLAMP1", "HOLD",
           "SpikingNetwork", "RunResult", "SpikingTrainer", "DEVICES", "cache_dir"]
