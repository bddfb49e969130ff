"""``vpf``: the parser made of every subcommand, and :func:`main`.

Every error the user can fix is a :class:`~vpf_spiking.errors.VPFError`; :func:`main` prints it
as one line, ``vpf: error: <message>``, and returns 2, as it does for OS errors (named by path)
and for running out of memory.  Ctrl-C returns 130; a closed output pipe ends quietly (141).
"""

from __future__ import annotations

import sys
import warnings

from .._version import __version__
from ..errors import VPFError, VPFWarning
from . import data, demo, evaluate, info, run, sample, stdp, sweep, train
from . import simulate
from .common import Parser, formatter

#: The subcommands, in the order ``vpf --help`` lists them.
SUBCOMMANDS = [demo, train, run, info, data, evaluate, sample, simulate, stdp, sweep]


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
    """Run ``vpf`` with ``argv`` (default ``sys.argv[1:]``); return the exit status.

    Every error the user can fix or that the machine causes prints one line, ``vpf: error:
    ...``, and returns 2: a :class:`~vpf_spiking.errors.VPFError`, an :class:`OSError` (named
    by its path: a read-only or full disk, a missing folder) and a :class:`MemoryError`.
    Ctrl-C returns 130; a closed output pipe (``vpf info --json m.npz | head``) ends quietly
    with 141, the status of a process killed by SIGPIPE, as ``cat`` and ``grep`` do.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    shown = warnings.showwarning
    warnings.showwarning = _show_warning
    try:
        parser = build_parser()
        try:
            args = parser.parse_args(argv)
        except SystemExit as exc:  # --help, --version and usage errors
            return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 2)
        args._argv = argv
        status = int(args.func(args) or 0)
        sys.stdout.flush()  # a closed pipe shows up here rather than at exit
        return status
    except VPFError as exc:
        return _error(str(exc))
    except BrokenPipeError:
        _silence_stdout()
        return 141
    except OSError as exc:
        from ..io import describe_os_error

        return _error(describe_os_error(exc))
    except UnicodeDecodeError as exc:  # a text file read without vpf_spiking.io.read_text
        return _error(f"an input file (network or protocol TOML) is not UTF-8 text ({exc.reason} at byte {exc.start})")
    except MemoryError as exc:
        detail = " ".join(str(exc).split())
        return _error(f"out of memory{': ' + detail if detail else ''}; use a smaller model, batch or data set")
    except KeyboardInterrupt:
        print("vpf: interrupted (a run with a checkpoint continues with --resume)", file=sys.stderr)
        return 130
    finally:
        warnings.showwarning = shown


def _show_warning(message, category, filename, lineno, file=None, line=None):
    """A :class:`VPFWarning` as one line, ``vpf: warning: ...``; any other warning as Python shows it."""
    if issubclass(category, VPFWarning):
        try:
            print(f"vpf: warning: {' '.join(str(message).split())}", file=sys.stderr)
        except OSError:
            pass
    else:
        warnings._showwarning_orig(message, category, filename, lineno, file, line)


def _error(message) -> int:
    msg = " ".join(str(message).split())
    try:
        print(f"vpf: error: {msg}", file=sys.stderr)
    except OSError:  # stderr closed too: nothing left to tell
        pass
    return 2


def _silence_stdout():
    """Point stdout at /dev/null so the interpreter's final flush does not fail on the closed pipe."""
    import os

    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError, AttributeError):  # not a real file (tests capture stdout)
        pass
