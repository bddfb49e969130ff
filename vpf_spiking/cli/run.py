"""``vpf run PROTOCOL.toml``: run a protocol file (see :mod:`vpf_spiking.protocols`)."""

from __future__ import annotations

import time

from ..errors import ConfigError
from .common import add_overwrite_option, command_line, formatter, print_train_summary

DESCRIPTION = """\
Run a protocol file: one reproducible experiment (training, evaluation, sampling, STDP, ...)
described in TOML by 'kind = "..."' and that kind's tables.  Results go to OUT (default
runs/<protocol name>/), with the effective protocol (protocol.toml) and command.txt beside them.
A folder holding an earlier run's results is refused unless --resume or --overwrite.

examples:
  vpf run protocols/demo.toml
  vpf run protocols/train-rbm-mnist.toml --set training.epochs=2 --set data.n_train=5000
"""


def add_parser(subparsers):
    p = subparsers.add_parser("run", help="run a protocol file (protocols/*.toml)", description=DESCRIPTION,
                              formatter_class=formatter)
    p.add_argument("protocol", metavar="PROTOCOL.toml", nargs="?", help="protocol file")
    p.add_argument("--out", metavar="DIR", help="output folder (default: runs/<protocol name>)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a protocol value, e.g. --set training.epochs=3 (repeatable; values are TOML)")
    p.add_argument("--resume", action="store_true", help="continue from the checkpoint in OUT (kinds that support it)")
    add_overwrite_option(p)
    p.add_argument("--list-kinds", action="store_true", help="list the protocol kinds that can run, and exit")
    p.set_defaults(func=run)
    return p


def run(args):
    from ..protocols import apply_overrides, known_kinds, load_protocol, output_dir, run_protocol

    if args.list_kinds:
        print("\n".join(known_kinds()))
        return 0
    if args.protocol is None:
        raise ConfigError("vpf run needs a PROTOCOL.toml file (or --list-kinds); see 'vpf run --help'")
    # the overrides are applied once; the config remembers them for protocol.toml
    config = apply_overrides(load_protocol(args.protocol), args.overrides)
    out = output_dir(config, args.out)
    print(f"running protocol {args.protocol} (kind {config['kind']}) into {out}/")
    t0 = time.perf_counter()
    result = run_protocol(config, out_dir=out, resume=args.resume, overwrite=args.overwrite,
                          command=command_line(args))
    if config["kind"] == "train" and isinstance(result, tuple):
        print_train_summary(out, result[1], time.perf_counter() - t0)
    else:
        print(f"done in {time.perf_counter() - t0:.1f} s; results in {out}/")
    return 0
