"""The spiking engine: Boltzmann machines as networks of Markov neurons with VPF synapses (Brian2).

* :mod:`.equations` -- the neuron and synapse model (the contract other experiments build on);
* :mod:`.network` -- :class:`SpikingNetwork`, a Brian2 network built from any BoltzmannMachine;
* :mod:`.devices` -- runtime / cpp_standalone / cuda_standalone behind one option;
* :mod:`.training` -- :class:`SpikingTrainer`, online training by the network's own plasticity;
* :mod:`.cli` -- ``vpf train --engine spiking`` and the ``spiking-train`` protocol kind.
"""

from .devices import DEVICES, cache_dir
from .equations import CLAMP0, CLAMP1, FREE, HOLD, control_array, markov_neurons, vpf_synapses
from .network import RunResult, SpikingNetwork
from .training import SpikingTrainer
from .cli import run_spiking_train, train_cli

__all__ = ["markov_neurons", "vpf_synapses", "control_array", "FREE", "CLAMP0", "CLAMP1", "HOLD",
           "SpikingNetwork", "RunResult", "SpikingTrainer", "DEVICES", "cache_dir",
           "train_cli", "run_spiking_train"]
