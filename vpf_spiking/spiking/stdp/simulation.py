"""The pairing protocol on the spiking engine (Brian2, any back-end of :mod:`..devices`), its table and figure."""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ...errors import TrainingDiverged
from ...io import write_csv as io_write_csv
from ..devices import get_device
from ..network import SimulationInterrupted
from .protocol import PairingProtocol
from .theory import bi_poo_curve, closed_form, fit_closed_form

__all__ = ["StdpResult", "comparison", "figure", "fit_of_run", "interacting", "plot", "simulate", "write_csv"]


@dataclass
class StdpResult:
    """Outcome of :func:`simulate`: the table, the effective protocol and timings (s)."""

    table: "object"                 # pandas.DataFrame, one row per dt
    protocol: PairingProtocol
    timings: dict
    changes: np.ndarray             # (synapses, n_dt) relative changes in %


# ============================================================================ simulation
def _stopped() -> bool:
    """Whether Brian2 stopped the last run before its end (one Ctrl-C: "Simulation stop requested")."""
    from brian2 import Network, get_device as brian_device

    return bool(Network._globally_stopped) or getattr(brian_device(), "_last_run_completed_fraction", 1.0) < 1 - 1e-9


def simulate(protocol: PairingProtocol, progress=True, directory=None) -> StdpResult:
    """Run the pairing protocol on the spiking engine (Brian2) and tabulate the weight changes.

    Returns a table with columns ``dt_ms``, ``dw_mean``, ``dw_sem`` (relative change in % after
    the protocol, mean over the independent synapses and its standard error), ``dw_closed_form``
    (spec section 6 with the protocol's parameters: isolated pairings), ``dw_expected`` (the
    exact expectation with the real pairing interval, :func:`~.theory.expected_change`),
    ``dw_expected_discrete`` (the exact expectation on the simulation's time grid and window),
    ``dw_bi_poo`` (the Bi & Poo fits scaled to the run's pairings) and ``n_synapses``.
    ``directory``: the standalone project folder (default: one named by the protocol in the cache).
    """
    import pandas as pd
    from brian2 import Network, defaultclock, ms, second, seed as brian_seed
    from brian2 import get_device as brian_device

    from ..equations import markov_neurons, vpf_synapses
    from .theory import neuron_tau_ms

    p = protocol.validated()
    t_start = time.perf_counter()
    dts = p.dts()
    K, B = len(dts), p.synapses
    device = get_device(p.device)
    device.prepare()
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

        stopped = []

        def script(report):
            net.run(pairing_time, report=report, namespace={})
            # Brian2 forgets a stop request at the start of the next run: note it now
            stopped.append(_stopped())
            # no further pairing: the last one relaxes undisturbed
            pre.t_force = 1e9 * second
            post.t_force = 1e9 * second
            net.run(quiet_time, namespace={})
            stopped.append(_stopped())

        key = hashlib.sha1(json.dumps(p.describe(), sort_keys=True, default=str).encode()).hexdigest()[:12]
        Network._globally_stopped = False
        brian_device()._last_run_completed_fraction = 1.0
        try:
            timings = device.run_once(script, directory=device.project_dir(f"stdp-{key}", directory),
                                      progress=progress, desc="stdp protocol")
        except RuntimeError:
            # a standalone binary killed by the same Ctrl-C fails: that is the interrupt
            if not Network._globally_stopped:
                raise
            stopped.append(True)
        # standalone devices report the binary's completed fraction only after it ran
        if any(stopped) or _stopped():
            Network._globally_stopped = False
            raise SimulationInterrupted("the STDP protocol was stopped before its end (Ctrl-C); "
                                        "no result was written")
        w = device.read_back(S.w[:]).reshape(B, K)
        n_events = int(np.sum(device.read_back(post.nev[:]))) + int(np.sum(device.read_back(pre.nev[:])))
    finally:
        device.release()
    if not np.all(np.isfinite(w)):
        raise TrainingDiverged("STDP weights became non-finite; lower eta_rel")
    changes = 100.0 * (w - p.w0) / p.w0
    timings["total_s"] = time.perf_counter() - t_start
    timings["steps"] = p.n_steps
    timings["neurons"] = B * (na + nb)
    timings["events"] = n_events
    table = pd.DataFrame({
        "dt_ms": dts,
        "dw_mean": changes.mean(axis=0),
        "dw_sem": changes.std(axis=0, ddof=1) / np.sqrt(B) if B > 1 else np.full(K, np.nan),
        "dw_closed_form": p.closed_form(dts),
        "dw_expected": p.expected(dts),
        "dw_expected_discrete": p.expected_discrete(dts),
        "dw_bi_poo": p.bi_poo(dts),
        "n_synapses": B,
    })
    return StdpResult(table, p, timings, changes)


# ============================================================================ comparisons
#: the closed form counts as exact for a run when it is this close to the exact expectation
#: (relative to the largest change): pairings then do not interact
ISOLATED_TOL = 1e-3


def interacting(result: StdpResult) -> bool:
    """Whether the run's pairings interact: the isolated-pairing closed form is not its exact expectation."""
    t = result.table
    peak = max(float(np.max(np.abs(t.dw_expected))), 1e-300)
    return bool(np.max(np.abs(t.dw_expected - t.dw_closed_form)) > ISOLATED_TOL * peak)


def _max_z(t, column):
    ok = np.asarray(t.dw_sem > 0)
    if not ok.any():
        return float("nan")
    return float(np.max(np.abs((t.dw_mean - t[column]) / t.dw_sem)[ok]))


def comparison(result: StdpResult) -> str:
    """One line: the simulated means against the run's own exact reference, in standard errors.

    Isolated pairings are compared with the closed form; pairings that interact (a frequency
    where one pairing's post spike meets the next one's pre spike) with ``dw_expected``, the exact
    expectation for the real schedule.  Rows whose standard error is 0 are left out.
    """
    t, p = result.table, result.protocol
    if not interacting(result):
        return f"simulation vs closed form: max |difference| = {_max_z(t, 'dw_closed_form'):.2f} standard errors"
    return (f"simulation vs exact expectation at {p.frequency:g} Hz (dw_expected): max |difference| = "
            f"{_max_z(t, 'dw_expected'):.2f} standard errors (pairings interact: the isolated-pairing "
            f"closed form is off by up to {_max_z(t, 'dw_closed_form'):.2f})")


def fit_of_run(result: StdpResult) -> dict:
    """Fit the closed form to the run's measured ``dw_mean`` (weighted by ``dw_sem``), as a JSON-ready dict.

    Only the asymmetric rule has time constants to fit (the symmetric closed form is 0 off
    dt = 0); for interacting pairings the closed form is only an approximation, which the dict says.
    """
    t, p = result.table, result.protocol
    out = {"rule": p.rule, "frequency_hz": p.frequency, "pairings": p.pairings, "synapses": p.synapses,
           "data": "dw_mean of this run (relative change in % after the protocol), weighted by dw_sem",
           "model": "closed form of spec section 6 (isolated pairings)",
           "simulated_with": {"tau_pre": p.tau_pre, "tau_post": p.tau_post, "eta_rel": p.eta_rel}}
    if p.rule != "asymmetric":
        out["fit"] = None
        out["note"] = "not fitted: the symmetric rule's closed form has no time constants (0 off dt = 0)"
        return out
    ok = np.asarray(t.dw_sem > 0)
    if ok.sum() < 4:
        out["fit"] = None
        out["note"] = "not fitted: fewer than 4 values of dt with a standard error"
        return out
    fit = fit_closed_form(t.dt_ms[ok], t.dw_mean[ok], pairings=p.pairings, sigma=t.dw_sem[ok],
                          p0=(p.tau_pre, p.tau_post, p.eta_rel))
    model = closed_form(np.asarray(t.dt_ms[ok]), fit.tau_pre, fit.tau_post, fit.eta_rel, fit.pairings)
    resid = (t.dw_mean[ok] - model) / t.dw_sem[ok]
    out["fit"] = fit.as_dict()
    out["chi2_per_dof"] = float(np.sum(resid ** 2) / max(int(ok.sum()) - 3, 1))
    if interacting(result):
        out["note"] = (f"pairings interact at {p.frequency:g} Hz: the isolated-pairing closed form is only "
                       "approximate here; compare dw_mean with dw_expected instead")
    return out


# ============================================================================ output
def write_csv(result, path) -> Path:
    """Write the table of a result (or a DataFrame) atomically: a temporary file renamed into place."""
    return io_write_csv(getattr(result, "table", result), path, float_format="%.6g")


def plot(results, path, title=None) -> Path:
    """Write :func:`figure` of ``results`` (one or a list of :class:`StdpResult`) to ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure(results, title).savefig(path, dpi=120)
    return path


def figure(results, title=None):
    """A matplotlib Figure: every run's points (+-1 SE) with its exact reference, and the scaled Bi & Poo curve.

    One colour per run (rule and frequency).  A run of isolated pairings is drawn with the closed
    form, one whose pairings interact with its exact expectation (the closed form of isolated
    pairings is then dotted, for comparison).
    """
    from matplotlib.figure import Figure

    results = list(results) if isinstance(results, (list, tuple)) else [results]
    fig = Figure(figsize=(6.4, 4.2))
    ax = fig.subplots()
    lo = min(r.table.dt_ms.min() for r in results)
    hi = max(r.table.dt_ms.max() for r in results)
    grid = np.linspace(lo, hi, 801)
    pairings = sorted({r.protocol.pairings for r in results})
    for n in pairings:
        ax.plot(grid, bi_poo_curve(grid, pairings=n), color="0.6", lw=1.5, ls="--",
                label=f"Bi & Poo (1998) fits, scaled to {n} pairings")
    dotted = set()
    for idx, r in enumerate(results):
        p, t = r.protocol, r.table
        c = f"C{idx % 10}"
        run = f"{p.rule}, {p.frequency:g} Hz"
        if interacting(r):
            coarse = np.linspace(lo, hi, min(201, int(round(hi - lo)) + 1))
            ax.plot(coarse, p.expected(coarse), color=c, lw=1.2, label=f"exact expectation ({run})")
            key = (p.rule, p.tau_pre, p.tau_post, p.eta_rel, p.pairings)
            if key not in dotted:
                dotted.add(key)
                ax.plot(grid, p.closed_form(grid), color="k", lw=0.9, ls=":",
                        label=f"closed form, isolated pairings ({p.rule})")
        else:
            ax.plot(grid, p.closed_form(grid), color=c, lw=1.2,
                    label=f"closed form ({run}), tau_pre {p.tau_pre:.1f}, tau_post {p.tau_post:.1f} ms")
        ax.errorbar(t.dt_ms, t.dw_mean, yerr=t.dw_sem, fmt="o", ms=3.5, color=c, capsize=2,
                    label=f"simulation ({run}), {p.synapses} synapses per dt, +-1 SE")
    ax.axhline(0, color="k", lw=0.6)
    ax.axvline(0, color="k", lw=0.6)
    ax.set_xlabel("dt = t_post - t_pre (ms)")
    ax.set_ylabel(f"relative weight change after {'/'.join(map(str, pairings))} pairings (%)")
    ax.set_title(title or "STDP from the VPF rule: pairing protocol")
    ax.legend(fontsize=6 if len(results) > 2 else 7, loc="upper left")
    fig.tight_layout()
    return fig
