import numpy as np
import pandas as pd
import pytest

from vpf_spiking.errors import ConfigError
from vpf_spiking.model import BoltzmannMachine
from vpf_spiking.protocols import run_protocol


@pytest.fixture
def toy_data(tmp_path):
    """4x4 binary images from two prototypes with noise, as train/test arrays of one .npz."""
    rng = np.random.default_rng(0)
    p = np.array([1, 1, 1, 1, 0, 0, 0, 0, 1, 1, 0, 0, 1, 0, 1, 0], dtype=np.float32)
    protos = np.stack([p, 1 - p])

    def draw(n):
        x = protos[rng.integers(0, 2, n)]
        return np.abs(x - (rng.random(x.shape) < 0.03)).astype(np.float32)

    path = tmp_path / "toy.npz"
    np.savez(path, train=draw(400), test=draw(60))
    return path


def experiment(toy_data):
    return {
        "kind": "rbm-experiment", "name": "toy",
        "data": {"dataset": str(toy_data), "validation": 50},
        "training": {"epochs": 2, "batch_size": 20, "learning_rate": 0.02},
        "models": [{"label": "VPF-6", "method": "vpf", "hidden": 6},
                   {"label": "PCD-2", "method": "pcd", "k": 2, "hidden": 6}],
        "reconstruction": {"patterns": ["rows:1", "columns:2"], "steps": 3, "seeds": [0, 1]},
        "parzen": {"n_samples": 100, "steps": 3},
        "ais": {"n_betas": 200, "n_runs": 10},
        "figures": {"n_filters": 6, "n_samples": 10},
    }


def test_rbm_experiment_writes_every_table_and_figure(toy_data, tmp_path):
    out = tmp_path / "out"
    run_protocol(experiment(toy_data), out_dir=out)
    for name in ("training", "reconstruction", "reconstruction_wide", "parzen", "ais"):
        assert (out / f"{name}.csv").exists() and (out / f"{name}.md").exists()
    recon = pd.read_csv(out / "reconstruction.csv")
    assert set(recon.model) == {"VPF-6", "PCD-2", "pixel means"} and len(recon) == 6
    assert (recon.n_images == 60).all() and (recon.n_seeds == 2).all()
    ais = pd.read_csv(out / "ais.csv")
    assert np.isfinite(ais.test_ll).all() and (ais.test_ll < 0).all()
    metrics = pd.read_csv(out / "vpf-6" / "metrics.csv")
    assert {"objective", "sparsity_W1", "mean_sq_W1", "mean_hidden_activation"} <= set(metrics.columns)
    assert list(metrics.epoch) == [1, 2]
    for png in ("weight_curves.png", "objective_vpf.png", "hidden_activation.png", "reconstruction_examples.png",
                "vpf-6/filters.png", "pcd-2/samples.png"):
        assert (out / png).stat().st_size > 1000
    # a second run reuses every finished step (nothing is retrained or re-evaluated)
    before = (out / "vpf-6" / "model.npz").stat().st_mtime_ns
    run_protocol(experiment(toy_data), out_dir=out)
    assert (out / "vpf-6" / "model.npz").stat().st_mtime_ns == before
    pd.testing.assert_frame_equal(pd.read_csv(out / "reconstruction.csv"), recon)


def test_single_model_kinds(toy_data, tmp_path):
    model = BoltzmannMachine([16, 4], weight_std=0.5, seed=0)
    path = model.save(tmp_path / "m.npz")
    data = {"dataset": str(toy_data), "validation": 50}
    tab = run_protocol({"kind": "reconstruction", "model": {"path": str(path)}, "data": data,
                        "reconstruction": {"patterns": ["rows:2"], "steps": 2, "seeds": [3]}}, out_dir=tmp_path / "r")
    assert list(tab.corruption) == ["2 rows"]
    res = run_protocol({"kind": "ais", "model": {"path": str(path)}, "data": data,
                        "ais": {"n_betas": 100, "n_runs": 5}}, out_dir=tmp_path / "a")
    assert res["n_betas"] == 100 and (tmp_path / "a" / "ais.md").exists()
    res = run_protocol({"kind": "parzen", "model": {"path": str(path)}, "data": data,
                        "parzen": {"n_samples": 50, "steps": 2, "prior": "r"}}, out_dir=tmp_path / "p")
    assert res["n_samples"] == 50 and res["n_test"] == 60


def test_bad_protocols_name_the_problem(toy_data, tmp_path):
    cfg = experiment(toy_data)
    cfg["models"][1]["label"] = "VPF-6"
    with pytest.raises(ConfigError, match="unique"):
        run_protocol(cfg, out_dir=tmp_path / "x")
    cfg = experiment(toy_data)
    cfg["reconstruction"]["patterns"] = ["diagonal:2"]
    with pytest.raises(ConfigError, match="pattern"):
        run_protocol(cfg, out_dir=tmp_path / "x")
    cfg = experiment(toy_data)
    cfg["ais"]["models"] = ["nope"]
    cfg["ais"]["n_betass"] = 3
    with pytest.raises(ConfigError, match="n_betass"):
        run_protocol(cfg, out_dir=tmp_path / "x")


def test_cli_evaluate(toy_data, tmp_path, capsys):
    from vpf_spiking.cli import main

    path = BoltzmannMachine([16, 4], weight_std=0.5, seed=0).save(tmp_path / "m.npz")
    rc = main(["evaluate", str(path), "--data", str(toy_data), "--validation", "50", "--reconstruction", "--ais",
               "--patterns", "rows:1", "--steps", "2", "--seeds", "0", "--n-betas", "50", "--n-runs", "4",
               "--out", str(tmp_path / "ev")])
    out = capsys.readouterr().out
    assert rc == 0 and "1 rows" in out and "AIS: log Z" in out and "ais_s:" in out
    assert (tmp_path / "ev" / "ais.csv").exists() and (tmp_path / "ev" / "reconstruction.md").exists()
    rc = main(["evaluate", str(path), "--data", str(toy_data), "--ais", "--n-runs", "0"])
    assert rc == 2 and "--n-runs must be at least 1" in capsys.readouterr().err
    rc = main(["evaluate", str(tmp_path / "missing.npz"), "--ais"])
    assert rc == 2 and "no such model file" in capsys.readouterr().err


@pytest.mark.parametrize("kind,models,match", [
    ("rbm-experiment", [], "needs \\[\\[models\\]\\] entries"),
    ("rbm-experiment", [{"label": "a", "method": "vpf"}], "missing hidden"),
    ("rbm-experiment", [{"label": "a", "method": "vpf", "hidden": 4, "k": 2}], "k applies to cd/pcd"),
    ("rbm-experiment", [{"label": "a", "method": "gibbs", "hidden": 4}], "gibbs"),
    ("rbm-experiment", [{"label": "a", "method": "cd", "hidden": 4, "epochs": 0}], "epochs"),
    ("rbm-experiment", [{"label": "a", "method": "cd", "hidden": 4, "colour": 1}], "colour"),
    ("dbm-experiment", ["a"], "must be a table"),
    ("dbm-experiment", [{"label": "a"}], "missing network"),
    ("dbm-experiment", [{"label": "a", "network": "x.toml"}, {"label": "a", "network": "y.toml"}], "unique"),
    ("dbm-experiment", [{"label": "a", "network": "x.toml", "method": "cd"}], "method"),
])
def test_model_entries_of_both_experiment_kinds_are_checked(kind, models, match, toy_data, tmp_path):
    cfg = {"kind": kind, "data": {"dataset": str(toy_data)}, "models": models}
    with pytest.raises(ConfigError, match=match):
        run_protocol(cfg, out_dir=tmp_path / "x")
