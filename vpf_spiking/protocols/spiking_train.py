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
    epochs = 1                # passes over the data: epochs x n_train presentations
    eta = 0.01

Outputs in the run folder: ``model.npz``, ``metrics.csv`` (one row per chunk of examples,
rewritten after every chunk, with the learning signal on a fixed probe: the first 1,000
held-out images when ``data.validation`` is set, ``val_flow`` = K and ``val_recon_error``, else
the first 1,000 training images, ``flow`` and ``recon_error``) and ``checkpoint.npz``
(resumable with ``--resume``).
"""

from __future__ import annotations

from pathlib import Path

from ..spiking.devices import DEVICES
from ..trainers import params
from .config import TOP_KEYS, ProtocolConfig, check_keys, get_value, table
from .inputs import load_model_and_data, parse_network_and_data
from .train import write_metrics

#: The batch trainers' options that the spiking engine reads too (declared in
#: :mod:`vpf_spiking.trainers.params` with ``spiking=True``; the learning rate is ``eta`` here).
SHARED = tuple(o.name for o in params.OPTIONS.values() if o.spiking and o.name != "learning_rate")
SPIKING_KEYS = frozenset({"eta", "eta_b", "rule", "settle_ms", "learn_ms", "dt_ms", "chunk", "device",
                          "checkpoint_every", "codegen", "visible_bias_init", *SHARED})
RULES = ("symmetric", "asymmetric")


def parse_spiking_train(config: ProtocolConfig) -> dict:
    """Validate a ``kind = "spiking-train"`` protocol; return network, data and trainer settings."""
    src = config.source
    check_keys(config, TOP_KEYS | {"network", "data", "spiking"}, "the top level", src)
    common = parse_network_and_data(config)
    sp = table(config, "spiking", SPIKING_KEYS, source=src)
    w = "spiking"
    kw = {name: params.OPTIONS[name].check(sp[name], f"{src}: {w}.{name}") for name in SHARED if name in sp}
    kw |= {
        "eta": get_value(sp, "eta", float, w, src),
        "eta_b": get_value(sp, "eta_b", float, w, src, minimum=0.0),
        "rule": get_value(sp, "rule", str, w, src, choices=RULES),
        "settle_ms": get_value(sp, "settle_ms", float, w, src),
        "learn_ms": get_value(sp, "learn_ms", float, w, src),
        "dt_ms": get_value(sp, "dt_ms", float, w, src),
        "chunk": get_value(sp, "chunk", int, w, src, minimum=1),
        "device": get_value(sp, "device", str, w, src, choices=DEVICES),
        "checkpoint_every": get_value(sp, "checkpoint_every", int, w, src, minimum=1),
        "codegen": get_value(sp, "codegen", str, w, src, choices=("cython", "numpy")),
        "visible_bias_init": get_value(sp, "visible_bias_init", str, w, src, choices=("marginals", "zero")),
    }
    return {
        **common,
        "trainer": {k: v for k, v in kw.items() if v is not None},
    }


def run(config: ProtocolConfig, out_dir: Path, resume: bool = False):
    """Train a network with the spiking engine; writes model.npz, metrics.csv, checkpoint.npz."""
    from ..spiking.training import PROBE_EXAMPLES, SpikingTrainer

    s = parse_spiking_train(config)
    out_dir = Path(out_dir)
    model, x, valid = load_model_and_data(s)
    trainer = SpikingTrainer(checkpoint=out_dir / "checkpoint.npz", metrics_file=out_dir / "metrics.csv",
                             **s["trainer"])
    probe = None if valid is None else valid[:PROBE_EXAMPLES]
    metrics = trainer.fit(model, x, resume=resume, probe=probe)
    write_metrics(metrics, out_dir / "metrics.csv")
    model.save(out_dir / "model.npz")
    return model, metrics
