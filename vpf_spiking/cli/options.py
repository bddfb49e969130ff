"""The trainer options of :mod:`vpf_spiking.trainers.params` as command-line flags.

The declaration (:data:`~vpf_spiking.trainers.params.OPTIONS`) gives every flag: its spelling
(``Option.cli_flags``), type, metavar and help with the default; the values are checked by
:func:`~vpf_spiking.trainers.params.settle`, the check of the protocol tables and the trainers,
with the flag named in the message (``--lr must be positive, got -1.0``).  Used by ``vpf train``
(every option) and ``vpf demo`` (``include=("epochs", "learning_rate", "seed")``).

Every flag is added with ``default=None``, so :func:`given_args` tells the flags given from
the defaults (``vpf train --engine spiking`` refuses the batch-only ones) and :func:`from_args`
fills the defaults in afterwards.
"""

from __future__ import annotations

from ..trainers.params import METHODS, OPTIONS, method_option, settle


def argument_specs(methods=METHODS, *, include=None, exclude=(), defaults=None, helps=None) -> list:
    """``[(flags, kwargs), ...]`` for ``parser.add_argument(*flags, **kwargs)``, one per option.

    Every option of any of ``methods`` (and ``--method`` when there is more than one method),
    with ``dest`` = the option's name and ``default=None``; the help shows the default.
    ``include`` / ``exclude`` pick options by name; ``defaults`` replaces declared defaults (as in
    :func:`~vpf_spiking.trainers.params.validate`); ``helps`` replaces the help text of some
    options (e.g. a command whose ``--seed`` also seeds the initial weights).  Choices are checked
    by :func:`from_args`, not argparse, so the message is the declaration's.
    """
    methods = tuple(methods)
    defaults = defaults or {}
    helps = helps or {}

    def wanted(name):
        return (include is None or name in include) and name not in exclude

    specs = []
    if len(methods) > 1 and wanted("method"):
        m = method_option(methods)
        specs.append((("--method",), dict(dest="method", default=None, metavar="|".join(methods),
                                          help=f"{helps.get('method', m.help)} "
                                               f"(default: {defaults.get('method', m.default)})")))
    for o in OPTIONS.values():
        if not set(o.methods) & set(methods) or not wanted(o.name):
            continue
        scope = "" if set(methods) <= set(o.methods) else f"{'/'.join(o.methods)}: "
        text = f"{scope}{helps.get(o.name) or o.cli_help or o.help}"
        if o.kind is bool:
            kw = dict(action="store_false" if o.default else "store_true", help=text)
        else:
            default = defaults.get(o.name, o.default)
            shown = f"{default:g}" if o.kind is float else f"{default}"
            kw = dict(type=o.kind, metavar=o.metavar, help=f"{text} (default: {shown})")
        specs.append((o.cli_flags, dict(dest=o.name, default=None, **kw)))
    return specs


def add_arguments(group, methods=METHODS, **kw) -> None:
    """Add :func:`argument_specs` (same keywords) to an argparse parser or argument group."""
    for flags, spec in argument_specs(methods, **kw):
        group.add_argument(*flags, **spec)


def given_args(args) -> dict:
    """The trainer options set on the command line (attributes that are not None), unchecked."""
    return {o.name: getattr(args, o.name) for o in OPTIONS.values() if getattr(args, o.name, None) is not None}


def flag(name) -> str:
    """The first command-line spelling of option ``name`` (``learning_rate`` -> ``--lr``)."""
    return OPTIONS[name].cli_flags[0]


def from_args(args, methods=METHODS, *, defaults=None) -> dict:
    """Settings from parsed arguments (see :func:`add_arguments`), checked, defaults filled in.

    Returns ``{"method": ..., option: value, ...}`` with every option of the method, as
    :func:`~vpf_spiking.trainers.params.validate` does for a protocol table; messages name the
    flag (``--lr must be positive, got -1.0``, ``--k applies to --method cd or pcd, not vpf``).
    """
    m = method_option(tuple(methods))
    defaults = defaults or {}
    raw = getattr(args, "method", None) if len(m.choices) > 1 else None
    method = m.check(raw if raw is not None else defaults.get("method", m.default), "--method")
    settings = settle(given_args(args), (method,), lambda o: o.cli_flags[0], method_word="--method",
                      defaults=defaults)
    return {"method": method, **settings}


__all__ = ["argument_specs", "add_arguments", "given_args", "flag", "from_args"]
