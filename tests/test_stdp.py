"""STDP pairing protocols: closed form (spec section 6), its generalisation, the fit, the simulation.

The default tests use short excited-state time constants (8 and 16 ms), five values of dt and a
few pairings, so that a runtime-device simulation takes seconds; the full protocol (41 x 1,000
synapses, 60 pairings, cpp_standalone) runs with --run-slow.
"""

import json
import math
import re

import numpy as np
import pandas as pd
import pytest

from vpf_spiking.errors import ConfigError
from vpf_spiking.spiking.stdp import (
    PairingProtocol, StdpResult, bi_poo_curve, closed_form, comparison, expected_change, expected_change_discrete,
    figure, fit_bi_poo, fit_of_run, interacting, neuron_tau_ms, simulate, spontaneous_rate_hz,
)
from vpf_spiking.protocols.stdp import protocol_from_config

SMALL = dict(tau_pre=8.0, tau_post=16.0, eta_rel=0.04, dt_min=-16.0, dt_max=16.0, dt_step=8.0,
             synapses=400, pairings=5, seed=12)


# ---------------------------------------------------------------------------- closed form
def _monte_carlo(dt, tau_i, tau_j, n, rng):
    """Independent check of the spec's derivation: exponential dwell times, rule at post events."""
    d_i = rng.exponential(tau_i, n)          # pre excited on [0, d_i)
    d_j = rng.exponential(tau_j, n)          # post excited on [dt, dt + d_j)
    pre_on = lambda t: (t >= 0) & (t < d_i)  # noqa: E731
    up = np.where(pre_on(np.full(n, float(dt))), 0.5, 0.0)    # post's forced spike
    down = np.where(pre_on(dt + d_j), -0.5, 0.0)               # post returns to rest
    return up + down                                           # in units of eta


def test_closed_form_agrees_with_monte_carlo_of_the_two_neuron_chain(rng):
    tau_i, tau_j = 16.8, 33.7
    n = 400_000
    for dt in (-60.0, -20.0, -5.0, 5.0, 20.0, 60.0):
        x = _monte_carlo(dt, tau_i, tau_j, n, rng)
        expect = closed_form(dt, tau_i, tau_j, eta_rel=1.0, pairings=1) / 100.0
        assert abs(x.mean() - expect) < 4 * x.std() / math.sqrt(n) + 1e-12, dt


def test_closed_form_shape_and_equal_areas():
    tp, tq = 16.8, 33.7
    dt = np.arange(-300.0, 300.01, 0.01)
    y = closed_form(dt, tp, tq, eta_rel=0.04, pairings=60)
    assert np.all(y[dt > 0] > 0) and np.all(y[dt < 0] < 0)
    a_plus, a_minus = closed_form(0.0, tp, tq, 0.04, 60), -closed_form(-1e-9, tp, tq, 0.04, 60)
    assert a_plus / a_minus == pytest.approx(tq / tp)
    # equal areas: the integral over dt vanishes
    assert abs(np.sum(y) * 0.01) < 1e-3 * a_plus * tp
    sym = closed_form(dt, tp, tq, 0.04, 60, rule="symmetric")
    assert np.all(sym[dt != 0] == 0)


@pytest.mark.parametrize("rule", ["asymmetric", "symmetric"])
def test_closed_form_at_dt_zero_agrees_with_the_exact_expectations(rule):
    """Simultaneous forced spikes: each end sees the other's new state, as the engine does."""
    tp, tq, eta, n = 16.8, 33.7, 0.05, 7
    cf = float(closed_form(0.0, tp, tq, eta, pairings=n, rule=rule))
    per_pairing = expected_change([0.0], [0.0], tp, tq, eta, rule=rule)
    assert cf == pytest.approx(n * per_pairing, rel=1e-12)
    # on the time grid the engine's exact expectation differs only by the O(step/tau) discretisation
    h = 0.01
    disc = expected_change_discrete([100], [100], int(round(400 / h)), h, tp, tq, eta, rule=rule)
    assert n * disc == pytest.approx(cf, rel=2e-3)
    if rule == "symmetric":
        assert cf == pytest.approx(100 * 0.5 * eta * n)       # +eta/2 per pairing
    else:
        assert cf == pytest.approx(100 * 0.5 * eta * n * tq / (tp + tq))


def test_general_expectation_reduces_to_the_closed_form():
    for dt in (-100.0, -35.0, -0.5, 0.0, 0.5, 12.0, 100.0):
        for tp, tq in ((16.8, 33.7), (30.0, 10.0)):
            e = expected_change([0.0], [dt], tp, tq, eta_rel=0.05)
            assert e == pytest.approx(float(closed_form(dt, tp, tq, 0.05, pairings=1)), rel=1e-12, abs=1e-15)
            if dt != 0:
                assert abs(expected_change([0.0], [dt], tp, tq, 0.05, rule="symmetric")) < 1e-12
    # simultaneous forced spikes: both ends see the other's new state (engine convention)
    assert expected_change([0.0], [0.0], 16.8, 33.7, 0.05, rule="symmetric") == pytest.approx(100 * 0.05 / 2)


def test_discrete_expectation_converges_to_the_closed_form_at_first_order():
    tp, tq = 16.8, 33.7
    errs = []
    for h in (0.2, 0.1, 0.05):
        n = int(round(600 / h))
        e = np.array([expected_change_discrete([int(round(250 / h))], [int(round((250 + dt) / h))], n, h, tp, tq, 1.0)
                      for dt in (-40.0, -5.0, 5.0, 40.0)])
        c = closed_form(np.array([-40.0, -5.0, 5.0, 40.0]), tp, tq, 1.0, pairings=1)
        errs.append(np.max(np.abs(e / c - 1)))
    assert errs[0] < 0.015
    assert errs[1] == pytest.approx(errs[0] / 2, rel=0.05)
    assert errs[2] == pytest.approx(errs[1] / 2, rel=0.05)


def test_bi_poo_reference_scales_with_the_number_of_pairings():
    assert bi_poo_curve(0.0) == pytest.approx(80.0)                      # as published: 60 pairings
    assert bi_poo_curve(0.0, pairings=60) == pytest.approx(80.0)
    assert bi_poo_curve([0.0, -1e-9], pairings=20) == pytest.approx([80.0 / 3, -40.0 / 3])
    p = PairingProtocol(pairings=20).validated()
    assert np.allclose(p.bi_poo(), bi_poo_curve(p.dts()) * 20 / 60)
    # the fitted closed form matches the reference at any number of pairings
    assert np.max(np.abs(p.closed_form() - p.bi_poo())) < 0.05 * 80.0 / 3


def test_time_constant_mapping():
    # exit rate exp(-b/2T)/tau must equal 1/tau_excited
    tau = neuron_tau_ms(16.8, bias=-30.0, temperature=1.0)
    assert math.exp(30.0 / 2) / tau == pytest.approx(1 / 16.8)
    assert neuron_tau_ms(10.0, bias=-4.0, temperature=2.0) == pytest.approx(10.0 * math.e)
    assert spontaneous_rate_hz(16.8, bias=-30.0) < 1e-10


# ---------------------------------------------------------------------------- fit
def test_fit_to_bi_poo_recovers_the_time_constants_and_predicts_the_ratio():
    fit = fit_bi_poo()
    assert fit.tau_pre == pytest.approx(16.8, rel=0.01)
    assert fit.tau_post == pytest.approx(33.7, rel=0.01)
    assert fit.a_plus == pytest.approx(80.0, rel=0.01)
    assert fit.a_minus == pytest.approx(40.0, rel=0.01)
    assert fit.ratio_predicted == pytest.approx(2.0, rel=0.01)
    assert fit.rms_residual < 0.1
    # a target with a different amplitude ratio cannot be fitted exactly: the model ties A+/A- to the taus
    dt = np.arange(-100.0, 100.5, 1.0)
    bad = fit_bi_poo(dt, bi_poo_curve(dt, a_plus=80.0, a_minus=80.0))
    assert bad.rms_residual > 1.0


def test_window_compression_changes_the_expectation_by_far_less_than_the_standard_error():
    p = PairingProtocol().validated()
    real = p.expected(real_time=True)
    compressed = p.expected(real_time=False)
    assert p.window < 1000.0 / p.frequency
    unit = 100 * 0.5 * p.eta_rel
    pi = np.abs(real) / (p.pairings * unit)
    se = unit * np.sqrt(p.pairings * pi * (1 - pi) / p.synapses)
    assert np.max(np.abs(compressed - real) / se) < 0.2


# ---------------------------------------------------------------------------- protocol checks
@pytest.mark.parametrize("kw, message", [
    (dict(frequency=-1.0), "frequency must be positive"),
    (dict(frequency=6.0), "pairing interval"),
    (dict(dt_min=50.0, dt_max=-50.0), "inverted"),
    (dict(rule="hebbian"), "unknown rule"),
    (dict(device="gpu"), "unknown device"),
    (dict(synapses=0), "synapses must be a positive integer"),
    (dict(dt_step=0.0), "dt_step must be positive"),
    (dict(dt_step=2.55), "not a multiple of the time step"),
    (dict(tau_pre=-3.0), "tau_pre must be a positive"),
    (dict(window=150.0), "window"),
])
def test_bad_protocol_parameters_are_refused(kw, message):
    with pytest.raises(ConfigError, match=message):
        PairingProtocol(**kw).validated()


def test_layout_covers_every_dt_once_with_shared_neurons():
    p = PairingProtocol().validated()
    na, nb, a, m, k = p.layout()
    assert (na, nb) == (7, 6)
    assert np.array_equal(k, np.arange(41))
    dts = p.dts()
    t_pre = p.offset + a * p.dt_step
    t_post = p.offset + p.dt_min + (na * m + na - 1) * p.dt_step
    assert np.allclose(t_post - t_pre, dts)
    assert len(set(zip(a, m))) == 41


def test_protocol_files_parse(tmp_path):
    from pathlib import Path

    from vpf_spiking.protocols import load_protocol

    files = sorted((Path(__file__).resolve().parent.parent / "protocols").glob("stdp-*.toml"))
    assert files
    for f in files:
        protocols, _ = protocol_from_config(load_protocol(f))
        assert protocols


# ---------------------------------------------------------------------------- comparisons and figure
FREQ = dict(dt_min=-20.0, dt_max=20.0, dt_step=5.0, pairings=60)   # protocols/stdp-frequency.toml


def _synthetic(frequency, rule="asymmetric", seed=0, sem_share=0.005, **kw):
    """A result whose means are the exact expectation plus one standard error of noise (no simulation)."""
    p = PairingProtocol(rule=rule, frequency=frequency, **kw).validated()
    dts = p.dts()
    expected = p.expected(dts)
    sem = np.full(len(dts), sem_share * np.max(np.abs(expected)))
    mean = expected + sem * np.random.default_rng(seed).standard_normal(len(dts))
    table = pd.DataFrame({"dt_ms": dts, "dw_mean": mean, "dw_sem": sem, "dw_closed_form": p.closed_form(dts),
                          "dw_expected": expected, "dw_expected_discrete": expected, "dw_bi_poo": p.bi_poo(dts),
                          "n_synapses": p.synapses})
    return StdpResult(table, p, {}, np.zeros((0, len(dts))))


def _max_z(line):
    return float(re.search(r"max \|difference\| = ([0-9.]+) standard errors", line).group(1))


def test_isolated_pairings_are_compared_with_the_closed_form():
    r = _synthetic(1.0, **FREQ)
    assert not interacting(r)
    line = comparison(r)
    assert line.startswith("simulation vs closed form:")
    t = r.table
    assert _max_z(line) == pytest.approx(np.max(np.abs((t.dw_mean - t.dw_closed_form) / t.dw_sem)), abs=0.01)


def test_frequency_runs_are_compared_with_their_own_exact_expectation():
    r = _synthetic(10.0, **FREQ)
    t = r.table
    assert interacting(r)
    line = comparison(r)
    assert "exact expectation at 10 Hz (dw_expected)" in line
    assert _max_z(line) == pytest.approx(np.max(np.abs((t.dw_mean - t.dw_expected) / t.dw_sem)), abs=0.01)
    assert _max_z(line) < 4
    # the isolated-pairing formula would have reported a large, spurious disagreement
    off = np.max(np.abs((t.dw_mean - t.dw_closed_form) / t.dw_sem))
    assert off > 5 and f"{off:.2f}" in line


def test_comparison_skips_rows_without_spread():
    r = _synthetic(1.0, rule="symmetric", **FREQ)
    r.table.loc[r.table.dt_ms != 0, ["dw_mean", "dw_sem"]] = 0.0     # every synapse back where it began
    assert math.isfinite(_max_z(comparison(r)))


def test_figure_draws_every_frequency_and_the_scaled_reference():
    runs = [_synthetic(f, **dict(FREQ, pairings=20)) for f in (1.0, 5.0, 10.0, 20.0)]
    ax = figure(runs).axes[0]
    assert len(ax.containers) == 4                                    # one errorbar set per frequency
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    for f in ("1", "5", "10", "20"):
        assert any(x.startswith(f"simulation (asymmetric, {f} Hz)") for x in legend), legend
    for f in ("5", "10", "20"):                                       # interacting: their own expectation
        assert f"exact expectation (asymmetric, {f} Hz)" in legend, legend
    ref = [ln for ln in ax.get_lines() if ln.get_label().startswith("Bi & Poo")]
    assert len(ref) == 1 and "scaled to 20 pairings" in ref[0].get_label()
    assert np.max(ref[0].get_ydata()) == pytest.approx(80.0 * 20 / 60, rel=1e-3)


def test_fit_of_run_recovers_the_simulated_parameters():
    r = _synthetic(1.0, seed=3, sem_share=0.01, dt_min=-100.0, dt_max=100.0, dt_step=5.0, pairings=20,
                   tau_pre=12.0, tau_post=40.0, eta_rel=0.03)
    out = fit_of_run(r)
    f = out["fit"]
    assert f["pairings"] == 20 and out["simulated_with"]["tau_pre"] == 12.0
    assert abs(f["tau_pre"] - 12.0) < 4 * f["tau_pre_se"] and abs(f["tau_post"] - 40.0) < 4 * f["tau_post_se"]
    assert abs(f["eta_rel"] - 0.03) < 4 * f["eta_rel_se"]
    assert 0.2 < out["chi2_per_dof"] < 3
    json.dumps(out)
    assert fit_of_run(_synthetic(1.0, rule="symmetric", **FREQ))["fit"] is None


# ---------------------------------------------------------------------------- simulation
@pytest.fixture(scope="module")
def small_runs():
    return {rule: simulate(PairingProtocol(rule=rule, **SMALL), progress=False) for rule in ("asymmetric", "symmetric")}


def test_simulated_asymmetric_curve_matches_the_closed_form(small_runs):
    t = small_runs["asymmetric"].table
    assert np.all(t.dw_sem > 0)
    z = (t.dw_mean - t.dw_closed_form) / t.dw_sem
    assert np.all(np.abs(z) < 3), t
    # against the exact expectation of the simulation itself (no discretisation bias)
    z = (t.dw_mean - t.dw_expected_discrete) / t.dw_sem
    assert np.all(np.abs(z) < 3), t


def test_pre_before_post_potentiates_and_post_before_pre_depresses(small_runs):
    t = small_runs["asymmetric"].table
    assert np.all(t.dw_mean[t.dt_ms >= 0] > 5 * t.dw_sem[t.dt_ms >= 0])
    assert np.all(t.dw_mean[t.dt_ms < 0] < -5 * t.dw_sem[t.dt_ms < 0])


def test_symmetric_rule_gives_no_net_change(small_runs):
    r = small_runs["symmetric"]
    t = r.table
    peak = float(closed_form(0.0, SMALL["tau_pre"], SMALL["tau_post"], SMALL["eta_rel"], SMALL["pairings"]))
    off = t.dt_ms != 0
    # per synapse the two ends cancel except when both neurons move in the same time step
    assert np.all(np.abs(t.dw_mean[off]) <= 3 * t.dw_sem[off] + 0.01 * peak), t
    assert np.all(np.abs(t.dw_mean[off] - t.dw_expected_discrete[off]) <= 3 * t.dw_sem[off] + 1e-9), t
    # dt = 0: the two simultaneous forced spikes each count the other's new state: +eta/2 per pairing
    on = ~off
    assert float(t.dw_mean[on].iloc[0]) == pytest.approx(float(t.dw_expected_discrete[on].iloc[0]), abs=3 * float(t.dw_sem[on].iloc[0]) + 1e-9)
    assert float(t.dw_expected[on].iloc[0]) == pytest.approx(100 * 0.5 * SMALL["eta_rel"] * SMALL["pairings"])


def test_high_frequency_pairings_interact_as_the_general_expectation_predicts():
    p = PairingProtocol(frequency=20.0, dt_min=-20.0, dt_max=20.0, dt_step=10.0, synapses=300, pairings=10,
                        tau_pre=8.0, tau_post=16.0, eta_rel=0.04, seed=5)
    r = simulate(p, progress=False)
    t = r.table
    assert r.protocol.window == pytest.approx(50.0)
    z = (t.dw_mean - t.dw_expected) / t.dw_sem
    assert np.all(np.abs(z) < 3.5), t
    # the isolated-pairing closed form is visibly wrong here
    assert np.max(np.abs(t.dw_expected - t.dw_closed_form) / t.dw_sem) > 5


def test_cli_writes_csv_and_figure(tmp_path):
    from vpf_spiking.cli import main

    out, fig = tmp_path / "stdp.csv", tmp_path / "stdp.png"
    rc = main(["stdp", "--synapses", "30", "--pairings", "2", "--dt-min", "-10", "--dt-max", "10", "--dt-step", "10",
               "--tau-pre", "5", "--tau-post", "10", "--no-progress", "--out", str(out), "--figure", str(fig)])
    assert rc == 0
    t = pd.read_csv(out)
    assert list(t.columns[:4]) == ["dt_ms", "dw_mean", "dw_sem", "dw_closed_form"]
    assert list(t.dt_ms) == [-10, 0, 10]
    # the reference is scaled to the run's 2 pairings (Bi & Poo's amplitudes are for 60)
    assert float(t.dw_bi_poo[t.dt_ms == 0].iloc[0]) == pytest.approx(80.0 * 2 / 60, rel=1e-4)
    assert fig.stat().st_size > 10_000
    assert not list(tmp_path.glob("*.json"))                         # no fit unless asked for


def test_cli_fit_writes_a_fit_of_the_run(tmp_path, capsys):
    from vpf_spiking.cli import main

    out = tmp_path / "stdp.csv"
    rc = main(["stdp", "--synapses", "60", "--pairings", "4", "--dt-min", "-16", "--dt-max", "16", "--dt-step", "8",
               "--tau-pre", "8", "--tau-post", "16", "--eta-rel", "0.04", "--no-progress", "--fit", "--out", str(out)])
    assert rc == 0
    fit = json.loads((tmp_path / "stdp-fit-of-run.json").read_text())
    assert fit["pairings"] == 4 and fit["simulated_with"] == {"tau_pre": 8.0, "tau_post": 16.0, "eta_rel": 0.04}
    assert fit["fit"]["pairings"] == 4 and fit["fit"]["tau_pre"] > 0
    assert "fit of this run" in capsys.readouterr().out
    assert not (tmp_path / "fit.json").exists()


def test_protocol_kind_draws_all_frequencies_and_fits_only_on_request(tmp_path):
    from vpf_spiking.protocols import ProtocolConfig
    from vpf_spiking.protocols.stdp import run as run_stdp_protocol

    stdp = dict(SMALL, synapses=60, pairings=3, frequency=[1.0, 20.0], device="runtime", progress=False)
    for fit in (False, True):
        out = tmp_path / f"fit-{fit}"
        config = ProtocolConfig({"kind": "stdp", "stdp": dict(stdp, fit=fit)}, source="test.toml")
        results = run_stdp_protocol(config, out)
        assert [r.protocol.frequency for r in results] == [1.0, 20.0]
        t = pd.read_csv(out / "stdp.csv")
        assert sorted(set(t.frequency_hz)) == [1.0, 20.0] and set(t.rule) == {"asymmetric"}
        assert (out / "stdp.png").stat().st_size > 10_000
        assert len(json.loads((out / "run.json").read_text())["protocols"]) == 2
        assert not (out / "fit.json").exists()
        assert (out / "fit-of-run.json").exists() == fit
    fits = json.loads((tmp_path / "fit-True" / "fit-of-run.json").read_text())["fits"]
    assert [f["frequency_hz"] for f in fits] == [1.0, 20.0]


def test_cli_refuses_bad_options(capsys):
    from vpf_spiking.cli import main

    assert main(["stdp", "--rule", "hebbian", "--out", "x.csv"]) == 2
    assert "unknown rule" in capsys.readouterr().err
    assert main(["stdp", "--dt-min", "10", "--dt-max", "-10", "--out", "x.csv"]) == 2
    assert "inverted" in capsys.readouterr().err


# ---------------------------------------------------------------------------- full protocol
@pytest.mark.slow
@pytest.mark.parametrize("rule", ["asymmetric", "symmetric"])
def test_full_protocol_on_cpp_standalone(rule):
    r = simulate(PairingProtocol(rule=rule, device="cpp_standalone"), progress=False)
    t = r.table
    assert len(t) == 41 and r.protocol.synapses == 1000 and r.protocol.pairings == 60
    if rule == "asymmetric":
        z = (t.dw_mean - t.dw_closed_form) / t.dw_sem
        assert np.all(np.abs(z) < 3), t
        assert np.all(t.dw_mean[t.dt_ms >= 0] > 0) and np.all(t.dw_mean[t.dt_ms < 0] < 0)
    else:
        off = t.dt_ms != 0
        assert np.all(np.abs(t.dw_mean[off]) < 0.005 * 80.0), t
    z = (t.dw_mean - t.dw_expected_discrete) / t.dw_sem.where(t.dw_sem > 0)
    assert np.all(np.abs(z.fillna(0)) < 3.5), t


@pytest.mark.parametrize("how", ["fraction", "killed"])
def test_an_interrupted_protocol_writes_nothing(tmp_path, monkeypatch, how):
    """One Ctrl-C stops Brian2's run early ("Simulation stop requested") or kills a standalone
    binary: the simulation raises a KeyboardInterrupt instead of returning a partial curve, and
    the CLI writes no CSV. (The device's run is replaced, so nothing is compiled.)"""
    import brian2

    from vpf_spiking.cli import main
    from vpf_spiking.spiking import devices
    from vpf_spiking.spiking.network import SimulationInterrupted

    def stopped_run(self, script, **kw):
        if how == "killed":
            brian2.Network._globally_stopped = True
            raise RuntimeError("Project run failed")
        brian2.get_device()._last_run_completed_fraction = 0.4
        return {}

    from brian2.utils.logger import catch_logs

    monkeypatch.setattr(devices.RuntimeDevice, "run_once", stopped_run)
    with catch_logs():  # the never-run groups would be reported as unused objects
        with pytest.raises(SimulationInterrupted):
            simulate(PairingProtocol(device="runtime", **SMALL), progress=False)
        assert brian2.Network._globally_stopped is False  # a stale stop would cut the next run short
        out = tmp_path / "stdp.csv"
        assert main(["stdp", "--device", "runtime", "--synapses", "10", "--pairings", "2", "--dt-step", "50",
                     "--out", str(out), "--no-progress"]) == 130
    assert not out.exists()


def test_time_options_take_brian2_units(monkeypatch, capsys, tmp_path):
    """--dt-min -20ms, --dt-max 0.02s, --sim-dt '0.1 ms' mean what the numbers in ms mean."""
    import vpf_spiking.spiking.stdp as stdp_pkg
    from vpf_spiking.cli import main

    seen = {}

    def fake(p, progress=True):
        seen["p"] = p.validated()
        raise ConfigError("stop here")

    monkeypatch.setattr(stdp_pkg, "simulate", fake)
    rc = main(["stdp", "--dt-min=-20ms", "--dt-max", "0.02s", "--dt-step", "5", "--sim-dt", "0.1 ms",
               "--tau-pre", "0.017*second", "--out", str(tmp_path / "x.csv")])
    assert rc == 2 and "stop here" in capsys.readouterr().err
    p = seen["p"]
    assert (p.dt_min, p.dt_max, p.dt_step, p.sim_dt) == pytest.approx((-20.0, 20.0, 5.0, 0.1))
    assert p.tau_pre == pytest.approx(17.0)
    rc = main(["stdp", "--sim-dt", "3 volt", "--out", str(tmp_path / "x.csv")])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and err.startswith("vpf: error: --sim-dt: cannot read '3 volt' as a time") and "\n" not in err
