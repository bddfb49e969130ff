"""What a VPF synapse is expected to do under forced pre/post spikes (spec section 6); numpy and scipy only.

Parameters and units
--------------------
``tau_pre``, ``tau_post`` (ms) are the *excited-state* time constants: the mean time a neuron
stays excited after a spike.  A neuron with bias ``b`` and time constant ``tau`` leaves the
excited state at rate ``exp(-b/2T)/tau`` (the engine's :data:`~vpf_spiking.spiking.equations.TRANSITION_LAW`),
so the neuron's own ``tau`` is ``tau_excited * exp(-b/2T)`` (:func:`neuron_tau_ms`), and it
becomes excited spontaneously at rate ``exp(b/T)/tau_excited`` (negligible at ``b = -30``).
``eta_rel = eta / w0`` is the learning rate relative to the initial weight; results are
relative changes ``100 (w - w0)/w0`` in % after the whole protocol.

Closed form (spec section 6), per pairing, with r = 1/tau::

    dt >= 0:  E[dw] = +(eta/2) r_pre /(r_pre + r_post) exp(-dt/tau_pre)
    dt <  0:  E[dw] = -(eta/2) r_post/(r_pre + r_post) exp(-|dt|/tau_post)

The symmetric rule adds the same from the pre end with pre and post swapped, which cancels
except at dt = 0, where the two simultaneous forced spikes each see the other's new state:
``+eta/2`` per pairing.  :func:`expected_change` generalises the closed form to any schedule of
forced spikes, spontaneous transitions and either rule (pairings that interact at high
frequency), and :func:`expected_change_discrete` gives the exact expectation of the simulation on
its time grid, which measures the discretisation error.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

from ...errors import ConfigError
from ..equations import TRANSITION_LAW

RULES = ("asymmetric", "symmetric")

#: Bi & Poo (1998) summary: exponential fits to the pairing data (amplitudes in %, tau in ms)
BI_POO = {"a_plus": 80.0, "tau_plus": 16.8, "a_minus": 40.0, "tau_minus": 33.7}

#: pairings of the Bi & Poo protocol (60 at 1 Hz), for which :data:`BI_POO` holds
BI_POO_PAIRINGS = 60

__all__ = [
    "BI_POO", "BI_POO_PAIRINGS", "RULES", "StdpFit", "bi_poo_curve", "check_rule", "closed_form",
    "expected_change", "expected_change_discrete", "fit_bi_poo", "fit_closed_form", "neuron_tau_ms",
    "spontaneous_rate_hz", "step_probability",
]


def check_rule(rule):
    if rule not in RULES:
        raise ConfigError(f"unknown rule {rule!r}; choose 'asymmetric' or 'symmetric'")


# ============================================================================ closed form
def neuron_tau_ms(tau_excited_ms, bias, temperature=1.0):
    """The neuron's ``tau`` (ms) whose excited state lasts ``tau_excited_ms`` on average at field ``bias``."""
    # down rate at field b with tau = 1 is exp(-b/2T); tau_excited = tau / that
    return float(tau_excited_ms) * TRANSITION_LAW.down_rate(bias, temperature, 1.0)


def spontaneous_rate_hz(tau_excited_ms, bias, temperature=1.0):
    """Rest -> excited rate (1/s) of a neuron at field ``bias``: ``exp(b/T) / tau_excited``."""
    tau = neuron_tau_ms(tau_excited_ms, bias, temperature)
    return TRANSITION_LAW.up_rate(bias, temperature, tau * 1e-3)


def closed_form(dt_ms, tau_pre, tau_post, eta_rel, pairings=60, rule="asymmetric"):
    """Expected relative weight change (%) after ``pairings`` isolated pairings, spec section 6.

    ``dt = 0`` (simultaneous forced spikes) takes the ``dt > 0`` branch, as the engine does: the
    post neuron's event sees the pre neuron's new (excited) state.  The symmetric rule gives 0
    except at ``dt = 0``, where both ends see the other excited: ``+eta/2`` per pairing.
    """
    check_rule(rule)
    dt = np.asarray(dt_ms, dtype=np.float64)
    unit = 100.0 * pairings * 0.5 * eta_rel
    if rule == "symmetric":
        return np.where(dt == 0, unit, 0.0)
    total = tau_pre + tau_post
    # r_pre/(r_pre+r_post) = tau_post/(tau_pre+tau_post)
    ltp = tau_post / total * np.exp(-np.abs(dt) / tau_pre)
    ltd = -tau_pre / total * np.exp(-np.abs(dt) / tau_post)
    return unit * np.where(dt >= 0, ltp, ltd)


def bi_poo_curve(dt_ms, a_plus=BI_POO["a_plus"], tau_plus=BI_POO["tau_plus"],
                 a_minus=BI_POO["a_minus"], tau_minus=BI_POO["tau_minus"], pairings=None):
    """The Bi & Poo (1998) exponential fits: ``+a_plus exp(-dt/tau_plus)`` for dt >= 0, else ``-a_minus exp(dt/tau_minus)``.

    The amplitudes are for their 60 pairings; ``pairings`` scales the curve to another number
    (the weight change of weak pairings adds up linearly), None leaves it as published.
    """
    dt = np.asarray(dt_ms, dtype=np.float64)
    scale = 1.0 if pairings is None else float(pairings) / BI_POO_PAIRINGS
    return scale * np.where(dt >= 0, a_plus * np.exp(-np.abs(dt) / tau_plus),
                            -a_minus * np.exp(-np.abs(dt) / tau_minus))


@dataclass
class StdpFit:
    """Excited-state time constants and learning rate fitted to a pairing curve."""

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


def fit_closed_form(dt_ms, target, pairings=60, sigma=None, p0=None) -> StdpFit:
    """Least-squares fit (``scipy.optimize.curve_fit``) of the asymmetric :func:`closed_form` to ``target``.

    ``sigma`` (standard errors of ``target``) weights the points and makes the parameter errors
    absolute; without it every point counts the same.
    """
    from scipy.optimize import curve_fit

    dt = np.asarray(dt_ms, dtype=np.float64)
    y = np.asarray(target, dtype=np.float64)

    def model(x, tau_pre, tau_post, eta_rel):
        return closed_form(x, tau_pre, tau_post, eta_rel, pairings)

    if p0 is None:
        p0 = (BI_POO["tau_plus"] * 1.5, BI_POO["tau_minus"] * 0.7, 0.02 * 60 / pairings)
    kw = {} if sigma is None else {"sigma": np.asarray(sigma, dtype=np.float64), "absolute_sigma": True}
    popt, pcov = curve_fit(model, dt, y, p0=p0, bounds=([0.1, 0.1, 0.0], [1e4, 1e4, 10.0]), **kw)
    se = np.sqrt(np.diag(pcov))
    tp, tq, eta = (float(v) for v in popt)
    scale = 100.0 * pairings * 0.5 * eta
    return StdpFit(tp, tq, eta, float(se[0]), float(se[1]), float(se[2]), int(pairings),
                   scale * tq / (tp + tq), scale * tp / (tp + tq),
                   float(np.sqrt(np.mean((model(dt, *popt) - y) ** 2))))


def fit_bi_poo(dt_ms=None, target=None, pairings=60) -> StdpFit:
    """:func:`fit_closed_form` to the Bi & Poo curve.

    ``dt_ms`` defaults to -100..100 ms in 1 ms steps; ``target`` to :func:`bi_poo_curve` there.
    """
    dt = np.arange(-100.0, 100.5, 1.0) if dt_ms is None else np.asarray(dt_ms, dtype=np.float64)
    y = bi_poo_curve(dt) if target is None else np.asarray(target, dtype=np.float64)
    return fit_closed_form(dt, y, pairings)


# ============================================================================ exact expectations
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
    check_rule(rule)
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


def step_probability(rate_times_step, law=TRANSITION_LAW):
    """Probability that the engine moves a neuron in one step, by the engine's transition law.

    ``rate*dt`` (first order, clipped at 1) or ``1 - exp(-rate*dt)``, whichever ``law``
    (default :data:`vpf_spiking.spiking.equations.TRANSITION_LAW`) says.
    """
    return law.step_probability(rate_times_step)


def expected_change_discrete(pre_steps, post_steps, n_steps, step_ms, tau_pre, tau_post, eta_rel,
                             rule="asymmetric", up_pre=0.0, up_post=0.0):
    """Exact expected relative change (%) of the *simulation*: the same chains on the time grid.

    The engine moves a neuron with probability :func:`step_probability` per step (or forces it);
    the learning pathways run after the step's transitions and see the partner's new state.
    Forced spike steps are integer step indices; the run has ``n_steps`` steps from step 0.
    The difference from :func:`expected_change` is the discretisation error of the simulation
    (same-step transitions of both neurons), of order ``step/tau``.
    """
    check_rule(rule)
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
