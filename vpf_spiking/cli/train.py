"""``vpf train NETWORK``: train on the batch engine (VPF, CD-k, PCD-k) or with ``--engine spiking``.

The command line is turned into a protocol (``kind = "train"`` or ``"spiking-train"``) and run
by :func:`~vpf_spiking.protocols.run_protocol`, so the run folder's ``protocol.toml`` repeats
the same run with ``vpf run``.
"""

from __future__ import annotations

import time
from pathlib import Path

from ..errors import ConfigError
from ..spiking.devices import DEVICES
from .common import command_line, formatter, print_train_summary

DESCRIPTION = """\
Train a Boltzmann machine with VPF (variational probability flow), CD-k or PCD-k on the
batch engine, writing OUT/model.npz, OUT/metrics.csv (one row per epoch), OUT/checkpoint.npz,
OUT/protocol.toml (the same run as a protocol for 'vpf run') and OUT/command.txt.

examples:
  vpf train rbm-500 --data mnist --method vpf --epochs 10
  vpf train rbm-toy --data my_patterns.npy --method pcd --k 5 --epochs 50 --out runs/toy
  vpf train rbm-500 --out runs/rbm --resume      # continue after an interruption
"""


def add_parser(subparsers):
    p = subparsers.add_parser("train", help="train a network (VPF, CD or PCD)", description=DESCRIPTION,
                              formatter_class=formatter)
    p.add_argument("network", metavar="NETWORK",
                   help="a shipped network (rbm-toy, rbm-100, rbm-500, dbm-500-1000, ...) or a network .toml file")
    g = p.add_argument_group("data")
    g.add_argument("--data", default="mnist", metavar="mnist|fashion-mnist|FILE",
                   help="data set name or a .npy/.npz file of binary rows (default: mnist)")
    g.add_argument("--data-dir", metavar="DIR", help="folder holding mnist/ and fashion-mnist/ (default: see 'vpf data check')")
    g.add_argument("--n-train", type=int, metavar="N", help="use only the first N training examples")
    g.add_argument("--validation", type=int, default=0, metavar="N",
                   help="hold out the last N training examples; adds validation columns to metrics.csv")
    g = p.add_argument_group("training")
    g.add_argument("--method", default="vpf", help="vpf, cd or pcd (default: vpf)")
    g.add_argument("--epochs", type=int, default=10, help="passes over the training data (default: 10)")
    g.add_argument("--batch-size", type=int, metavar="B", help="examples per update (default: the trainer's, 100)")
    g.add_argument("--lr", "--learning-rate", dest="lr", type=float, help="learning rate (default: the trainer's)")
    g.add_argument("--optimizer", help="adam or sgd (default: the trainer's)")
    g.add_argument("--weight-decay", type=float, metavar="L", help="L2 penalty on the weights W and U, not biases (default: 1e-4, the paper's)")
    g.add_argument("--k", type=int, help="Gibbs steps per update for cd/pcd (default: 1)")
    g.add_argument("--e-step-sweeps", type=int, metavar="S", help="VPF: Gibbs sweeps of the E-step in layers with intra-layer weights")
    g.add_argument("--seed", type=int, default=0, help="seed of the initial weights and of training (default: 0)")
    g = p.add_argument_group("run")
    g.add_argument("--out", metavar="DIR", help="output folder (default: runs/<network>-<method>)")
    g.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint.npz")
    g.add_argument("--engine", choices=["batch", "spiking"], default="batch",
                   help="batch: numpy minibatches (default); spiking: the event-driven network")
    g.add_argument("--no-progress", action="store_true", help="no progress bar")
    g = p.add_argument_group("spiking engine (--engine spiking)")
    g.add_argument("--device", choices=DEVICES, default=None,
                   help="spiking engine: where Brian2 runs (default: cpp_standalone)")
    g.add_argument("--eta", type=float, help="spiking engine: weight change per event (default 0.01; "
                   "--lr is used when --eta is not given)")
    g.add_argument("--rule", choices=("symmetric", "asymmetric"), help="spiking engine: plasticity rule")
    g.add_argument("--settle-ms", type=float, help="spiking engine: settle window per hidden layer (30)")
    g.add_argument("--learn-ms", type=float, help="spiking engine: learning window per example (10)")
    g.add_argument("--dt-ms", type=float, help="spiking engine: simulation time step (0.1)")
    g.add_argument("--chunk", type=int, help="spiking engine: examples per simulation run (100)")
    p.set_defaults(func=run)
    return p


def _check_choice(value, choices, option):
    if value is not None and value not in choices:
        raise ConfigError(f"{option}: unknown value {value!r} (choose from {', '.join(choices)})")


def _network_table(args) -> dict:
    # a file is recorded by its absolute path, so protocol.toml reruns from anywhere
    if Path(args.network).is_file():
        return {"path": str(Path(args.network).resolve()), "seed": args.seed}
    return {"name": args.network, "seed": args.seed}


def _data_table(args) -> dict:
    data = {"dataset": str(args.data), "data_dir": args.data_dir, "n_train": args.n_train,
            "validation": args.validation or None}
    return {k: v for k, v in data.items() if v is not None}


def train_config_from_args(args):
    """The ``kind = "train"`` protocol equivalent to a ``vpf train`` command line."""
    from ..protocols import METHODS, OPTIMIZERS, ProtocolConfig

    _check_choice(args.method, METHODS, "--method")
    _check_choice(args.optimizer, OPTIMIZERS, "--optimizer")
    if args.method == "vpf" and args.k is not None:
        raise ConfigError("--k (Gibbs steps) applies to --method cd or pcd, not vpf")
    if args.method != "vpf" and args.e_step_sweeps is not None:
        raise ConfigError(f"--e-step-sweeps applies to --method vpf, not {args.method}")
    for opt, v in (("--epochs", args.epochs), ("--batch-size", args.batch_size), ("--k", args.k),
                   ("--n-train", args.n_train), ("--e-step-sweeps", args.e_step_sweeps)):
        if v is not None and v < 1:
            raise ConfigError(f"{opt} must be at least 1, got {v}")
    if args.lr is not None and not args.lr > 0:
        raise ConfigError(f"--lr must be positive, got {args.lr}")
    if args.weight_decay is not None and not args.weight_decay >= 0:
        raise ConfigError(f"--weight-decay must be >= 0, got {args.weight_decay}")
    if args.validation < 0:
        raise ConfigError(f"--validation must be >= 0, got {args.validation}")
    if args.seed < 0:
        raise ConfigError(f"--seed must be >= 0, got {args.seed}")
    training = {"method": args.method, "epochs": args.epochs, "seed": args.seed,
                "batch_size": args.batch_size, "learning_rate": args.lr, "optimizer": args.optimizer,
                "weight_decay": args.weight_decay, "k": args.k, "e_step_sweeps": args.e_step_sweeps}
    if args.no_progress:
        training["progress"] = False
    return ProtocolConfig({
        "kind": "train",
        "name": f"{Path(args.network).stem}-{args.method}",
        "network": _network_table(args),
        "data": _data_table(args),
        "training": {k: v for k, v in training.items() if v is not None},
    }, source="vpf train")


def spiking_config_from_args(args):
    """The ``kind = "spiking-train"`` protocol equivalent to ``vpf train ... --engine spiking``."""
    from ..protocols import ProtocolConfig

    if args.method not in (None, "vpf"):
        raise ConfigError(f"--engine spiking trains by VPF only, not --method {args.method}")
    for opt in ("batch_size", "optimizer", "weight_decay", "k", "e_step_sweeps"):
        if getattr(args, opt) is not None:
            raise ConfigError(f"--{opt.replace('_', '-')} applies to the batch engine, not --engine spiking")
    spiking = {"epochs": args.epochs, "seed": args.seed, "eta": args.lr if args.eta is None else args.eta,
               "device": args.device or "cpp_standalone", "rule": args.rule, "settle_ms": args.settle_ms,
               "learn_ms": args.learn_ms, "dt_ms": args.dt_ms, "chunk": args.chunk}
    if args.no_progress:
        spiking["progress"] = False
    return ProtocolConfig({
        "kind": "spiking-train",
        "name": f"{Path(args.network).stem}-spiking",
        "network": _network_table(args),
        "data": _data_table(args),
        "spiking": {k: v for k, v in spiking.items() if v is not None},
    }, source="vpf train --engine spiking")


def run(args):
    from ..protocols import output_dir, run_protocol

    spiking = args.engine == "spiking"
    config = spiking_config_from_args(args) if spiking else train_config_from_args(args)
    out = output_dir(config, args.out)
    t0 = time.perf_counter()
    model, metrics = run_protocol(config, out_dir=out, resume=args.resume, command=command_line(args))
    if spiking:
        print(f"trained in {time.perf_counter() - t0:.1f} s on {len(metrics)} chunks; "
              f"wrote {out / 'model.npz'}, {out / 'metrics.csv'}, {out / 'checkpoint.npz'}")
    else:
        print_train_summary(out, metrics, time.perf_counter() - t0)
    return 0
