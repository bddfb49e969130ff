"""A pairing protocol (Bi & Poo 1998 style): its parameters, their checks and the simulation layout.

A pairing protocol forces a pre-synaptic spike at time 0 and a post-synaptic spike at ``dt`` (ms),
``pairings`` times at ``frequency`` Hz, and reads the relative weight change of the synapse.  The
neurons and synapses are those of :mod:`vpf_spiking.spiking.equations` (Markov neurons, VPF
synapses with the ``"asymmetric"`` or ``"symmetric"`` rule); a spike is a forced rest -> excited
transition (``force=True``), which counts as an event of the neuron and so drives the rule
``dw_ij = eta * y_i * (y_j+ - 1/2)`` (spec section 5).  ``w0`` is small (1e-4) so that the
synapse barely changes the fields ("weak synapse"): its effect on any rate is a factor
``exp(+-w/2T)``, below 1e-3.

Simulation layout
-----------------
The cost of the engine is per neuron and time step, so neurons are shared between values of dt.
A block of ``na`` pre neurons spiking at ``offset + a * dt_step`` (a = 0..na-1) and ``nb`` post
neurons spiking at ``offset + dt_min + (na*m + na - 1) * dt_step`` (m = 0..nb-1) has pre/post
differences that cover every dt of the grid exactly once (``na = ceil(sqrt(n_dt))``); one
synapse joins each pair that has a dt of the grid.  41 values of dt need 7 + 6 = 13 neurons per
block instead of 82 for 41 separate pairs.  The protocol has ``synapses`` blocks, so every dt
gets ``synapses`` independent samples (synapses of one dt never share a neuron; synapses of
different dt in a block do, which does not matter for the mean or standard error of each dt).
With a weak synapse the neurons of a block do not influence each other, so each synapse sees
exactly its own two-neuron protocol.  Between pairings nothing happens once both neurons
are back at rest (spontaneous transitions are negligible), so instead of the real interval
``1/frequency`` the simulation spaces pairings by ``window`` = max|dt| + 10 max(tau), when that
is shorter: each pair then has at least 10 time constants of quiet time before its next pairing.
:func:`~vpf_spiking.spiking.stdp.theory.expected_change` computes what this changes (below 1e-4
of the standard error; see ``docs/results/stdp.md``).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, replace

import numpy as np

from ...errors import ConfigError
from ..devices import resolve_device
from .theory import (
    StdpFit, bi_poo_curve, check_rule, closed_form, expected_change, expected_change_discrete, fit_bi_poo,
    spontaneous_rate_hz,
)

__all__ = ["PairingProtocol", "QUIET_TAUS"]

#: quiet time (in units of the longest excited-state time constant) kept between pairings
QUIET_TAUS = 10.0


@dataclass
class PairingProtocol:
    """A pairing protocol (Bi & Poo 1998 style) on the spiking engine.

    Times in ms, frequency in Hz.  ``tau_pre``, ``tau_post`` and ``eta_rel`` default (None) to
    the fit to Bi & Poo (:func:`fit_bi_poo`).  ``window`` (ms) is the simulated spacing of
    pairings; None: ``min(1000/frequency, max|dt| + 10 max(tau))`` (see the module docstring).
    ``device`` is one of :data:`vpf_spiking.spiking.devices.DEVICES` (None: :func:`~vpf_spiking.spiking.devices.default_device`).  ``fit``: the fit to Bi &
    Poo that supplied the defaults (set by :meth:`validated`).
    """

    rule: str = "asymmetric"
    synapses: int = 1000
    pairings: int = 60
    frequency: float = 1.0
    dt_min: float = -100.0
    dt_max: float = 100.0
    dt_step: float = 5.0
    tau_pre: float | None = None
    tau_post: float | None = None
    eta_rel: float | None = None
    bias: float = -30.0
    temperature: float = 1.0
    w0: float = 1e-4
    sim_dt: float = 0.1
    window: float | None = None
    device: str | None = None
    seed: int = 0
    block_pre: int | None = None
    fit: StdpFit | None = field(default=None, repr=False, compare=False)

    # ------------------------------------------------------------------ checks
    def validated(self) -> "PairingProtocol":
        """A copy with defaults filled in (fitted taus and eta); ConfigError on bad values."""
        p = replace(self)
        check_rule(p.rule)
        if p.device is not None and not isinstance(p.device, str):
            raise ConfigError(f"device must be a string, got {p.device!r}")
        p.device = resolve_device(p.device)
        for name in ("synapses", "pairings"):
            v = getattr(p, name)
            if not isinstance(v, (int, np.integer)) or isinstance(v, bool) or v < 1:
                raise ConfigError(f"{name} must be a positive integer, got {v!r}")
        if not isinstance(p.seed, (int, np.integer)) or p.seed < 0:
            raise ConfigError(f"seed must be a non-negative integer, got {p.seed!r}")
        for name in ("frequency", "dt_min", "dt_max", "dt_step", "bias", "temperature", "w0", "sim_dt"):
            v = getattr(p, name)
            if isinstance(v, bool) or not isinstance(v, (int, float, np.floating, np.integer)) or not math.isfinite(v):
                raise ConfigError(f"{name} must be a finite number, got {v!r}")
        if p.frequency <= 0:
            raise ConfigError(f"frequency must be positive (Hz), got {p.frequency}")
        if p.temperature <= 0:
            raise ConfigError(f"temperature must be positive, got {p.temperature}")
        if p.w0 <= 0:
            raise ConfigError(f"w0 (the initial weight) must be positive, got {p.w0}")
        if p.sim_dt <= 0:
            raise ConfigError(f"sim_dt must be positive (ms), got {p.sim_dt}")
        if p.dt_step <= 0:
            raise ConfigError(f"dt_step must be positive (ms), got {p.dt_step}")
        if p.dt_min > p.dt_max:
            raise ConfigError(f"dt range is inverted: dt_min = {p.dt_min} ms > dt_max = {p.dt_max} ms")
        for name in ("dt_min", "dt_step"):
            v = getattr(p, name)
            if abs(v / p.sim_dt - round(v / p.sim_dt)) > 1e-6:
                raise ConfigError(f"{name} = {v} ms is not a multiple of the time step sim_dt = {p.sim_dt} ms")
        interval = 1000.0 / p.frequency
        reach = max(abs(p.dt_min), abs(p.dt_max))
        if interval <= 2 * reach:
            raise ConfigError(
                f"pairing interval 1000/frequency = {interval:g} ms must exceed twice the largest |dt| "
                f"({reach:g} ms): otherwise a post spike is nearer the next pairing's pre spike than its own")
        if p.tau_pre is None or p.tau_post is None or p.eta_rel is None:
            p.fit = fit_bi_poo()
            p.tau_pre = p.fit.tau_pre if p.tau_pre is None else p.tau_pre
            p.tau_post = p.fit.tau_post if p.tau_post is None else p.tau_post
            p.eta_rel = p.fit.eta_rel if p.eta_rel is None else p.eta_rel
        for name in ("tau_pre", "tau_post"):
            v = getattr(p, name)
            if not (isinstance(v, (int, float)) and math.isfinite(v) and v > 0):
                raise ConfigError(f"{name} must be a positive time constant (ms), got {v!r}")
            if v < 5 * p.sim_dt:
                raise ConfigError(f"{name} = {v} ms is too short for the time step sim_dt = {p.sim_dt} ms "
                                  "(need at least 5 steps)")
        if not (isinstance(p.eta_rel, (int, float)) and math.isfinite(p.eta_rel) and p.eta_rel > 0):
            raise ConfigError(f"eta_rel must be positive, got {p.eta_rel!r}")
        n_dt = len(p.dts())
        if p.block_pre is not None and not (isinstance(p.block_pre, int) and 1 <= p.block_pre <= n_dt):
            raise ConfigError(f"block_pre must be an integer in 1..{n_dt}, got {p.block_pre!r}")
        na = p.block_pre or int(math.ceil(math.sqrt(n_dt)))
        quiet = reach + QUIET_TAUS * max(p.tau_pre, p.tau_post)
        if p.window is None:
            lo, hi = p._span(na)
            window = min(interval, max(quiet, hi - lo + p.dt_step))
            if hi - lo + p.sim_dt > window and p.block_pre is None:
                # the shared-neuron block spreads its spikes too wide for this interval: one pre per block
                na = 1
                lo, hi = p._span(na)
                window = min(interval, max(quiet, hi - lo + p.dt_step))
            p.window = window
        elif not (math.isfinite(p.window) and p.window > 2 * reach):
            raise ConfigError(f"window = {p.window} ms must exceed twice the largest |dt| ({reach:g} ms)")
        elif p.window > interval:
            raise ConfigError(f"window = {p.window} ms is longer than the pairing interval {interval:g} ms")
        p.window = self._on_grid(p.window, p.sim_dt)
        p.block_pre = na
        lo, hi = p._span(na)
        if hi - lo + p.sim_dt > p.window:
            raise ConfigError(f"the spikes of a block span {hi - lo:g} ms, which does not fit in the window of "
                              f"{p.window:g} ms; use block_pre = 1")
        if p.synapses * (n_dt + 1) > 5_000_000:
            raise ConfigError(f"{p.synapses} synapses x {n_dt} values of dt is too large a network "
                              "(more than 5 million neurons)")
        return p

    @staticmethod
    def _on_grid(value, step):
        return round(value / step) * step

    def dts(self) -> np.ndarray:
        """The values of dt (ms), dt_min..dt_max in steps of dt_step."""
        n = int(math.floor((self.dt_max - self.dt_min) / self.dt_step + 1e-9)) + 1
        return np.round(self.dt_min + self.dt_step * np.arange(n), 9)

    # ------------------------------------------------------------------ derived quantities
    @property
    def eta(self) -> float:
        return self.eta_rel * self.w0

    def _span(self, na):
        """Earliest and latest spike of a block with ``na`` pre neurons, relative to its first pre spike."""
        nb = int(math.ceil(len(self.dts()) / na))
        lo = min(0.0, self.dt_min + (na - 1) * self.dt_step)
        hi = max((na - 1) * self.dt_step, self.dt_min + (na * nb - 1) * self.dt_step)
        return lo, hi

    @property
    def offset(self) -> float:
        """Time (ms) of the first pre spike of a block: the earliest spike lands one step in."""
        lo, _ = self._span(self.block_pre)
        return self._on_grid(-lo + self.sim_dt, self.sim_dt)

    def layout(self):
        """Block layout: (na, nb, pre index a, post index m, dt index k) of the synapses of one block."""
        K = len(self.dts())
        na = self.block_pre
        nb = int(math.ceil(K / na))
        a, m = np.meshgrid(np.arange(na), np.arange(nb), indexing="ij")
        k = (na * m + na - 1 - a).ravel()
        keep = k < K
        order = np.argsort(k[keep])
        return na, nb, a.ravel()[keep][order], m.ravel()[keep][order], k[keep][order]

    def schedule(self, dt, real_time=False):
        """Forced spike times (ms) of the pre and post neuron of the simulated pair with this dt."""
        period = 1000.0 / self.frequency if real_time else self.window
        k = np.arange(self.pairings) * period
        idx = (dt - self.dt_min) / self.dt_step
        a = 0
        if abs(idx - round(idx)) < 1e-6 and 0 <= round(idx) < len(self.dts()):
            a = int(self.layout()[2][int(round(idx))])
        t_pre = self.offset + a * self.dt_step
        return t_pre + k, t_pre + dt + k

    @property
    def n_steps_pairings(self) -> int:
        """Steps of the pairing part of the run: up to the last spike of the last pairing."""
        _, hi = self._span(self.block_pre)
        return int(round(((self.pairings - 1) * self.window + self.offset + hi) / self.sim_dt)) + 1

    @property
    def n_steps(self) -> int:
        """Steps of the whole run: the pairings, then quiet time (no forcing) for the last one to relax."""
        return self.n_steps_pairings + int(math.ceil(QUIET_TAUS * max(self.tau_pre, self.tau_post) / self.sim_dt))

    def up_rate(self, tau_excited):
        """Spontaneous rest -> excited rate (per ms) of a neuron whose excited state lasts ``tau_excited`` ms."""
        return spontaneous_rate_hz(tau_excited, self.bias, self.temperature) * 1e-3

    def closed_form(self, dt=None):
        """:func:`closed_form` (isolated pairings) with this protocol's parameters."""
        dt = self.dts() if dt is None else dt
        return closed_form(dt, self.tau_pre, self.tau_post, self.eta_rel, self.pairings, self.rule)

    def bi_poo(self, dt=None):
        """The Bi & Poo fits scaled to this protocol's number of pairings."""
        return bi_poo_curve(self.dts() if dt is None else dt, pairings=self.pairings)

    def expected(self, dt=None, real_time=True):
        """:func:`expected_change` for each dt (real pairing interval, or the simulated window)."""
        dts = self.dts() if dt is None else np.atleast_1d(dt)
        out = []
        for d in dts:
            pre, post = self.schedule(d, real_time=real_time)
            out.append(expected_change(pre, post, self.tau_pre, self.tau_post, self.eta_rel, self.rule,
                                       self.up_rate(self.tau_pre), self.up_rate(self.tau_post)))
        return np.array(out)

    def expected_discrete(self, dt=None):
        """:func:`expected_change_discrete` for each dt: what the simulation estimates exactly."""
        dts = self.dts() if dt is None else np.atleast_1d(dt)
        out = []
        for d in dts:
            pre, post = self.schedule(d)
            out.append(expected_change_discrete(
                np.round(pre / self.sim_dt).astype(np.int64), np.round(post / self.sim_dt).astype(np.int64),
                self.n_steps, self.sim_dt, self.tau_pre, self.tau_post, self.eta_rel, self.rule,
                self.up_rate(self.tau_pre), self.up_rate(self.tau_post)))
        return np.array(out)

    def describe(self) -> dict:
        d = {k: v for k, v in asdict(self).items() if k != "fit"}
        d["window"] = self.window
        return d
