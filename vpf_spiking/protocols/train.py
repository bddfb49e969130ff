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

from ..io import dump_toml, write_csv, write_toml
from ..trainers import params
from .config import TOP_KEYS, ProtocolConfig, check_keys
from .inputs import load_model_and_data, parse_network_and_data

METHODS = params.METHODS
OPTIMIZERS = params.OPTIONS["optimizer"].choices


def parse_train(config: ProtocolConfig) -> dict:
    """Validate a ``kind = "train"`` protocol; return plain settings (network, data, trainer kwargs).

    ``[training]`` is checked by :func:`vpf_spiking.trainers.params.validate` (every option of
    the trainers, declared once there); ``"training"`` in the result holds the method and every
    one of its options, defaults filled in, ``"trainer"`` the keywords of ``make_trainer``.
    """
    src = config.source
    check_keys(config, TOP_KEYS | {"network", "data", "training"}, "the top level", src)
    common = parse_network_and_data(config)
    training = params.validate(config.get("training", {}), src)
    return {
        **common,
        "method": training["method"],
        "training": training,
        "trainer": params.trainer_kwargs(training, training["method"]),
    }


def record_settings(config: ProtocolConfig, out_dir, **tables) -> bool:
    """Rewrite ``out_dir/protocol.toml`` with ``tables`` (e.g. ``training=`` every setting, defaults included).

    The runner records the protocol as given; a kind calls this with the tables it filled in, so
    the record lists every setting the run used.  The file is rewritten only when it is the
    runner's record of ``config`` (its comment header kept) and a table differs; returns whether
    it was rewritten.
    """
    import tomllib

    path = Path(out_dir) / "protocol.toml"
    if not path.is_file():
        return False
    text = path.read_text(encoding="utf-8")
    lines = text.splitlines(keepends=True)
    n_header = next((i for i, line in enumerate(lines) if not line.startswith("#")), len(lines))
    try:
        recorded = tomllib.loads("".join(lines[n_header:]))
    except tomllib.TOMLDecodeError:
        return False
    if recorded != tomllib.loads(dump_toml(dict(config))):
        return False  # not the record of this run: leave it alone
    full = {**dict(config), **tables}
    if all(dict(config).get(k) == v for k, v in tables.items()):
        return False
    write_toml(path, full, header="".join(lines[:n_header]))
    return True


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
    record_settings(config, out_dir, training=s["training"])
    model, x, valid = load_model_and_data(s)
    trainer = make_trainer(s["method"], checkpoint=out_dir / "checkpoint.npz", metrics_csv=out_dir / "metrics.csv",
                           **s["trainer"])
    callback = None
    if valid is not None:
        valid = valid[:1000]  # enough for a per-epoch curve, cheap next to an epoch
        seed = s["trainer"]["seed"]

        def callback(epoch, model, metrics):
            # own RNG per epoch: the trainer's stream (and so a resumed run) stays untouched
            metrics.update(validation_metrics(model, valid, np.random.default_rng([seed, epoch])))

    metrics = trainer.fit(model, x, resume=resume, callback=callback)
    write_metrics(metrics, out_dir / "metrics.csv")
    model.save(out_dir / "model.npz")
    return model, metrics


def write_metrics(metrics, path) -> Path:
    """Write a metrics DataFrame as CSV atomically (a reader never sees half a file)."""
    return write_csv(metrics, path)
