"""STDP pairing protocols on the spiking engine: simulation, closed form, fit to Bi & Poo (1998).

A pairing protocol forces a pre-synaptic spike at time 0 and a post-synaptic spike at ``dt`` (ms),
``pairings`` times at ``frequency`` Hz, and reads the relative weight change of the synapse.  The
neurons and synapses are those of :mod:`vpf_spiking.spiking.equations` (Markov neurons, VPF
synapses with the ``"asymmetric"`` or ``"symmetric"`` rule); a spike is a forced rest -> excited
transition (``force=True``), which counts as an event of the neuron and so drives the rule
``dw_ij = eta * y_i * (y_j+ - 1/2)`` (spec section 5).

Parameters and units
--------------------
``tau_pre``, ``tau_post`` (ms) are the *excited-state* time constants: the mean time a neuron
stays excited after a spike.  A neuron with bias ``b`` and time constant ``tau`` leaves the
excited state at rate ``exp(-b/2T)/tau``, so the neuron's own ``tau`` is
``tau_excited * exp(-b/2T)`` (:func:`neuron_tau_ms`), and it becomes excited spontaneously at rate
``exp(b/T)/tau_excited`` (negligible at the default ``b = -30``).  ``eta_rel = eta / w0`` is the
learning rate relative to the initial weight; results are relative changes ``100 (w - w0)/w0``
in % after the whole protocol.  ``w0`` is small (1e-4) so that the synapse barely changes the
fields ("weak synapse"): its effect on any rate is a factor ``exp(+-w/2T)``, below 1e-3.

Closed form (spec section 6), per pairing, with r = 1/tau::

    dt >= 0:  E[dw] = +(eta/2) r_pre /(r_pre + r_post) exp(-dt/tau_pre)
    dt <  0:  E[dw] = -(eta/2) r_post/(r_pre + r_post) exp(-|dt|/tau_post)

and 0 for the symmetric rule.  :func:`expected_change` generalises it to any schedule of forced
spikes, spontaneous transitions and either rule (pairings that interact at high frequency), and
:func:`expected_change_discrete` gives the exact expectation of the simulation on its time grid,
which measures the discretisation error.

Simulation design
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
:func:`expected_change` computes what this changes (below 1e-4 of the standard error; see
``docs/results/stdp.md``).
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np

from .errors import ConfigError, TrainingDiverged

RULES = ("asymmetric", "symmetric")
DEVICES = ("runtime", "cpp_standalone")

#: Bi & Poo (1998) summary: exponential fits to the pairing data (amplitudes in %, tau in ms)
BI_POO = {"a_plus": 80.0, "tau_plus": 16.8, "a_minus": 40.0, "tau_minus": 33.7}

#: quiet time (in units of the longest excited-state time constant) kept between pairings
QUIET_TAUS = 10.0


# ============================================================================ closed form
def neuron_tau_ms(tau_excited_ms, bias, temperature=1.0):
    """The neuron's ``tau`` (ms) whose excited state lasts ``tau_excited_ms`` on average at field ``bias``."""
    return float(tau_excited_ms) * math.exp(-float(bias) / (2.0 * float(temperature)))


def spontaneous_rate_hz(tau_excited_ms, bias, temperature=1.0):
    """Rest -> excited rate (1/s) of a neuron at field ``bias``: ``exp(b/T) / tau_excited``."""
    return math.exp(float(bias) / float(temperature)) / (float(tau_excited_ms) * 1e-3)


def closed_form(dt_ms, tau_pre, tau_post, eta_rel, pairings=60, rule="asymmetric"):
    """Expected relative weight change (%) after ``pairings`` pairings, spec section 6.

    ``dt = 0`` (simultaneous forced spikes) takes the ``dt > 0`` branch, as the engine does: the
    post neuron's event sees the pre neuron's new (excited) state.
    """
    _check_rule(rule)
    dt = np.asarray(dt_ms, dtype=np.float64)
    if rule == "symmetric":
        return np.zeros_like(dt)
    total = tau_pre + tau_post
    # r_pre/(r_pre+r_post) = tau_post/(tau_pre+tau_post)
    ltp = tau_post / total * np.exp(-np.abs(dt) / tau_pre)
    ltd = -tau_pre / total * np.exp(-np.abs(dt) / tau_post)
    return 100.0 * pairings * 0.5 * eta_rel * np.where(dt >= 0, ltp, ltd)


def bi_poo_curve(dt_ms, a_plus=BI_POO["a_plus"], tau_plus=BI_POO["tau_plus"],
                 a_minus=BI_POO["a_minus"], tau_minus=BI_POO["tau_minus"]):
    """The Bi & Poo (1998) exponential fits: ``+a_plus exp(-dt/tau_plus)`` for dt >= 0, else ``-a_minus exp(dt/tau_minus)``."""
    dt = np.asarray(dt_ms, dtype=np.float64)
    return np.where(dt >= 0, a_plus * np.exp(-np.abs(dt) / tau_plus), -a_minus * np.exp(-np.abs(dt) / tau_minus))


@dataclass
class StdpFit:
    """Excited-state time constants and learning rate fitted to the Bi & Poo curve."""

    tau_pre: float      # ms, = tau_+ of the model
    tau_post: float     # ms, = tau_- of the model
    eta_rel: float      # eta / w0
    tau_pre_se: float
    tau_post_se: float
    eta_rel_se: float
    pairings: int
    a_plus: float       # model's peak potentiation (%), 100 N eta_rel/2 * tau_post/(tau_pre+tau_post)
    a_minus: float      # model's peak depression (%, positive)
    rms_residual: float  # % over the fitted grid

    @property
    def ratio_predicted(self) -> float:
        """The model's A+/A- = tau_-/tau_+ (equal areas)."""
        return self.tau_post / self.tau_pre

    def as_dict(self) -> dict:
        d = asdict(self)
        d["ratio_predicted"] = self.ratio_predicted
        return d


def fit_bi_poo(dt_ms=None, target=None, pairings=60) -> StdpFit:
    """Least-squares fit (``scipy.optimize.curve_fit``) of :func:`closed_form` to the Bi & Poo curve.

    ``dt_ms`` defaults to -100..100 ms in 1 ms steps; ``target`` to :func:`bi_poo_curve` there.
    """
    from scipy.optimize import curve_fit

    dt = np.arange(-100.0, 100.5, 1.0) if dt_ms is None else np.asarray(dt_ms, dtype=np.float64)
    y = bi_poo_curve(dt) if target is None else np.asarray(target, dtype=np.float64)

    def model(x, tau_pre, tau_post, eta_rel):
        return closed_form(x, tau_pre, tau_post, eta_rel, pairings)

    p0 = (BI_POO["tau_plus"] * 1.5, BI_POO["tau_minus"] * 0.7, 0.02 * 60 / pairings)
    popt, pcov = curve_fit(model, dt, y, p0=p0, bounds=([0.1, 0.1, 0.0], [1e4, 1e4, 10.0]))
    se = np.sqrt(np.diag(pcov))
    tp, tq, eta = (float(v) for v in popt)
    scale = 100.0 * pairings * 0.5 * eta
    return StdpFit(tp, tq, eta, float(se[0]), float(se[1]), float(se[2]), int(pairings),
                   scale * tq / (tp + tq), scale * tp / (tp + tq),
                   float(np.sqrt(np.mean((model(dt, *popt) - y) ** 2))))


# ============================================================================ exact expectations
def _check_rule(rule):
    if rule not in RULES:
        raise ConfigError(f"unknown rule {rule!r}; choose 'asymmetric' or 'symmetric'")


def expected_change(pre_times, post_times, tau_pre, tau_post, eta_rel, rule="asymmetric",
                    up_pre=0.0, up_post=0.0, t_end=None):
    """Exact expected relative change (%) for a weak synapse and any schedule of forced spikes.

    Continuous time.  Each neuron is an independent two-state Markov chain (the weak synapse does
    not couple them) with up rate ``up`` and down rate ``1/tau`` (per ms), forced to the excited
    state at its spike times.  The post end of the rule gives
    ``E[dw]/(eta/2) = sum over post spikes P_pre(t+) + integral P_pre(t) (up_post - (up_post +
    1/tau_post) P_post(t)) dt`` (a forced spike of an already excited neuron is a vetoed event,
    which still counts); the symmetric rule adds the same with pre and post swapped.  Between
    spikes ``P(t)`` relaxes exponentially, so each interval integrates in closed form.  Both
    neurons start at rest at t = 0; the integral runs to ``t_end`` (ms; default: until everything
    has relaxed).  Simultaneous forced spikes each see the other's new state (the engine's rule).
    For one pairing without spontaneous transitions this is :func:`closed_form`.
    """
    _check_rule(rule)
    pre = np.sort(np.asarray(pre_times, dtype=np.float64).ravel())
    post = np.sort(np.asarray(post_times, dtype=np.float64).ravel())
    lam_i, lam_j = up_pre + 1.0 / tau_pre, up_post + 1.0 / tau_post
    inf_i, inf_j = up_pre / lam_i, up_post / lam_j
    lam = lam_i + lam_j
    times = np.union1d(pre, post)
    t_stop = np.inf if t_end is None else float(t_end)
    times = times[times <= t_stop]
    sym = rule == "symmetric"
    P_i = P_j = 0.0
    t_cur = 0.0
    total = 0.0

    def interval(P_i, P_j, L):
        """Contribution of a spike-free interval of length L, and the probabilities at its end."""
        A, B = P_i - inf_i, P_j - inf_j
        e_i, e_j, e_ij = (-math.expm1(-x * L) for x in (lam_i, lam_j, lam))
        out = -B * (inf_i * e_j + lam_j * A * e_ij / lam)
        if sym:
            out += -A * (inf_j * e_i + lam_i * B * e_ij / lam)
        return out, inf_i + A * (1.0 - e_i), inf_j + B * (1.0 - e_j)

    pre_set = set(pre.tolist())
    post_set = set(post.tolist())
    for t in times:
        dI, P_i, P_j = interval(P_i, P_j, t - t_cur)
        total += dI
        t_cur = t
        fi, fj = t in pre_set, t in post_set
        if fi:
            P_i = 1.0
        if fj:
            P_j = 1.0
        if fj:
            total += P_i
        if fi and sym:
            total += P_j
    dI, _, _ = interval(P_i, P_j, t_stop - t_cur)
    total += dI
    return 100.0 * 0.5 * eta_rel * total


def step_probability(rate_times_step):
    """Probability that the engine moves a neuron in one step, as its ``'transition'`` event says.

    ``1 - exp(-rate*dt)`` (exact for a constant rate) or ``rate*dt`` (first order), whichever
    :data:`vpf_spiking.spiking.equations.TRANSITION` uses.
    """
    from .spiking.equations import TRANSITION

    x = float(rate_times_step)
    if "1 - exp(" in TRANSITION.replace(" ", "").replace("1-exp(", "1 - exp("):
        return -math.expm1(-x)
    return min(1.0, x)


def expected_change_discrete(pre_steps, post_steps, n_steps, step_ms, tau_pre, tau_post, eta_rel,
                             rule="asymmetric", up_pre=0.0, up_post=0.0):
    """Exact expected relative change (%) of the *simulation*: the same chains on the time grid.

    The engine moves a neuron with probability :func:`step_probability` per step (or forces it);
    the learning pathways run after the step's transitions and see the partner's new state.
    Forced spike steps are integer step indices; the run has ``n_steps`` steps from step 0.
    The difference from :func:`expected_change` is the discretisation error of the simulation
    (same-step transitions of both neurons), of order ``step/tau``.
    """
    _check_rule(rule)
    n = int(n_steps)

    def chain(forced_steps, tau, up):
        d = step_probability(step_ms / tau)
        u = step_probability(step_ms * up)
        a = 1.0 - d - u
        p_inf = u / (u + d)
        forced = np.zeros(n, dtype=bool)
        fs = np.asarray(forced_steps, dtype=np.int64).ravel()
        forced[fs[(fs >= 0) & (fs < n)]] = True
        idx = np.arange(n)
        last = np.maximum.accumulate(np.where(forced, idx, -1))
        k = np.where(last >= 0, idx - last, idx + 1)
        start = np.where(last >= 0, 1.0, 0.0)
        P = p_inf + (start - p_inf) * np.power(a, k)           # after step n
        P_before = np.concatenate(([0.0], P[:-1]))             # after step n-1
        return forced, P, P_before, u, d

    f_i, P_i, Pb_i, u_i, d_i = chain(pre_steps, tau_pre, up_pre)
    f_j, P_j, Pb_j, u_j, d_j = chain(post_steps, tau_post, up_post)

    def end(f_self, Pb_self, u_self, d_self, P_other):
        random = (1.0 - Pb_self) * u_self - Pb_self * d_self
        return float(np.sum(np.where(f_self, 1.0, random) * P_other))

    total = end(f_j, Pb_j, u_j, d_j, P_i)
    if rule == "symmetric":
        total += end(f_i, Pb_i, u_i, d_i, P_j)
    return 100.0 * 0.5 * eta_rel * total


# ============================================================================ protocol
@dataclass
class PairingProtocol:
    """A pairing protocol (Bi & Poo 1998 style) on the spiking engine.

    Times in ms, frequency in Hz.  ``tau_pre``, ``tau_post`` and ``eta_rel`` default (None) to
    the fit to Bi & Poo (:func:`fit_bi_poo`).  ``window`` (ms) is the simulated spacing of
    pairings; None: ``min(1000/frequency, max|dt| + 10 max(tau))`` (see the module docstring).
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
    device: str = "runtime"
    seed: int = 0
    block_pre: int | None = None
    fit: StdpFit | None = field(default=None, repr=False, compare=False)

    # ------------------------------------------------------------------ checks
    def validated(self) -> "PairingProtocol":
        """A copy with defaults filled in (fitted taus and eta); ConfigError on bad values."""
        p = replace(self)
        if p.rule not in RULES:
            raise ConfigError(f"unknown rule {p.rule!r}; choose 'asymmetric' or 'symmetric'")
        if p.device not in DEVICES:
            raise ConfigError(f"unknown device {p.device!r}; choose 'runtime' or 'cpp_standalone'")
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
        """Spontaneous rest -> excited rate (per ms)."""
        return math.exp(self.bias / self.temperature) / tau_excited

    def closed_form(self, dt=None):
        dt = self.dts() if dt is None else dt
        return closed_form(dt, self.tau_pre, self.tau_post, self.eta_rel, self.pairings, self.rule)

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


@dataclass
class StdpResult:
    """Outcome of :func:`simulate`: the table, the effective protocol and timings (s)."""

    table: "object"                 # pandas.DataFrame, one row per dt
    protocol: PairingProtocol
    timings: dict
    changes: np.ndarray             # (synapses, n_dt) relative changes in %


# ============================================================================ simulation
def simulate(protocol: PairingProtocol, progress=True, directory=None) -> StdpResult:
    """Run the pairing protocol on the spiking engine (Brian2) and tabulate the weight changes.

    Returns a table with columns ``dt_ms``, ``dw_mean``, ``dw_sem`` (relative change in % after
    the protocol, mean over the independent synapses and its standard error), ``dw_closed_form``
    (spec section 6 with the protocol's parameters), ``dw_expected`` (the exact expectation with
    the real pairing interval, :func:`expected_change`), ``dw_expected_discrete`` (the exact
    expectation on the simulation's time grid and window), ``dw_bi_poo`` and ``n_synapses``.
    """
    import pandas as pd

    p = protocol.validated()
    from brian2 import Network, defaultclock, ms, second, seed as brian_seed

    from .spiking import devices as dev
    from .spiking.equations import markov_neurons, vpf_synapses

    t_start = time.perf_counter()
    dts = p.dts()
    K, B = len(dts), p.synapses
    owner = object()
    if p.device == "runtime":
        dev.setup_runtime()
    else:
        dev.StandaloneSession.claim(owner, p.device)
    try:
        defaultclock.dt = p.sim_dt * ms
        tau_i = neuron_tau_ms(p.tau_pre, p.bias, p.temperature) * ms
        tau_j = neuron_tau_ms(p.tau_post, p.bias, p.temperature) * ms
        na, nb, a, m, k = p.layout()
        assert np.array_equal(k, np.arange(K))
        blocks = np.arange(B)[:, None]
        pre = markov_neurons(B * na, tau=tau_i, bias=p.bias, temperature=p.temperature, force=True,
                             name="stdp_pre")
        post = markov_neurons(B * nb, tau=tau_j, bias=p.bias, temperature=p.temperature, force=True,
                              name="stdp_post")
        # synapse (block, k) is number block*K + k, so S.w reshapes to (B, K)
        S = vpf_synapses(pre, post, i=(blocks * na + a).ravel(), j=(blocks * nb + m).ravel(),
                         w=np.full(B * K, p.w0), rule=p.rule, eta=p.eta, name="stdp_syn")
        # all neurons start at rest, so the fields are the biases (markov_neurons set z = b)
        pre.t_force = np.tile(p.offset + p.dt_step * np.arange(na), B) * ms
        post.t_force = np.tile(p.offset + p.dt_min + p.dt_step * (na * np.arange(nb) + na - 1), B) * ms
        pre.force_period = p.window * ms
        post.force_period = p.window * ms
        net = Network(pre, post, S)
        pairing_time = p.n_steps_pairings * p.sim_dt * ms
        quiet_time = (p.n_steps - p.n_steps_pairings) * p.sim_dt * ms
        brian_seed(p.seed)
        timings = {}

        def run_all(report):
            net.run(pairing_time, report=report, namespace={})
            # no further pairing: the last one relaxes undisturbed
            pre.t_force = 1e9 * second
            post.t_force = 1e9 * second
            net.run(quiet_time, namespace={})

        if p.device == "runtime":
            t0 = time.perf_counter()
            run_all(_tqdm_report() if progress else None)
            timings["run_s"] = time.perf_counter() - t0
        else:
            from brian2 import device

            run_all("text" if progress else None)
            if directory is None:
                import hashlib
                import json

                key = hashlib.sha1(json.dumps(p.describe(), sort_keys=True, default=str).encode()).hexdigest()[:12]
                directory = dev.cache_dir() / p.device / f"stdp-{key}"
            directory = Path(directory)
            directory.mkdir(parents=True, exist_ok=True)
            t0 = time.perf_counter()
            dev.build_standalone(directory, p.device)
            timings["compile_s"] = time.perf_counter() - t0
            t0 = time.perf_counter()
            device.run(directory=str(directory), with_output=bool(progress))
            timings["run_s"] = time.perf_counter() - t0
        w = np.asarray(S.w[:], dtype=np.float64).reshape(B, K)
        n_events = int(np.sum(post.nev[:])) + int(np.sum(pre.nev[:])) if hasattr(post, "nev") else None
    finally:
        if p.device != "runtime":
            dev.StandaloneSession.release(owner)
    if not np.all(np.isfinite(w)):
        raise TrainingDiverged("STDP weights became non-finite; lower eta_rel")
    changes = 100.0 * (w - p.w0) / p.w0
    timings["total_s"] = time.perf_counter() - t_start
    timings["steps"] = p.n_steps
    timings["neurons"] = B * (na + nb)
    if n_events is not None:
        timings["events"] = n_events
    table = pd.DataFrame({
        "dt_ms": dts,
        "dw_mean": changes.mean(axis=0),
        "dw_sem": changes.std(axis=0, ddof=1) / np.sqrt(B) if B > 1 else np.full(K, np.nan),
        "dw_closed_form": p.closed_form(dts),
        "dw_expected": p.expected(dts),
        "dw_expected_discrete": p.expected_discrete(dts),
        "dw_bi_poo": bi_poo_curve(dts),
        "n_synapses": B,
    })
    return StdpResult(table, p, timings, changes)


def _tqdm_report():
    """A Brian2 ``report`` callable that drives a tqdm bar (runtime device)."""
    from .progress import progress_bar as tqdm

    bar = {"b": None}

    def report(elapsed, completed, start, duration):
        if bar["b"] is None:
            bar["b"] = tqdm(total=100, desc="stdp protocol", unit="%", leave=False)
        bar["b"].n = round(100 * float(completed), 1)
        bar["b"].refresh()
        if completed >= 1.0:
            bar["b"].close()

    return report


# ============================================================================ output
def write_csv(result: StdpResult, path) -> Path:
    """Write the table (atomically: a temporary file renamed into place)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    result.table.to_csv(tmp, index=False, float_format="%.6g")
    tmp.replace(path)
    return path


def plot(results, path, fit: StdpFit | None = None, title=None) -> Path:
    """Figure: simulated points with error bars, the closed form and the Bi & Poo fit."""
    from matplotlib.figure import Figure

    results = results if isinstance(results, (list, tuple)) else [results]
    fig = Figure(figsize=(6.4, 4.2))
    ax = fig.subplots()
    grid = np.linspace(min(r.table.dt_ms.min() for r in results), max(r.table.dt_ms.max() for r in results), 801)
    ax.plot(grid, bi_poo_curve(grid), color="0.6", lw=1.5, ls="--", label="Bi & Poo (1998) exponential fits")
    colours = {"asymmetric": "C0", "symmetric": "C3"}
    for r in results:
        p, t = r.protocol, r.table
        c = colours.get(p.rule, "C2")
        ax.plot(grid, p.closed_form(grid), color=c, lw=1.2,
                label=f"closed form ({p.rule}), tau_pre {p.tau_pre:.1f}, tau_post {p.tau_post:.1f} ms")
        ax.errorbar(t.dt_ms, t.dw_mean, yerr=t.dw_sem, fmt="o", ms=3.5, color=c, capsize=2,
                    label=f"simulation ({p.rule}), {p.synapses} synapses per dt, +-1 SE")
    ax.axhline(0, color="k", lw=0.6)
    ax.axvline(0, color="k", lw=0.6)
    ax.set_xlabel("dt = t_post - t_pre (ms)")
    ax.set_ylabel(f"relative weight change after {results[0].protocol.pairings} pairings (%)")
    ax.set_title(title or "STDP from the VPF rule: pairing protocol")
    ax.legend(fontsize=7, loc="upper left")
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    return path


# ============================================================================ protocol kind
_STDP_KEYS = {"rule", "synapses", "pairings", "frequency", "dt_min", "dt_max", "dt_step", "tau_pre", "tau_post",
              "eta_rel", "bias", "temperature", "w0", "sim_dt", "window", "device", "seed", "progress"}


def protocol_from_config(config) -> tuple[list[PairingProtocol], bool]:
    """Read the ``[stdp]`` table of a ``kind = "stdp"`` protocol (``rule`` and ``frequency`` may be lists)."""
    from .protocols import check_keys, get_value, table

    src = getattr(config, "source", "<protocol>")
    check_keys(config, {"kind", "name", "description", "stdp"}, "the top level", src)
    t = table(config, "stdp", _STDP_KEYS, source=src)
    kw = {}
    for key, kind in (("synapses", int), ("pairings", int), ("seed", int), ("dt_min", float), ("dt_max", float),
                      ("dt_step", float), ("tau_pre", float), ("tau_post", float), ("eta_rel", float),
                      ("bias", float), ("temperature", float), ("w0", float), ("sim_dt", float),
                      ("window", float), ("device", str)):
        v = get_value(t, key, kind, "stdp", src)
        if v is not None:
            kw[key] = v
    progress = get_value(t, "progress", bool, "stdp", src, default=True)
    rules = t.get("rule", "asymmetric")
    rules = rules if isinstance(rules, list) else [rules]
    freqs = t.get("frequency", 1.0)
    freqs = freqs if isinstance(freqs, list) else [freqs]
    out = []
    for r in rules:
        if not isinstance(r, str):
            raise ConfigError(f"{src}: stdp.rule must be a string or a list of strings, got {r!r}")
        for f in freqs:
            if isinstance(f, bool) or not isinstance(f, (int, float)):
                raise ConfigError(f"{src}: stdp.frequency must be a number or a list of numbers, got {f!r}")
            try:
                out.append(PairingProtocol(rule=r, frequency=float(f), **kw).validated())
            except ConfigError as exc:
                raise ConfigError(f"{src}: {exc}") from None
    return out, progress


def _register():
    from .protocols import register_protocol

    @register_protocol("stdp")
    def run_stdp(config, out_dir):
        """``kind = "stdp"``: writes ``stdp.csv`` (all rules/frequencies), ``stdp.png`` and ``fit.json``."""
        import json

        import pandas as pd

        protocols, progress = protocol_from_config(config)
        out_dir = Path(out_dir)
        results = []
        for p in protocols:
            r = simulate(p, progress=progress)
            r.table.insert(0, "frequency_hz", p.frequency)
            r.table.insert(0, "rule", p.rule)
            results.append(r)
            print(f"stdp {p.rule} at {p.frequency:g} Hz: {r.timings['total_s']:.1f} s")
        combined = pd.concat([r.table for r in results], ignore_index=True)
        tmp = out_dir / ".stdp.csv.tmp"
        combined.to_csv(tmp, index=False, float_format="%.6g")
        tmp.replace(out_dir / "stdp.csv")
        plot([r for r in results if r.protocol.frequency == protocols[0].frequency], out_dir / "stdp.png")
        fit = fit_bi_poo()
        (out_dir / "fit.json").write_text(json.dumps({"fit": fit.as_dict(), "timings": [r.timings for r in results],
                                                      "protocols": [r.protocol.describe() for r in results]},
                                                     indent=2, default=float))
        return results

    return run_stdp


run_stdp_protocol = _register()


# ============================================================================ CLI
STDP_DESCRIPTION = """\
Simulate a spike-timing pairing protocol (Bi & Poo 1998 style) on the spiking engine: pre and
post spikes forced dt ms apart, PAIRINGS times at FREQUENCY Hz, many independent synapses per
dt.  Writes a CSV (dt_ms, dw_mean, dw_sem, dw_closed_form, ...: relative weight change in %
after the protocol) and optionally a figure with the closed form and the Bi & Poo fit.
The excited-state time constants and the learning rate default to the fit to Bi & Poo.

examples:
  vpf stdp --out stdp.csv --figure stdp.png
  vpf stdp --rule symmetric --synapses 200 --out sym.csv
  vpf stdp --device cpp_standalone --out stdp.csv
"""


def add_subcommand(subparsers):
    p = subparsers.add_parser("stdp", help="STDP pairing protocol on the spiking engine",
                              description=STDP_DESCRIPTION,
                              formatter_class=__import__("argparse").RawDescriptionHelpFormatter)
    d = PairingProtocol()
    p.add_argument("--rule", default=d.rule, help="asymmetric (default) or symmetric")
    p.add_argument("--synapses", type=int, default=d.synapses, metavar="N",
                   help=f"independent synapses per value of dt (default: {d.synapses})")
    p.add_argument("--pairings", type=int, default=d.pairings, help=f"pairings per protocol (default: {d.pairings})")
    p.add_argument("--frequency", type=float, default=d.frequency, metavar="HZ",
                   help=f"pairing frequency in Hz (default: {d.frequency:g})")
    p.add_argument("--dt-min", type=float, default=d.dt_min, metavar="MS", help=f"default: {d.dt_min:g}")
    p.add_argument("--dt-max", type=float, default=d.dt_max, metavar="MS", help=f"default: {d.dt_max:g}")
    p.add_argument("--dt-step", type=float, default=d.dt_step, metavar="MS", help=f"default: {d.dt_step:g}")
    p.add_argument("--tau-pre", type=float, metavar="MS", help="excited-state time constant of the pre neuron (default: fitted)")
    p.add_argument("--tau-post", type=float, metavar="MS", help="excited-state time constant of the post neuron (default: fitted)")
    p.add_argument("--eta-rel", type=float, metavar="X", help="learning rate / initial weight (default: fitted)")
    p.add_argument("--bias", type=float, default=d.bias, help=f"neuron bias; sets the spontaneous rate (default: {d.bias:g})")
    p.add_argument("--sim-dt", type=float, default=d.sim_dt, metavar="MS", help=f"simulation time step (default: {d.sim_dt:g})")
    p.add_argument("--device", default=d.device, help="runtime (default) or cpp_standalone")
    p.add_argument("--seed", type=int, default=d.seed, help=f"default: {d.seed}")
    p.add_argument("--out", required=True, metavar="FILE.csv", help="CSV to write")
    p.add_argument("--figure", metavar="FILE.png", help="also write this figure")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_stdp)
    return p


def cmd_stdp(args):
    out = Path(args.out)
    if out.suffix.lower() != ".csv":
        raise ConfigError(f"--out {out}: expected a .csv file name")
    if args.figure and Path(args.figure).suffix.lower() != ".png":
        raise ConfigError(f"--figure {args.figure}: expected a .png file name")
    proto = PairingProtocol(rule=args.rule, synapses=args.synapses, pairings=args.pairings, frequency=args.frequency,
                            dt_min=args.dt_min, dt_max=args.dt_max, dt_step=args.dt_step, tau_pre=args.tau_pre,
                            tau_post=args.tau_post, eta_rel=args.eta_rel, bias=args.bias, sim_dt=args.sim_dt,
                            device=args.device, seed=args.seed)
    result = simulate(proto, progress=not args.no_progress)
    write_csv(result, out)
    p, t = result.protocol, result.table
    z = (t.dw_mean - t.dw_closed_form) / t.dw_sem
    print(f"{p.rule} rule, {p.synapses} synapses x {len(t)} dt values, {p.pairings} pairings at {p.frequency:g} Hz; "
          f"tau_pre {p.tau_pre:.2f} ms, tau_post {p.tau_post:.2f} ms, eta/w0 {p.eta_rel:.4g}")
    if np.all(np.isfinite(z)):
        print(f"simulation vs closed form: max |difference| = {np.max(np.abs(z)):.2f} standard errors")
    timing = ", ".join(f"{k} {v:.1f} s" for k, v in result.timings.items() if k.endswith("_s"))
    print(f"{timing}; wrote {out}")
    if args.figure:
        plot(result, args.figure, fit=p.fit)
        print(f"wrote {args.figure}")
    return 0


__all__ = [
    "BI_POO", "PairingProtocol", "StdpFit", "StdpResult", "bi_poo_curve", "closed_form", "expected_change",
    "expected_change_discrete", "fit_bi_poo", "neuron_tau_ms", "plot", "simulate", "spontaneous_rate_hz",
    "write_csv",
]
