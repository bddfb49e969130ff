"""A real Ctrl-C (SIGINT to the whole process group, as a terminal sends it) on the spiking
engine's standalone device: ``vpf stdp`` writes nothing that looks complete and exits 130;
``vpf train --engine spiking`` keeps the last complete chunk and ``--resume`` ends bit-identical
to an uninterrupted run.  (The runtime device's SIGINT test, slower, is in test_spiking_training.)
"""

import json
import os
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pandas as pd
import pytest

from vpf_spiking.model import BoltzmannMachine

pytestmark = pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="needs Linux process groups and /proc")


def _start(argv, **kw):
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen([sys.executable, "-m", "vpf_spiking.cli", *argv], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env, start_new_session=True, **kw)


def _collect(stream, into):
    for chunk in iter(lambda: stream.read(1), ""):
        into.append(chunk)


def _binary_running(pgid) -> bool:
    """A compiled standalone binary (Brian2 names it ``main``) runs in process group ``pgid``."""
    for stat in os.listdir("/proc"):
        if stat.isdigit():
            try:
                with open(f"/proc/{stat}/stat") as f:
                    fields = f.read().rsplit(")", 1)
                name = fields[0].split("(", 1)[1]
                if name == "main" and int(fields[1].split()[2]) == pgid:
                    return True
            except (OSError, IndexError, ValueError):
                continue
    return False


def _ctrl_c_when(proc, ready, timeout=300):
    """Send SIGINT to ``proc``'s process group once ``ready()`` holds; return (stdout, stderr)."""
    out, err = [], []
    threads = [threading.Thread(target=_collect, args=(proc.stdout, out), daemon=True),
               threading.Thread(target=_collect, args=(proc.stderr, err), daemon=True)]
    for t in threads:
        t.start()
    deadline = time.time() + timeout
    while time.time() < deadline and proc.poll() is None and not ready("".join(err)):
        time.sleep(0.05)
    assert proc.poll() is None, "".join(err)
    os.killpg(proc.pid, signal.SIGINT)
    proc.wait(timeout=120)
    for t in threads:
        t.join(timeout=10)
    return "".join(out), "".join(err)


def test_ctrl_c_during_vpf_stdp_on_cpp_standalone_writes_nothing(tmp_path):
    out = tmp_path / "stdp.csv"
    fig = tmp_path / "stdp.png"
    proc = _start(["stdp", "--device", "cpp_standalone", "--synapses", "400", "--pairings", "400", "--dt-step", "10",
                   "--out", str(out), "--figure", str(fig), "--no-progress"], cwd=tmp_path)
    seen = {}

    def simulating(_err):   # the binary has run for half a second (after the compile)
        if _binary_running(proc.pid):
            seen.setdefault("t", time.time())
        return "t" in seen and time.time() - seen["t"] > 0.5

    _, err = _ctrl_c_when(proc, simulating)
    assert proc.returncode == 130, err
    assert "Traceback" not in err, err
    assert "vpf: interrupted" in err
    assert not out.exists() and not fig.exists()
    assert not list(tmp_path.glob("*.csv")) and not list(tmp_path.glob("*fit*"))


def test_ctrl_c_during_spiking_training_on_cpp_standalone_then_resume_is_bit_identical(tmp_path):
    rng = np.random.default_rng(0)
    protos = (rng.random((4, 9)) < 0.5).astype(np.float32)
    data = tmp_path / "toy.npy"
    np.save(data, np.abs(protos[rng.integers(0, 4, 300)] - (rng.random((300, 9)) < 0.05)).astype(np.float32))

    def argv(out, *extra):
        return ["train", "rbm-toy", "--engine", "spiking", "--device", "cpp_standalone", "--data", str(data),
                "--epochs", "1", "--chunk", "100", "--eta", "0.03", "--learn-ms", "400", "--out", str(out),
                "--no-progress", *extra]

    cut = tmp_path / "cut"
    metrics = cut / "metrics.csv"

    def one_chunk_done(_err):
        try:
            return metrics.exists() and len(pd.read_csv(metrics)) == 1
        except (pd.errors.EmptyDataError, OSError):
            return False

    proc = _start(argv(cut))
    _, err = _ctrl_c_when(proc, one_chunk_done)
    assert proc.returncode == 130, err
    assert "Traceback" not in err, err
    assert len(pd.read_csv(metrics)) == 1        # the interrupted chunk reached neither metrics ...
    with np.load(cut / "checkpoint.npz") as f:   # ... nor the checkpoint
        assert json.loads(str(f["meta"]))["position"] == 100
    assert not (cut / "model.npz").exists()
    env = {**os.environ}
    done = subprocess.run([sys.executable, "-m", "vpf_spiking.cli", *argv(cut, "--resume")], capture_output=True,
                          text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr
    ref = tmp_path / "ref"
    full = subprocess.run([sys.executable, "-m", "vpf_spiking.cli", *argv(ref)], capture_output=True, text=True,
                          env=env, timeout=300)
    assert full.returncode == 0, full.stderr
    a, b = BoltzmannMachine.load(cut / "model.npz"), BoltzmannMachine.load(ref / "model.npz")
    for key, v in b.parameters().items():
        assert np.array_equal(a.parameters()[key], v), key
    assert list(pd.read_csv(cut / "metrics.csv")["examples"]) == [100, 200, 300]
