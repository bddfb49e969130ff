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

The runner resolves the kind in :data:`PROTOCOL_KINDS`, creates the output folder (default
``runs/<name>/``), writes the effective protocol (``protocol.toml``, overrides applied) and the
command that started it (``command.txt``) there, and calls the kind's function with
``(config, out_dir)``.

Adding a kind
-------------
Either decorate a function in any module with :func:`register_protocol`, and list that module in
:data:`PROTOCOL_MODULES` (imported only when a kind is not found yet), or map the kind to a
``"module:function"`` string in :data:`PROTOCOL_KINDS`, which is imported on first use.  The
function receives a :class:`ProtocolConfig` (a dict that also knows its ``source`` file) and a
:class:`pathlib.Path`; it may accept a ``resume`` keyword, which ``vpf run --resume`` passes.
Use :func:`table` to read a sub-table with unknown keys refused, naming the file.
"""

from __future__ import annotations

import copy
import importlib
import importlib.util
import inspect
import json
import math
import os
import re
import shlex
import sys
import time
import tomllib
from pathlib import Path
from typing import Callable

import numpy as np

from .errors import ConfigError
from .resources import resolve_shipped

#: kind -> callable(config, out_dir) or "module:function" (resolved on use).
PROTOCOL_KINDS: dict[str, Callable | str] = {}

#: Modules that may register kinds with @register_protocol; imported (when present) only to
#: resolve a kind that is not known yet.  A module that does not exist is skipped.
PROTOCOL_MODULES = [
    "vpf_spiking.evaluation",   # reconstruction, parzen, ais, rbm-experiment, dbm-experiment
    "vpf_spiking.spiking",      # spiking-train
    "vpf_spiking.stdp",         # stdp
]

_TOP_KEYS = {"kind", "name", "description"}


class ProtocolConfig(dict):
    """A protocol as a dict, plus ``source`` (the file it came from, for error messages)."""

    def __init__(self, *args, source="<protocol>", **kw):
        super().__init__(*args, **kw)
        self.source = str(source)

    @property
    def name(self) -> str:
        """``name`` if given, else the file's stem, else the kind."""
        if self.get("name"):
            return self["name"]
        if self.source.endswith(".toml"):
            return Path(self.source).stem
        return str(self.get("kind", "protocol"))


def register_protocol(kind: str):
    """Decorator: ``@register_protocol("parzen")`` makes ``kind = "parzen"`` run the function."""

    def deco(func):
        PROTOCOL_KINDS[kind] = func
        return func

    return deco


# ---------------------------------------------------------------------------- loading
def load_protocol(path) -> ProtocolConfig:
    """Read a protocol file (or a shipped one by name: ``demo``); check its TOML and ``kind``."""
    path = resolve_shipped(path, "protocols", "protocol")
    try:
        doc = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML ({exc})") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not a text (UTF-8) file") from None
    config = ProtocolConfig(doc, source=path)
    resolve_kind(config)
    return config


def known_kinds() -> list[str]:
    """Every kind that can be run (imports the optional modules of :data:`PROTOCOL_MODULES`)."""
    _import_protocol_modules()
    return sorted(PROTOCOL_KINDS)


def _import_protocol_modules():
    for name in PROTOCOL_MODULES:
        _optional_import(name)


def _optional_import(name):
    """Import ``name``; return None when the module itself does not exist (any other error surfaces)."""
    try:
        if importlib.util.find_spec(name) is None:
            return None
    except ModuleNotFoundError:
        return None
    return importlib.import_module(name)


def resolve_kind(config: ProtocolConfig) -> Callable:
    """The function that runs ``config['kind']``; ConfigError listing the known kinds otherwise."""
    src = config.source
    if "kind" not in config:
        raise ConfigError(f"{src}: missing top-level key 'kind' (known kinds: {', '.join(known_kinds())})")
    kind = config["kind"]
    if not isinstance(kind, str):
        raise ConfigError(f"{src}: 'kind' must be a string, got {kind!r}")
    if kind not in PROTOCOL_KINDS:
        _import_protocol_modules()
    if kind not in PROTOCOL_KINDS:
        raise ConfigError(f"{src}: unknown kind {kind!r} (known kinds: {', '.join(known_kinds())})")
    func = PROTOCOL_KINDS[kind]
    if isinstance(func, str):
        mod_name, _, attr = func.partition(":")
        module = _optional_import(mod_name)
        if module is None or not hasattr(module, attr):
            raise ConfigError(f"{src}: kind {kind!r} needs {func}, which is not installed")
        func = PROTOCOL_KINDS[kind] = getattr(module, attr)
    return func


# ---------------------------------------------------------------------------- helpers for kinds
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
    out = ProtocolConfig(copy.deepcopy(dict(config)), source=config.source)
    for item in overrides or ():
        key, sep, raw = str(item).partition("=")
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


def dump_toml(doc: dict) -> str:
    """Write a protocol dict (scalars, lists, nested tables, arrays of tables) as TOML."""
    lines: list[str] = []

    def scalar(v):
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, (int, np.integer)):
            return str(int(v))
        if isinstance(v, (float, np.floating)):
            v = float(v)
            if math.isnan(v):
                return "nan"
            if math.isinf(v):
                return "inf" if v > 0 else "-inf"
            return repr(v)
        if isinstance(v, (list, tuple)):
            return "[" + ", ".join(scalar(x) for x in v) + "]"
        return json.dumps(str(v))  # a JSON string is a valid TOML basic string

    def key(k):
        return k if re.fullmatch(r"[A-Za-z0-9_\-]+", k) else json.dumps(k)

    def emit(d, prefix):
        subs = []
        for k, v in d.items():
            if isinstance(v, dict):
                subs.append((k, v, False))
            elif isinstance(v, list) and v and all(isinstance(x, dict) for x in v):
                subs.append((k, v, True))
            else:
                lines.append(f"{key(k)} = {scalar(v)}")
        for k, v, is_array in subs:
            name = f"{prefix}{key(k)}"
            for item in (v if is_array else [v]):
                lines.append("")
                lines.append(f"[[{name}]]" if is_array else f"[{name}]")
                emit(item, name + ".")

    emit(doc, "")
    return "\n".join(lines).lstrip("\n") + "\n"


# ---------------------------------------------------------------------------- running
def output_dir(config: ProtocolConfig, out_dir=None) -> Path:
    """``out_dir`` if given, else ``runs/<name>`` (the name must be a plain file name)."""
    if out_dir is not None:
        return Path(out_dir)
    name = config.name
    if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9_.\-]+", name):
        raise ConfigError(f"{config.source}: name must be a plain file name (letters, digits, . _ -), got {name!r}")
    return Path("runs") / name


def run_protocol(path_or_dict, out_dir=None, overrides=None, resume=False, command=None):
    """Run a protocol file (or dict) and return what its kind's function returns.

    Parameters
    ----------
    path_or_dict : path or dict
        A ``protocols/*.toml`` file, or an already parsed protocol.
    out_dir : path, optional
        Output folder; default ``runs/<name>/`` under the current directory.
    overrides : list of str, optional
        ``KEY=VALUE`` items as for ``vpf run --set`` (see :func:`apply_overrides`).
    resume : bool
        Continue from the checkpoint in ``out_dir`` (kinds that accept ``resume``).
    command : str, optional
        The command line recorded in ``command.txt`` (default: this process's argv).
    """
    if isinstance(path_or_dict, (str, Path)):
        config = load_protocol(path_or_dict)
    elif isinstance(path_or_dict, dict):
        config = path_or_dict if isinstance(path_or_dict, ProtocolConfig) else ProtocolConfig(path_or_dict)
    else:
        raise ConfigError(f"a protocol must be a file path or a dict, got {type(path_or_dict).__name__}")
    if overrides:
        config = apply_overrides(config, overrides)
    func = resolve_kind(config)
    out = output_dir(config, out_dir)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"{out}: exists and is not a folder")
    out.mkdir(parents=True, exist_ok=True)

    accepts_resume = "resume" in inspect.signature(func).parameters
    if resume and not accepts_resume:
        raise ConfigError(f"kind {config['kind']!r} cannot resume (run it again without --resume)")

    header = f"# effective protocol, written by vpf at {time.strftime('%Y-%m-%d %H:%M:%S')}\n"
    header += f"# source: {config.source}\n"
    if overrides:
        header += f"# overrides: {' '.join(overrides)}\n"
    (out / "protocol.toml").write_text(header + dump_toml(dict(config)), encoding="utf-8")
    if command is None:
        command = shlex.join([Path(sys.argv[0]).name] + sys.argv[1:]) if sys.argv and sys.argv[0] else "python"
    with open(out / "command.txt", "a", encoding="utf-8") as fh:
        fh.write(command + "\n")

    kwargs = {"resume": resume} if accepts_resume else {}
    return func(config, out, **kwargs)


# ---------------------------------------------------------------------------- kind "train"
_NETWORK_KEYS = {"name", "path", "seed"}
_DATA_KEYS = {"dataset", "data_dir", "n_train", "validation"}
_TRAINING_KEYS = {"method", "epochs", "batch_size", "learning_rate", "optimizer", "weight_decay", "k",
                  "e_step_sweeps", "seed", "progress"}
METHODS = ("vpf", "cd", "pcd")
OPTIMIZERS = ("adam", "sgd")


def parse_network_and_data(config: ProtocolConfig) -> dict:
    """The ``[network]`` and ``[data]`` tables shared by the training kinds, validated."""
    src = config.source
    net = table(config, "network", _NETWORK_KEYS, source=src)
    if ("name" in net) == ("path" in net):
        raise ConfigError(f"{src}: [network] needs exactly one of name = \"rbm-500\" or path = \"file.toml\"")
    network = get_value(net, "name", str, "network", src) or get_value(net, "path", str, "network", src)
    if "path" in net and not Path(network).is_absolute() and Path(src).is_file():
        # a relative path is relative to the protocol file, so protocols travel with their networks
        cand = Path(src).parent / network
        network = str(cand) if cand.exists() else network
    data = table(config, "data", _DATA_KEYS, required=("dataset",), source=src)
    return {
        "network": network,
        "network_seed": get_value(net, "seed", int, "network", src, minimum=0),
        "dataset": get_value(data, "dataset", str, "data", src),
        "data_dir": get_value(data, "data_dir", str, "data", src),
        "n_train": get_value(data, "n_train", int, "data", src, minimum=1),
        "validation": get_value(data, "validation", int, "data", src, default=0, minimum=0),
    }


def parse_train(config: ProtocolConfig) -> dict:
    """Validate a ``kind = "train"`` protocol; return plain settings (network, data, trainer kwargs)."""
    src = config.source
    check_keys(config, _TOP_KEYS | {"network", "data", "training"}, "the top level", src)
    common = parse_network_and_data(config)
    tr = table(config, "training", _TRAINING_KEYS, source=src)
    method = get_value(tr, "method", str, "training", src, default="vpf", choices=METHODS)
    kw = {
        "epochs": get_value(tr, "epochs", int, "training", src, default=10, minimum=1),
        "batch_size": get_value(tr, "batch_size", int, "training", src, minimum=1),
        "learning_rate": get_value(tr, "learning_rate", float, "training", src),
        "optimizer": get_value(tr, "optimizer", str, "training", src, choices=OPTIMIZERS),
        "weight_decay": get_value(tr, "weight_decay", float, "training", src, minimum=0.0),
        "seed": get_value(tr, "seed", int, "training", src, minimum=0),
        "progress": get_value(tr, "progress", bool, "training", src),
    }
    if kw["learning_rate"] is not None and kw["learning_rate"] <= 0:
        raise ConfigError(f"{src}: training.learning_rate must be positive, got {kw['learning_rate']}")
    if method == "vpf":
        if "k" in tr:
            raise ConfigError(f"{src}: training.k (Gibbs steps) applies to method cd or pcd, not vpf")
        kw["e_step_sweeps"] = get_value(tr, "e_step_sweeps", int, "training", src, minimum=1)
    else:
        if "e_step_sweeps" in tr:
            raise ConfigError(f"{src}: training.e_step_sweeps applies to method vpf, not {method}")
        kw["k"] = get_value(tr, "k", int, "training", src, minimum=1)
    return {
        **common,
        "method": method,
        "trainer": {k: v for k, v in kw.items() if v is not None},
    }


def default_data_dir(explicit=None):
    """Where the ``vpf`` command looks for MNIST when no folder is named.

    ``explicit`` (``--data-dir`` or ``data.data_dir``) if given; else None when ``$VPF_DATA_DIR``
    is set (the data module reads it); else ``../shared/data`` relative to the current folder if it
    holds ``mnist/`` or ``fashion-mnist/`` (where the data lie beside a checkout of the project);
    else None, and the data module searches its default places.
    """
    if explicit:
        return str(explicit)
    if os.environ.get("VPF_DATA_DIR", "").strip():
        return None
    beside = Path("..") / "shared" / "data"
    if (beside / "mnist").is_dir() or (beside / "fashion-mnist").is_dir():
        return str(beside.resolve())
    return None


def load_training_data(settings: dict):
    """(train, validation-or-None) float32 binary arrays for the ``[data]`` settings."""
    from . import data as data_mod

    x = data_mod.resolve_data(settings["dataset"], "train", data_dir=default_data_dir(settings["data_dir"]))
    n_valid = settings["validation"]
    valid = None
    if n_valid:
        if n_valid >= len(x):
            raise ConfigError(f"data.validation = {n_valid} leaves no training data ({len(x)} examples)")
        x, valid = data_mod.split_validation(x, n_valid)
    if settings["n_train"] is not None:
        x = x[: settings["n_train"]]
    return x, valid


def load_model_and_data(settings: dict):
    """(model, train, validation-or-None) for the ``[network]`` and ``[data]`` settings.

    The model is built from the network with its seed; ConfigError when the data's width is not
    the network's number of visible units.
    """
    from .model import BoltzmannMachine

    model = BoltzmannMachine.from_network(settings["network"], seed=settings["network_seed"])
    x, valid = load_training_data(settings)
    if x.shape[1] != model.sizes[0]:
        raise ConfigError(f"{settings['dataset']}: examples have {x.shape[1]} values but network "
                          f"{settings['network']} has {model.sizes[0]} visible units")
    return model, x, valid


def validation_metrics(model, x, rng) -> dict:
    """Per-epoch checks on held-out data, comparable with the trainer's training-set columns.

    ``val_flow`` is the VPF objective K (spec section 2) at the E-step sample (v, h ~ bottom-up);
    ``val_recon_error`` and ``val_hidden_mean`` are :func:`vpf_spiking.trainers.probe_metrics`
    (the trainer's ``recon_error`` and ``hidden_mean``) on ``x``.
    """
    from .objective import objective
    from .sampling import bottom_up
    from .trainers import probe_metrics

    state, _ = bottom_up(model, x, rng)
    out = {"val_flow": objective(model, state)}
    out.update({f"val_{k}": v for k, v in probe_metrics(model, x).items()})
    return out


@register_protocol("train")
def run_train(config: ProtocolConfig, out_dir: Path, resume: bool = False):
    """Train a network on a data set: writes ``model.npz``, ``metrics.csv`` and ``checkpoint.npz``.

    With ``resume=True`` training continues from ``out_dir/checkpoint.npz`` (same protocol; the
    trainer starts from epoch 1, with a note, when there is no checkpoint yet).
    Returns ``(model, metrics)`` with metrics a pandas DataFrame, one row per epoch.
    """
    s = parse_train(config)
    out_dir = Path(out_dir)
    model, x, valid = load_model_and_data(s)
    from .trainers import make_trainer

    trainer = make_trainer(s["method"], checkpoint=out_dir / "checkpoint.npz", **s["trainer"])
    callback = None
    if valid is not None:
        valid = valid[:1000]  # enough for a per-epoch curve, cheap next to an epoch
        seed = s["trainer"].get("seed", 0)

        def callback(epoch, model, metrics):
            # own RNG per epoch: the trainer's stream (and so a resumed run) stays untouched
            metrics.update(validation_metrics(model, valid, np.random.default_rng([seed, epoch])))

    metrics = trainer.fit(model, x, resume=resume, callback=callback)
    path = out_dir / "metrics.csv"
    tmp = path.with_name(f".{path.name}.tmp")
    metrics.to_csv(tmp, index=False)
    tmp.replace(path)
    model.save(out_dir / "model.npz")
    return model, metrics


__all__ = [
    "PROTOCOL_KINDS", "PROTOCOL_MODULES", "ProtocolConfig", "register_protocol", "load_protocol",
    "run_protocol", "output_dir", "known_kinds", "resolve_kind", "table", "check_keys", "get_value",
    "apply_overrides", "dump_toml", "run_train", "parse_train", "default_data_dir", "load_training_data",
    "load_model_and_data",
]
