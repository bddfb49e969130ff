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
