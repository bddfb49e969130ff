"""Every option of the batch trainers, declared once, and what is derived from the declaration.

:data:`OPTIONS` holds one :class:`Option` per setting (name, type, default, constraint, help,
the methods it applies to).  From it follow:

* the trainers' validation (:func:`resolve`, called by every trainer's ``__init__``) and their
  recorded settings (``trainer.config()``: every option of the method, defaults included);
* :func:`defaults` and :func:`options` (what a method reads);
* :func:`validate`, for a protocol's ``[training]`` table (unknown keys refused, listing the
  valid ones; options of another method refused; defaults filled in);
* the command-line flags of ``vpf train`` and ``vpf demo`` (:mod:`vpf_spiking.cli.options`: flags,
  help with the default, the same checks through :func:`settle` with the flag named);
* :func:`trainer_kwargs` (settings to ``make_trainer`` keywords) and :func:`resume_keys` (what
  must agree between a checkpoint and the trainer resuming from it);
* the parameters of :class:`vpf_spiking.estimator.VPFRBM`.

Adding an option means one :class:`Option` here plus the code that uses its value.  Error
messages are one line and name the value: ``training.learning_rate must be positive, got -1.0``.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import numpy as np

from ..errors import ConfigError
from .optim import OPTIMIZERS

METHODS = ("vpf", "cd", "pcd")
VISIBLE_BIAS_INITS = ("marginals", "zero")
FLOWS = ("joint", "rao-blackwell", "marginal")

_TYPE_WORDS = {int: "an integer", float: "a number", str: "a string", bool: "true or false"}


@dataclass(frozen=True)
class Option:
    """One trainer option.

    Parameters
    ----------
    name : str
        Keyword of the trainers, key of a protocol's ``[training]`` table, ``dest`` on the CLI.
    kind : {int, float, str, bool}
    default : object
    help : str
        One line, for the CLI and the generated docstrings.
    methods : tuple of str
        The training methods that read it.
    low, high : float or None
        Bounds; ``low_open`` / ``high_open`` make them strict.
    choices : tuple of str or None
        Allowed values of a str option (matched case-insensitively).
    resume : bool
        Must equal the checkpoint's value when a run is resumed.
    spiking : bool
        Also read by the spiking engine (``vpf train --engine spiking``).
    flags : tuple of str
        Command-line spellings; default ``--name-with-dashes`` (``--no-name`` for a bool that
        defaults to true).
    metavar, cli_help : str or None
        Overrides for the command-line help.
    """

    name: str
    kind: type
    default: object
    help: str
    methods: tuple = METHODS
    low: float | None = None
    low_open: bool = False
    high: float | None = None
    high_open: bool = False
    choices: tuple | None = None
    resume: bool = True
    spiking: bool = False
    flags: tuple = ()
    metavar: str | None = None
    cli_help: str | None = None

    @property
    def cli_flags(self) -> tuple:
        if self.flags:
            return self.flags
        dashed = self.name.replace("_", "-")
        return (f"--no-{dashed}",) if self.kind is bool and self.default else (f"--{dashed}",)

    def constraint(self) -> str:
        """The constraint in words: ``>= 1``, ``positive``, ``in [0, 1)``, ``one of adam, sgd``, or ''."""
        if self.choices is not None:
            return f"one of {', '.join(self.choices)}"
        if self.low is not None and self.high is not None:
            return (f"in {'(' if self.low_open else '['}{self.low:g}, {self.high:g}"
                    f"{')' if self.high_open else ']'}")
        if self.low is not None:
            if self.low == 0 and self.low_open:
                return "positive"
            return f"{'>' if self.low_open else '>='} {self.low:g}"
        if self.high is not None:
            return f"{'<' if self.high_open else '<='} {self.high:g}"
        return ""

    def check(self, value, label: str | None = None):
        """``value`` converted to the option's type, or :class:`ConfigError` naming ``label`` and the value."""
        label = label or self.name
        kind = self.kind
        is_bool = isinstance(value, (bool, np.bool_))
        if kind is bool:
            if not is_bool:
                raise ConfigError(f"{label} must be true or false, got {value!r}")
            return bool(value)
        if kind is int:
            if is_bool or not isinstance(value, (int, np.integer)):
                raise ConfigError(f"{label} must be an integer, got {value!r}")
            value = int(value)
        elif kind is float:
            if is_bool or not isinstance(value, (int, float, np.integer, np.floating)):
                raise ConfigError(f"{label} must be a number, got {value!r}")
            value = float(value)
            if not math.isfinite(value):
                raise ConfigError(f"{label} must be a finite number, got {value}")
        elif not isinstance(value, str):
            raise ConfigError(f"{label} must be a string, got {value!r}")
        if self.choices is not None:
            value = value.lower()
            if value not in self.choices:
                raise ConfigError(f"{label} must be {self.constraint()}, got {value!r}")
            return value
        below = self.low is not None and (value <= self.low if self.low_open else value < self.low)
        above = self.high is not None and (value >= self.high if self.high_open else value > self.high)
        if below or above:
            raise ConfigError(f"{label} must be {self.constraint()}, got {value!r}")
        return value


#: The ``method`` setting (chooses the trainer class; not a trainer keyword).
METHOD = Option("method", str, "vpf", "training algorithm: vpf (variational probability flow), cd (CD-k) "
                "or pcd (persistent CD-k)", choices=METHODS, metavar="vpf|cd|pcd")

#: Every trainer option, in the order of the recorded config.
OPTIONS: dict[str, Option] = {o.name: o for o in (
    Option("epochs", int, 10, "passes over the training data", low=1, resume=False, spiking=True),
    Option("batch_size", int, 100, "examples per update", low=1, metavar="B"),
    Option("learning_rate", float, 1e-3, "step size (1e-3: Adam's default, the paper's)", low=0, low_open=True,
           spiking=True, flags=("--lr", "--learning-rate"), metavar="LR"),
    Option("optimizer", str, "adam", "adam (the paper's) or sgd", choices=OPTIMIZERS, metavar="adam|sgd"),
    Option("momentum", float, 0.0, "momentum of optimizer sgd (0: plain SGD; Adam has its own beta1)",
           low=0, high=1, high_open=True, metavar="M"),
    Option("weight_decay", float, 1e-4, "L2 penalty on the weights W and U, not the biases (the paper's 1e-4)",
           low=0, metavar="L"),
    Option("k", int, 1, "Gibbs steps per update", methods=("cd", "pcd"), low=1),
    Option("e_step_sweeps", int, 1, "asynchronous Gibbs sweeps of the E-step in layers with intra-layer weights",
           methods=("vpf",), low=1, metavar="S"),
    Option("flow", str, "joint", "joint: the paper's VPF over (v, h) with an E-step per epoch; rao-blackwell: "
           "h sampled per minibatch with the current parameters and the hidden flip terms (zero in expectation, "
           "docs/theory.md) dropped - same expected gradient, fewer products, RBMs and a DBM's top layer; "
           "marginal: probability flow on the free energy F(v), hidden units summed out (RBMs; fits the hidden "
           "biases). rao-blackwell and marginal are extensions beyond the paper",
           methods=("vpf",), choices=FLOWS, metavar="joint|rao-blackwell|marginal"),
    Option("flips", int, 64, "flow=marginal: visible flips per minibatch, a random subset (unbiased, cost "
           "flips/n_visible of all); 0 counts every flip", methods=("vpf",), low=0),
    Option("visible_bias_init", str, "marginals", "visible biases at the start of a fresh fit: marginals "
           "(T logit of the smoothed training pixel marginals, the paper's) or zero; non-zero ones are kept",
           choices=VISIBLE_BIAS_INITS, resume=False, metavar="marginals|zero"),
    Option("seed", int, 0, "seed of the trainer's random numbers (E-step samples, Gibbs chains, minibatch order)",
           low=0, spiking=True),
    Option("progress", bool, True, "show a progress bar per epoch", resume=False, spiking=True,
           cli_help="no progress bar"),
)}


# ---------------------------------------------------------------------------- queries
def options(method=None) -> list:
    """The options that ``method`` reads (every option for None), in declaration order."""
    if method is not None:
        _known_method(method)
    return [o for o in OPTIONS.values() if method is None or method in o.methods]


def defaults(method="vpf") -> dict:
    """``{"method": method, option: default, ...}`` for every option of ``method``."""
    return {"method": _known_method(method), **{o.name: o.default for o in options(method)}}


def resume_keys(method) -> list:
    """The settings that must agree between a checkpoint and the trainer resuming from it."""
    return ["method"] + [o.name for o in options(method) if o.resume]


def trainer_kwargs(settings: dict, method) -> dict:
    """The entries of ``settings`` that ``make_trainer(method, **kw)`` takes (others dropped)."""
    return {k: v for k, v in settings.items() if k in OPTIONS and method in OPTIONS[k].methods}


def numpy_doc(method) -> str:
    """A numpy-style ``Parameters`` block for the options of ``method`` (for trainer docstrings)."""
    lines = []
    for o in options(method):
        extra = f"; {o.constraint()}" if o.constraint() and o.choices is None else ""
        lines += [f"{o.name} : {o.kind.__name__}, default {o.default!r}", f"    {o.help}{extra}."]
    return "\n".join(lines)


# ---------------------------------------------------------------------------- validation
def resolve(method, given: dict, *, owner: str = "trainer") -> dict:
    """Every option of ``method``: the ``given`` values checked, the others at their defaults.

    Used by the trainers' ``__init__``; messages name the keyword (``batch_size must be >= 1,
    got 0``).  A value of None means the default.  Unknown keywords and options of other
    methods are refused.
    """
    method = _known_method(method)
    given = {k: v for k, v in given.items() if v is not None}
    unknown = sorted(set(given) - set(OPTIONS))
    if unknown:
        raise ConfigError(f"{owner} got unknown option(s) {unknown} (valid: {', '.join(OPTIONS)})")
    return settle(given, (method,), lambda o: o.name)


def validate(mapping, source="<protocol>", *, where="training", methods=METHODS, method_key=True,
             defaults=None, extra=()) -> dict:
    """A protocol table of trainer settings, checked, with every default filled in.

    Parameters
    ----------
    mapping : dict
        The table as read from TOML.
    source : str
        File named in error messages.
    where : str
        The table's name in messages (``[training]``, ``training.epochs``).
    methods : tuple of str
        The methods the table may serve.
    method_key : bool
        True: the table may hold ``method`` (default vpf, or the first of ``methods``) and the
        result holds that method's options.  False: no ``method`` key (the methods are chosen
        elsewhere, e.g. per ``[[models]]`` entry) and the result holds the options of any of
        ``methods``; use :func:`trainer_kwargs` per method.
    defaults : dict or None
        Defaults that replace the declared ones (e.g. ``{"epochs": 5}``).
    extra : sequence of Option
        Keys of the protocol kind itself (e.g. a ``network_seed``), validated the same way.

    Returns
    -------
    dict
        ``method`` (when ``method_key``), then every option in declaration order, then ``extra``.
    """
    if not isinstance(mapping, dict):
        raise ConfigError(f"{source}: [{where}] must be a table, got {mapping!r}")
    methods = tuple(_known_method(m) for m in methods)
    extra = {o.name: o for o in extra}
    allowed = {o.name for o in OPTIONS.values() if set(o.methods) & set(methods)} | set(extra)
    allowed |= {"method"} if method_key else set()
    unknown = sorted(set(mapping) - allowed)
    if unknown:
        raise ConfigError(f"{source}: unknown key(s) {unknown} in [{where}] (valid: {', '.join(sorted(allowed))})")
    prefix = f"{source}: "
    out = {}
    serve = methods
    if method_key:
        default = (defaults or {}).get("method", _default_method(methods))
        out["method"] = method_option(methods).check(mapping.get("method", default), f"{prefix}{where}.method")
        serve = (out["method"],)
    given = {k: v for k, v in mapping.items() if k in OPTIONS}
    out.update(settle(given, serve, lambda o: f"{where}.{o.name}", prefix=prefix, defaults=defaults))
    for name, o in extra.items():
        out[name] = o.check(mapping[name], f"{prefix}{where}.{name}") if name in mapping else \
            (defaults or {}).get(name, o.default)
    return out


def settle(given, serve, label, *, prefix="", method_word="method", defaults=None) -> dict:
    """Every option of the methods ``serve``: the ``given`` values checked, the others at their defaults.

    The one check behind :func:`resolve`, :func:`validate` and the command line
    (:func:`vpf_spiking.cli.options.from_args`).  ``label(option)`` names an option in messages
    (``training.k``, ``--k``), after ``prefix`` (``"p.toml: "``); ``method_word`` names the
    method setting (``method``, ``--method``); ``defaults`` replaces declared defaults.  Options
    of other methods given are refused; momentum needs optimizer sgd.
    """
    overrides = defaults or {}
    out = {}
    for o in OPTIONS.values():
        if not set(o.methods) & set(serve):
            if o.name in given:
                raise ConfigError(f"{prefix}{label(o)} applies to {method_word} {' or '.join(o.methods)}, "
                                  f"not {' or '.join(serve)}")
            continue
        if o.name in given:
            out[o.name] = o.check(given[o.name], prefix + label(o))
        else:
            out[o.name] = o.check(overrides[o.name], o.name) if o.name in overrides else o.default
    if out.get("momentum") and out.get("optimizer") != "sgd":
        raise ConfigError(f"{prefix}{label(OPTIONS['momentum'])} applies to optimizer sgd only (Adam has its own "
                          f"beta1), got {out['momentum']!r} with optimizer {out.get('optimizer')!r}")
    return out


def _known_method(method) -> str:
    return METHOD.check(method, "method")


def method_option(methods) -> Option:
    return dataclasses.replace(METHOD, choices=tuple(methods), default=_default_method(methods))


def _default_method(methods) -> str:
    return METHOD.default if METHOD.default in methods else methods[0]


__all__ = ["Option", "METHOD", "METHODS", "OPTIONS", "VISIBLE_BIAS_INITS", "FLOWS", "options", "defaults", "resume_keys",
           "trainer_kwargs", "numpy_doc", "resolve", "validate", "settle", "method_option"]
