"""What the subcommands share: the parser class, the help formatter, the recorded command line."""

from __future__ import annotations

import argparse
import shlex
import sys


class Parser(argparse.ArgumentParser):
    """argparse, with usage errors on one line (and the usual exit status 2)."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


def formatter(prog):
    """Help formatter: descriptions and epilogs as written (examples keep their lines)."""
    return argparse.RawDescriptionHelpFormatter(prog, max_help_position=32)


def times_ms(args, names, signed=()):
    """The time options ``names`` of ``args`` in ms, by name: each a plain number (ms) or a Brian2
    time (``30ms``, ``'0.5 s'``); an option not given stays None; ``signed`` ones may be negative."""
    from ..spiking.recording import parse_duration

    out = {}
    for name in names:
        text = getattr(args, name)
        out[name] = None if text is None else parse_duration(text, "--" + name.replace("_", "-"),
                                                             signed=name in signed)
    return out


#: the help of every --device option (one policy: vpf_spiking.spiking.devices.default_device)
DEVICE_HELP = "where Brian2 runs (default: cpp_standalone where a C++ compiler exists, else runtime; $VPF_DEVICE sets it)"
OVERWRITE_HELP = "replace the results of an earlier run in OUT (without it, and without --resume, such a folder is refused)"


def add_overwrite_option(parser):
    """``--overwrite`` (``args.overwrite``) on ``parser`` or an argument group of it."""
    parser.add_argument("--overwrite", action="store_true", help=OVERWRITE_HELP)


def add_output_options(parser, out_help="output folder", resume=True):
    """``--out DIR``, ``--resume`` (when the command can continue a run) and ``--overwrite``.

    The run folder rules (see docs/guide.md, "Runs and files"): an existing folder holding an
    earlier run's results is refused unless ``--resume`` continues it or ``--overwrite``
    replaces it; pass both flags on to :func:`~vpf_spiking.protocols.run_protocol`.
    """
    parser.add_argument("--out", metavar="DIR", help=out_help)
    if resume:
        parser.add_argument("--resume", action="store_true", help="continue from the checkpoint in OUT")
    add_overwrite_option(parser)


def command_line(args) -> str:
    """The command as typed (``vpf ...``), for the run folder's ``command.txt``."""
    return shlex.join(["vpf"] + list(getattr(args, "_argv", sys.argv[1:])))


def print_train_summary(out, metrics, seconds):
    """The last epoch's metrics and the files written by a training run."""
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
