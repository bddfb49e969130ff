"""Protocol kind ``spiking-train``: train a network with the spiking engine (Brian2).

A ``spiking-train`` protocol has the tables of ``kind = "train"`` for the network and the data,
and a ``[spiking]`` table with the settings of :class:`~vpf_spiking.spiking.SpikingTrainer`::

    kind = "spiking-train"
    [network]
    name = "rbm-500"
    [data]
    dataset = "mnist"
    n_train = 10000
    [spiking]
    device = "cpp_standalone"
    epochs = 1
    eta = 0.01

Outputs in the run folder: ``model.npz``, ``metrics.csv`` (one row per chunk of examples) and
``checkpoint.npz`` (resumable with ``--resume``).
"""

from __future__ import annotations

from pathlib import Path

from ..spiking.devices import DEVICES
from .config import TOP_KEYS, ProtocolConfig, check_keys, get_value, table
from .inputs import load_model_and_data, parse_network_and_data
from .train import write_metrics

SPIKING_KEYS = frozenset({"epochs", "eta", "eta_b", "rule", "settle_ms", "learn_ms", "dt_ms", "chunk", "device",
                          "seed", "checkpoint_every", "progress", "codegen"})
RULES = ("symmetric", "asymmetric")


def parse_spiking_train(config: ProtocolConfig) -> dict:
    """Validate a ``kind = "spiking-train"`` protocol; return network, data and trainer settings."""
    src = config.source
    check_keys(config, TOP_KEYS | {"network", "data", "spiking"}, "the top level", src)
    common = parse_network_and_data(config)
    sp = table(config, "spiking", SPIKING_KEYS, source=src)
    w = "spiking"
    kw = {
        "epochs": get_value(sp, "epochs", int, w, src, minimum=1),
        "eta": get_value(sp, "eta", float, w, src),
        "eta_b": get_value(sp, "eta_b", float, w, src, minimum=0.0),
        "rule": get_value(sp, "rule", str, w, src, choices=RULES),
        "settle_ms": get_value(sp, "settle_ms", float, w, src),
        "learn_ms": get_value(sp, "learn_ms", float, w, src),
        "dt_ms": get_value(sp, "dt_ms", float, w, src),
        "chunk": get_value(sp, "chunk", int, w, src, minimum=1),
        "device": get_value(sp, "device", str, w, src, choices=DEVICES),
        "seed": get_value(sp, "seed", int, w, src, minimum=0),
        "checkpoint_every": get_value(sp, "checkpoint_every", int, w, src, minimum=1),
        "progress": get_value(sp, "progress", bool, w, src),
        "codegen": get_value(sp, "codegen", str, w, src, choices=("cython", "numpy")),
    }
    return {
        **common,
        "trainer": {k: v for k, v in kw.items() if v is not None},
    }


def run(config: ProtocolConfig, out_dir: Path, resume: bool = False):
    """Train a network with the spiking engine; writes model.npz, metrics.csv, checkpoint.npz."""
    from ..spiking.training import SpikingTrainer

    s = parse_spiking_train(config)
    out_dir = Path(out_dir)
    model, x, _ = load_model_and_data(s)
    trainer = SpikingTrainer(checkpoint=out_dir / "checkpoint.npz", **s["trainer"])
    metrics = trainer.fit(model, x, resume=resume)
    write_metrics(metrics, out_dir / "metrics.csv")
    model.save(out_dir / "model.npz")
    return model, metrics
