"""The ``vpf`` command line: one module per subcommand.

``vpf demo``, ``vpf train``, ``vpf run``, ``vpf info``, ``vpf data check``, ``vpf evaluate``,
``vpf sample`` and ``vpf stdp``; :mod:`.main` builds the parser from the list
:data:`~vpf_spiking.cli.main.SUBCOMMANDS` and runs it.

Adding a subcommand
-------------------
Write a module here with ``add_parser(subparsers)`` (it calls ``subparsers.add_parser(NAME,
help=..., description=..., formatter_class=formatter)``, adds the arguments and
``set_defaults(func=run)``) and ``run(args) -> int``; add the module to ``SUBCOMMANDS``.  Import
the libraries inside ``run``, so that ``vpf --help`` stays fast, and raise
:class:`~vpf_spiking.errors.VPFError` subclasses for mistakes the user can fix.
"""

from .main import SUBCOMMANDS, build_parser, main

__all__ = ["SUBCOMMANDS", "build_parser", "main"]
