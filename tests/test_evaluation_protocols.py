import tomllib

import numpy as np
import pandas as pd
import pytest

from vpf_spiking.errors import ConfigError
from vpf_spiking.model import BoltzmannMachine
from vpf_spiking.protocols import ProtocolConfig, run_protocol
from vpf_spiking.trainers import params


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
    # the recorded protocol lists every trainer setting the models started from, defaults included
    recorded = tomllib.loads((out / "protocol.toml").read_text())
    every = {o.name: o.default for o in params.OPTIONS.values()}
    assert recorded["training"] == {**every, "epochs": 2, "batch_size": 20, "learning_rate": 0.02, "network_seed": 0}
    assert recorded["models"] == experiment(toy_data)["models"]
    # a second run into the folder (--resume: the runner refuses a used folder otherwise) reuses
    # every finished step (nothing is retrained or re-evaluated)
    before = (out / "vpf-6" / "model.npz").stat().st_mtime_ns
    run_protocol(experiment(toy_data), out_dir=out, resume=True)
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
    # sample quality needs a classifier, i.e. a labelled data set
    rc = main(["evaluate", str(path), "--data", str(toy_data), "--samples"])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1
    assert "--samples needs --data mnist or fashion-mnist" in err and "toy.npz has no classifier" in err


def test_experiment_training_options_come_from_the_declaration():
    from vpf_spiking.protocols.experiments import training_defaults
    from vpf_spiking.protocols.rbm_experiment import parse_rbm_models

    cfg = ProtocolConfig({"kind": "rbm-experiment",
                          "training": {"epochs": 2, "weight_decay": 0.0, "k": 3, "network_seed": 4},
                          "models": [{"label": "V", "method": "vpf", "hidden": 3, "flow": "marginal", "flips": 5},
                                     {"label": "P", "method": "pcd", "hidden": 3, "learning_rate": 0.01}]},
                         source="e.toml")
    defaults, seed = training_defaults(cfg, epochs=5)
    assert seed == 4
    assert defaults == {**{o.name: o.default for o in params.OPTIONS.values()}, "epochs": 2, "weight_decay": 0.0,
                        "k": 3}
    vpf, pcd = parse_rbm_models(cfg, defaults)
    assert vpf["method"] == "vpf" and vpf["hidden"] == 3
    assert vpf["trainer"] == {**params.trainer_kwargs(params.defaults("vpf"), "vpf"), "epochs": 2,
                              "weight_decay": 0.0, "flow": "marginal", "flips": 5}
    assert vpf["training"] == {"method": "vpf", **vpf["trainer"]}
    assert pcd["trainer"]["k"] == 3 and pcd["trainer"]["learning_rate"] == 0.01 and "flow" not in pcd["trainer"]
    # the kind's default epochs when [training] leaves them out
    assert training_defaults(ProtocolConfig({}, source="e.toml"), epochs=5)[0]["epochs"] == 5
    # a DBM experiment trains by VPF only: options of cd/pcd are unknown there
    with pytest.raises(ConfigError, match=r"e\.toml: unknown key\(s\) \['k'\] in \[training\]"):
        training_defaults(ProtocolConfig({"training": {"k": 2}}, source="e.toml"), epochs=10, methods=("vpf",))
    with pytest.raises(ConfigError, match=r"e\.toml: training\.network_seed must be >= 0, got -1"):
        training_defaults(ProtocolConfig({"training": {"network_seed": -1}}, source="e.toml"), epochs=10)


@pytest.fixture(scope="session")
def classifier_cache(tmp_path_factory):
    """One classifier cache for the whole test session: the classifier trains once per session."""
    return tmp_path_factory.mktemp("classifiers")


@pytest.mark.data
def test_cli_evaluate_samples_on_real_mnist(shared_data_dir, classifier_cache, tmp_path, monkeypatch, capsys):
    """vpf evaluate --samples: Parzen's confabulations scored by the MNIST classifier, printed and written."""
    pytest.importorskip("sklearn")
    from vpf_spiking.cli import main
    from vpf_spiking.evaluation.sample_quality import SampleClassifier, sample_quality
    from vpf_spiking.generation import confabulate
    from vpf_spiking.protocols.inputs import load_data
    from vpf_spiking.trainers import make_trainer

    monkeypatch.setenv("VPF_CACHE_DIR", str(classifier_cache))
    # the command's classifier, on the first 1,000 training images: a few seconds instead of the
    # full set's minute or two (the scores are the same functions either way)
    full = SampleClassifier.from_dataset.__func__
    monkeypatch.setattr(SampleClassifier, "from_dataset", classmethod(
        lambda cls, name, data_dir=None, **kw: full(cls, name, data_dir=data_dir, n_train=1000, **kw)))
    ds = {"dataset": "mnist", "data_dir": str(shared_data_dir), "validation": 1000, "n_train": None, "n_test": 300}
    data = load_data(ds)
    model = BoltzmannMachine([784, 16], seed=0)
    make_trainer("vpf", epochs=1, progress=False).fit(model, data["train"][:1000])
    path = model.save(tmp_path / "m.npz")

    rc = main(["evaluate", str(path), "--data", "mnist", "--data-dir", str(shared_data_dir), "--n-test", "300",
               "--parzen", "--samples", "--n-samples", "100", "--sample-steps", "3", "--out", str(tmp_path / "ev")])
    out = capsys.readouterr().out
    assert rc == 0
    assert "Parzen log-likelihood" in out and "sample quality: blank" in out and "Frechet distance" in out
    row = pd.read_csv(tmp_path / "ev" / "sample_quality.csv").iloc[0]
    assert (tmp_path / "ev" / "sample_quality.md").is_file()
    assert row["n_samples"] == 100 and row["steps"] == 3 and row["prior"] == "p" and row["n_reference"] == 300
    assert "samples" in (tmp_path / "ev" / "timings.json").read_text()
    assert list(classifier_cache.glob("*.joblib")), "the classifier is cached under $VPF_CACHE_DIR"
    # the same numbers as the library: P prior from the training split, reference = the test images
    samples = confabulate(model, 100, prior="p", steps=3, rng=0, data=data["train"])
    want = sample_quality(samples, SampleClassifier.from_dataset("mnist", data_dir=str(shared_data_dir)),
                          reference=data["test"])
    for key, value in want.items():
        assert row[key] == pytest.approx(value, rel=1e-6, abs=1e-9), key
    assert 0 <= row["blank"] <= 1 and 0 <= row["confident"] <= 1 and 0 <= row["classes"] <= 10


@pytest.mark.parametrize("kind,models,match", [
    ("rbm-experiment", [], "needs \\[\\[models\\]\\] entries"),
    ("rbm-experiment", [{"label": "a", "method": "vpf"}], "missing hidden"),
    ("rbm-experiment", [{"label": "a", "method": "vpf", "hidden": 4, "k": 2}],
     r"models\[0\]\.k applies to method cd or pcd, not vpf"),
    ("rbm-experiment", [{"label": "a", "method": "gibbs", "hidden": 4}],
     r"models\[0\]\.method must be one of vpf, cd, pcd, got 'gibbs'"),
    ("rbm-experiment", [{"label": "a", "method": "vpf", "hidden": 4, "flow": "sideways"}],
     r"models\[0\]\.flow must be one of joint, rao-blackwell, marginal, got 'sideways'"),
    ("rbm-experiment", [{"label": "a", "method": "cd", "hidden": 4, "flow": "marginal"}],
     r"models\[0\]\.flow applies to method vpf, not cd"),
    ("rbm-experiment", [{"label": "a", "method": "cd", "hidden": 4, "epochs": 0}], "epochs"),
    ("rbm-experiment", [{"label": "a", "method": "cd", "hidden": 4, "colour": 1}], "colour"),
    ("dbm-experiment", ["a"], "must be a table"),
    ("dbm-experiment", [{"label": "a"}], "missing network"),
    ("dbm-experiment", [{"label": "a", "network": "x.toml"}, {"label": "a", "network": "y.toml"}], "unique"),
    ("dbm-experiment", [{"label": "a", "network": "x.toml", "method": "cd"}], "method"),
    ("dbm-experiment", [{"label": "a", "network": "x.toml", "k": 2}], r"unknown key\(s\) \['k'\] in models\[0\]"),
])
def test_model_entries_of_both_experiment_kinds_are_checked(kind, models, match, toy_data, tmp_path):
    cfg = {"kind": kind, "data": {"dataset": str(toy_data)}, "models": models}
    with pytest.raises(ConfigError, match=match):
        run_protocol(cfg, out_dir=tmp_path / "x")
