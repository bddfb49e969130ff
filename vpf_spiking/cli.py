"""The ``vpf`` command line: ``vpf demo``, ``vpf train``, ``vpf run``, ``vpf info``, ``vpf data check``.

Every error the user can fix is a :class:`~vpf_spiking.errors.VPFError`; :func:`main` prints it
as one line, ``vpf: error: <message>``, and returns 2.  Ctrl-C returns 130.

Adding a subcommand
-------------------
Write ``add_subcommand(subparsers)`` in your module: it calls ``subparsers.add_parser(NAME,
help=..., description=...)``, adds the arguments and ``set_defaults(func=run)`` where
``run(args) -> int | None``.  Then append ``(NAME, "module:add_subcommand", "one-line help")`` to
:data:`EXTENSION_COMMANDS`.  The module is imported only when its command runs (the help line is
listed without importing it, so ``vpf --help`` stays fast), and skipped if it does not exist.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import json
import shlex
import sys
import time
from pathlib import Path

from .errors import ConfigError, VPFError

#: (command, "module:function that adds the subparser", one-line help) for commands that live
#: in other modules.  Missing modules are skipped.
EXTENSION_COMMANDS: list[tuple[str, str, str]] = [
    ("evaluate", "vpf_spiking.evaluation.command:add_subcommand", "reconstruction / Parzen / AIS evaluation of a saved model"),
    ("sample", "vpf_spiking.generation:add_subcommand", "draw confabulations from a trained model (Algorithm 3, R or P prior)"),
    ("stdp", "vpf_spiking.stdp:add_subcommand", "STDP pairing protocol on the spiking engine (curve vs closed form)"),
]


class _Parser(argparse.ArgumentParser):
    """argparse, with usage errors on one line (and the usual exit status 2)."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


def _formatter(prog):
    return argparse.RawDescriptionHelpFormatter(prog, max_help_position=32)


# ============================================================================ vpf train
TRAIN_DESCRIPTION = """\
Train a Boltzmann machine with VPF (variational probability flow), CD-k or PCD-k on the
batch engine, writing OUT/model.npz, OUT/metrics.csv (one row per epoch), OUT/checkpoint.npz,
OUT/protocol.toml (the same run as a protocol for 'vpf run') and OUT/command.txt.

examples:
  vpf train rbm-500 --data mnist --method vpf --epochs 10
  vpf train rbm-toy --data my_patterns.npy --method pcd --k 5 --epochs 50 --out runs/toy
  vpf train rbm-500 --out runs/rbm --resume      # continue after an interruption
"""


def add_train(subparsers):
    p = subparsers.add_parser("train", help="train a network (VPF, CD or PCD)", description=TRAIN_DESCRIPTION,
                              formatter_class=_formatter)
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
    if _module_exists("vpf_spiking.spiking.cli:add_arguments"):
        from .spiking.cli import add_arguments as add_spiking_arguments  # no Brian2 import until used

        add_spiking_arguments(p.add_argument_group("spiking engine (--engine spiking)"))
    p.set_defaults(func=cmd_train)
    return p


def _check_choice(value, choices, option):
    if value is not None and value not in choices:
        raise ConfigError(f"{option}: unknown value {value!r} (choose from {', '.join(choices)})")


def train_config_from_args(args) -> dict:
    """The ``kind = "train"`` protocol equivalent to a ``vpf train`` command line."""
    from .protocols import METHODS, OPTIMIZERS, ProtocolConfig

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
    net_key = "path" if Path(args.network).is_file() else "name"
    net_name = Path(args.network).stem
    training = {"method": args.method, "epochs": args.epochs, "seed": args.seed,
                "batch_size": args.batch_size, "learning_rate": args.lr, "optimizer": args.optimizer,
                "weight_decay": args.weight_decay, "k": args.k, "e_step_sweeps": args.e_step_sweeps}
    if args.no_progress:
        training["progress"] = False
    data = {"dataset": str(args.data), "data_dir": args.data_dir, "n_train": args.n_train,
            "validation": args.validation or None}
    config = {
        "kind": "train",
        "name": f"{net_name}-{args.method}",
        "network": {net_key: str(Path(args.network).resolve()) if net_key == "path" else args.network,
                    "seed": args.seed},
        "data": {k: v for k, v in data.items() if v is not None},
        "training": {k: v for k, v in training.items() if v is not None},
    }
    return ProtocolConfig(config, source="vpf train")


def cmd_train(args):
    if args.engine == "spiking":
        try:
            spiking = importlib.import_module("vpf_spiking.spiking")
        except ModuleNotFoundError as exc:
            if exc.name not in ("vpf_spiking.spiking",):
                raise
            raise ConfigError("--engine spiking: the spiking engine (vpf_spiking.spiking) is not available") from None
        if not hasattr(spiking, "train_cli"):
            raise ConfigError("--engine spiking: vpf_spiking.spiking has no train_cli yet")
        return spiking.train_cli(args)
    from .protocols import output_dir, run_protocol

    config = train_config_from_args(args)
    out = output_dir(config, args.out)
    t0 = time.perf_counter()
    model, metrics = run_protocol(config, out_dir=out, resume=args.resume, command=_command_line(args))
    _print_train_summary(out, metrics, time.perf_counter() - t0)
    return 0


def _print_train_summary(out, metrics, seconds):
    if len(metrics):
        last = metrics.iloc[-1]
        shown = ", ".join(f"{k} {_fmt(v)}" for k, v in last.items())
        print(f"last epoch: {shown}")
    print(f"trained in {seconds:.1f} s; wrote {out / 'model.npz'}, {out / 'metrics.csv'}, {out / 'checkpoint.npz'}")


def _fmt(v):
    try:
        f = float(v)
    except (TypeError, ValueError):
        return str(v)
    return str(int(f)) if f.is_integer() and abs(f) < 1e9 else f"{f:.4g}"


# ============================================================================ vpf run
RUN_DESCRIPTION = """\
Run a protocol file: one reproducible experiment (training, evaluation, sampling, STDP, ...)
described in TOML by 'kind = "..."' and that kind's tables.  Results go to OUT (default
runs/<protocol name>/), with the effective protocol (protocol.toml) and command.txt beside them.

examples:
  vpf run protocols/demo.toml
  vpf run protocols/train-rbm-mnist.toml --set training.epochs=2 --set data.n_train=5000
"""


def add_run(subparsers):
    p = subparsers.add_parser("run", help="run a protocol file (protocols/*.toml)", description=RUN_DESCRIPTION,
                              formatter_class=_formatter)
    p.add_argument("protocol", metavar="PROTOCOL.toml", nargs="?", help="protocol file")
    p.add_argument("--out", metavar="DIR", help="output folder (default: runs/<protocol name>)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a protocol value, e.g. --set training.epochs=3 (repeatable; values are TOML)")
    p.add_argument("--resume", action="store_true", help="continue from the checkpoint in OUT (kinds that support it)")
    p.add_argument("--list-kinds", action="store_true", help="list the protocol kinds that can run, and exit")
    p.set_defaults(func=cmd_run)
    return p


def cmd_run(args):
    from .protocols import apply_overrides, known_kinds, load_protocol, output_dir, run_protocol

    if args.list_kinds:
        print("\n".join(known_kinds()))
        return 0
    if args.protocol is None:
        raise ConfigError("vpf run needs a PROTOCOL.toml file (or --list-kinds); see 'vpf run --help'")
    config = load_protocol(args.protocol)
    out = output_dir(apply_overrides(config, args.overrides), args.out)
    print(f"running protocol {args.protocol} (kind {config['kind']}) into {out}/")
    t0 = time.perf_counter()
    result = run_protocol(config, out_dir=out, overrides=args.overrides, resume=args.resume,
                          command=_command_line(args))
    if config["kind"] == "train" and isinstance(result, tuple):
        _print_train_summary(out, result[1], time.perf_counter() - t0)
    else:
        print(f"done in {time.perf_counter() - t0:.1f} s; results in {out}/")
    return 0


# ============================================================================ vpf info
def add_info(subparsers):
    p = subparsers.add_parser("info", help="describe a saved model (sizes, parameter statistics)",
                              description="Print a saved model's layers and statistics of every parameter "
                                          "(shape, mean, std, min, max; for weights also the spec's sparsity "
                                          "||W||_1^2 / (n_in n_out ||W||_2^2) and mean squared weight).",
                              formatter_class=_formatter)
    p.add_argument("model", metavar="MODEL.npz", help="a model written by vpf train / BoltzmannMachine.save")
    p.add_argument("--json", action="store_true", help="print the same as JSON")
    p.set_defaults(func=cmd_info)
    return p


def model_info(model) -> dict:
    """Sizes, flags and per-parameter statistics of a model, as plain Python values."""
    import numpy as np

    params = {}
    for name, a in model.parameters().items():
        a64 = np.asarray(a, dtype=np.float64)
        entry = {"shape": list(a.shape), "mean": float(a64.mean()), "std": float(a64.std()),
                 "min": float(a64.min()), "max": float(a64.max())}
        if name[0] in "WU":
            l2 = float(np.sum(a64 ** 2))
            entry["mean_sq"] = float(np.mean(a64 ** 2))
            entry["sparsity"] = float(np.sum(np.abs(a64)) ** 2 / (a64.size * l2)) if l2 > 0 else float("nan")
        params[name] = entry
    return {"name": model.name, "sizes": list(model.sizes), "intra": list(model.intra),
            "temperature": float(model.temperature), "tau_ms": float(model.tau_ms), "dtype": str(model.dtype),
            "n_parameters": int(sum(a.size for a in model.parameters().values())), "parameters": params}


def cmd_info(args):
    from .model import BoltzmannMachine

    info = model_info(BoltzmannMachine.load(args.model))
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    kind = "RBM" if len(info["sizes"]) == 2 and not any(info["intra"]) else "Boltzmann machine"
    print(f"{args.model}: {kind} '{info['name']}'")
    print(f"  layers      {' - '.join(str(n) for n in info['sizes'])}"
          f"   (intra-layer weights: {', '.join('yes' if x else 'no' for x in info['intra'])})")
    print(f"  temperature {info['temperature']:g}   tau {info['tau_ms']:g} ms   dtype {info['dtype']}")
    print(f"  parameters  {info['n_parameters']:,}")
    print(f"  {'name':<5} {'shape':<12} {'mean':>10} {'std':>10} {'min':>10} {'max':>10} {'mean sq':>10} {'sparsity':>9}")
    for name, e in info["parameters"].items():
        shape = "x".join(str(s) for s in e["shape"])
        extra = f" {e['mean_sq']:>10.4g} {e['sparsity']:>9.4f}" if "sparsity" in e else ""
        print(f"  {name:<5} {shape:<12} {e['mean']:>10.4g} {e['std']:>10.4g} {e['min']:>10.4g} {e['max']:>10.4g}{extra}")
    return 0


# ============================================================================ vpf data
def add_data(subparsers):
    p = subparsers.add_parser("data", help="check the MNIST / Fashion-MNIST files",
                              description="Data set utilities.", formatter_class=_formatter)
    sub = p.add_subparsers(dest="data_command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True
    c = sub.add_parser("check", help="find, read and verify the data files",
                       description="Find the MNIST and Fashion-MNIST files (--data-dir, else $VPF_DATA_DIR, else the "
                                   "data module's default places), read them and verify their checksums.",
                       formatter_class=_formatter)
    c.add_argument("--data-dir", metavar="DIR", help="folder holding mnist/ and fashion-mnist/")
    c.set_defaults(func=cmd_data_check)
    return p


def cmd_data_check(args):
    from .data import check_data
    from .protocols import default_data_dir

    table = check_data(data_dir=default_data_dir(args.data_dir))
    for _, r in table.iterrows():
        where = r["path"] if r["status"] == "ok" else r["detail"]
        print(f"{r['dataset']:<14} {r['split']:<5} {r['kind']:<6} {r['status']:<7} {where}")
    bad = table[table["status"] != "ok"]
    if len(bad) == 0:
        print(f"all {len(table)} files found and verified")
        return 0
    print(f"{len(bad)} of {len(table)} files missing or bad (see 'vpf data check --help' for where files are looked up)")
    return 1


# ============================================================================ vpf demo
DEMO_DESCRIPTION = """\
A short real run: a 784-100 RBM (networks/rbm-100.toml) trained by VPF (Adam, learning rate
0.01) for 5 epochs on the first 10,000 MNIST training images (well under a minute on 2 cores),
then pictures of what it learned.
Writes into OUT (default runs/demo/): model.npz, metrics.csv, filters.png (the weights of the
hidden units as 28x28 images) and samples.png (test images, their reconstructions, and
confabulations: images generated from the model by Algorithm 3 of the paper).

MNIST is looked up in --data-dir, else $VPF_DATA_DIR, else the data module's default places, else
../shared/data relative to the current folder (where it lies beside a checkout of the project).
"""


def add_demo(subparsers):
    p = subparsers.add_parser("demo", help="train a small RBM on MNIST and draw what it learned (< 1 min)",
                              description=DEMO_DESCRIPTION, formatter_class=_formatter)
    p.add_argument("--out", metavar="DIR", default="runs/demo", help="output folder (default: runs/demo)")
    p.add_argument("--data-dir", metavar="DIR", help="folder holding mnist/")
    p.add_argument("--epochs", type=int, default=5, help="epochs (default: 5)")
    p.add_argument("--lr", type=float, default=1e-3, help="learning rate (default: 1e-3, the paper's)")
    p.add_argument("--n-train", type=int, default=10000, metavar="N", help="training images (default: 10000)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    p.set_defaults(func=cmd_demo)
    return p


def demo_config(epochs=5, n_train=10000, lr=1e-3, seed=0, data_dir=None):
    """The ``train`` protocol that ``vpf demo`` runs (the same as protocols/demo.toml by default)."""
    from .protocols import ProtocolConfig

    data = {"dataset": "mnist", "n_train": n_train}
    if data_dir:
        data["data_dir"] = str(data_dir)
    return ProtocolConfig({
        "kind": "train", "name": "demo",
        "network": {"name": "rbm-100", "seed": seed},
        "data": data,
        "training": {"method": "vpf", "epochs": epochs, "learning_rate": lr, "seed": seed},
    }, source="vpf demo")


def cmd_demo(args):
    from .protocols import default_data_dir, run_protocol

    if args.epochs < 1 or args.n_train < 1:
        raise ConfigError("--epochs and --n-train must be at least 1")
    if not args.lr > 0:
        raise ConfigError(f"--lr must be positive, got {args.lr}")
    from threadpoolctl import threadpool_limits

    from .data import resolve_data

    data_dir = default_data_dir(args.data_dir)
    config = demo_config(args.epochs, args.n_train, args.lr, args.seed, data_dir)
    out = Path(args.out)
    print(f"vpf demo: training a 784-100 RBM by VPF, {args.epochs} epoch(s) on {args.n_train:,} MNIST images")
    # The demo's products are small (100 x 784 x 100); with other work on the cores, two BLAS
    # threads made its training ~8x slower and its Gibbs chains ~30x slower than one thread.
    with threadpool_limits(limits=1, user_api="blas"):
        t0 = time.perf_counter()
        model, metrics = run_protocol(config, out_dir=out, command=_command_line(args))
        t_train = time.perf_counter() - t0
        train = resolve_data("mnist", "train", data_dir=data_dir)[:args.n_train]
        test = resolve_data("mnist", "test", data_dir=data_dir)
        pictures = demo_figures(model, train, test, out, seed=args.seed)
    _print_train_summary(out, metrics, t_train)
    print("pictures: " + ", ".join(str(p) for p in pictures))
    print(f"next: vpf info {out / 'model.npz'}   |   vpf train --help   |   vpf run protocols/train-rbm-mnist.toml")
    return 0


def demo_figures(model, train_images, test_images, out_dir, seed=0, n_filters=100, steps=100):
    """Write filters.png and samples.png for a trained model with square images; return their paths.

    samples.png: 10 test images, their reconstructions p(v | h) after one up-down pass, and 10
    confabulations (Algorithm 3, :func:`vpf_spiking.generation.confabulate`) with the P prior
    (the mean bottom-up activation over ``train_images``) and ``steps`` Gibbs steps.
    """
    import numpy as np

    from .generation import confabulate
    from .plotting import save_filters, save_image_grid
    from .sampling import bottom_up, sample_layer

    out_dir = Path(out_dir)
    rng = np.random.default_rng(seed)
    side = int(round(np.sqrt(model.sizes[0])))
    if side * side != model.sizes[0]:
        raise ConfigError(f"pictures need square images; the model has {model.sizes[0]} visible units")
    shape = (side, side)
    filters = save_filters(model.W[1], out_dir / "filters.png", n=n_filters, shape=shape,
                           title=f"weights of the first {min(n_filters, model.sizes[1])} hidden units")
    k = 10
    v = np.asarray(test_images[:k], dtype=model.dtype)
    state, _ = bottom_up(model, v, rng)
    recon = sample_layer(model, state, 0, rng, below=False, above=True)
    confab = confabulate(model, k, prior="p", steps=steps, rng=rng, data=train_images)
    samples = save_image_grid(np.concatenate([v, recon, confab]), out_dir / "samples.png", shape=shape,
                              ncols=k, title=f"test images / reconstructions p(v|h) / "
                                             f"confabulations (P prior, {steps} Gibbs steps)")
    return [filters, samples]


# ============================================================================ parser and main
def _command_line(args) -> str:
    return shlex.join(["vpf"] + list(getattr(args, "_argv", sys.argv[1:])))


BUILTIN_COMMANDS = [add_demo, add_train, add_run, add_info, add_data]


def _resolve(spec):
    mod_name, _, attr = spec.partition(":")
    return getattr(importlib.import_module(mod_name), attr)


def _module_exists(spec) -> bool:
    """Whether the module of ``"pkg.mod:func"`` exists, without importing (running) any package of it."""
    from importlib.machinery import PathFinder

    parts = spec.partition(":")[0].split(".")
    if parts[0] in sys.modules:
        path = getattr(sys.modules[parts[0]], "__path__", None)
    else:
        found = PathFinder.find_spec(parts[0])
        if found is None:
            return False
        path = found.submodule_search_locations
    for i, part in enumerate(parts[1:], 1):
        if path is None:
            return False
        found = PathFinder.find_spec(part, list(path))
        if found is None:
            return False
        path = found.submodule_search_locations
    return True


def build_parser(argv=None) -> argparse.ArgumentParser:
    """The full parser.  Extension commands are imported only if ``argv`` invokes them."""
    from . import __version__

    parser = _Parser(prog="vpf", formatter_class=_formatter,
                     description="Boltzmann machines that learn by variational probability flow (VPF), "
                                 "in batch and as spiking networks.",
                     epilog="Start with 'vpf demo'.  Every command has --help.")
    parser.add_argument("--version", action="version", version=f"vpf-spiking {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True
    for add in BUILTIN_COMMANDS:
        add(sub)
    invoked = next((a for a in (argv or []) if not a.startswith("-")), None)
    for name, spec, help_line in EXTENSION_COMMANDS:
        if not _module_exists(spec):
            continue
        if name == invoked:
            _resolve(spec)(sub)
        else:
            # listed in 'vpf --help' without importing the module (which may load Brian2)
            sub.add_parser(name, help=help_line, add_help=False)
    return parser


def main(argv=None) -> int:
    """Run ``vpf`` with ``argv`` (default ``sys.argv[1:]``); return the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        parser = build_parser(argv)
        try:
            args = parser.parse_args(argv)
        except SystemExit as exc:  # --help, --version and usage errors
            return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 2)
        args._argv = argv
        return int(args.func(args) or 0)
    except VPFError as exc:
        msg = " ".join(str(exc).split())
        print(f"vpf: error: {msg}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("vpf: interrupted (a run with a checkpoint continues with --resume)", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
