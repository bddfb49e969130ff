"""The ``vpf`` command line: help, errors on one line, train / resume / run / info / demo."""

import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from vpf_spiking import cli
from vpf_spiking.model import BoltzmannMachine
from vpf_spiking.trainers import params

from test_protocols import toy_data

SUBCOMMANDS = [["demo"], ["train"], ["run"], ["info"], ["data"], ["data", "check"]]


def run_cli(argv, capsys):
    rc = cli.main(argv)
    out, err = capsys.readouterr()
    return rc, out, err


def assert_one_line_error(rc, err, *needles):
    assert rc == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1, f"expected one line on stderr, got: {err!r}"
    assert lines[0].startswith("vpf: error: ") or lines[0].startswith("vpf ")
    for n in needles:
        assert n in lines[0], f"{n!r} not in {lines[0]!r}"


def test_top_level_help_lists_every_command(capsys):
    rc, out, _ = run_cli(["--help"], capsys)
    assert rc == 0
    for name in ("demo", "train", "run", "info", "data"):
        assert f"    {name} " in out


@pytest.mark.parametrize("argv", SUBCOMMANDS, ids=" ".join)
def test_every_subcommand_has_help(argv, capsys):
    rc, out, _ = run_cli(argv + ["--help"], capsys)
    assert rc == 0
    assert out.startswith(f"usage: vpf {' '.join(argv)}")


def test_demo_help_says_where_data_is_looked_up(capsys):
    _, out, _ = run_cli(["demo", "--help"], capsys)
    assert "../shared/data" in out and "VPF_DATA_DIR" in out


def test_demo_help_gives_the_current_defaults(capsys):
    # --epochs, --lr, --seed come from the trainer declaration, with the demo's 20 epochs
    _, out, _ = run_cli(["demo", "--help"], capsys)
    text = " ".join(out.split())
    assert "learning rate 1e-3, weight decay 1e-4" in text and "0.01" not in text
    assert "--lr LR, --learning-rate LR" in text and "(default: 0.001)" in text
    assert "passes over the training data (default: 20)" in text
    rc, _, err = run_cli(["demo", "--lr", "0"], capsys)
    assert_one_line_error(rc, err, "--lr must be positive, got 0.0")


def test_no_command_and_unknown_option_are_usage_errors(capsys):
    rc, _, err = run_cli([], capsys)
    assert rc == 2 and "required" in err
    rc, _, err = run_cli(["train", "rbm-toy", "--bogus"], capsys)
    assert_one_line_error(rc, err, "unrecognized arguments: --bogus")


def test_train_writes_model_and_metrics_then_resumes(tmp_path, capsys):
    data = toy_data(tmp_path / "toy.npy")
    out = tmp_path / "run"
    argv = ["train", "rbm-toy", "--data", str(data), "--epochs", "3", "--batch-size", "20",
            "--lr", "0.01", "--seed", "3", "--out", str(out), "--no-progress"]
    rc, stdout, err = run_cli(argv, capsys)
    assert rc == 0, err
    model = BoltzmannMachine.load(out / "model.npz")
    assert model.sizes == (9, 4)
    metrics = pd.read_csv(out / "metrics.csv")
    assert len(metrics) == 3
    assert "model.npz" in stdout and "last epoch" in stdout
    assert "vpf train rbm-toy" in (out / "command.txt").read_text()
    # the written protocol reruns the same training
    import tomllib

    proto = tomllib.loads((out / "protocol.toml").read_text())
    assert proto["kind"] == "train" and proto["network"] == {"name": "rbm-toy", "seed": 3}
    # every training option is recorded, those left at their defaults too
    assert proto["training"] == {**params.defaults("vpf"), "epochs": 3, "batch_size": 20, "learning_rate": 0.01,
                                 "seed": 3, "progress": False}

    argv[argv.index("3")] = "5"  # --epochs 5
    rc, _, err = run_cli(argv + ["--resume"], capsys)
    assert rc == 0, err
    assert len(pd.read_csv(out / "metrics.csv")) == 5


def test_train_cd_and_pcd_run(tmp_path, capsys):
    data = toy_data(tmp_path / "toy.npy", n=60)
    for method in ("cd", "pcd"):
        rc, _, err = run_cli(["train", "rbm-toy", "--data", str(data), "--method", method, "--k", "2",
                              "--epochs", "1", "--out", str(tmp_path / method), "--no-progress"], capsys)
        assert rc == 0, err
        assert (tmp_path / method / "model.npz").is_file()


@pytest.mark.parametrize("extra, needles", [
    (["--method", "sgd"], ["--method", "'sgd'", "vpf, cd, pcd"]),
    (["--optimizer", "rmsprop"], ["--optimizer", "adam, sgd"]),
    (["--k", "2"], ["--k", "not vpf"]),
    (["--epochs", "0"], ["--epochs must be >= 1, got 0"]),
    (["--lr", "-1"], ["--lr must be positive, got -1.0"]),
    (["--method", "cd", "--e-step-sweeps", "2"], ["--e-step-sweeps applies to --method vpf, not cd"]),
    (["--flow", "sideways"], ["--flow must be one of joint, rao-blackwell, marginal, got 'sideways'"]),
    (["--method", "pcd", "--flips", "8"], ["--flips applies to --method vpf, not pcd"]),
    (["--flips", "-1"], ["--flips must be >= 0, got -1"]),
    (["--momentum", "0.5"], ["--momentum applies to optimizer sgd only"]),
    (["--n-train", "0"], ["data.n_train must be >= 1, got 0"]),
])
def test_train_bad_options_are_one_line_errors(tmp_path, capsys, extra, needles):
    data = toy_data(tmp_path / "toy.npy", n=20)
    rc, _, err = run_cli(["train", "rbm-toy", "--data", str(data), "--out", str(tmp_path / "o")] + extra, capsys)
    assert_one_line_error(rc, err, *needles)


def test_every_training_option_is_a_train_flag(capsys):
    # derived from the declaration: a new option appears in 'vpf train' without editing the CLI
    rc, out, _ = run_cli(["train", "--help"], capsys)
    assert rc == 0
    for o in params.OPTIONS.values():
        assert o.cli_flags[0] in out, o.name
    assert "--flow joint|rao-blackwell|marginal" in out and "(default: 64)" in out


def test_train_flow_and_flips_reach_the_trainer_and_the_record(tmp_path, capsys):
    import tomllib

    data = toy_data(tmp_path / "toy.npy", n=60)
    out = tmp_path / "marginal"
    rc, _, err = run_cli(["train", "rbm-toy", "--data", str(data), "--flow", "marginal", "--flips", "4",
                          "--epochs", "1", "--out", str(out), "--no-progress"], capsys)
    assert rc == 0, err
    training = tomllib.loads((out / "protocol.toml").read_text())["training"]
    assert training["flow"] == "marginal" and training["flips"] == 4
    from vpf_spiking.checkpoint import load_checkpoint

    assert load_checkpoint(out / "checkpoint.npz").trainer["flow"] == "marginal"


def test_train_bad_inputs_are_one_line_errors(tmp_path, capsys):
    rc, _, err = run_cli(["train", "rbm-toy", "--data", str(tmp_path / "missing.npy"), "--out", str(tmp_path / "o")], capsys)
    assert_one_line_error(rc, err, "missing.npy", "no such file")

    (tmp_path / "garbage.npy").write_bytes(b"this is not numpy")
    rc, _, err = run_cli(["train", "rbm-toy", "--data", str(tmp_path / "garbage.npy"), "--out", str(tmp_path / "o")], capsys)
    assert_one_line_error(rc, err, "garbage.npy")

    np.save(tmp_path / "grey.npy", np.full((5, 9), 0.3, dtype=np.float32))
    np.save(tmp_path / "big.npy", np.full((5, 9), 7.0, dtype=np.float32))
    rc, _, err = run_cli(["train", "rbm-toy", "--data", str(tmp_path / "big.npy"), "--out", str(tmp_path / "o")], capsys)
    assert_one_line_error(rc, err, "big.npy")

    rc, _, err = run_cli(["train", "no-such-net", "--data", str(tmp_path / "grey.npy"), "--out", str(tmp_path / "o")], capsys)
    assert_one_line_error(rc, err, "no-such-net", "no such network file")


def test_spiking_engine_builds_a_spiking_train_protocol(tmp_path, capsys, monkeypatch):
    # the protocol that --engine spiking runs, without running Brian2
    seen = {}

    def fake_run(config, out_dir, resume=False, command=None, **kw):
        seen.update(config=config, out=out_dir, resume=resume, command=command)
        return None, pd.DataFrame({"epoch": [1]})

    monkeypatch.setattr("vpf_spiking.protocols.run_protocol", fake_run)
    rc, out, err = run_cli(["train", "rbm-toy", "--engine", "spiking", "--eta", "0.03", "--chunk", "7",
                            "--out", str(tmp_path / "s"), "--no-progress"], capsys)
    assert rc == 0, err
    cfg = seen["config"]
    assert cfg["kind"] == "spiking-train" and cfg["network"] == {"name": "rbm-toy", "seed": 0}
    # no --device: the protocol names none, and the trainer takes the default device
    assert cfg["spiking"] == {"epochs": 10, "seed": 0, "eta": 0.03, "chunk": 7, "progress": False}
    assert seen["command"].startswith("vpf train rbm-toy --engine spiking") and "1 chunks" in out
    rc, _, err = run_cli(["train", "rbm-toy", "--engine", "spiking", "--k", "2"], capsys)
    assert_one_line_error(rc, err, "--k applies to the batch engine")
    rc, _, err = run_cli(["train", "rbm-toy", "--engine", "spiking", "--flow", "marginal", "--batch-size", "5"], capsys)
    assert_one_line_error(rc, err, "--batch-size, --flow apply to the batch engine, not --engine spiking")
    rc, _, err = run_cli(["train", "rbm-toy", "--engine", "spiking", "--epochs", "0"], capsys)
    assert_one_line_error(rc, err, "--epochs must be >= 1, got 0")
    # --lr stands for --eta; the spiking options of the declaration (epochs, seed, progress) carry over
    seen.clear()
    rc, _, err = run_cli(["train", "rbm-toy", "--engine", "spiking", "--lr", "0.02", "--epochs", "2", "--seed", "5",
                          "--out", str(tmp_path / "s2")], capsys)
    assert rc == 0, err
    assert seen["config"]["spiking"] == {"epochs": 2, "seed": 5, "eta": 0.02}
    assert seen["config"]["network"]["seed"] == 5
    # times: a number in ms or a Brian2 time
    seen.clear()
    rc, _, err = run_cli(["train", "rbm-toy", "--engine", "spiking", "--settle-ms", "0.03 s", "--learn-ms", "10ms",
                          "--dt-ms", "0.1", "--device", "runtime", "--out", str(tmp_path / "s3")], capsys)
    assert rc == 0, err
    sp = seen["config"]["spiking"]
    assert (sp["settle_ms"], sp["learn_ms"], sp["dt_ms"], sp["device"]) == (pytest.approx(30.0), pytest.approx(10.0),
                                                                              pytest.approx(0.1), "runtime")
    rc, _, err = run_cli(["train", "rbm-toy", "--engine", "spiking", "--settle-ms", "30 mV"], capsys)
    assert_one_line_error(rc, err, "--settle-ms: cannot read '30 mV' as a time")
    rc, _, err = run_cli(["train", "rbm-toy", "--engine", "spiking", "--method", "cd"], capsys)
    assert_one_line_error(rc, err, "--engine spiking trains by VPF only")


def test_run_protocol_and_its_errors(tmp_path, capsys):
    data = toy_data(tmp_path / "toy.npy", n=80)
    proto = tmp_path / "tiny.toml"
    proto.write_text(f"""kind = "train"
name = "tiny"
[network]
name = "rbm-toy"
[data]
dataset = "{data.as_posix()}"
[training]
epochs = 1
progress = false
""")
    out = tmp_path / "out"
    rc, stdout, err = run_cli(["run", str(proto), "--out", str(out), "--set", "training.epochs=2"], capsys)
    assert rc == 0, err
    assert len(pd.read_csv(out / "metrics.csv")) == 2 and (out / "model.npz").is_file()
    assert "--set training.epochs=2" in (out / "command.txt").read_text()
    # protocol.toml: the protocol as run, every training option listed (the defaults too), the
    # runner's comment lines kept
    import tomllib

    text = (out / "protocol.toml").read_text()
    assert text.startswith("#") and "training.epochs=2" in text.split("\n[", 1)[0]
    recorded = tomllib.loads(text)
    assert recorded["training"] == {**params.defaults("vpf"), "epochs": 2, "progress": False}
    assert recorded["network"] == {"name": "rbm-toy"} and recorded["data"] == {"dataset": data.as_posix()}

    bad = tmp_path / "bad.toml"
    bad.write_text(proto.read_text().replace("epochs = 1", "epoch = 1"))
    rc, _, err = run_cli(["run", str(bad), "--out", str(out)], capsys)
    assert_one_line_error(rc, err, "bad.toml", "'epoch'", "[training]")

    bad.write_text("kind = 'nonsense'\n")
    rc, _, err = run_cli(["run", str(bad)], capsys)
    assert_one_line_error(rc, err, "bad.toml", "unknown kind 'nonsense'", "train")

    bad.write_text("kind = [\n")
    rc, _, err = run_cli(["run", str(bad)], capsys)
    assert_one_line_error(rc, err, "bad.toml", "invalid TOML")

    rc, stdout, _ = run_cli(["run", "--list-kinds"], capsys)
    assert rc == 0 and "train" in stdout.split()
    rc, _, err = run_cli(["run"], capsys)
    assert_one_line_error(rc, err, "PROTOCOL.toml")


def test_sample_below_and_its_help(tmp_path, capsys, monkeypatch):
    import vpf_spiking.generation as generation

    path = BoltzmannMachine([16, 4, 3], seed=0).save(tmp_path / "dbm.npz")
    seen = []
    real = generation.confabulate

    def spy(*a, **kw):
        seen.append(kw["below"])
        return real(*a, **kw)

    monkeypatch.setattr(generation, "confabulate", spy)
    for extra in ([], ["--below", "zero"]):
        rc, _, err = run_cli(["sample", str(path), "--n", "3", "--steps", "2", "--out", str(tmp_path / "g.png"),
                              "--no-progress"] + extra, capsys)
        assert rc == 0, err
    assert seen == ["mean", "zero"]
    rc, _, err = run_cli(["sample", str(path), "--below", "top"], capsys)
    assert_one_line_error(rc, err, "--below", "invalid choice")
    _, out, _ = run_cli(["sample", "--help"], capsys)
    text = " ".join(out.split())
    assert "else 100)" in text and "docs/results/sample-quality.md" in text and "--below {mean,zero}" in text


def test_info(tmp_path, capsys):
    m = BoltzmannMachine([9, 4], seed=1)
    m.b[1][:] = 0.5
    m.save(tmp_path / "m.npz")
    rc, out, _ = run_cli(["info", str(tmp_path / "m.npz")], capsys)
    assert rc == 0
    assert "9 - 4" in out and "RBM" in out and "W1" in out and "b1" in out
    rc, out, _ = run_cli(["info", "--json", str(tmp_path / "m.npz")], capsys)
    info = json.loads(out)
    assert info["sizes"] == [9, 4] and info["n_parameters"] == 9 * 4 + 9 + 4
    assert info["parameters"]["b1"]["mean"] == pytest.approx(0.5)
    w = m.W[1].astype(np.float64)
    assert info["parameters"]["W1"]["sparsity"] == pytest.approx(np.abs(w).sum() ** 2 / (36 * (w ** 2).sum()))
    rc, _, err = run_cli(["info", str(tmp_path / "missing.npz")], capsys)
    assert_one_line_error(rc, err, "missing.npz")


def test_keyboard_interrupt_exits_130(monkeypatch, capsys):
    def boom(args):
        raise KeyboardInterrupt

    monkeypatch.setattr(cli.info, "run", boom)
    rc, _, err = run_cli(["info", "x.npz"], capsys)
    assert rc == 130 and len(err.strip().splitlines()) == 1 and "interrupted" in err


def test_the_subcommand_list_is_the_help_listing(capsys):
    rc, out, _ = run_cli(["--help"], capsys)
    block = out.split("\n  COMMAND\n", 1)[1].split("\n\n", 1)[0]
    listed = [line.split()[0] for line in block.splitlines() if line.startswith("    ") and line[4] != " "]
    names = [m.__name__.rsplit(".", 1)[1] for m in cli.SUBCOMMANDS]
    assert listed == names
    # these commands, in this order (others, such as 'vpf sweep', may be listed between and after them)
    core = ["demo", "train", "run", "info", "data", "evaluate", "sample", "stdp"]
    assert [n for n in names if n in core] == core


def test_help_loads_no_brian2_or_pandas():
    # every subcommand's parser is built for 'vpf --help'; the libraries load only when a command runs
    import subprocess

    code = ("import sys; from vpf_spiking.cli import main; main(['--help']); "
            "print(sorted(m for m in ('brian2', 'pandas', 'matplotlib') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == "[]"


def test_demo_defaults_match_the_shipped_demo_protocol():
    import tomllib

    shipped = tomllib.loads((Path(__file__).resolve().parent.parent / "protocols" / "demo.toml").read_text())
    cfg = cli.demo.demo_config()
    for key in ("kind", "network", "data", "training"):
        assert cfg[key] == shipped[key], key


def test_demo_without_data_fails_with_the_data_error(tmp_path, monkeypatch, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    monkeypatch.setenv("VPF_DATA_DIR", str(empty))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("VPF_DATA_MIRRORS", (tmp_path / "no-mirror").as_uri())  # offline, fails at once
    monkeypatch.setattr("vpf_spiking.data.SYSTEM_DIRS", ())
    rc, _, err = run_cli(["demo", "--epochs", "1", "--n-train", "100"], capsys)
    assert_one_line_error(rc, err, "mnist", "VPF_DATA_DIR")


@pytest.mark.data
def test_demo_on_real_mnist(tmp_path, monkeypatch, capsys, shared_data_dir):
    """A cut-down demo (1 epoch, 1,000 images): model, metrics and two readable PNGs."""
    import matplotlib.image as mpimg

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("VPF_DATA_DIR", str(shared_data_dir))
    rc, out, err = run_cli(["demo", "--epochs", "1", "--n-train", "1000"], capsys)
    assert rc == 0, err
    run = tmp_path / "runs" / "demo"
    assert BoltzmannMachine.load(run / "model.npz").sizes == (784, 100)
    assert len(pd.read_csv(run / "metrics.csv")) == 1
    import tomllib

    recorded = tomllib.loads((run / "protocol.toml").read_text())["training"]
    assert recorded == {**params.defaults("vpf"), "epochs": 1}  # every setting, the defaults too
    for name in ("filters.png", "samples.png"):
        img = mpimg.imread(run / name)
        assert img.ndim == 3 and img.shape[0] > 100 and img.std() > 0.01
        assert name in out
