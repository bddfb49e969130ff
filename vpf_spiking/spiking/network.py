"""A Brian2 network of Markov neurons and VPF synapses built from any :class:`BoltzmannMachine`.

One ``NeuronGroup`` per layer (``vpf_l0`` = visible, ...), one ``Synapses`` object per weight
matrix (``vpf_w<l>`` joins layer l-1 to l, ``vpf_u<l>`` the intra-layer pairs i < j of layer l).
Every synapse carries one weight used in both directions, so the network is always a symmetric
Boltzmann machine whose parameters are exactly the model's ``W``, ``U`` and ``b``.

A network is built for a fixed *schedule geometry*: ``n_slots`` control slots of ``slot_ms``
each (the run length is ``n_slots * slot_ms``).  Every :meth:`SpikingNetwork.run` takes new
control values for those slots (clamp/force codes per neuron, learning gate, top-down gate), a
starting state and the model's current parameters, so ``cpp_standalone`` compiles once and
then only reruns the binary.

``replicas=K`` simulates K independent copies of the model in the same groups (for sampling
statistics); it is refused together with plasticity, since copies cannot share weights.

``record_transitions=True`` adds an ``EventMonitor`` per layer on ``'flip'`` (real state changes):
``RunResult.transitions`` (see :mod:`vpf_spiking.spiking.recording`).

A run Brian2 stopped early (one Ctrl-C: "Simulation stop requested") raises
:class:`SimulationInterrupted` (a ``KeyboardInterrupt``); nothing of it reaches the model.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from dataclasses import dataclass, field

import numpy as np

from ..errors import ConfigError, DataError, ModelError, TrainingDiverged
from . import devices as dev
from .equations import FREE, HOLD, control_array, markov_neurons, vpf_synapses

#: largest allowed probability scale rate*dt at the starting state (a larger one loses events)
MAX_RATE_DT = 0.2


class SimulationInterrupted(KeyboardInterrupt):
    """A Brian2 run stopped before its end (Ctrl-C: "Simulation stop requested"); its results are discarded."""


@dataclass
class RunResult:
    """What one :meth:`SpikingNetwork.run` returns."""

    state: list                     # final per-layer states, (replicas, n_l)
    events: list                    # events per neuron during the run (replicas, n_l)
    flips: list                     # real state changes per neuron (replicas, n_l)
    duration_s: float               # simulated seconds
    wall_s: float                   # seconds the simulation itself took
    samples: list = field(default=None)   # recorded states, per layer (times, replicas, n_l)
    sample_times_s: np.ndarray = field(default=None)
    #: with record_transitions: per layer (t_s, index, new state); index = replica * n_l + neuron
    transitions: list = field(default=None)

    @property
    def n_events(self) -> int:
        return int(sum(e.sum() for e in self.events))

    @property
    def n_flips(self) -> int:
        return int(sum(f.sum() for f in self.flips))


def _pairs_full(n0, n1):
    return np.repeat(np.arange(n0), n1), np.tile(np.arange(n1), n0)


class SpikingNetwork:
    """A Boltzmann machine as a Brian2 network.

    Parameters
    ----------
    model : BoltzmannMachine
        Parameters are read before every run and, with plasticity, written back after it.
    device : "runtime", "cpp_standalone", "cuda_standalone" or None
        None: :func:`~vpf_spiking.spiking.devices.default_device`.
    dt_ms : float
        Simulation time step (0.1 ms with tau = 10 ms loses well under 1 % of events).
    slot_ms, n_slots : float, int
        Control schedule geometry (default: one slot of ``duration_ms``).
    duration_ms : float
        Run length when ``slot_ms`` is not given.
    rule : "symmetric", "asymmetric" or None
        Plasticity of the synapses (None: sampling only).
    eta, eta_b : float
        Weight and bias learning rates per event.
    replicas : int
        Independent copies simulated side by side (sampling only).
    record_ms : float or None
        Record every neuron's state with this period (a StateMonitor), e.g. for sampling tests.
    record_transitions : bool
        Record every transition (an EventMonitor on ``'flip'`` per layer).
    seed : int or None
        Seed of the random streams (each run derives its own from it).
    codegen : "cython", "numpy" or None
        Runtime code generation target (default Cython when a compiler is present).
    directory : path or None
        Standalone project folder (default: a hashed folder under the cache).
    """

    def __init__(self, model, *, device=None, dt_ms=0.1, slot_ms=None, n_slots=1, duration_ms=None,
                 rule=None, eta=0.0, eta_b=0.0, replicas=1, record_ms=None, seed=0, codegen=None,
                 directory=None, record_transitions=False):
        device = dev.resolve_device(device)
        self._device = dev.get_device(device)
        model.validate()
        self.model = model
        self.device = device
        self.rule = rule
        if rule not in ("symmetric", "asymmetric", None):
            raise ConfigError(f"unknown plasticity rule {rule!r}; use 'symmetric', 'asymmetric' or None")
        self.replicas = int(replicas)
        if self.replicas < 1:
            raise ConfigError(f"replicas must be >= 1, got {replicas}")
        if self.replicas > 1 and (rule is not None or eta_b):
            raise ConfigError("replicas > 1 is for sampling only: copies cannot share learned weights")
        if not (dt_ms > 0 and math.isfinite(dt_ms)):
            raise ConfigError(f"dt_ms must be a positive number, got {dt_ms}")
        if dt_ms > 0.05 * model.tau_ms:
            raise ConfigError(f"dt = {dt_ms} ms is too large for tau = {model.tau_ms} ms "
                              f"(need dt <= tau/20 = {model.tau_ms / 20:g} ms)")
        self.dt_ms = float(dt_ms)
        if slot_ms is None:
            if duration_ms is None:
                raise ConfigError("give duration_ms, or slot_ms and n_slots")
            slot_ms, n_slots = duration_ms, 1
        steps = slot_ms / dt_ms
        if slot_ms <= 0 or abs(steps - round(steps)) > 1e-6:
            raise ConfigError(f"slot_ms = {slot_ms} must be a positive multiple of dt_ms = {dt_ms}")
        if int(n_slots) < 1:
            raise ConfigError(f"n_slots must be >= 1, got {n_slots}")
        self.slot_ms, self.n_slots = float(slot_ms), int(n_slots)
        self.duration_ms = self.slot_ms * self.n_slots
        self.eta, self.eta_b = float(eta), float(eta_b)
        self.record_ms = record_ms
        self.record_transitions = bool(record_transitions)
        self.seed = seed
        self._runs = 0
        self._retired = False
        self.state = None
        self._check_rates(self._initial_state())
        self.codegen = self._device.prepare(self, codegen)
        self._build()
        # the compiled project of a standalone device (None at runtime)
        self.directory = self._device.project_dir(self._structure_hash(), directory)

    @property
    def compile_s(self):
        """Seconds the standalone project took to compile (None before the first run, or at runtime)."""
        return self._device.compile_s

    # ------------------------------------------------------------------ construction
    def _structure_hash(self) -> str:
        m = self.model
        key = [m.sizes, m.intra, self.rule, self.replicas, self.dt_ms, self.slot_ms, self.n_slots,
               self.record_ms, m.temperature]
        if self.record_transitions:  # (kept out of the key otherwise: existing projects keep their hash)
            key.append("transitions")
        key = json.dumps(key)
        return hashlib.sha1(key.encode()).hexdigest()[:16]

    def _build(self):
        from brian2 import EventMonitor, Network, StateMonitor, defaultclock, ms

        m, K = self.model, self.replicas
        defaultclock.dt = self.dt_ms * ms
        slot = self.slot_ms * ms
        L = m.n_layers
        self._mode_ta, self._topdown_ta = [], []
        self._learn_ta = control_array(np.zeros(self.n_slots), dt=slot, name="ctl_learn")
        self.groups = []
        for l in range(L):
            n = m.sizes[l] * K
            mode = control_array(np.full((self.n_slots, n), float(FREE)), dt=slot, name=f"ctl_mode_l{l}")
            td = None
            if l + 1 < L:
                td = control_array(np.ones(self.n_slots), dt=slot, name=f"ctl_topdown_l{l}")
            self._mode_ta.append(mode)
            self._topdown_ta.append(td)
            G = markov_neurons(n, tau=m.tau_ms * ms, bias=0.0, temperature=m.temperature, mode=mode,
                               learn=self._learn_ta, topdown=td, eta_b=self.eta_b, name=f"vpf_l{l}")
            self.groups.append(G)
        self.synapses = {}
        for l in range(1, L):
            i, j = _pairs_full(m.sizes[l - 1], m.sizes[l])
            i, j = self._replicate(i, j, m.sizes[l - 1], m.sizes[l])
            self.synapses[f"W{l}"] = vpf_synapses(self.groups[l - 1], self.groups[l], i, j, np.zeros(len(i)),
                                                  rule=self.rule, eta=self.eta, pre_is_below=True,
                                                  name=f"vpf_w{l}")
        for l in range(L):
            if m.U[l] is not None:
                i, j = np.triu_indices(m.sizes[l], 1)
                i, j = self._replicate(i, j, m.sizes[l], m.sizes[l])
                self.synapses[f"U{l}"] = vpf_synapses(self.groups[l], self.groups[l], i, j, np.zeros(len(i)),
                                                      rule=self.rule, eta=self.eta, name=f"vpf_u{l}")
        objs = list(self.groups) + list(self.synapses.values())
        self.monitors = []
        if self.record_ms:
            self.monitors = [StateMonitor(G, "y", record=True, dt=self.record_ms * ms, name=f"vpf_mon{l}")
                             for l, G in enumerate(self.groups)]
            objs += self.monitors
        self.flip_monitors = []
        if self.record_transitions:
            self.flip_monitors = [EventMonitor(G, "flip", variables=["y"], name=f"vpf_flips{l}")
                                  for l, G in enumerate(self.groups)]
            objs += self.flip_monitors
        self.net = Network(*objs)
        # a standalone project records its one run here and reruns it with new values
        self._device.record(self.net, self.duration_ms * ms)

    def _replicate(self, i, j, n_pre, n_post):
        K = self.replicas
        if K == 1:
            return i, j
        r = np.repeat(np.arange(K), len(i))
        return np.tile(i, K) + r * n_pre, np.tile(j, K) + r * n_post

    # ------------------------------------------------------------------ parameters in and out
    def _weights(self, key):
        m = self.model
        kind, l = key[0], int(key[1:])
        if kind == "W":
            w = np.asarray(m.W[l], dtype=np.float64).ravel()
        else:
            iu = np.triu_indices(m.sizes[l], 1)
            w = np.asarray(m.U[l], dtype=np.float64)[iu]
        return np.tile(w, self.replicas)

    def _initial_state(self):
        m = self.model
        return [np.zeros((self.replicas, n)) for n in m.sizes] if self.state is None else self.state

    def _fields(self, state):
        """z (full field) and za (from the layer above) for every layer, (replicas, n_l)."""
        m = self.model.copy(np.float64)
        z = m.local_fields(state)
        za = []
        for l in range(m.n_layers):
            za.append(state[l + 1] @ m.W[l + 1].T if l + 1 < m.n_layers else np.zeros_like(state[l]))
        return z, za

    def _max_rate_dt(self, state):
        m = self.model
        z = self.model.copy(np.float64).local_fields(state)
        worst = max(float(np.max(np.exp((0.5 - y) * zl / m.temperature))) for y, zl in zip(state, z))
        return worst * self.dt_ms / m.tau_ms

    def _check_rates(self, state):
        m = self.model
        worst = self._max_rate_dt(state) * m.tau_ms / self.dt_ms
        if worst * self.dt_ms / m.tau_ms > MAX_RATE_DT:
            raise ConfigError(
                f"dt = {self.dt_ms} ms is too large for the rates of this model: the fastest neuron "
                f"leaves its state at {worst / m.tau_ms * 1e3:.3g} /s, so rate*dt = "
                f"{worst * self.dt_ms / m.tau_ms:.2f} > {MAX_RATE_DT}; use dt_ms <= "
                f"{MAX_RATE_DT * m.tau_ms / worst:.3g}")

    def _check_state(self, state):
        m, K = self.model, self.replicas
        if state is None:
            return self._initial_state()
        if isinstance(state, np.ndarray):
            state = m.split(state)
        if len(state) != m.n_layers:
            raise ModelError(f"state has {len(state)} layers, the network has {m.n_layers}")
        out = []
        for l, y in enumerate(state):
            y = np.asarray(y, dtype=np.float64)
            if y.ndim == 1:
                y = y[None, :]
            if y.shape[1] != m.sizes[l] or y.shape[0] not in (1, K):
                raise ModelError(f"layer {l} state has shape {y.shape}, expected ({K}, {m.sizes[l]})")
            if not np.all((y == 0) | (y == 1)):
                raise ModelError(f"layer {l} state must be binary (0/1)")
            out.append(np.broadcast_to(y, (K, m.sizes[l])).copy())
        return out

    def _controls(self, mode, learn, topdown):
        """Validated control arrays: mode per layer (n_slots, K*n_l), learn (n_slots,), topdown."""
        m, K, S = self.model, self.replicas, self.n_slots
        modes = []
        mode = mode or {}
        for key in mode:
            if not (isinstance(key, (int, np.integer)) and 0 <= key < m.n_layers):
                raise ConfigError(f"mode: unknown layer {key!r} (layers are 0..{m.n_layers - 1})")
        for l in range(m.n_layers):
            n = m.sizes[l]
            a = mode.get(l, FREE)
            a = np.asarray(a, dtype=np.float64)
            if a.ndim == 0:
                a = np.full((S, n), float(a))
            elif a.ndim == 1:
                if a.shape[0] != S:
                    raise DataError(f"mode for layer {l} has {a.shape[0]} slots, the network has {S}")
                a = np.repeat(a[:, None], n, axis=1)
            if a.ndim != 2 or a.shape not in ((S, n), (S, K * n)):
                raise DataError(f"mode for layer {l} has shape {a.shape}, expected ({S}, {n}) "
                                     f"(slots x neurons)")
            if not np.all(np.isin(a, (-1, 0, 1, 2))):
                raise ConfigError(f"mode for layer {l} must hold the codes -1 (free), 0/1 (clamp), 2 (hold)")
            if a.shape[1] == n and K > 1:
                a = np.tile(a, (1, K))
            modes.append(a)
        lr = np.ones(S) if learn is None else np.broadcast_to(np.asarray(learn, dtype=np.float64), (S,)).copy()
        tds = []
        topdown = topdown or {}
        for l in range(m.n_layers):
            t = np.asarray(topdown.get(l, 1.0), dtype=np.float64)
            tds.append(np.broadcast_to(t, (S,)).copy())
        return modes, lr, tds

    # ------------------------------------------------------------------ running
    def run(self, *, state=None, mode=None, learn=None, topdown=None, seed=None, strict=True) -> RunResult:
        """Simulate ``n_slots * slot_ms`` with the given controls; return a :class:`RunResult`.

        Parameters
        ----------
        state : list of per-layer arrays or flat array, optional
            Starting state (default: where the previous run ended; all at rest at first).
        mode : dict layer -> codes
            Per layer: a code (-1 free, 0/1 clamp to value, 2 hold), an array ``(n_slots,)`` or an
            array ``(n_slots, n_l)``; default free.
        learn : array (n_slots,) or number
            Plasticity gate per slot (default 1; irrelevant when the network has no rule).
        topdown : dict layer -> array (n_slots,)
            Whether the field from the layer above counts (default 1).
        seed : int, optional
            Seed of this run's random streams (default: derived from the network seed and a counter).
        strict : bool
            Refuse a starting state whose fastest rate the time step cannot resolve
            (rate*dt > 0.2).  Training passes False: a clamped example far from the model can
            exceed it, and the event probability then saturates at one per step (documented
            as a clipping of the largest flow terms).
        """
        if self._retired:
            raise ConfigError("this network was closed (or, for a standalone network, retired because "
                              "another one was built in the same process); build it again")
        state = self._check_state(state)
        modes, lr, tds = self._controls(mode, learn, topdown)
        self.model.validate()
        self.last_max_rate_dt = self._max_rate_dt(state)
        if strict:
            self._check_rates(state)
        if seed is None:
            seed = None if self.seed is None else (int(self.seed) * 1000003 + self._runs) % (2**31)
        self._runs += 1
        z, za = self._fields(state)
        flat = lambda arrs: np.concatenate([a.ravel() for a in arrs]) if arrs else None  # noqa: E731
        values = {}
        for l, G in enumerate(self.groups):
            b = np.tile(np.asarray(self.model.b[l], dtype=np.float64), self.replicas)
            values[(G, "y")] = state[l].ravel()
            values[(G, "z")] = z[l].ravel()
            values[(G, "za")] = za[l].ravel()
            values[(G, "b")] = b
            values[(G, "nev")] = np.zeros(G.N)
            values[(G, "nflip")] = np.zeros(G.N)
            values[(G, "eta_b")] = self.eta_b
        for key, S in self.synapses.items():
            values[(S, "w")] = self._weights(key)
            values[(S, "eta")] = self.eta
        tas = {self._learn_ta: lr}
        for l in range(self.model.n_layers):
            tas[self._mode_ta[l]] = modes[l]
            if self._topdown_ta[l] is not None:
                tas[self._topdown_ta[l]] = tds[l]
        from brian2 import Network, get_device, ms

        Network._globally_stopped = False  # a stale stop request must not cut this run short
        t0 = time.perf_counter()
        try:
            self._device.run(self.net, self.duration_ms * ms, directory=self.directory, values=values,
                             arrays=tas, seed=seed, restart=self.groups)
        except RuntimeError:
            # a standalone binary killed by the same Ctrl-C fails; that is the interrupt, not an error
            if not Network._globally_stopped:
                raise
            self._check_complete(None)
        wall = time.perf_counter() - t0
        self._check_complete(getattr(get_device(), "_last_run_completed_fraction", 1.0))
        return self._collect(wall)

    def _check_complete(self, fraction):
        """Raise :class:`SimulationInterrupted` when Brian2 stopped the run before its end."""
        from brian2 import Network

        short = fraction is None or fraction < 1.0 - 0.5 * self.dt_ms / self.duration_ms
        if Network._globally_stopped or short:
            Network._globally_stopped = False
            done = "" if fraction is None else f" after {100 * fraction:.1f} % of it"
            raise SimulationInterrupted(f"the simulation of {self.duration_ms:g} ms was stopped{done} "
                                        "(Ctrl-C); its results were discarded")

    def _collect(self, wall) -> RunResult:
        m, K = self.model, self.replicas
        state, events, flips = [], [], []
        read = self._device.read_back
        for l, G in enumerate(self.groups):
            state.append(read(G.y[:]).reshape(K, m.sizes[l]))
            events.append(read(G.nev[:]).reshape(K, m.sizes[l]))
            flips.append(read(G.nflip[:]).reshape(K, m.sizes[l]))
        transitions = self._read_transitions(read) if self.flip_monitors else None
        if self.rule is not None or self.eta_b:
            self._pull()
        self.state = state
        samples = times = None
        if self.monitors:
            n = int(round(self.duration_ms / self.record_ms))   # samples of this run
            samples = [read(np.asarray(M.y[:]).T, last=n).reshape(-1, K, m.sizes[l])
                       for l, M in enumerate(self.monitors)]
            times = read(self.monitors[0].t[:] / 1.0, last=n)
        return RunResult(state, events, flips, self.duration_ms / 1e3, wall, samples, times, transitions)

    def _read_transitions(self, read):
        """This run's transitions per layer: (t_s from the run's start, index in the group, new state)."""
        out = []
        for G, M in zip(self.groups, self.flip_monitors):
            # runtime monitors accumulate over runs and the clock goes on: keep t >= this run's t0
            start = float(read(np.atleast_1d(G.t0[:] / 1.0))[0]) if len(M.t[:]) else 0.0
            t = read(M.t[:] / 1.0) - start
            keep = t > -0.5e-3 * self.dt_ms
            out.append((t[keep], read(M.i[:])[keep].astype(np.int64), read(M.y[:])[keep].astype(np.int8)))
        return out

    def _pull(self):
        """Copy the learned weights and biases back into the model (checked for finiteness)."""
        m = self.model
        new = {}
        for key, S in self.synapses.items():
            w = np.array(S.w[:], dtype=np.float64)
            kind, l = key[0], int(key[1:])
            if kind == "W":
                new[key] = w.reshape(m.sizes[l - 1], m.sizes[l])
            else:
                u = np.zeros((m.sizes[l], m.sizes[l]))
                u[np.triu_indices(m.sizes[l], 1)] = w
                new[key] = u + u.T
        for l, G in enumerate(self.groups):
            new[f"b{l}"] = np.array(G.b[:], dtype=np.float64)
        for key, v in new.items():
            if not np.all(np.isfinite(v)):
                raise TrainingDiverged(f"{key} became non-finite during the spiking run; lower eta")
        m.set_parameters(new)

    # ------------------------------------------------------------------ odds and ends
    def close(self):
        """Release the standalone project (lets another standalone network be built).

        The Brian2 objects are dropped too: code objects still alive would make the next build
        in this process take suffixed names (``..._codeobject_2``) and recompile everything."""
        self._device.release(self)
        self._retire()

    def _retire(self):
        """Refuse further runs and drop the Brian2 objects (also when another standalone project takes over)."""
        self._retired = True
        self._device._let_go()
        self._drop_objects()

    def _drop_objects(self):
        import gc

        self.net = None
        self.groups, self.synapses, self.monitors, self.flip_monitors = [], {}, [], []
        self._mode_ta, self._topdown_ta, self._learn_ta = [], [], None
        gc.collect()

    def synaptic_updates(self, result: RunResult) -> int:
        """Synapse visits of a run (every flip visits its synapses, every learning event its plastic pathways)."""
        m = self.model
        fan = []  # synapses per neuron of each layer
        for l in range(m.n_layers):
            f = 0
            if l > 0:
                f += m.sizes[l - 1]
            if l + 1 < m.n_layers:
                f += m.sizes[l + 1]
            if m.U[l] is not None:
                f += m.sizes[l] - 1
            fan.append(f)
        flips = sum(float(result.flips[l].sum()) * fan[l] for l in range(m.n_layers))
        if self.rule is None:
            return int(flips)
        post_fan = []
        for l in range(m.n_layers):
            f = m.sizes[l - 1] if l > 0 else 0
            if m.U[l] is not None:
                f += m.sizes[l] - 1
            if self.rule == "symmetric" and l + 1 < m.n_layers:
                f += m.sizes[l + 1]
            post_fan.append(f)
        learn = sum(float(result.events[l].sum()) * post_fan[l] for l in range(m.n_layers))
        return int(flips + learn)

