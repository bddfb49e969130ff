"""Protocols: one TOML file describes one reproducible run (``vpf run PROTOCOL.toml``).

A protocol file names its ``kind`` and carries that kind's tables::

    kind = "train"
    name = "train-rbm-mnist"        # optional; default: the file's stem
    description = "..."             # optional
    [network]
    name = "rbm-500"
    [data]
    dataset = "mnist"
    [training]
    method = "vpf"
    epochs = 10

Modules
-------
- :mod:`.config`: :class:`ProtocolConfig`, typed reads of tables, ``--set`` overrides, TOML out;
- :mod:`.runner`: :func:`load_protocol`, :func:`run_protocol` (output folder, ``protocol.toml``,
  ``command.txt``);
- :mod:`.kinds`: :data:`KINDS`, the one table of kinds;
- one module per kind: :mod:`.train`, :mod:`.spiking_train`, :mod:`.reconstruction`,
  :mod:`.parzen`, :mod:`.ais`, :mod:`.rbm_experiment`, :mod:`.dbm_experiment`, :mod:`.stdp`;
- :mod:`.inputs` (the ``[network]``, ``[data]`` and ``[model]`` tables and loading what they
  name) and :mod:`.experiments` (what the two experiment kinds share).

The kinds' modules import the heavy libraries (:mod:`vpf_spiking.evaluation`, the trainers,
plotting) inside their ``run`` functions, so importing this package stays cheap.  The libraries
never import this package or :mod:`vpf_spiking.cli` (``tests/test_architecture.py`` checks it).
"""

from .config import TOP_KEYS, ProtocolConfig, apply_overrides, check_keys, dump_toml, get_value, table
from .inputs import default_data_dir, load_model_and_data, load_training_data, parse_network_and_data
from .kinds import KINDS
from .runner import known_kinds, load_protocol, output_dir, resolve_kind, run_protocol
from .train import METHODS, OPTIMIZERS, parse_train

__all__ = [
    "KINDS", "ProtocolConfig", "TOP_KEYS", "load_protocol", "run_protocol", "output_dir", "known_kinds",
    "resolve_kind", "table", "check_keys", "get_value", "apply_overrides", "dump_toml", "parse_train",
    "METHODS", "OPTIMIZERS", "default_data_dir", "load_training_data", "load_model_and_data",
    "parse_network_and_data",
]
