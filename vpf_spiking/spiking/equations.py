"""Markov neurons and VPF synapses for Brian2: the one place where the spiking model is written.

This module is the contract that every spiking experiment in the project builds on (the
network engine in :mod:`vpf_spiking.spiking.network`, the STDP pairing protocol, the
benchmarks).  It returns ordinary Brian2 objects; the caller adds them to a ``Network``.

Neurons (:func:`markov_neurons`)
--------------------------------
A group of continuous-time two-state Markov neurons (spec section 5).  Per-neuron variables:

``y``     state in {0, 1}.
``z``     input field ``b + sum_i w_ij y_i`` over every synapse touching the neuron.  It is *not*
          a summed variable: synapses add ``w * dy`` when a neighbour changes state and ``dw * y``
          when a weight changes, so it stays exact (to rounding) at all times.  Whoever sets ``y``,
          ``w`` or ``b`` from outside must set ``z`` consistently (``network.py`` does).
``za``    the part of ``z`` that comes from the layer above (used only while ``topdown`` = 0).
``b``     bias.
``tau``   time constant (per neuron, so a pre and a post neuron may differ).
``dy``    ``y_new - y_old`` at the neuron's last event (0 for a vetoed event).
``h``     ``learn * (y_new - 1/2)`` at the last event: the post factor of the learning rule.
``fired`` 1 in the step of an event (set by the reset, cleared before the next thresholds).
``nev``, ``nflip``  counts of events and of real state changes (for rates and cost accounting).
``t0``    (shared) offset subtracted from ``t`` before the control arrays are read, so a control
          schedule always starts at 0 whatever the clock says.
``eta_b`` (shared) bias learning rate: ``db = eta_b * learn * (y_new - 1/2)`` at every event.

The neuron leaves its current state at rate ``exp((1/2 - y) * zeff / T) / tau`` with
``zeff = z - (1 - topdown) * za``: rest -> excited at ``exp(+zeff/2T)/tau``, excited -> rest at
``exp(-zeff/2T)/tau``.  Every step the custom event ``'transition'`` fires with probability
``rate*dt``, or deterministically when the neuron is clamped to a value it does not have.
(``rate*dt`` rather than ``1 - exp(-rate*dt)``: the expected number of events is then exactly
``rate * time``, so the learning rule's expected drift is exact, and the up/down probability
ratio of a single neuron is exactly ``exp(zeff/T)``, so isolated flips keep detailed balance
exactly; the remaining O(dt) error comes from neighbours flipping in the same step.  The
network refuses settings where ``rate*dt`` would exceed 0.2.)  Its reset decides the new state:

* control ``mode = -1``: free, the event is a real transition (y -> 1 - y);
* ``mode = 0`` or ``1``: clamped to that value; an event of a neuron already there is *vetoed*
  (y unchanged) and a neuron elsewhere is *forced* there at once (a forced transition, e.g. the
  forced spike of an STDP pairing, or new data arriving);
* ``mode = 2``: hold, clamped at whatever state it has (all events vetoed).

Vetoed and forced events are events: they drive the plasticity like real ones.  Two derived
events, evaluated after the resets, feed the synapses: ``'flip'`` (the state changed: propagate
``w * dy`` into the neighbours' fields) and ``'learn'`` (an event while learning is on: apply
the rule).  The reset computes the per-neuron factors ``dy`` and ``h`` once, so synaptic code
never evaluates an exponential or a per-neuron expression per synapse.

Control inputs, given as Brian2 ``TimedArray`` objects over the time ``t - t0`` (or as numbers
for "always"):

``mode``     -1 / 0 / 1 / 2 as above; a 1-D TimedArray ``(slots,)`` (same for every neuron of the
             group) or a 2-D one ``(slots, n)`` (per neuron: data given over time, forced spikes
             at given times).  Default ``-1`` (free).
``learn``    0 or 1, whether events change weights/biases now.  Default 1.
``topdown``  0 or 1, whether the field from the layer above counts (0 during a bottom-up E-step
             of a deep network).  Default 1.

Synapses (:func:`vpf_synapses`)
-------------------------------
``Synapses(pre, post)`` with a weight ``w`` per synapse and a shared learning rate ``eta``.
Pathways, all in the ``'after_resets'`` slot so they see states *after* the transition:

* order 1, on ``'flip'`` of pre: ``z_post += w * dy_pre``; on ``'flip'`` of post:
  ``z_pre += w * dy_post`` (weights are symmetric: one ``w`` serves both directions).  The old
  weight is used, since the plasticity of the same step runs after it (order 2).
* order 2, on ``'learn'`` of post: ``dw = eta * y_pre * h_post`` i.e.
  ``dw_ij = eta * y_i * (y_j+ - 1/2)``; ``w += dw`` and both ends' fields get ``dw * y_other``.
  With ``rule="symmetric"`` the same runs on ``'learn'`` of pre (``dw = eta * y_post * h_pre``);
  ``rule="asymmetric"`` takes only the post-synaptic end; ``rule=None`` builds no plasticity
  pathway (sampling only).

``pre_is_below=True`` marks synapses from layer l-1 (pre) to layer l (post): the post neuron's
contribution to the pre neuron's field then also goes into ``za`` of the pre neuron.

Recipe for a pairing experiment (two neurons, forced spikes)::

    ta = TimedArray(mode_array, dt=defaultclock.dt)       # (steps, 2): -1 free, 1 = force up
    G = markov_neurons(2, tau=[tau_i, tau_j], bias=[-30, -30], mode=ta, name="pair")
    S = vpf_synapses(G, G, i=[0], j=[1], w=[0.0], rule="asymmetric", eta=1e-3)
    # -30 bias: spontaneous rest -> excited rate exp(-15)/tau, negligible.

Scheduled forced transitions (``force=True``, used by the STDP protocol of :mod:`vpf_spiking.spiking.stdp`):
two more per-neuron variables, ``t_force`` (time, on the ``t - t0`` scale, of the neuron's next
forced rest -> excited transition; default 1e9 s, i.e. never) and ``force_period`` (added to
``t_force`` after each forced event; default 1e9 s).  At the step where ``t - t0`` reaches
``t_force`` the neuron has an event whose new state is 1 whatever ``mode`` says: a forced
transition, or a vetoed event if it was already excited.  This costs one comparison per
neuron and step, where a 2-D ``mode`` array would need one entry per neuron and step.

All names (events ``'transition'``, ``'flip'``, ``'learn'``; variables above) are stable.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..errors import ConfigError

__all__ = [
    "NEURON_EQS", "SYNAPSE_EQS", "TRANSITION", "TRANSITION_LAW", "TransitionLaw", "markov_neurons",
    "vpf_synapses", "control_array", "FREE", "CLAMP0", "CLAMP1", "HOLD",
]

#: control codes for ``mode``
FREE, CLAMP0, CLAMP1, HOLD = -1, 0, 1, 2

NEURON_EQS = """
y : 1
z : 1
za : 1
b : 1
tau : second (constant)
dy : 1
h : 1
fired : 1
nev : 1
nflip : 1
t0 : second (shared)
eta_b : 1 (shared)
"""



@dataclass(frozen=True)
class TransitionLaw:
    """How a neuron's state changes: its rates and the per-step event probability (spec section 5).

    A neuron in state ``y`` at effective field ``z`` leaves that state at rate
    ``exp((1/2 - y) z / T) / tau``.  The engine turns the rate into the probability of an event
    in one step of length ``dt``: ``rate*dt`` when ``first_order`` (see the module docstring for
    why), else ``1 - exp(-rate*dt)``.  :data:`TRANSITION` is written from this object, and code
    that predicts the engine (the STDP theory) reads the law from here rather than from the string.
    """

    first_order: bool = True

    #: Brian2 expression of the rate; ``{zeff}`` and ``{T}`` are filled in per group
    RATE_EXPR = "exp((0.5 - y) * ({zeff}) / {T}) / tau"

    def rate(self, y, z, temperature, tau):
        """Rate (per unit of ``tau``) of leaving state ``y`` at field ``z``; numpy-broadcast."""
        y, z = np.asarray(y, dtype=np.float64), np.asarray(z, dtype=np.float64)
        return np.exp((0.5 - y) * z / float(temperature)) / tau

    def up_rate(self, z, temperature, tau) -> float:
        """Rest -> excited rate at field ``z``: ``exp(+z/2T) / tau``."""
        return float(self.rate(0.0, z, temperature, tau))

    def down_rate(self, z, temperature, tau) -> float:
        """Excited -> rest rate at field ``z``: ``exp(-z/2T) / tau``."""
        return float(self.rate(1.0, z, temperature, tau))

    def step_probability(self, rate_times_step) -> float:
        """Probability of an event in one step, given ``rate * dt`` (clipped at 1 for the first-order law)."""
        x = float(rate_times_step)
        return min(1.0, x) if self.first_order else -math.expm1(-x)

    def probability_expr(self, rate_expr: str) -> str:
        """Brian2 expression of the per-step event probability for the rate expression ``rate_expr``."""
        return f"dt * {rate_expr}" if self.first_order else f"1 - exp(-dt * {rate_expr})"


#: the law the engine simulates
TRANSITION_LAW = TransitionLaw(first_order=True)

# event condition: a random transition at the law's rate, or a clamp to the other value;
# ZEFF, NAME and MODE are substituted per group
TRANSITION = (f"rand() < {TRANSITION_LAW.probability_expr(TransitionLaw.RATE_EXPR.format(zeff='{zeff}', T='T_{name}'))}"
              " or ({mode} > -0.5 and {mode} < 1.5 and abs(y - ({mode})) > 0.5)")

RESET = """
m_ = {mode}
free_ = int(m_ < -0.5)
hold_ = int(m_ > 1.5)
ynew_ = free_ * (1 - y) + hold_ * y + (1 - free_) * (1 - hold_) * int(m_ > 0.5)
dy = ynew_ - y
y = ynew_
h = ({learn}) * (y - 0.5)
b += eta_b * h
z += eta_b * h
fired = 1
nev += 1
nflip += abs(dy)
"""

FORCE_EQS = """
t_force : second
force_period : second
"""

# inserted into RESET before ``dy = ynew_ - y`` when force=True
FORCE_RESET = """f_ = int(t - t0 >= t_force - 0.5 * dt)
ynew_ = f_ + (1 - f_) * ynew_
t_force += f_ * force_period
"""

SYNAPSE_EQS = """
w : 1
eta : 1 (shared)
"""


def _control(value, name, group, kind):
    """Expression for a control input: a number, or a call of a TimedArray put into ``ns``."""
    from brian2 import TimedArray

    if value is None:
        return None, None
    if isinstance(value, TimedArray):
        tname = f"{kind}_{group}"
        ndim = value.values.ndim
        expr = f"{tname}(t - t0, i)" if ndim == 2 else f"{tname}(t - t0)"
        return expr, (tname, value)
    if np.ndim(value) == 0:
        return repr(float(value)), None
    raise ConfigError(f"{name}: control '{kind}' must be a number or a brian2 TimedArray")


def control_array(values, dt, name=None):
    """A TimedArray of control codes ``values`` (``(slots,)`` or ``(slots, n)``) with slot length ``dt``.

    ``dt`` is a Brian2 quantity; it must be a multiple of the simulation time step.  Its Cython
    code does not depend on the array's shape or slot length (see :func:`_shape_free_cython`), so
    the runtime device compiles each network's code once, whatever its size or schedule.
    """
    from brian2 import TimedArray

    values = np.asarray(values, dtype=np.float64)
    if values.ndim not in (1, 2):
        raise ConfigError(f"control array must be 1-D or 2-D, got shape {values.shape}")
    ta = TimedArray(values, dt=dt, name=name) if name else TimedArray(values, dt=dt)
    _shape_free_cython(ta)
    return ta


_CYTHON_1D = """
cdef double %NAME%(const double t):
    global _namespace%NAME%_values, _namespace%NAME%_geometry
    cdef double epsilon = _namespace%NAME%_geometry[0]
    cdef int K = <int>_namespace%NAME%_geometry[1]
    cdef int rows = <int>_namespace%NAME%_geometry[2]
    cdef int i = <int>((t/epsilon + 0.5)/K)
    if i < 0:
        i = 0
    if i >= rows:
        i = rows - 1
    return _namespace%NAME%_values[i]
"""

_CYTHON_2D = """
cdef double %NAME%(const double t, const int i):
    global _namespace%NAME%_values, _namespace%NAME%_geometry
    cdef double epsilon = _namespace%NAME%_geometry[0]
    cdef int K = <int>_namespace%NAME%_geometry[1]
    cdef int rows = <int>_namespace%NAME%_geometry[2]
    cdef int cols = <int>_namespace%NAME%_geometry[3]
    if i < 0 or i >= cols:
        return _numpy.nan
    cdef int timestep = <int>((t/epsilon + 0.5)/K)
    if timestep < 0:
        timestep = 0
    elif timestep >= rows:
        timestep = rows - 1
    return _namespace%NAME%_values[timestep*cols + i]
"""


def _shape_free_cython(ta):
    """Give ``ta`` a Cython implementation that reads its shape and slot length at run time.

    Brian2's own TimedArray writes the number of rows and columns and the slot length into the
    generated code, so every new network size or schedule length is new code and costs a Cython
    compile (about 20 s for a network's control arrays, a minute and a half for a first network
    on a 2-core machine).  Here they travel in a small array next to the values, through the same
    namespace mechanism Brian2 uses for the values; the lookup is the same as Brian2's.
    """
    from brian2.input.timedarray import _find_K

    template = _CYTHON_1D if ta.values.ndim == 1 else _CYTHON_2D
    code = template.replace("%NAME%", ta.name)

    def namespace(owner):
        K = _find_K(owner.clock.dt_, ta.dt)
        rows = ta.values.shape[0]
        cols = ta.values.shape[1] if ta.values.ndim == 2 else 1
        return {f"{ta.name}_values": np.ascontiguousarray(ta.values, dtype=np.float64).ravel(),
                f"{ta.name}_geometry": np.array([ta.dt / K, K, rows, cols], dtype=np.float64)}

    ta.implementations.add_dynamic_implementation("cython", lambda owner: code, namespace=namespace, name=ta.name)


def markov_neurons(n, *, tau, bias=0.0, temperature=1.0, mode=None, learn=None, topdown=None,
                   eta_b=0.0, name="markov", dt=None, clock=None, force=False):
    """A ``NeuronGroup`` of ``n`` Markov neurons (see the module docstring).

    Parameters
    ----------
    n : int
    tau : Brian2 quantity (time), scalar or per neuron
    bias : float or array (n,)
        Initial biases; ``z`` starts at ``b`` (all neurons at rest).
    temperature : float
    mode, learn, topdown : number or TimedArray
        Control inputs (defaults: free, learning on, top-down on).
    eta_b : float
        Bias learning rate (0: biases fixed).
    name : str
        Group name; also names its control arrays ``mode_<name>`` etc.
    dt, clock : optional
        Time step or clock of the group (default: ``defaultclock``).
    force : bool
        Add the scheduled forced transitions ``t_force`` / ``force_period`` (module docstring).
    """
    from brian2 import NeuronGroup, second

    if n < 1:
        raise ConfigError(f"{name}: a neuron group needs at least one neuron, got {n}")
    ns = {f"T_{name}": float(temperature)}
    exprs = {}
    for kind, value, default in (("mode", mode, FREE), ("learn", learn, 1.0), ("topdown", topdown, 1.0)):
        expr, entry = _control(value, name, name, kind)
        if expr is None:
            expr = repr(float(default))
        if entry is not None:
            ns[entry[0]] = entry[1]
        exprs[kind] = expr
    zeff = "z" if exprs["topdown"] == "1.0" else f"z - (1 - ({exprs['topdown']})) * za"
    cond = TRANSITION.format(zeff=zeff, name=name, mode=exprs["mode"])
    reset = RESET.format(mode=exprs["mode"], learn=exprs["learn"])
    eqs = NEURON_EQS
    if force:
        # half a step of slack: t_force is meant to sit on the time grid
        cond = f"(t - t0 >= t_force - 0.5 * dt) or {cond}"
        reset = reset.replace("dy = ynew_ - y", FORCE_RESET + "dy = ynew_ - y")
        eqs = NEURON_EQS + FORCE_EQS
    events = {
        "transition": cond,
        "flip": "fired > 0 and dy != 0",
        "learn": "fired > 0 and h != 0",
    }
    kw = {}
    if clock is not None:
        kw["clock"] = clock
    elif dt is not None:
        kw["dt"] = dt
    G = NeuronGroup(n, eqs, events=events, namespace=ns, name=name, **kw)
    G.run_on_event("transition", reset, when="resets")
    G.thresholder["transition"].when = "thresholds"
    # the derived events must see the states the reset just wrote
    for ev in ("flip", "learn"):
        G.thresholder[ev].when = "after_resets"
        G.thresholder[ev].order = 0
    # a flag rather than "time of last event == t": brian2cuda hoists t out of the reset kernel
    # and then declares it twice when a vector statement reads t
    G.run_regularly("fired = 0", when="before_thresholds", name=f"{name}_clear")
    G.tau = tau
    G.b = bias
    G.z = bias
    G.eta_b = eta_b
    if force:
        G.t_force = 1e9 * second
        G.force_period = 1e9 * second
    return G


def vpf_synapses(pre, post, i, j, w, *, rule="symmetric", eta=0.0, pre_is_below=False, name=None):
    """``Synapses`` from ``pre`` to ``post`` on the explicit pairs ``(i, j)`` with weights ``w``.

    The pairs are connected in the given order, so ``S.w[:]`` lines up with ``w`` (this is what
    lets ``cpp_standalone`` swap weights through ``run_args``).  The neurons' ``z`` (and ``za``)
    are *not* updated here: the caller sets the fields consistent with the weights.

    Parameters
    ----------
    rule : "symmetric", "asymmetric" or None
        Plasticity: from both ends, from the post-synaptic end only, or none.
    eta : float
        Learning rate of ``dw_ij = eta * y_i * (y_j+ - 1/2)``.
    pre_is_below : bool
        True when ``post`` is the layer above ``pre`` (the pre neuron's ``za`` collects w*y_post).
    """
    from brian2 import Synapses

    if rule not in ("symmetric", "asymmetric", None):
        raise ConfigError(f"unknown plasticity rule {rule!r}; use 'symmetric', 'asymmetric' or None")
    i = np.asarray(i, dtype=np.int32)
    j = np.asarray(j, dtype=np.int32)
    w = np.asarray(w, dtype=np.float64)
    if i.shape != j.shape or w.shape != i.shape:
        raise ConfigError(f"synapse index/weight arrays differ in shape: {i.shape}, {j.shape}, {w.shape}")
    za_pre = "\nza_pre += {x}" if pre_is_below else ""
    on_pre = {"zpre": "z_post += w * dy_pre"}
    on_post = {"zpost": "z_pre += w * dy_post" + za_pre.format(x="w * dy_post")}
    on_event = {"zpre": "flip", "zpost": "flip"}
    if rule is not None:
        on_post["lpost"] = ("dw_ = eta * y_pre * h_post\nw += dw_\nz_post += dw_ * y_pre\n"
                            "z_pre += dw_ * y_post" + za_pre.format(x="dw_ * y_post"))
        on_event["lpost"] = "learn"
        if rule == "symmetric":
            on_pre["lpre"] = ("dw_ = eta * y_post * h_pre\nw += dw_\nz_pre += dw_ * y_post\n"
                              "z_post += dw_ * y_pre" + za_pre.format(x="dw_ * y_post"))
            on_event["lpre"] = "learn"
    kw = {"name": name} if name else {}
    S = Synapses(pre, post, SYNAPSE_EQS, on_pre=on_pre, on_post=on_post, on_event=on_event, **kw)
    if len(i):
        S.connect(i=i, j=j)
    for pw, order in (("zpre", 1), ("zpost", 1), ("lpost", 2), ("lpre", 2)):
        if hasattr(S, pw):
            getattr(S, pw).when = "after_resets"
            getattr(S, pw).order = order
    if len(i):
        S.w = w
    S.eta = eta
    return S
