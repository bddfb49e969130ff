"""A protocol as data: :class:`ProtocolConfig`, typed reads of its tables, ``--set`` overrides, TOML out.

Every reader here raises :class:`~vpf_spiking.errors.ConfigError` naming the protocol file and
the key, so a kind never has to word its own messages for typos, wrong types or bad ranges.
"""

from __future__ import annotations

import copy
import math
import re
import tomllib
from pathlib import Path

from ..errors import ConfigError
from ..io import dump_toml  # noqa: F401  (re-exported: protocols write TOML through it)

#: Top-level keys every kind accepts besides its own tables.
TOP_KEYS = frozenset({"kind", "name", "description", "sweep"})  # [sweep]: read by vpf sweep only


class ProtocolConfig(dict):
    """A protocol as a dict, plus where it came from.

    Parameters
    ----------
    source : str or path
        The file it was read from (or a label such as ``"vpf train"``), used in error messages.
    overrides : sequence of str
        The ``KEY=VALUE`` items already applied (see :func:`apply_overrides`), recorded in the
        run folder's ``protocol.toml``.
    """

    def __init__(self, *args, source="<protocol>", overrides=(), **kw):
        super().__init__(*args, **kw)
        self.source = str(source)
        self.overrides = tuple(overrides)

    @property
    def name(self) -> str:
        """``name`` if given, else the file's stem, else the kind."""
        if self.get("name"):
            return self["name"]
        if self.source.endswith(".toml"):
            return Path(self.source).stem
        return str(self.get("kind", "protocol"))


# ---------------------------------------------------------------------------- reading tables
def table(config: dict, key: str, allowed, required=(), source=None) -> dict:
    """Sub-table ``config[key]`` (empty if absent) with unknown or missing keys refused."""
    source = source or getattr(config, "source", "<protocol>")
    value = config.get(key, {})
    if not isinstance(value, dict):
        raise ConfigError(f"{source}: [{key}] must be a table, got {value!r}")
    check_keys(value, allowed, f"[{key}]", source)
    missing = [k for k in required if k not in value]
    if missing:
        raise ConfigError(f"{source}: [{key}] needs key(s) {missing}")
    return value


def check_keys(mapping: dict, allowed, where: str, source: str) -> None:
    """Refuse keys of ``mapping`` outside ``allowed``, naming ``where`` (e.g. ``"[training]"``)."""
    extra = sorted(set(mapping) - set(allowed))
    if extra:
        raise ConfigError(f"{source}: unknown key(s) {extra} in {where} (allowed: {sorted(allowed)})")


def get_value(tab: dict, key: str, kind, where: str, source: str, default=None, minimum=None, choices=None):
    """Typed read of ``tab[key]``: kind is int, float, str or bool; ConfigError names file and key."""
    if key not in tab:
        return default
    v = tab[key]
    ok = {
        int: isinstance(v, int) and not isinstance(v, bool),
        float: isinstance(v, (int, float)) and not isinstance(v, bool),
        str: isinstance(v, str),
        bool: isinstance(v, bool),
    }[kind]
    if not ok:
        raise ConfigError(f"{source}: {where}.{key} must be {_type_word(kind)}, got {v!r}")
    if kind is float:
        v = float(v)
        if not math.isfinite(v):
            raise ConfigError(f"{source}: {where}.{key} must be finite, got {v}")
    if minimum is not None and v < minimum:
        raise ConfigError(f"{source}: {where}.{key} must be >= {minimum}, got {v}")
    if choices is not None and v not in choices:
        raise ConfigError(f"{source}: {where}.{key} must be one of {list(choices)}, got {v!r}")
    return v


def _type_word(kind):
    return {int: "an integer", float: "a number", str: "a string", bool: "true or false"}[kind]


# ---------------------------------------------------------------------------- overrides
def apply_overrides(config: ProtocolConfig, overrides) -> ProtocolConfig:
    """Apply ``["training.epochs=3", 'data.dataset="fashion-mnist"']`` to a copy of ``config``.

    Values are read as TOML (``3``, ``1e-3``, ``true``, ``"text"``, ``[1, 2]``); a value that is
    not valid TOML is taken as a plain string, so ``data.dataset=fashion-mnist`` works too.
    """
    overrides = [str(item) for item in overrides or ()]
    out = ProtocolConfig(copy.deepcopy(dict(config)), source=config.source,
                         overrides=getattr(config, "overrides", ()) + tuple(overrides))
    for item in overrides:
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not key or not re.fullmatch(r"[A-Za-z0-9_\-]+(\.[A-Za-z0-9_\-]+)*", key):
            raise ConfigError(f"--set {item!r}: expected KEY=VALUE with a dotted key, e.g. training.epochs=3")
        try:
            value = tomllib.loads(f"v = {raw.strip()}")["v"]
        except tomllib.TOMLDecodeError:
            value = raw.strip()
        node = out
        parts = key.split(".")
        for p in parts[:-1]:
            child = node.setdefault(p, {})
            if not isinstance(child, dict):
                raise ConfigError(f"--set {item!r}: {p!r} is not a table in {config.source}")
            node = child
        node[parts[-1]] = value
    return out


# ---------------------------------------------------------------------------- writing
# dump_toml lives in vpf_spiking.io (imported above) with the other writers; kept importable here.
