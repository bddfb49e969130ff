"""Protocol files: loading, clear errors, overrides, the table of kinds, and the "train" kind."""

import inspect
import tomllib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from vpf_spiking.errors import ConfigError
from vpf_spiking.model import BoltzmannMachine
from vpf_spiking.trainers import params
from vpf_spiking.protocols import (
    KINDS, ProtocolConfig, apply_overrides, dump_toml, known_kinds, load_protocol, parse_train, run_protocol,
)

REPO = Path(__file__).resolve().parent.parent


def toy_data(path, n=200, seed=0):
    """Binary 9-pixel patterns: noisy copies of two prototypes (a learnable structure)."""
    rng = np.random.default_rng(seed)
    protos = np.array([[1, 1, 1, 0, 0, 0, 1, 1, 1], [0, 0, 0, 1, 1, 1, 0, 0, 0]], dtype=np.float32)
    x = protos[rng.integers(0, 2, n)]
    flip = rng.random(x.shape) < 0.05
    x = np.where(flip, 1 - x, x).astype(np.float32)
    np.save(path, x)
    return path


def write(path, text):
    path.write_text(text)
    return path


TOY = """\
kind = "train"
name = "toy"
[network]
name = "rbm-toy"
[data]
dataset = "{data}"
validation = 50
[training]
method = "vpf"
epochs = 3
batch_size = 25
learning_rate = 0.01
seed = 1
progress = false
"""


def test_invalid_toml_names_the_file(tmp_path):
    p = write(tmp_path / "bad.toml", "kind = \n")
    with pytest.raises(ConfigError, match=r"bad\.toml: invalid TOML"):
        load_protocol(p)


def test_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="no such protocol file"):
        load_protocol(tmp_path / "nope.toml")


def test_missing_and_unknown_kind_list_the_known_kinds(tmp_path):
    p = write(tmp_path / "nokind.toml", "name = 'x'\n")
    with pytest.raises(ConfigError, match=r"nokind\.toml: missing top-level key 'kind' \(known kinds: .*train"):
        load_protocol(p)
    p = write(tmp_path / "weird.toml", "kind = 'juggle'\n")
    with pytest.raises(ConfigError, match=r"weird\.toml: unknown kind 'juggle' \(known kinds: .*train"):
        load_protocol(p)


def test_unknown_keys_are_refused_with_file_and_key(tmp_path):
    p = write(tmp_path / "typo.toml", TOY.format(data="x.npy").replace("epochs = 3", "epochz = 3"))
    with pytest.raises(ConfigError, match=r"typo\.toml: unknown key\(s\) \['epochz'\] in \[training\]"):
        parse_train(load_protocol(p))
    p = write(tmp_path / "top.toml", "trainig = 1\n" + TOY.format(data="x.npy"))
    with pytest.raises(ConfigError, match=r"top\.toml: unknown key\(s\) \['trainig'\] in the top level"):
        parse_train(load_protocol(p))


@pytest.mark.parametrize("edit, message", [
    (("method = \"vpf\"", "method = \"gd\""), r"training\.method must be one of"),
    (("epochs = 3", "epochs = 0"), r"training\.epochs must be >= 1"),
    (("epochs = 3", "epochs = 'three'"), r"training\.epochs must be an integer"),
    (("learning_rate = 0.01", "learning_rate = -1.0"), r"learning_rate must be positive"),
    (("method = \"vpf\"", "method = \"vpf\"\nk = 3"), r"training\.k .* not vpf"),
    (("seed = 1", "seed = 1\nflow = \"sideways\""),
     r"p\.toml: training\.flow must be one of joint, rao-blackwell, marginal, got 'sideways'"),
    (("method = \"vpf\"", "method = \"cd\"\nflips = 8"), r"p\.toml: training\.flips applies to method vpf, not cd"),
    (("[network]\nname = \"rbm-toy\"", "[network]\nname = \"rbm-toy\"\npath = \"x.toml\""), r"exactly one of"),
    (("dataset = ", "datasett = "), r"unknown key\(s\) \['datasett'\] in \[data\]"),
])
def test_bad_train_settings(tmp_path, edit, message):
    p = write(tmp_path / "p.toml", TOY.format(data="x.npy").replace(*edit))
    with pytest.raises(ConfigError, match=message):
        parse_train(load_protocol(p))


def test_training_table_is_the_declaration(tmp_path):
    # every trainer option is a [training] key (flow and flips included), defaults filled in
    p = write(tmp_path / "p.toml", TOY.format(data="x.npy").replace("seed = 1", "seed = 1\nflow = \"marginal\"\nflips = 8"))
    s = parse_train(load_protocol(p))
    assert s["training"] == {**params.defaults("vpf"), "epochs": 3, "batch_size": 25, "learning_rate": 0.01,
                             "seed": 1, "progress": False, "flow": "marginal", "flips": 8}
    assert s["method"] == "vpf" and s["trainer"] == params.trainer_kwargs(s["training"], "vpf")
    bare = write(tmp_path / "bare.toml", "kind = 'train'\n[network]\nname = 'rbm-toy'\n[data]\ndataset = 'x.npy'\n")
    assert parse_train(load_protocol(bare))["training"] == params.defaults("vpf")


def test_overrides_are_typed_and_validated():
    cfg = ProtocolConfig({"kind": "train", "training": {"epochs": 3}}, source="p.toml")
    out = apply_overrides(cfg, ["training.epochs=5", "training.learning_rate=1e-3",
                                "data.dataset=fashion-mnist", 'name="x"', "training.progress=false"])
    assert out["training"] == {"epochs": 5, "learning_rate": 1e-3, "progress": False}
    assert out["data"] == {"dataset": "fashion-mnist"} and out["name"] == "x"
    assert cfg["training"] == {"epochs": 3}, "the original must not change"
    assert out.source == "p.toml"
    with pytest.raises(ConfigError, match="KEY=VALUE"):
        apply_overrides(cfg, ["training.epochs"])
    with pytest.raises(ConfigError, match="not a table"):
        apply_overrides(cfg, ["kind.x=1"])


def test_dump_toml_round_trips():
    doc = {"kind": "train", "name": "n", "ratio": 0.25, "flag": True, "tags": [1, 2],
           "net": {"name": "rbm-toy", "deep": {"x": "a \"quoted\" b"}},
           "layers": [{"size": 3}, {"size": 4, "intra": False}]}
    assert tomllib.loads(dump_toml(doc)) == doc


def test_kind_gets_config_and_out_dir(tmp_path, monkeypatch):
    seen = {}

    def echo(config, out_dir):
        seen["config"], seen["out"] = dict(config), out_dir
        (out_dir / "result.txt").write_text(str(config["value"]))
        return "ok"

    monkeypatch.setitem(KINDS, "test-echo", echo)
    p = write(tmp_path / "echo.toml", "kind = 'test-echo'\nvalue = 1\n")
    result = run_protocol(p, out_dir=tmp_path / "out", overrides=["value=7"], command="vpf run echo.toml")
    assert result == "ok"
    assert seen["config"]["value"] == 7 and seen["out"] == tmp_path / "out"
    assert (tmp_path / "out" / "result.txt").read_text() == "7"
    written = tomllib.loads((tmp_path / "out" / "protocol.toml").read_text())
    assert written == {"kind": "test-echo", "value": 7}
    assert (tmp_path / "out" / "command.txt").read_text() == "vpf run echo.toml\n"
    with pytest.raises(ConfigError, match="cannot resume"):
        run_protocol(p, out_dir=tmp_path / "out", resume=True)
    # overrides applied beforehand are recorded as well
    run_protocol(apply_overrides(load_protocol(p), ["value=8"]), out_dir=tmp_path / "out2")
    assert "# overrides: value=8" in (tmp_path / "out2" / "protocol.toml").read_text()


def test_default_out_dir_is_runs_name(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setitem(KINDS, "test-noop", lambda config, out_dir: out_dir)
    assert run_protocol({"kind": "test-noop", "name": "abc"}) == Path("runs") / "abc"
    assert (tmp_path / "runs" / "abc" / "protocol.toml").is_file()
    with pytest.raises(ConfigError, match="plain file name"):
        run_protocol({"kind": "test-noop", "name": "../escape"})


def test_the_table_of_kinds():
    assert known_kinds() == sorted(["train", "spiking-train", "reconstruction", "parzen", "ais", "rbm-experiment",
                                    "dbm-experiment", "stdp", "sample-quality"])
    for kind, func in KINDS.items():
        # one module per kind, in vpf_spiking.protocols; run(config, out_dir[, resume])
        assert func.__module__.startswith("vpf_spiking.protocols.") and func.__name__ == "run", kind
        assert list(inspect.signature(func).parameters)[:2] == ["config", "out_dir"], kind


def test_shipped_protocols_load():
    files = sorted((REPO / "protocols").glob("*.toml"))
    assert any(f.name == "train-rbm-mnist.toml" for f in files) and any(f.name == "demo.toml" for f in files)
    kinds = known_kinds()
    for f in files:
        cfg = load_protocol(f)
        assert cfg["kind"] in kinds
        if cfg["kind"] == "train":
            parse_train(cfg)


def test_train_kind_end_to_end_and_resume(tmp_path):
    data = toy_data(tmp_path / "toy.npy")
    p = write(tmp_path / "toy.toml", TOY.format(data=data.as_posix()))
    out = tmp_path / "run"
    model, metrics = run_protocol(p, out_dir=out)
    assert isinstance(model, BoltzmannMachine) and model.sizes == (9, 4)
    saved = BoltzmannMachine.load(out / "model.npz")
    np.testing.assert_array_equal(saved.W[1], model.W[1])
    csv = pd.read_csv(out / "metrics.csv")
    assert len(csv) == 3 and {"val_flow", "val_recon_error", "val_hidden_mean"} <= set(csv.columns)
    assert np.all(np.isfinite(csv["val_flow"]))
    assert (out / "checkpoint.npz").is_file()
    # the untrained model's weights are tiny; training moved them
    fresh = BoltzmannMachine.from_network("rbm-toy")
    assert np.abs(saved.W[1] - fresh.W[1]).max() > 1e-3
    # resume with more epochs continues from the checkpoint and keeps the earlier rows
    model2, metrics2 = run_protocol(p, out_dir=out, overrides=["training.epochs=5"], resume=True)
    csv2 = pd.read_csv(out / "metrics.csv")
    assert len(csv2) == 5
    pd.testing.assert_frame_equal(csv2.iloc[:3].reset_index(drop=True), csv.reset_index(drop=True),
                                  check_dtype=False)


def test_train_kind_records_every_setting(tmp_path):
    from vpf_spiking.protocols.train import record_settings

    data = toy_data(tmp_path / "toy.npy", n=60)
    p = write(tmp_path / "toy.toml", TOY.format(data=data.as_posix()).replace("epochs = 3", "epochs = 1"))
    out = tmp_path / "run"
    run_protocol(p, out_dir=out, overrides=["training.batch_size=20"])
    text = (out / "protocol.toml").read_text()
    assert text.startswith("#") and "# overrides: training.batch_size=20" in text  # the runner's header, kept
    recorded = tomllib.loads(text)
    want = {**params.defaults("vpf"), "epochs": 1, "batch_size": 20, "learning_rate": 0.01, "seed": 1,
            "progress": False}
    assert recorded["training"] == want
    assert recorded["data"] == {"dataset": data.as_posix(), "validation": 50}
    # the record is itself a protocol that runs the same training (and is recorded unchanged)
    run_protocol(out / "protocol.toml", out_dir=tmp_path / "again")
    assert tomllib.loads((tmp_path / "again" / "protocol.toml").read_text())["training"] == want
    # a protocol.toml that is not the record of this run is left alone
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "protocol.toml").write_text("kind = 'other'\n")
    config = load_protocol(p)
    assert not record_settings(config, foreign, training=want)
    assert (foreign / "protocol.toml").read_text() == "kind = 'other'\n"


def test_data_width_must_match_network(tmp_path):
    np.save(tmp_path / "wide.npy", np.zeros((10, 5), dtype=np.float32))
    p = write(tmp_path / "w.toml", TOY.format(data=(tmp_path / "wide.npy").as_posix()).replace("validation = 50\n", ""))
    with pytest.raises(ConfigError, match="5 values but network rbm-toy has 9 visible units"):
        run_protocol(p, out_dir=tmp_path / "o")
