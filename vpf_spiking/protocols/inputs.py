"""The tables that name a run's inputs, and loading what they name.

- ``[network]`` and ``[data]`` of the training kinds (``train``, ``spiking-train``):
  :func:`parse_network_and_data`, :func:`load_model_and_data`;
- ``[data]`` of the evaluation kinds (validation held out, test set, greyscale copies):
  :func:`data_settings`, :func:`load_data`;
- ``[model]`` of the single-model kinds: :func:`model_path`;
- :func:`default_data_dir`, where every ``vpf`` command looks for MNIST.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..errors import ConfigError
from .config import ProtocolConfig, get_value, table

NETWORK_KEYS = frozenset({"name", "path", "seed"})
TRAINING_DATA_KEYS = frozenset({"dataset", "data_dir", "n_train", "validation", "binarize"})
EVALUATION_DATA_KEYS = frozenset({"dataset", "data_dir", "validation", "n_train", "n_test", "binarize"})


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


# ---------------------------------------------------------------------------- training kinds
def parse_network_and_data(config: ProtocolConfig) -> dict:
    """The ``[network]`` and ``[data]`` tables shared by the training kinds, validated."""
    src = config.source
    net = table(config, "network", NETWORK_KEYS, source=src)
    if ("name" in net) == ("path" in net):
        raise ConfigError(f"{src}: [network] needs exactly one of name = \"rbm-500\" or path = \"file.toml\"")
    network = get_value(net, "name", str, "network", src) or get_value(net, "path", str, "network", src)
    if "path" in net and not Path(network).is_absolute() and Path(src).is_file():
        # a relative path is relative to the protocol file, so protocols travel with their networks
        cand = Path(src).parent / network
        network = str(cand) if cand.exists() else network
    data = table(config, "data", TRAINING_DATA_KEYS, required=("dataset",), source=src)
    return {
        "network": network,
        "network_seed": get_value(net, "seed", int, "network", src, minimum=0),
        "dataset": get_value(data, "dataset", str, "data", src),
        "data_dir": get_value(data, "data_dir", str, "data", src),
        "n_train": get_value(data, "n_train", int, "data", src, minimum=1),
        "validation": get_value(data, "validation", int, "data", src, default=0, minimum=0),
        "binarize": _binarize(data, src),
    }


def _binarize(data: dict, src):
    """``data.binarize``: true thresholds greyscale files at 0.5; absent: files must be 0/1 already."""
    return True if get_value(data, "binarize", bool, "data", src, default=False) else None


def load_training_data(settings: dict):
    """(train, validation-or-None) float32 binary arrays for the ``[data]`` settings.

    A data file that also holds a ``test`` array has it checked too (same width, binary), so a
    later evaluation does not fail on it after a long training run.
    """
    from .. import data as data_mod

    dd = default_data_dir(settings["data_dir"])
    binarize = settings.get("binarize")
    x = data_mod.resolve_data(settings["dataset"], "train", data_dir=dd, binarize=binarize)
    if settings["dataset"] not in data_mod.DATASETS and data_mod.has_split(settings["dataset"], "test"):
        test = data_mod.resolve_data(settings["dataset"], "test", data_dir=dd, binarize=binarize)
        if test.shape[1] != x.shape[1]:
            raise ConfigError(f"{settings['dataset']}: the 'test' array has {test.shape[1]} columns but the "
                              f"'train' array has {x.shape[1]}")
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
    from ..model import BoltzmannMachine

    model = BoltzmannMachine.from_network(settings["network"], seed=settings["network_seed"])
    x, valid = load_training_data(settings)
    if x.shape[1] != model.sizes[0]:
        raise ConfigError(f"{settings['dataset']}: examples have {x.shape[1]} values but network "
                          f"{settings['network']} has {model.sizes[0]} visible units")
    return model, x, valid


# ---------------------------------------------------------------------------- evaluation kinds
def data_settings(config) -> dict:
    """The ``[data]`` table of the evaluation kinds (1,000 validation images by default)."""
    src = config.source
    d = table(config, "data", EVALUATION_DATA_KEYS, required=("dataset",), source=src)
    return {"dataset": get_value(d, "dataset", str, "data", src),
            "data_dir": get_value(d, "data_dir", str, "data", src),
            "validation": get_value(d, "validation", int, "data", src, default=1000, minimum=1),
            "n_train": get_value(d, "n_train", int, "data", src, minimum=1),
            "n_test": get_value(d, "n_test", int, "data", src, minimum=1),
            "binarize": _binarize(d, src)}


def load_data(ds: dict, greyscale=False) -> dict:
    """Binary train (validation held out), binary test; greyscale validation and test if asked."""
    from .. import data as data_mod

    dd = default_data_dir(ds["data_dir"])
    binarize = ds.get("binarize")
    out = {}
    x = data_mod.resolve_data(ds["dataset"], "train", data_dir=dd, binarize=binarize)
    out["train"], out["valid"] = data_mod.split_validation(x, ds["validation"])
    if ds["n_train"]:
        out["train"] = out["train"][:ds["n_train"]]
    out["test"] = data_mod.resolve_data(ds["dataset"], "test", data_dir=dd, binarize=binarize)[:ds["n_test"]]
    if greyscale:
        g = data_mod.resolve_data(ds["dataset"], "train", data_dir=dd, binarize=False)
        out["valid_grey"] = data_mod.split_validation(g, ds["validation"])[1]
        out["test_grey"] = data_mod.resolve_data(ds["dataset"], "test", data_dir=dd, binarize=False)[:ds["n_test"]]
    return out


def model_path(config) -> Path:
    """``[model] path``; a relative path that does not exist is taken relative to the protocol file."""
    src = config.source
    t = table(config, "model", {"path"}, required=("path",), source=src)
    p = Path(get_value(t, "path", str, "model", src))
    if not p.is_absolute() and not p.exists() and Path(src).is_file():
        p = Path(src).parent / p
    return p


def square_shape(n, src):
    """(side, side) for images of ``n`` pixels; ConfigError naming ``src`` when not square."""
    side = int(round(np.sqrt(n)))
    if side * side != n:
        raise ConfigError(f"{src}: images of {n} pixels are not square; rows/columns and image grids need square images")
    return side, side
