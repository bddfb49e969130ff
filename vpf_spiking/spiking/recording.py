"""Watching a network run: every transition of a trained model, free or with the visible layer clamped.

:func:`simulate` builds a :class:`~vpf_spiking.spiking.network.SpikingNetwork` without plasticity
that records every real state change (the ``'flip'`` event of :mod:`.equations`; vetoed events of
clamped neurons are not transitions), runs it once and returns a :class:`Transitions`: for each
transition the time, layer, neuron and new state, plus the start and end states.  From those,
:meth:`Transitions.rates` gives population rates (transitions per neuron and second) and the
time-averaged fraction of excited neurons per layer in time bins, and :func:`plot_raster` /
:func:`plot_rates` draw them.  ``vpf simulate`` (:mod:`vpf_spiking.cli.simulate`) is the command.

:func:`parse_duration` reads times as Brian2 quantities (``"500ms"``, ``"0.5 s"``, ``"2*second"``;
a plain number is in ms) with an expression walker that accepts only numbers, Brian2 unit names
and arithmetic: nothing is evaluated as Python code.
"""

from __future__ import annotations

import ast
import math
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import ConfigError, DataError, ModelError
from ..io import atomic_open, atomic_savez, write_csv
from .equations import CLAMP0
from .network import MAX_RATE_DT, SpikingNetwork

TRANSITIONS_FORMAT = "vpf-spiking-transitions"
STARTS = ("rest", "random")

# ============================================================================ durations
_NUMBER_BEFORE_NAME = re.compile(r"(?<![\w.])((?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)(?![\d.]|[eE][+-]?\d)\s*(?=[A-Za-z_])")
_OPS = {ast.Add: lambda a, b: a + b, ast.Sub: lambda a, b: a - b, ast.Mult: lambda a, b: a * b,
        ast.Div: lambda a, b: a / b, ast.Pow: lambda a, b: a ** b}


def parse_duration(text, what="duration", allow_zero=False, signed=False) -> float:
    """A time written as a Brian2 quantity, in ms; a plain number is taken as ms.

    ``"500ms"``, ``"500 ms"``, ``"0.5 s"``, ``"2*second"``, ``"1.5e3*usecond"`` and ``"250"`` are
    accepted; anything else (another dimension, a name that is not a Brian2 unit, a function
    call, a negative or non-finite value) is a one-line :class:`ConfigError` naming ``what``.
    ``signed``: any finite time, negative ones too (a spike-timing difference).
    """
    from brian2 import ms, second
    from brian2.units.fundamentalunits import DimensionMismatchError, Quantity, have_same_dimensions

    raw = str(text).strip()
    hint = "write e.g. 500ms, '0.5 s' or 2*second; a plain number is in ms"

    def fail(why):
        shown = str(text) if len(str(text)) <= 40 else str(text)[:37] + "..."
        return ConfigError(f"{what}: cannot read {shown!r} as a time ({why}); {hint}")

    if not raw or len(raw) > 100:
        raise fail("empty" if not raw else "too long")
    try:
        tree = ast.parse(_NUMBER_BEFORE_NAME.sub(r"\1*", raw), mode="eval")
    except SyntaxError:
        raise fail("not an expression") from None
    names = []
    try:
        value = _evaluate(tree.body, names, fail)
    except ConfigError:
        raise
    except DimensionMismatchError as exc:
        raise fail(f"inconsistent units: {str(exc).splitlines()[0]}") from None
    except (ZeroDivisionError, OverflowError, TypeError, ValueError):
        raise fail("not a number") from None
    if not names:
        value = float(value) * ms
    if not isinstance(value, Quantity) or not have_same_dimensions(value, second):
        raise fail("not a time")
    result = float(value / ms)
    if signed:
        if not math.isfinite(result):
            raise fail("must be finite")
        return result
    if not math.isfinite(result) or result < 0 or (result == 0 and not allow_zero):
        raise fail("must be a positive, finite time" if not allow_zero else "must be >= 0 and finite")
    return result


def _unit(name):
    """The Brian2 unit called ``name`` (``s`` and ``ns`` too, which Brian2 leaves out), or None."""
    import brian2.units.allunits as allunits
    import brian2.units.stdunits as stdunits
    from brian2.units.fundamentalunits import Unit

    if name in ("s", "ns"):
        name = {"s": "second", "ns": "nsecond"}[name]
    for module in (stdunits, allunits):
        unit = getattr(module, name, None) if not name.startswith("_") else None
        if isinstance(unit, Unit):
            return unit
    return None


def _evaluate(node, names, fail):
    if isinstance(node, ast.Constant) and type(node.value) in (int, float):
        return float(node.value)
    if isinstance(node, ast.Name):
        unit = _unit(node.id)
        if unit is None:
            raise fail(f"{node.id!r} is not a Brian2 unit")
        names.append(node.id)
        return unit
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.UAdd, ast.USub)):
        v = _evaluate(node.operand, names, fail)
        return -v if isinstance(node.op, ast.USub) else v
    if isinstance(node, ast.BinOp) and type(node.op) in _OPS:
        if isinstance(node.op, ast.Pow):
            exp = node.right
            if not (isinstance(exp, ast.Constant) and type(exp.value) in (int, float) and abs(exp.value) <= 10):
                raise fail("powers need a small number as exponent")
        return _OPS[type(node.op)](_evaluate(node.left, names, fail), _evaluate(node.right, names, fail))
    raise fail(f"{type(node).__name__} is not allowed (only numbers, units and + - * / **)")


# ============================================================================ the recording
def layer_names(n_layers):
    """``v, h1, h2, ...``: the names used for layers in files and figures."""
    return ["v"] + [f"h{l}" for l in range(1, n_layers)]


@dataclass
class Transitions:
    """Every transition of one run, time-ordered (ties by layer, then neuron)."""

    sizes: tuple
    duration_ms: float
    dt_ms: float
    clamped: tuple              # per layer: whether it was clamped (and so has no transitions)
    initial: list               # per layer state at t = 0, (n_l,)
    final: list                 # per layer state at the end, (n_l,)
    t_ms: np.ndarray            # time of each transition (ms from the start)
    layer: np.ndarray           # its layer (0 = visible)
    neuron: np.ndarray          # its neuron, within the layer
    state: np.ndarray           # the new state (1: rest -> excited, 0: excited -> rest)
    wall_s: float = float("nan")

    def __len__(self):
        return len(self.t_ms)

    @property
    def names(self):
        return layer_names(len(self.sizes))

    def counts(self) -> list:
        """Transitions per neuron, one array per layer."""
        return [np.bincount(self.neuron[self.layer == l], minlength=n) for l, n in enumerate(self.sizes)]

    def rates(self, bin_ms) -> dict:
        """Per time bin: per layer the transitions, the rate (transitions per neuron and second)
        and the time-averaged fraction of excited neurons; the last bin may be shorter."""
        bin_ms = float(bin_ms)
        if not bin_ms > 0:
            raise ConfigError(f"bin must be a positive time, got {bin_ms} ms")
        edges = np.arange(0.0, self.duration_ms, bin_ms)
        edges = np.append(edges, self.duration_ms)
        width_s = np.diff(edges) / 1e3
        out = {"t_start_ms": edges[:-1], "t_end_ms": edges[1:]}
        for l, (name, n) in enumerate(zip(self.names, self.sizes)):
            sel = self.layer == l
            t, y = self.t_ms[sel], self.state[sel].astype(np.float64)
            count = np.histogram(t, bins=edges)[0]
            out[f"{name}_transitions"] = count
            out[f"{name}_rate_hz"] = count / (n * width_s)
            # number excited is a step function: integrate it over each bin
            on = float(np.sum(self.initial[l])) + np.cumsum(2.0 * y - 1.0)
            knots = np.concatenate([[0.0], t])
            level = np.concatenate([[float(np.sum(self.initial[l]))], on])
            area = np.concatenate([[0.0], np.cumsum(level[:-1] * np.diff(knots))])
            k = np.searchsorted(knots, edges, side="right") - 1
            F = area[k] + level[k] * (edges - knots[k])
            out[f"{name}_active"] = np.diff(F) / (n * np.diff(edges))
        return out

    # ------------------------------------------------------------------ files
    def save(self, path, fmt="csv") -> Path:
        """``transitions.csv`` (time_ms, layer, neuron, state) or ``.npz`` (with sizes, start/end states)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        if fmt == "csv":
            with atomic_open(path, "w") as fh:
                fh.write("time_ms,layer,neuron,state\n")
                rows = np.column_stack([self.t_ms, self.layer, self.neuron, self.state])
                np.savetxt(fh, rows, fmt=["%.4f", "%d", "%d", "%d"], delimiter=",")
            return path
        if fmt != "npz":
            raise ConfigError(f"unknown transitions format {fmt!r}; use csv or npz")
        arrays = {"format": np.array(TRANSITIONS_FORMAT), "sizes": np.array(self.sizes),
                  "duration_ms": np.array(self.duration_ms), "dt_ms": np.array(self.dt_ms),
                  "clamped": np.array(self.clamped), "t_ms": self.t_ms, "layer": self.layer,
                  "neuron": self.neuron, "state": self.state}
        for l in range(len(self.sizes)):
            arrays[f"initial_{l}"] = self.initial[l]
            arrays[f"final_{l}"] = self.final[l]
        return atomic_savez(path, arrays)

    @classmethod
    def load(cls, path) -> "Transitions":
        from ..model import read_tagged_npz

        d = read_tagged_npz(path, TRANSITIONS_FORMAT, "transitions", DataError)
        L = len(d["sizes"])
        return cls(tuple(int(n) for n in d["sizes"]), float(d["duration_ms"]), float(d["dt_ms"]),
                   tuple(bool(c) for c in d["clamped"]), [d[f"initial_{l}"] for l in range(L)],
                   [d[f"final_{l}"] for l in range(L)], d["t_ms"], d["layer"], d["neuron"], d["state"])


def simulate(model, duration_ms, *, clamp=None, start="rest", device=None, dt_ms=0.1, seed=0,
             codegen=None, directory=None) -> Transitions:
    """Run ``model``'s spiking network for ``duration_ms`` without plasticity; record every transition.

    Parameters
    ----------
    clamp : array (n_visible,) of 0/1 or None
        Hold the visible layer at this pattern (its neurons then have no transitions); None: free.
    start : "rest", "random" or a list of per-layer 0/1 arrays
        Starting state of the free layers (all at rest, or each neuron on with probability 1/2
        drawn from ``seed``); the visible layer starts at ``clamp`` when clamped.
    device, dt_ms, seed, codegen, directory
        As for :class:`SpikingNetwork`.
    """
    L = model.n_layers
    steps = duration_ms / dt_ms
    if not (duration_ms > 0 and math.isfinite(duration_ms)) or abs(steps - round(steps)) > 1e-6:
        raise ConfigError(f"duration {duration_ms:g} ms must be a positive multiple of the time step {dt_ms:g} ms")
    if isinstance(start, str):
        if start not in STARTS:
            raise ConfigError(f"unknown start {start!r}; use one of {', '.join(STARTS)}")
        rng = np.random.default_rng(seed)
        state = [np.zeros(n) if start == "rest" else (rng.random(n) < 0.5).astype(np.float64) for n in model.sizes]
    else:
        state = [np.asarray(s, dtype=np.float64).reshape(-1) for s in start]
        if [len(s) for s in state] != list(model.sizes):
            raise ModelError(f"start state has layers of {[len(s) for s in state]} units, the model {list(model.sizes)}")
    mode = {}
    if clamp is not None:
        clamp = np.asarray(clamp, dtype=np.float64).reshape(-1)
        if clamp.shape != (model.sizes[0],) or not np.all((clamp == 0) | (clamp == 1)):
            raise DataError(f"the clamped pattern must be {model.sizes[0]} values of 0 or 1, got shape {clamp.shape}")
        state[0] = clamp.copy()
        mode[0] = (CLAMP0 + clamp)[None, :]
    state = [s[None, :] for s in state]
    _check_free_rates(model, state, 1 if clamp is not None else 0, dt_ms)
    net = SpikingNetwork(model, device=device, dt_ms=dt_ms, duration_ms=duration_ms, rule=None, seed=seed,
                         codegen=codegen, directory=directory, record_transitions=True)
    try:
        res = net.run(state=state, mode=mode or None, seed=seed, strict=False)
    finally:
        net.close()
    t, layer, neuron, new = [], [], [], []
    for l, (ts, idx, y) in enumerate(res.transitions):
        t.append(ts * 1e3)
        layer.append(np.full(len(ts), l, dtype=np.int16))
        neuron.append(idx.astype(np.int32))
        new.append(y.astype(np.int8))
    t, layer, neuron, new = (np.concatenate(a) for a in (t, layer, neuron, new))
    order = np.lexsort((neuron, layer, np.round(t / dt_ms)))
    return Transitions(tuple(model.sizes), float(duration_ms), float(dt_ms),
                       tuple([clamp is not None] + [False] * (L - 1)), [s[0].astype(np.int8) for s in state],
                       [s[0].astype(np.int8) for s in res.state], t[order], layer[order], neuron[order],
                       new[order], res.wall_s)


def _check_free_rates(model, state, first_free, dt_ms):
    """The free neurons' fastest rate at the start must be resolvable by the time step (rate*dt <= 0.2)."""
    m = model.copy(np.float64)
    z = m.local_fields(state)
    worst = max(float(np.max(np.exp((0.5 - state[l]) * z[l] / m.temperature))) for l in range(first_free, m.n_layers))
    if worst * dt_ms / m.tau_ms > MAX_RATE_DT:
        raise ConfigError(f"the fastest free neuron leaves its state at {worst / m.tau_ms * 1e3:.3g} /s, "
                          f"so rate*dt = {worst * dt_ms / m.tau_ms:.2f} > {MAX_RATE_DT}; use a time step "
                          f"of at most {MAX_RATE_DT * m.tau_ms / worst:.3g} ms")


# ============================================================================ figures
def plot_raster(tr: Transitions, path, title=None) -> Path:
    """One panel per layer: neuron against time, a dot per transition (up black, down orange)."""
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    L = len(tr.sizes)
    heights = [0.4 if c else max(1.0, math.log10(n + 1)) for n, c in zip(tr.sizes, tr.clamped)][::-1]
    fig = Figure(figsize=(8, 1.2 + 1.3 * sum(heights)))
    axes = fig.subplots(L, 1, sharex=True, squeeze=False, gridspec_kw={"height_ratios": heights})[:, 0]
    size = 4.0 if len(tr) < 5000 else 1.0
    for ax, l in zip(axes, range(L - 1, -1, -1)):   # top layer first, visible at the bottom
        sel = tr.layer == l
        for value, colour, label in ((1, "black", "rest -> excited"), (0, "tab:orange", "excited -> rest")):
            s = sel & (tr.state == value)
            ax.scatter(tr.t_ms[s], tr.neuron[s], s=size, c=colour, marker="|" if size > 1 else ".",
                       linewidths=0.6, label=label, rasterized=True)
        note = " (clamped: no transitions)" if tr.clamped[l] else f" ({int(sel.sum())} transitions)"
        ax.set_ylabel(f"{tr.names[l]}\nneuron", fontsize=8)
        ax.yaxis.set_major_locator(MaxNLocator(nbins=5, integer=True))
        ax.set_ylim(-0.5, tr.sizes[l] - 0.5)
        ax.set_title(f"layer {tr.names[l]}, {tr.sizes[l]} neurons{note}", fontsize=8, loc="left")
    axes[-1].set_xlim(0, tr.duration_ms)
    axes[-1].set_xlabel("time (ms)")
    axes[0].legend(fontsize=7, loc="upper right", markerscale=3)
    if title:
        fig.suptitle(title, fontsize=9)
    return _save(fig, path)


def plot_rates(tr: Transitions, rates: dict, path, title=None) -> Path:
    """Population rate (transitions per neuron and second) and fraction excited, per layer over time."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(8, 5))
    ax1, ax2 = fig.subplots(2, 1, sharex=True)
    edges = np.append(rates["t_start_ms"], rates["t_end_ms"][-1:])
    for l, name in enumerate(tr.names):
        if tr.clamped[l]:
            continue
        ax1.stairs(rates[f"{name}_rate_hz"], edges, label=name, baseline=None)
        ax2.stairs(rates[f"{name}_active"], edges, label=name, baseline=None)
    ax1.set_ylabel("transitions / neuron / s")
    ax2.set_ylabel("fraction excited")
    ax2.set_xlabel("time (ms)")
    ax2.set_ylim(0, 1)
    for ax in (ax1, ax2):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    if title:
        fig.suptitle(title, fontsize=9)
    return _save(fig, path)


def save_rates(rates: dict, path) -> Path:
    """``rates.csv``: one row per time bin (see :meth:`Transitions.rates`)."""
    import pandas as pd

    return write_csv(pd.DataFrame(rates), path, float_format="%.6g")


def _save(fig, path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return path


__all__ = ["parse_duration", "simulate", "Transitions", "plot_raster", "plot_rates", "save_rates",
           "layer_names"]
