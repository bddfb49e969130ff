"""``vpf train --engine spiking`` and the ``spiking-train`` protocol kind.

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

import time
from pathlib import Path

from ..errors import ConfigError
from ..protocols import (ProtocolConfig, check_keys, get_value, load_model_and_data, parse_network_and_data,
                         register_protocol, run_protocol, table)
from .devices import DEVICES

_SPIKING_KEYS = {"epochs", "eta", "eta_b", "rule", "settle_ms", "learn_ms", "dt_ms", "chunk", "device",
                 "seed", "checkpoint_every", "progress", "codegen"}


def parse_spiking_train(config: ProtocolConfig) -> dict:
    src = config.source
    check_keys(config, {"kind", "name", "description", "network", "data", "spiking"}, "the top level", src)
    common = parse_network_and_data(config)
    sp = table(config, "spiking", _SPIKING_KEYS, source=src)
    w = "spiking"
    kw = {
        "epochs": get_value(sp, "epochs", int, w, src, minimum=1),
        "eta": get_value(sp, "eta", float, w, src),
        "eta_b": get_value(sp, "eta_b", float, w, src, minimum=0.0),
        "rule": get_value(sp, "rule", str, w, src, choices=("symmetric", "asymmetric")),
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


@register_protocol("spiking-train")
def run_spiking_train(config: ProtocolConfig, out_dir: Path, resume: bool = False):
    """Train a network with the spiking engine; writes model.npz, metrics.csv, checkpoint.npz."""
    from .training import SpikingTrainer

    s = parse_spiking_train(config)
    out_dir = Path(out_dir)
    model, x, _ = load_model_and_data(s)
    trainer = SpikingTrainer(checkpoint=out_dir / "checkpoint.npz", **s["trainer"])
    metrics = trainer.fit(model, x, resume=resume)
    path = out_dir / "metrics.csv"
    tmp = path.with_name(f".{path.name}.tmp")
    metrics.to_csv(tmp, index=False)
    tmp.replace(path)
    model.save(out_dir / "model.npz")
    return model, metrics


def add_arguments(group) -> None:
    """The spiking options of ``vpf train`` (added to its argument group by the main CLI)."""
    group.add_argument("--device", choices=DEVICES, default=None,
                       help="spiking engine: where Brian2 runs (default: cpp_standalone)")
    group.add_argument("--eta", type=float, help="spiking engine: weight change per event (default 0.01; "
                       "--lr is used when --eta is not given)")
    group.add_argument("--rule", choices=("symmetric", "asymmetric"), help="spiking engine: plasticity rule")
    group.add_argument("--settle-ms", type=float, help="spiking engine: settle window per hidden layer (30)")
    group.add_argument("--learn-ms", type=float, help="spiking engine: learning window per example (10)")
    group.add_argument("--dt-ms", type=float, help="spiking engine: simulation time step (0.1)")
    group.add_argument("--chunk", type=int, help="spiking engine: examples per simulation run (100)")


def train_cli(args) -> int:
    """``vpf train NETWORK --engine spiking ...``: build a spiking-train protocol and run it."""
    if getattr(args, "method", "vpf") not in (None, "vpf"):
        raise ConfigError(f"--engine spiking trains by VPF only, not --method {args.method}")
    for opt in ("batch_size", "optimizer", "weight_decay", "k", "e_step_sweeps"):
        if getattr(args, opt, None) is not None:
            raise ConfigError(f"--{opt.replace('_', '-')} applies to the batch engine, not --engine spiking")
    net_key = "path" if Path(args.network).is_file() else "name"
    eta = getattr(args, "eta", None)
    if eta is None:
        eta = getattr(args, "lr", None)
    spiking = {"epochs": args.epochs, "seed": args.seed, "eta": eta,
               "device": getattr(args, "device", None) or "cpp_standalone",
               "rule": getattr(args, "rule", None), "settle_ms": getattr(args, "settle_ms", None),
               "learn_ms": getattr(args, "learn_ms", None), "dt_ms": getattr(args, "dt_ms", None),
               "chunk": getattr(args, "chunk", None)}
    if getattr(args, "no_progress", False):
        spiking["progress"] = False
    data = {"dataset": str(args.data), "data_dir": args.data_dir, "n_train": args.n_train,
            "validation": args.validation or None}
    config = ProtocolConfig({
        "kind": "spiking-train",
        "name": f"{Path(args.network).stem}-spiking",
        "network": {net_key: str(Path(args.network).resolve()) if net_key == "path" else args.network,
                    "seed": args.seed},
        "data": {k: v for k, v in data.items() if v is not None},
        "spiking": {k: v for k, v in spiking.items() if v is not None},
    }, source="vpf train --engine spiking")
    out = Path(args.out) if args.out else Path("runs") / config["name"]
    t0 = time.perf_counter()
    model, metrics = run_protocol(config, out_dir=out, resume=args.resume)
    print(f"trained in {time.perf_counter() - t0:.1f} s on {len(metrics)} chunks; "
          f"wrote {out / 'model.npz'}, {out / 'metrics.csv'}, {out / 'checkpoint.npz'}")
    return 0
