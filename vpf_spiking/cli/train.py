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
from ..trainers.params import OPTIONS
from .common import DEVICE_HELP, command_line, formatter, print_train_summary, times_ms
from .options import add_arguments, flag, from_args, given_args

#: Help texts that say more than the declaration for this command.
HELPS = {"seed": "seed of the initial weights ([network] seed) and of the trainer's random numbers "
                 "(E-step samples, Gibbs chains, minibatch order)"}

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
    g.add_argument("--binarize", action="store_true",
                   help="threshold a data FILE's values in [0, 1] at 0.5 (default: refuse values other than 0 and 1)")
    # every trainer option, derived from vpf_spiking.trainers.params (flags, help, defaults, checks)
    add_arguments(p.add_argument_group("training"), helps=HELPS)
    g = p.add_argument_group("run")
    g.add_argument("--out", metavar="DIR", help="output folder (default: runs/<network>-<method>)")
    g.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint.npz")
    g.add_argument("--overwrite", action="store_true", help="replace the results of an earlier run in OUT")
    g.add_argument("--engine", choices=["batch", "spiking"], default="batch",
                   help="batch: numpy minibatches (default); spiking: the event-driven network")
    g = p.add_argument_group("spiking engine (--engine spiking)")
    g.add_argument("--device", choices=DEVICES, default=None,
                   help=f"spiking engine: {DEVICE_HELP}")
    g.add_argument("--eta", type=float, help="spiking engine: weight change per event (default 0.01; "
                   "--lr is used when --eta is not given)")
    g.add_argument("--rule", choices=("symmetric", "asymmetric"), help="spiking engine: plasticity rule")
    g.add_argument("--settle-ms", metavar="TIME", help="spiking engine: settle window per hidden layer (30; "
                   "a number in ms or a Brian2 time such as 30ms)")
    g.add_argument("--learn-ms", metavar="TIME", help="spiking engine: learning window per example (10)")
    g.add_argument("--dt-ms", metavar="TIME", help="spiking engine: simulation time step (0.1)")
    g.add_argument("--chunk", type=int, help="spiking engine: examples per simulation run (100)")
    p.set_defaults(func=run)
    return p


def _network_table(args, seed) -> dict:
    # a file is recorded by its absolute path, so protocol.toml reruns from anywhere
    if Path(args.network).is_file():
        return {"path": str(Path(args.network).resolve()), "seed": seed}
    return {"name": args.network, "seed": seed}


def _data_table(args) -> dict:
    data = {"dataset": str(args.data), "data_dir": args.data_dir, "n_train": args.n_train,
            "validation": args.validation or None, "binarize": True if args.binarize else None}
    return {k: v for k, v in data.items() if v is not None}


def train_config_from_args(args):
    """The ``kind = "train"`` protocol equivalent to a ``vpf train`` command line.

    Its ``[training]`` table holds every option of the method, defaults included (checked here
    once, by :func:`~vpf_spiking.cli.options.from_args`, with the flag named in messages), so the
    run folder's ``protocol.toml`` shows every setting of the run.
    """
    from ..protocols import ProtocolConfig

    training = from_args(args)
    return ProtocolConfig({
        "kind": "train",
        "name": f"{Path(args.network).stem}-{training['method']}",
        "network": _network_table(args, training["seed"]),
        "data": _data_table(args),
        "training": training,
    }, source="vpf train")


def spiking_config_from_args(args):
    """The ``kind = "spiking-train"`` protocol equivalent to ``vpf train ... --engine spiking``.

    The trainer options the spiking engine reads (``Option.spiking``: epochs, the learning rate as
    ``eta``, seed, progress) carry over; any other option given is refused.
    """
    from ..protocols import ProtocolConfig

    if args.method is not None and args.method.lower() != "vpf":
        raise ConfigError(f"--engine spiking trains by VPF only, not --method {args.method}")
    given = given_args(args)
    batch_only = [n for n in given if not OPTIONS[n].spiking]
    if batch_only:
        verb = "applies" if len(batch_only) == 1 else "apply"
        raise ConfigError(f"{', '.join(flag(n) for n in batch_only)} {verb} to the batch engine, "
                          f"not --engine spiking")
    s = from_args(args, ("vpf",))
    eta = args.eta
    if eta is None and "learning_rate" in given:
        eta = s["learning_rate"]  # --lr stands for --eta
    spiking = {"epochs": s["epochs"], "seed": s["seed"], "eta": eta,
               "device": args.device, "rule": args.rule, "chunk": args.chunk,
               **times_ms(args, ("settle_ms", "learn_ms", "dt_ms"))}
    if not s["progress"]:
        spiking["progress"] = False
    return ProtocolConfig({
        "kind": "spiking-train",
        "name": f"{Path(args.network).stem}-spiking",
        "network": _network_table(args, s["seed"]),
        "data": _data_table(args),
        "spiking": {k: v for k, v in spiking.items() if v is not None},
    }, source="vpf train --engine spiking")


def run(args):
    from ..protocols import output_dir, run_protocol

    spiking = args.engine == "spiking"
    config = spiking_config_from_args(args) if spiking else train_config_from_args(args)
    out = output_dir(config, args.out)
    t0 = time.perf_counter()
    model, metrics = run_protocol(config, out_dir=out, resume=args.resume, overwrite=args.overwrite,
                                  command=command_line(args))
    if spiking:
        print(f"trained in {time.perf_counter() - t0:.1f} s on {len(metrics)} chunks; "
              f"wrote {out / 'model.npz'}, {out / 'metrics.csv'}, {out / 'checkpoint.npz'}")
    else:
        print_train_summary(out, metrics, time.perf_counter() - t0)
    return 0
