"""``vpf``: the parser made of every subcommand, and :func:`main`.

Every error the user can fix is a :class:`~vpf_spiking.errors.VPFError`; :func:`main` prints it
as one line, ``vpf: error: <message>``, and returns 2.  Ctrl-C returns 130.
"""

from __future__ import annotations

import sys

from .._version import __version__
from ..errors import VPFError
from . import data, demo, evaluate, info, run, sample, stdp, sweep, train
from .common import Parser, formatter

#: The subcommands, in the order ``vpf --help`` lists them.
SUBCOMMANDS = [demo, train, run, info, data, evaluate, sample, stdp, sweep]


def build_parser() -> Parser:
    """The full ``vpf`` parser (importing it loads no Brian2, pandas or scipy)."""
    parser = Parser(prog="vpf", formatter_class=formatter,
                    description="Boltzmann machines that learn by variational probability flow (VPF), "
                                "in batch and as spiking networks.",
                    epilog="Start with 'vpf demo'.  Every command has --help.")
    parser.add_argument("--version", action="version", version=f"vpf-spiking {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    sub.required = True
    for command in SUBCOMMANDS:
        command.add_parser(sub)
    return parser


def main(argv=None) -> int:
    """Run ``vpf`` with ``argv`` (default ``sys.argv[1:]``); return the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        parser = build_parser()
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
