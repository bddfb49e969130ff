"""Declarative network definitions (``networks/*.toml``).

A definition names the layers, which of them carry intra-layer weights, and the neuron
parameters shared by both engines::

    name = "rbm-500"
    [[layers]]
    name = "visible"
    size = 784
    [[layers]]
    name = "hidden"
    size = 500
    intra = false          # optional, default false
    [neuron]
    temperature = 1.0      # T in p(y) ~ exp(-E/T)
    tau_ms = 10.0          # time constant of the spiking Markov neurons
    [init]
    weight_std = 0.01
    seed = 0

Unknown keys are refused, so a typo never silently falls back to a default.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path

from .errors import ConfigError
from .io import read_text
from .resources import resolve_shipped

_TOP_KEYS = {"name", "description", "layers", "neuron", "init"}
_LAYER_KEYS = {"name", "size", "intra"}
_NEURON_KEYS = {"temperature", "tau_ms"}
_INIT_KEYS = {"weight_std", "seed"}


@dataclass(frozen=True)
class NetworkSpec:
    """A parsed network definition; ``BoltzmannMachine.from_network(spec)`` builds a fresh model."""

    name: str
    sizes: tuple
    intra: tuple
    layer_names: tuple
    temperature: float = 1.0
    tau_ms: float = 10.0
    weight_std: float = 0.01
    seed: int = 0
    description: str = ""
    source: str = ""


def resolve_network_path(path_or_name) -> Path:
    """A path to a file, or the name of a shipped definition (``rbm-500`` -> networks/rbm-500.toml)."""
    return resolve_shipped(path_or_name, "networks", "network")


def load_network(path_or_name) -> NetworkSpec:
    path = resolve_network_path(path_or_name)
    try:
        doc = tomllib.loads(read_text(path, "network"))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML ({exc})") from None
    return parse_network(doc, source=str(path))


def _unknown(keys, allowed, where, source):
    extra = set(keys) - allowed
    if extra:
        raise ConfigError(f"{source}: unknown key(s) {sorted(extra)} in {where} (allowed: {sorted(allowed)})")


def _number(value, what, source, positive=True):
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(f"{source}: {what} must be a number, got {value!r}")
    if positive and not value > 0:
        raise ConfigError(f"{source}: {what} must be positive, got {value}")
    return float(value)


def parse_network(doc: dict, source: str = "<network>") -> NetworkSpec:
    """Validate a network dictionary (as read from TOML) and return a :class:`NetworkSpec`."""
    _unknown(doc, _TOP_KEYS, "the top level", source)
    layers = doc.get("layers")
    if not isinstance(layers, list) or not layers:
        raise ConfigError(f"{source}: needs at least one [[layers]] table")
    sizes, intra, names = [], [], []
    for i, layer in enumerate(layers):
        if not isinstance(layer, dict):
            raise ConfigError(f"{source}: layers[{i}] must be a table")
        _unknown(layer, _LAYER_KEYS, f"layers[{i}]", source)
        size = layer.get("size")
        if isinstance(size, bool) or not isinstance(size, int) or size < 1:
            raise ConfigError(f"{source}: layers[{i}].size must be a positive integer, got {size!r}")
        has_intra = layer.get("intra", False)
        if not isinstance(has_intra, bool):
            raise ConfigError(f"{source}: layers[{i}].intra must be true or false, got {has_intra!r}")
        sizes.append(size)
        intra.append(has_intra)
        names.append(str(layer.get("name", "visible" if i == 0 else f"hidden{i}")))
    if len(sizes) == 1 and not intra[0]:
        raise ConfigError(f"{source}: a single-layer network needs intra = true (it has no other weights)")
    neuron = doc.get("neuron", {})
    init = doc.get("init", {})
    if not isinstance(neuron, dict) or not isinstance(init, dict):
        raise ConfigError(f"{source}: [neuron] and [init] must be tables")
    _unknown(neuron, _NEURON_KEYS, "[neuron]", source)
    _unknown(init, _INIT_KEYS, "[init]", source)
    seed = init.get("seed", 0)
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ConfigError(f"{source}: init.seed must be a non-negative integer, got {seed!r}")
    return NetworkSpec(
        name=str(doc.get("name", Path(source).stem)),
        description=str(doc.get("description", "")),
        sizes=tuple(sizes), intra=tuple(intra), layer_names=tuple(names),
        temperature=_number(neuron.get("temperature", 1.0), "neuron.temperature", source),
        tau_ms=_number(neuron.get("tau_ms", 10.0), "neuron.tau_ms", source),
        weight_std=_number(init.get("weight_std", 0.01), "init.weight_std", source, positive=False),
        seed=seed, source=source,
    )
