"""Protocol kind ``train``: train a network on a data set with the batch engine (VPF, CD-k, PCD-k).

::

    kind = "train"
    [network]
    name = "rbm-500"          # or path = "my-net.toml" (relative to the protocol file)
    [data]
    dataset = "mnist"
    validation = 1000         # optional: held-out examples, per-epoch val_* columns
    [training]
    method = "vpf"
    epochs = 10

Outputs in the run folder: ``model.npz``, ``metrics.csv`` (one row per epoch) and
``checkpoint.npz`` (resumable with ``--resume``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import ConfigError
from .config import TOP_KEYS, ProtocolConfig, check_keys, get_value, table
from .inputs import load_model_and_data, parse_network_and_data

TRAINING_KEYS = frozenset({"method", "epochs", "batch_size", "learning_rate", "optimizer", "weight_decay", "k",
                           "e_step_sweeps", "seed", "progress"})
METHODS = ("vpf", "cd", "pcd")
OPTIMIZERS = ("adam", "sgd")


def parse_train(config: ProtocolConfig) -> dict:
    """Validate a ``kind = "train"`` protocol; return plain settings (network, data, trainer kwargs)."""
    src = config.source
    check_keys(config, TOP_KEYS | {"network", "data", "training"}, "the top level", src)
    common = parse_network_and_data(config)
    tr = table(config, "training", TRAINING_KEYS, source=src)
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


def validation_metrics(model, x, rng) -> dict:
    """Per-epoch checks on held-out data, comparable with the trainer's training-set columns.

    ``val_flow`` is the VPF objective K (spec section 2) at the E-step sample (v, h ~ bottom-up);
    ``val_recon_error`` and ``val_hidden_mean`` are :func:`vpf_spiking.trainers.probe_metrics`
    (the trainer's ``recon_error`` and ``hidden_mean``) on ``x``.
    """
    from ..objective import objective
    from ..sampling import bottom_up
    from ..trainers import probe_metrics

    state, _ = bottom_up(model, x, rng)
    out = {"val_flow": objective(model, state)}
    out.update({f"val_{k}": v for k, v in probe_metrics(model, x).items()})
    return out


def run(config: ProtocolConfig, out_dir: Path, resume: bool = False):
    """Train a network on a data set: writes ``model.npz``, ``metrics.csv`` and ``checkpoint.npz``.

    With ``resume=True`` training continues from ``out_dir/checkpoint.npz`` (same protocol; the
    trainer starts from epoch 1, with a note, when there is no checkpoint yet).
    Returns ``(model, metrics)`` with metrics a pandas DataFrame, one row per epoch.
    """
    from ..trainers import make_trainer

    s = parse_train(config)
    out_dir = Path(out_dir)
    model, x, valid = load_model_and_data(s)
    trainer = make_trainer(s["method"], checkpoint=out_dir / "checkpoint.npz", **s["trainer"])
    callback = None
    if valid is not None:
        valid = valid[:1000]  # enough for a per-epoch curve, cheap next to an epoch
        seed = s["trainer"].get("seed", 0)

        def callback(epoch, model, metrics):
            # own RNG per epoch: the trainer's stream (and so a resumed run) stays untouched
            metrics.update(validation_metrics(model, valid, np.random.default_rng([seed, epoch])))

    metrics = trainer.fit(model, x, resume=resume, callback=callback)
    write_metrics(metrics, out_dir / "metrics.csv")
    model.save(out_dir / "model.npz")
    return model, metrics


def write_metrics(metrics, path) -> Path:
    """Write a metrics DataFrame as CSV atomically (a reader never sees half a file)."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    metrics.to_csv(tmp, index=False)
    tmp.replace(path)
    return path
