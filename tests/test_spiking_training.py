"""Spiking training: the schedule, agreement with the batch algorithm, checkpoints, CLI, refusals."""

import itertools

import numpy as np
import pytest

from vpf_spiking import BoltzmannMachine
from vpf_spiking.errors import ConfigError, DataError, TrainingDiverged
from vpf_spiking.objective import gradient
from vpf_spiking.sampling import bottom_up
from vpf_spiking.spiking import CLAMP0, CLAMP1, FREE, HOLD, SpikingTrainer
from vpf_spiking.trainers import online_vpf

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

PROTOS = np.array([[1, 1, 1, 0, 0, 0, 1, 0, 1], [0, 0, 0, 1, 1, 1, 0, 1, 0], [1, 0, 1, 0, 1, 0, 1, 0, 1]], float)
CHUNK = 200  # one cpp_standalone build serves every 9-4 test here


def toy_data(n, seed):
    r = np.random.default_rng(seed)
    return np.abs(PROTOS[r.integers(0, 3, n)] - (r.random((n, 9)) < 0.08))


def exact_ll(m, x):
    W, b, c = m.W[1].astype(float), m.b[0].astype(float), m.b[1].astype(float)
    H = np.array(list(itertools.product([0, 1], repeat=len(c))), float)
    logz = np.logaddexp.reduce(H @ c + np.logaddexp(0, H @ W.T + b).sum(1))
    return float(np.mean(x @ b + np.logaddexp(0, x @ W + c).sum(1)) - logz)


def test_online_vpf_is_one_gradient_step_per_example_with_the_current_parameters():
    x = toy_data(3, 5)
    m = BoltzmannMachine([9, 4], intra=[False, True], seed=0, dtype=np.float64)
    ref = m.copy()
    rng = np.random.default_rng(7)
    for k in range(len(x)):
        state, _ = bottom_up(ref, x[k:k + 1], rng, sweeps=2)
        g = gradient(ref, state)
        ref.set_parameters({key: v - 0.1 * g[key] for key, v in ref.parameters().items()})
    assert online_vpf(m, x, learning_rate=0.1, seed=7, sweeps=2) is m
    for key, v in ref.parameters().items():
        np.testing.assert_allclose(m.parameters()[key], v, rtol=1e-12, atol=1e-15)
    with pytest.raises(TrainingDiverged, match="diverged at example") as info:
        online_vpf(m, x, learning_rate=1e308)
    assert info.value.examples_done < len(x)
    with pytest.raises(ConfigError, match="learning_rate"):
        online_vpf(m, x, learning_rate=-1.0)
    with pytest.raises(DataError, match="columns"):
        online_vpf(m, x[:, :8], learning_rate=0.1)


def test_schedule_layout_for_a_deep_network():
    m = BoltzmannMachine([4, 3, 2], intra=[False, True, True], dtype=np.float64)
    tr = SpikingTrainer(settle_ms=20, learn_ms=10, chunk=2, device="runtime")
    slot, ns, nl, per = tr.geometry(m)
    assert (slot, ns, nl, per) == (10.0, 2, 1, 5)
    x = np.array([[1, 0, 1, 0], [np.nan] * 4])
    mode, learn, topdown = tr.schedule(m, x)
    # example 0: slots 0-1 settle h1, 2-3 settle h2, 4 learn; example 1 is padding
    assert np.array_equal(mode[0][:4], np.tile([CLAMP1, CLAMP0, CLAMP1, CLAMP0], (4, 1)))
    assert np.all(mode[0][4:] == HOLD)
    assert list(mode[1][:5]) == [FREE, FREE, HOLD, HOLD, HOLD]
    assert list(mode[2][:5]) == [HOLD, HOLD, FREE, FREE, HOLD]
    assert list(topdown[1][:5]) == [0, 0, 0, 0, 1]
    assert list(learn) == [0, 0, 0, 0, 1, 0, 0, 0, 0, 0]
    assert np.all(mode[1][5:] == HOLD) and np.all(mode[2][5:] == HOLD)


def test_spiking_training_reaches_batch_log_likelihood():
    """A 9-4 RBM trained online by its own spikes gets the exact log-likelihood of the batch
    algorithm run with the same per-example learning rate on the same examples."""
    x = toy_data(4000, 0)
    test = toy_data(5000, 99)
    init = BoltzmannMachine([9, 4], seed=0, dtype=np.float64)
    # per-example learning rate eta * T * learn_ms / tau = 0.02; a 40 ms learning window keeps
    # the event-count noise of each update (relative size ~ 1/sqrt(events)) small
    eta, learn_ms = 0.005, 40.0
    m = init.copy()
    # zero visible biases at the start, as online_vpf keeps them (like with like)
    hist = SpikingTrainer(eta=eta, learn_ms=learn_ms, chunk=CHUNK, device="cpp_standalone",
                          progress=False, visible_bias_init="zero").fit(m, x)
    assert len(hist) == len(x) // CHUNK
    lr = eta * m.temperature * learn_ms / m.tau_ms
    mb = online_vpf(init.copy(), x, learning_rate=lr, seed=1)
    ll0, lls, llb = exact_ll(init, test), exact_ll(m, test), exact_ll(mb, test)
    assert llb > ll0 + 1.5            # the task is learnable at this rate
    assert lls > ll0 + 1.5
    assert abs(lls - llb) < 0.3, (ll0, lls, llb)


@pytest.mark.devices("cpp_standalone", "cuda_standalone")
def test_checkpoint_resume_after_interrupt(tmp_path, device):
    x = toy_data(2 * CHUNK, 1)
    ck = tmp_path / "ck.npz"
    m = BoltzmannMachine([9, 4], seed=0, dtype=np.float64)
    tr = SpikingTrainer(eta=0.03, chunk=CHUNK, device=device, checkpoint=ck, checkpoint_every=1,
                        progress=False, epochs=2)

    def stop(epoch, pos, model, row):
        if epoch == 1 and pos == CHUNK:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        tr.fit(m, x, callback=stop)
    assert ck.exists()
    m2 = BoltzmannMachine([9, 4], seed=0, dtype=np.float64)
    hist = tr.fit(m2, x, resume=True)
    assert list(hist["examples"]) == [CHUNK, 2 * CHUNK, 3 * CHUNK, 4 * CHUNK]
    # the resumed model started from the checkpoint, not from scratch
    assert not np.allclose(m2.W[1], BoltzmannMachine([9, 4], seed=0, dtype=np.float64).W[1])
    with pytest.raises(DataError, match="other training data"):
        tr.fit(BoltzmannMachine([9, 4], seed=0), toy_data(2 * CHUNK, 2), resume=True)


def test_cli_trains_with_the_spiking_engine(tmp_path, capsys):
    import pandas as pd

    from vpf_spiking.cli import main
    from vpf_spiking.model import pixel_log_odds

    data = tmp_path / "toy.npy"
    x = toy_data(CHUNK + 50, 3)
    np.save(data, x.astype(np.float32))
    out = tmp_path / "run"
    rc = main(["train", "rbm-toy", "--engine", "spiking", "--device", "cpp_standalone", "--data", str(data),
               "--validation", "50", "--epochs", "2", "--chunk", str(CHUNK), "--eta", "0.03", "--out", str(out),
               "--no-progress"])
    assert rc == 0
    err = capsys.readouterr().err
    # --epochs are passes over the data, and said so at the start
    assert f"{2 * CHUNK} presentations = 2 epoch(s) x {CHUNK} examples" in err
    m = BoltzmannMachine.load(out / "model.npz")
    assert m.sizes == (9, 4)
    assert (out / "metrics.csv").exists() and (out / "checkpoint.npz").exists()
    metrics = pd.read_csv(out / "metrics.csv")
    assert list(metrics["examples"]) == [CHUNK, 2 * CHUNK]
    # the learning signal on the held-out probe, per chunk, as the batch engine names it
    for col in ("val_flow", "val_recon_error", "val_hidden_mean"):
        assert np.all(np.isfinite(metrics[col])), col
    assert metrics["val_flow"].iloc[-1] < metrics["val_flow"].iloc[0] * 1.5
    # the visible biases started at the data's pixel log-odds, as in the batch trainers
    start = pixel_log_odds(x[:CHUNK], 1.0)
    assert np.corrcoef(m.b[0], start)[0, 1] > 0.5


def _stop_on_run(monkeypatch, n):
    """Make the n-th runtime run stop half-way, as one Ctrl-C does ("Simulation stop requested")."""
    from brian2 import Network, get_device

    from vpf_spiking.spiking.devices import RuntimeDevice

    original, calls = RuntimeDevice.run, {"n": 0}

    def run(self, net, duration, **kw):
        calls["n"] += 1
        if calls["n"] != n:
            return original(self, net, duration, **kw)
        original(self, net, duration / 2, **kw)
        get_device()._last_run_completed_fraction = 0.5
        Network._globally_stopped = True

    monkeypatch.setattr(RuntimeDevice, "run", run)


def test_a_stopped_chunk_is_discarded_and_resume_is_bit_identical(tmp_path, monkeypatch):
    """A run cut short never reaches the model or the checkpoint; resuming ends where an
    uninterrupted run ends, to the bit (state of the network included)."""
    import pandas as pd

    from vpf_spiking.spiking.network import SimulationInterrupted

    x = toy_data(60, 4)

    def trainer(ck):
        return SpikingTrainer(eta=0.03, chunk=20, device="runtime", epochs=2, checkpoint=ck, checkpoint_every=5,
                              progress=False, metrics_file=tmp_path / f"{ck.stem}.csv")

    ref = BoltzmannMachine([9, 4], seed=0, dtype=np.float64)
    after = {}
    trainer(tmp_path / "ref.npz").fit(ref, x, callback=lambda e, p, m, row: after.setdefault((e, p), m.copy()))
    m = BoltzmannMachine([9, 4], seed=0, dtype=np.float64)
    ck = tmp_path / "ck.npz"
    _stop_on_run(monkeypatch, 4)                    # the first chunk of the second epoch
    with pytest.raises(SimulationInterrupted, match="stopped after 50.0 %"):
        trainer(ck).fit(m, x)
    monkeypatch.undo()
    # the model and the checkpoint are those after the last complete chunk (end of epoch 1)
    for key, v in after[(0, 60)].parameters().items():
        assert np.array_equal(m.parameters()[key], v), key
    assert len(pd.read_csv(tmp_path / "ck.csv")) == 3
    with np.load(ck) as f:
        assert np.array_equal(f["model.W1"], after[(0, 60)].W[1])
    m2 = BoltzmannMachine([9, 4], seed=0, dtype=np.float64)
    hist = trainer(ck).fit(m2, x, resume=True)
    assert list(hist["examples"]) == [20, 40, 60, 80, 100, 120]
    for key, v in ref.parameters().items():
        assert np.array_equal(m2.parameters()[key], v), key


def test_training_refuses_bad_input():
    m = BoltzmannMachine([9, 4], seed=0)
    with pytest.raises(DataError, match="shape"):
        SpikingTrainer(device="runtime").fit(m, np.zeros((5, 8)))
    with pytest.raises(DataError, match="binary"):
        SpikingTrainer(device="runtime").fit(m, np.full((5, 9), 0.5))
    with pytest.raises(ConfigError, match="eta"):
        SpikingTrainer(eta=0)
    with pytest.raises(ConfigError, match="rule"):
        SpikingTrainer(rule="hebb")
    with pytest.raises(ConfigError, match="multiples of dt"):
        SpikingTrainer(settle_ms=0.15).geometry(m)
    with pytest.raises(ConfigError, match="unknown device"):
        SpikingTrainer(device="tpu").fit(m, np.zeros((5, 9)))


def test_protocol_kind_is_known_and_checked():
    from pathlib import Path

    from vpf_spiking.protocols import ProtocolConfig, known_kinds, load_protocol
    from vpf_spiking.protocols.spiking_train import parse_spiking_train

    assert "spiking-train" in known_kinds()
    shipped = Path(__file__).resolve().parent.parent / "protocols" / "spiking-rbm-mnist.toml"
    s = parse_spiking_train(load_protocol(shipped))
    assert s["network"] == "rbm-500" and s["trainer"]["device"] == "cpp_standalone"
    dbm = parse_spiking_train(load_protocol(shipped.with_name("spiking-dbm-mnist.toml")))
    assert dbm["network"] == "dbm-500-1000-intra" and dbm["validation"] == 1000
    assert dbm["trainer"]["device"] == "cpp_standalone" and dbm["trainer"]["epochs"] == 1
    bad = ProtocolConfig({"kind": "spiking-train", "network": {"name": "rbm-toy"}, "data": {"dataset": "x.npy"},
                          "spiking": {"eta": 0.01, "speed": 3}})
    with pytest.raises(ConfigError, match="speed"):
        parse_spiking_train(bad)
    bad["spiking"] = {"device": "gpu"}
    with pytest.raises(ConfigError, match="device"):
        parse_spiking_train(bad)


def test_spiking_protocol_refuses_data_of_the_wrong_width(tmp_path):
    from vpf_spiking.protocols import run_protocol

    np.save(tmp_path / "five.npy", np.zeros((4, 5), dtype=np.float32))
    cfg = {"kind": "spiking-train", "network": {"name": "rbm-toy"}, "data": {"dataset": str(tmp_path / "five.npy")},
           "spiking": {"device": "runtime"}}
    with pytest.raises(ConfigError, match="5 values but network rbm-toy has 9 visible units"):
        run_protocol(cfg, out_dir=tmp_path / "out")


@pytest.mark.slow
def test_ctrl_c_on_the_runtime_device_exits_130_and_resume_is_bit_identical(tmp_path):
    """One real SIGINT while Brian2 runs a chunk (it prints "Simulation stop requested" and returns
    early): exit 130, the truncated chunk is neither learned from nor checkpointed, and --resume
    ends bit-identical to an uninterrupted run.  (About a minute: three processes on runtime.)"""
    import os
    import signal
    import subprocess
    import sys
    import time

    import pandas as pd

    data = tmp_path / "toy.npy"
    np.save(data, toy_data(300, 6).astype(np.float32))

    def command(out, *extra):
        return [sys.executable, "-m", "vpf_spiking.cli", "train", "rbm-toy", "--engine", "spiking", "--device",
                "runtime", "--data", str(data), "--epochs", "1", "--chunk", "100", "--eta", "0.03",
                "--learn-ms", "40", "--out", str(out), "--no-progress", *extra]

    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    out = tmp_path / "cut"
    proc = subprocess.Popen(command(out), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    deadline = time.time() + 300
    metrics = out / "metrics.csv"
    while time.time() < deadline and proc.poll() is None:
        if metrics.exists() and len(pd.read_csv(metrics)) == 1:
            break
        time.sleep(0.05)
    assert proc.poll() is None, proc.communicate()
    time.sleep(1.0)                                  # well inside the second chunk's run (~5 s)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "Simulation stop requested" in err and "the unfinished chunk was discarded" in err, err
    assert "Traceback" not in err, err
    assert len(pd.read_csv(metrics)) == 1
    with np.load(out / "checkpoint.npz") as f:
        import json

        assert json.loads(str(f["meta"]))["position"] == 100
    assert not (out / "model.npz").exists()
    done = subprocess.run(command(out, "--resume"), capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr
    ref = tmp_path / "ref"
    full = subprocess.run(command(ref), capture_output=True, text=True, env=env, timeout=300)
    assert full.returncode == 0, full.stderr
    a, b = BoltzmannMachine.load(out / "model.npz"), BoltzmannMachine.load(ref / "model.npz")
    for key, v in b.parameters().items():
        assert np.array_equal(a.parameters()[key], v), key
    assert list(pd.read_csv(out / "metrics.csv")["examples"]) == [100, 200, 300]


def test_spiking_checkpoints_are_the_batch_format_and_refuse_non_finite_state(tmp_path):
    """Both engines write vpf_spiking.checkpoint's format; a NaN checkpoint is refused on resume;
    a checkpoint of the spiking trainer's earlier format still resumes."""
    import json

    from vpf_spiking.checkpoint import load_checkpoint, save_checkpoint
    from vpf_spiking.spiking.training import LEGACY_CHECKPOINT_FORMAT

    x = toy_data(40, 4)
    ck = tmp_path / "ck.npz"

    def trainer(epochs=1):
        return SpikingTrainer(eta=0.03, chunk=20, device="runtime", epochs=epochs, checkpoint=ck, checkpoint_every=1,
                              progress=False)

    m = BoltzmannMachine([9, 4], seed=0, dtype=np.float64)
    trainer().fit(m, x)
    c = load_checkpoint(ck)
    assert (c.epoch, c.position, c.rng_state, c.optimizer) == (1, 0, None, {})
    assert sorted(c.extra) == ["state.0", "state.1"] and c.extra["state.0"].shape[-1] == 9
    for key, v in m.parameters().items():
        assert np.array_equal(c.model.parameters()[key], v), key
    # a diverged state is never resumed from
    bad = c.model.copy()
    save_checkpoint(ck, epoch=1, position=0, model=bad, optimizer={"m": np.array([np.inf])}, rng=None,
                    trainer=c.trainer, data=c.data, history=c.history, extra=c.extra)
    with pytest.raises(ConfigError, match="non-finite"):
        trainer(2).fit(BoltzmannMachine([9, 4], seed=0, dtype=np.float64), x, resume=True)
    # the earlier format: same content, other layout
    meta = {"epoch": 1, "pos": 0, "history": c.history, "trainer": c.trainer, "data": [[40, 9], float(x.sum())],
            "model": m._meta(), "state_layers": 2}
    arrays = {"format": np.array(LEGACY_CHECKPOINT_FORMAT), "meta": np.array(json.dumps(meta)),
              **{f"model.{k}": v for k, v in m.parameters().items()}, "state.0": c.extra["state.0"],
              "state.1": c.extra["state.1"]}
    np.savez(ck, **arrays)
    resumed = BoltzmannMachine([9, 4], seed=0, dtype=np.float64)
    hist = trainer(2).fit(resumed, x, resume=True)
    assert list(hist["examples"]) == [20, 40, 60, 80]
    ref = BoltzmannMachine([9, 4], seed=0, dtype=np.float64)
    ck.unlink()
    trainer(2).fit(ref, x)
    for key, v in ref.parameters().items():
        assert np.array_equal(resumed.parameters()[key], v), key
