"""Ctrl-C on the batch engine: a clean stop (exit 130), the last complete checkpoint kept, no result
that looks complete, and ``--resume`` ending bit-identical to an uninterrupted run; a second
writer into the running run's folder is refused.

The spiking engine's interrupts (runtime and standalone devices, ``vpf stdp``) are tested with
that engine.
"""

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import pytest

from vpf_spiking import cli
from vpf_spiking.checkpoint import load_checkpoint
from vpf_spiking.model import BoltzmannMachine
from vpf_spiking.trainers import make_trainer

NETWORK = """name = "net64"
[[layers]]
size = 64
[[layers]]
size = 48
"""
EPOCHS = 20


@pytest.fixture
def setup(tmp_path, monkeypatch):
    # one BLAS thread in both processes, so that the arithmetic (and so the bits) agree
    monkeypatch.setenv("VPF_BLAS_THREADS", "1")
    monkeypatch.setenv("VPF_THREADS", "1")
    net = tmp_path / "net64.toml"
    net.write_text(NETWORK)
    data = tmp_path / "d.npy"
    np.save(data, (np.random.default_rng(0).random((600, 64)) < 0.3).astype(np.float32))
    return tmp_path, net, data


def _argv(net, data, out, epochs=EPOCHS):
    return ["train", str(net), "--data", str(data), "--epochs", str(epochs), "--batch-size", "10",
            "--seed", "4", "--out", str(out), "--no-progress"]


def _same_model(a, b):
    ma, mb = BoltzmannMachine.load(a), BoltzmannMachine.load(b)
    for name, p in ma.parameters().items():
        np.testing.assert_array_equal(p, mb.parameters()[name], err_msg=name)


def test_sigint_stops_batch_training_cleanly_and_resume_is_bit_identical(setup, capsys):
    tmp, net, data = setup
    out = tmp / "interrupted"
    env = dict(os.environ)
    proc = subprocess.Popen([sys.executable, "-m", "vpf_spiking.cli"] + _argv(net, data, out),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    deadline = time.monotonic() + 60
    while not (out / "checkpoint.npz").exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"training ended before its first checkpoint: {proc.communicate()}")
        time.sleep(0.005)
    # a second writer while the first runs is refused, in one line
    assert cli.main(_argv(net, data, out)) == 2
    err = capsys.readouterr().err
    assert err.startswith("vpf: error: ") and "in use by a running process" in err and err.count("\n") == 1
    proc.send_signal(signal.SIGINT)  # one Ctrl-C
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "Traceback" not in err and "interrupted" in err and "--resume" in err
    ck = load_checkpoint(out / "checkpoint.npz")
    assert 1 <= ck.epoch < EPOCHS, "the interrupt came too late to test anything; raise EPOCHS"
    assert not (out / "model.npz").exists(), "an interrupted run must not write a final model"
    assert not (out / ".vpf.lock").exists()
    if (out / "metrics.csv").exists():  # written per epoch: never ahead of or behind the checkpoint
        assert len(pd.read_csv(out / "metrics.csv")) == ck.epoch

    assert cli.main(_argv(net, data, out) + ["--resume"]) == 0
    assert cli.main(_argv(net, data, tmp / "straight")) == 0
    capsys.readouterr()
    _same_model(out / "model.npz", tmp / "straight" / "model.npz")
    a, b = pd.read_csv(out / "metrics.csv"), pd.read_csv(tmp / "straight" / "metrics.csv")
    pd.testing.assert_frame_equal(a.drop(columns="seconds"), b.drop(columns="seconds"))


def test_interrupt_inside_an_epoch_keeps_the_last_checkpoint_and_metrics(setup):
    tmp, _, data = setup
    x = np.load(data)
    ck, csv = tmp / "ck.npz", tmp / "metrics.csv"

    def model():
        return BoltzmannMachine([64, 48], seed=1)

    def stop_at_3(epoch, m, metrics):
        if epoch == 3:
            raise KeyboardInterrupt  # as if Ctrl-C came at the end of epoch 3, before it was saved

    m = model()
    trainer = make_trainer("vpf", epochs=6, batch_size=20, checkpoint=ck, metrics_csv=csv, progress=False)
    with pytest.raises(KeyboardInterrupt):
        trainer.fit(m, x, callback=stop_at_3)
    assert load_checkpoint(ck).epoch == 2 and len(pd.read_csv(csv)) == 2
    resumed = model()
    make_trainer("vpf", epochs=6, batch_size=20, checkpoint=ck, metrics_csv=csv, progress=False).fit(
        resumed, x, resume=True)
    straight = model()
    make_trainer("vpf", epochs=6, batch_size=20, progress=False).fit(straight, x)
    for name, p in resumed.parameters().items():
        np.testing.assert_array_equal(p, straight.parameters()[name], err_msg=name)
    assert list(pd.read_csv(csv)["epoch"]) == [1, 2, 3, 4, 5, 6]
