"""``vpf simulate`` and :mod:`vpf_spiking.spiking.recording`: durations, recorded transitions, files."""

import json

import numpy as np
import pytest

from vpf_spiking import BoltzmannMachine
from vpf_spiking.errors import ConfigError
from vpf_spiking.spiking.recording import Transitions, parse_duration, simulate

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


@pytest.mark.parametrize("text, ms", [("500ms", 500.0), ("500 ms", 500.0), ("0.5 s", 500.0), ("2*second", 2000.0),
                                      ("250", 250.0), ("0.1", 0.1), ("1.5e3 usecond", 1.5), ("1e3ms", 1000.0),
                                      ("0.5*second + 20*ms", 520.0), ("(1/2) * second", 500.0), (".5s", 500.0)])
def test_parse_duration_reads_brian2_quantities(text, ms):
    assert parse_duration(text) == pytest.approx(ms, rel=1e-12)


@pytest.mark.parametrize("text, why", [("5 mV", "not a time"), ("5 Hz", "not a time"), ("foo", "not a Brian2 unit"),
                                       ("__import__('os').getcwd()", "not allowed"), ("ms.__class__", "not allowed"),
                                       ("-5ms", "positive"), ("0", "positive"), ("1e400", "finite"),
                                       ("2**1000*ms", "exponent"), ("ms + 1", "inconsistent units"),
                                       ("", "empty"), ("2 ms ms", "not an expression"), ("1/0*ms", "not a number")])
def test_parse_duration_refuses_everything_else_on_one_line(text, why):
    with pytest.raises(ConfigError, match=why) as info:
        parse_duration(text, "--duration")
    assert str(info.value).startswith("--duration: cannot read") and "\n" not in str(info.value)


def _model(sizes=(12, 8), seed=3, scale=0.8):
    m = BoltzmannMachine(list(sizes), seed=0, dtype=np.float64)
    r = np.random.default_rng(seed)
    for l in range(1, len(sizes)):
        m.W[l][...] = r.normal(0, scale, m.W[l].shape)
    for l in range(len(sizes)):
        m.b[l][...] = r.normal(0, 1.0, sizes[l])
    return m


def _expected_flips(z, y0, duration_ms, tau_ms):
    """Mean and (long-run) variance of the transitions of one two-state neuron with fixed field z."""
    a, b = np.exp(z / 2) / tau_ms, np.exp(-z / 2) / tau_ms      # up and down rates, per ms
    s = a + b
    p1 = a / s
    # intensity a (1 - P1(t)) + b P1(t), P1(t) = p1 + (y0 - p1) exp(-s t)
    mean = a * duration_ms + (b - a) * (p1 * duration_ms + (y0 - p1) * (1 - np.exp(-s * duration_ms)) / s)
    # alternating renewal process: var / mean -> 2 (1/a^2 + 1/b^2) / (1/a + 1/b)^2, between 1 and 2
    return mean, mean * 2 * (a ** -2 + b ** -2) / (1 / a + 1 / b) ** 2


@pytest.mark.devices("runtime", "cuda_standalone")
def test_clamped_transition_counts_match_the_closed_form_flip_rates(device):
    """Visible layer clamped, no hidden-hidden links: every hidden neuron is a two-state chain
    with the fixed field z = b + v W, so its transition count has a closed-form mean."""
    from scipy.stats import chi2

    m = _model((12, 24))
    n = m.sizes[1]
    v = (np.random.default_rng(5).random(12) < 0.5).astype(float)
    duration = 4000.0
    tr = simulate(m, duration, clamp=v, device=device, seed=11)
    counts = tr.counts()
    assert counts[0].sum() == 0 and tr.clamped == (True, False)       # clamped: vetoed events only
    z = m.b[1] + v @ m.W[1]
    limit = chi2.ppf(1 - 1e-4, n)

    def statistic(mean, var):
        return float(np.sum((counts[1] - mean) ** 2 / var))

    mean, var = _expected_flips(z, 0.0, duration, m.tau_ms)
    assert mean.min() > 50                                            # enough events for the test to bite
    zscore = (counts[1] - mean) / np.sqrt(var)
    assert np.max(np.abs(zscore)) < 4.5 and statistic(mean, var) < limit, zscore
    # the counts have power: a field 1.25 times too large, or Glauber rates (same stationary
    # distribution, up rate sigmoid(z)/tau, down rate sigmoid(-z)/tau) are rejected
    assert statistic(*_expected_flips(1.25 * z, 0.0, duration, m.tau_ms)) > limit
    a, b = 1 / (1 + np.exp(-z)) / m.tau_ms, 1 / (1 + np.exp(z)) / m.tau_ms
    glauber = 2 * a * b / (a + b) * duration
    assert statistic(glauber, glauber) > limit
    # the record is consistent: each neuron alternates 0 -> 1 -> 0 ..., times ordered, within the run
    for j in range(n):
        s = tr.state[(tr.layer == 1) & (tr.neuron == j)]
        assert np.array_equal(s, np.arange(1, len(s) + 1) % 2)
        assert tr.final[1][j] == len(s) % 2
    assert np.all(np.diff(tr.t_ms) >= 0) and tr.t_ms.min() >= 0 and tr.t_ms.max() < duration
    rates = tr.rates(100.0)
    assert rates["h1_transitions"].sum() == counts[1].sum() and len(rates["t_start_ms"]) == 40
    # time-averaged fraction excited, against the chains' stationary p1 (after the ~tau transient)
    p1 = 1 / (1 + np.exp(-z))
    assert abs(rates["h1_active"][5:].mean() - p1.mean()) < 0.03


def _run_cli(argv, capsys):
    from vpf_spiking.cli import main

    rc = main(argv)
    out, err = capsys.readouterr()
    return rc, out, err


@pytest.mark.parametrize("argv, part", [
    (["--duration", "5 mV"], "--duration: cannot read '5 mV' as a time"),
    (["--duration", "open('x')"], "--duration"),
    (["--dt=-1ms"], "--dt"),
    (["--bin", "hour"], "--bin"),
    (["--clamp", "3"], "--clamp IMAGE-INDEX and --data go together"),
])
def test_cli_refusals_are_one_line(tmp_path, capsys, argv, part):
    path = tmp_path / "m.npz"
    _model().save(path)
    rc, _, err = _run_cli(["simulate", str(path), "--out", str(tmp_path / "o"), *argv], capsys)
    assert rc == 2 and len(err.strip().splitlines()) == 1, err
    assert err.startswith("vpf: error: ") and part in err, err
    assert not (tmp_path / "o").exists()


def test_cli_writes_raster_rates_and_transitions(tmp_path, capsys):
    import matplotlib.image as mpimg
    import pandas as pd

    path = tmp_path / "m.npz"
    _model((6, 4, 3)).save(path)
    images = (np.random.default_rng(0).random((3, 6)) < 0.5).astype(np.float32)
    np.save(tmp_path / "x.npy", images)
    out = tmp_path / "clamped"
    rc, stdout, err = _run_cli(["simulate", str(path), "--clamp", "2", "--data", str(tmp_path / "x.npy"),
                                "--split", "train", "--duration", "0.2 s", "--bin", "20ms", "--device", "runtime",
                                "--out", str(out)], capsys)
    assert rc == 0, err
    for name in ("transitions.csv", "raster.png", "rates.csv", "rates.png", "simulation.json"):
        assert (out / name).stat().st_size > 0, name
    assert mpimg.imread(out / "raster.png").ndim == 3
    tr = pd.read_csv(out / "transitions.csv")
    assert list(tr.columns) == ["time_ms", "layer", "neuron", "state"]
    assert (tr["layer"] == 0).sum() == 0 and len(tr) > 0
    rates = pd.read_csv(out / "rates.csv")
    assert len(rates) == 10 and rates["h1_transitions"].sum() == (tr["layer"] == 1).sum()
    assert rates["h2_transitions"].sum() == (tr["layer"] == 2).sum()
    summary = json.loads((out / "simulation.json").read_text())
    assert summary["transitions"] == {"v": 0, "h1": int((tr["layer"] == 1).sum()), "h2": int((tr["layer"] == 2).sum())}
    assert f"{len(tr)} transitions in 200 ms" in stdout
    # free, as npz: every layer moves, and the file reads back
    rc, _, err = _run_cli(["simulate", str(path), "--duration", "100", "--format", "npz", "--seed", "4",
                           "--out", str(tmp_path / "free")], capsys)
    assert rc == 0, err
    back = Transitions.load(tmp_path / "free" / "transitions.npz")
    assert back.sizes == (6, 4, 3) and back.duration_ms == 100.0 and not any(back.clamped)
    assert all(c.sum() > 0 for c in back.counts())
    # an earlier simulation is not replaced silently
    rc, _, err = _run_cli(["simulate", str(path), "--duration", "100", "--out", str(tmp_path / "free")], capsys)
    assert rc == 2 and "holds an earlier simulation" in err and len(err.strip().splitlines()) == 1
    rc, _, err = _run_cli(["simulate", str(path), "--duration", "100", "--out", str(tmp_path / "free"),
                           "--overwrite"], capsys)
    assert rc == 0, err
    assert (tmp_path / "free" / "transitions.csv").exists() and not (tmp_path / "free" / "transitions.npz").exists()
