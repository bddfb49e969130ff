"""STDP pairing protocols: closed form (spec section 6), its generalisation, the fit, the simulation.

The default tests use short excited-state time constants (8 and 16 ms), five values of dt and a
few pairings, so that a runtime-device simulation takes seconds; the full protocol (41 x 1,000
synapses, 60 pairings, cpp_standalone) runs with --run-slow.
"""

import math

import numpy as np
import pandas as pd
import pytest

from vpf_spiking.errors import ConfigError
from vpf_spiking.stdp import (
    PairingProtocol, bi_poo_curve, closed_form, expected_change, expected_change_discrete, fit_bi_poo,
    neuron_tau_ms, protocol_from_config, simulate, spontaneous_rate_hz,
)

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
    assert np.all(closed_form(dt, tp, tq, 0.04, 60, rule="symmetric") == 0)


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
    assert fig.stat().st_size > 10_000


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
