"""Parameter sweeps on Dask (``vpf sweep``, :func:`vpf_spiking.sweep.sweep`).

Grid parsing and point names are checked without a cluster; the sweeps themselves run a tiny
training protocol (the shipped ``rbm-toy`` network, 200 examples, 2 epochs) on one 2-worker
:class:`distributed.LocalCluster` started once for the module, and compare every point with the
``vpf run --set`` command it stands for.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from vpf_spiking.errors import ConfigError
from vpf_spiking.sweep import grid as grid_mod
from vpf_spiking.sweep import plan, point_name, sweep

distributed = pytest.importorskip("distributed")

TOY = """\
kind = "train"
[network]
name = "rbm-toy"
[data]
dataset = "{data}"
[training]
method = "vpf"
epochs = {epochs}
batch_size = 20
learning_rate = 0.01
seed = 0
"""


# ---------------------------------------------------------------------------- helpers
def _toy_protocol(folder: Path, name="toy.toml", epochs=2, extra="") -> Path:
    data = folder / "toy.npy"
    if not data.exists():
        rng = np.random.default_rng(0)
        np.save(data, (rng.random((200, 9)) > 0.5).astype(np.float32))
    path = folder / name
    path.write_text(TOY.format(data=data.as_posix(), epochs=epochs) + extra, encoding="utf-8")
    return path


def _vpf_run_all(protocol: Path, runs: dict) -> None:
    """Run ``vpf run PROTOCOL --set ... --out OUT`` for each {out: [KEY=V, ...]}, two at a time."""
    procs = []
    for out, sets in runs.items():
        cmd = [sys.executable, "-m", "vpf_spiking.cli", "run", str(protocol), "--out", str(out)]
        for s in sets:
            cmd += ["--set", s]
        procs.append(subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
        if len(procs) == 2:
            _finish(procs)
            procs = []
    _finish(procs)


def _finish(procs):
    for p in procs:
        out, _ = p.communicate(timeout=300)
        assert p.returncode == 0, out


def _same_model(a: Path, b: Path) -> None:
    with np.load(a / "model.npz") as x, np.load(b / "model.npz") as y:
        assert sorted(x.files) == sorted(y.files)
        for k in x.files:
            np.testing.assert_array_equal(x[k], y[k], err_msg=f"{a.name}: {k}")


def _protocol_body(folder: Path) -> list:
    """protocol.toml without its comment header (which names the time and the source)."""
    return [ln for ln in (folder / "protocol.toml").read_text().splitlines() if not ln.startswith("#")]


def _cli(argv) -> int:
    """``vpf sweep ARGS`` in this process."""
    from vpf_spiking.cli import main

    return main(["sweep", *argv])


def _cli_argv() -> list:
    """The command line of ``vpf sweep`` as a subprocess."""
    return [sys.executable, "-m", "vpf_spiking.cli", "sweep"]


@pytest.fixture(scope="module")
def client():
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                       dashboard_address=":0", silence_logs=40)
    c = distributed.Client(cluster)
    yield c
    c.close()
    cluster.close()


# ---------------------------------------------------------------------------- grids and names
def test_grid_values_are_typed_as_for_set():
    g = grid_mod.parse_grid(["training.learning_rate=1e-3,2", "data.dataset=mnist,fashion-mnist",
                             "stdp.tau=[10, 20],[30,40]", 'x.label="a,b",c', "x.flag=true,false"])
    assert g["training.learning_rate"][0] == [0.001, 2]
    assert isinstance(g["training.learning_rate"][0][1], int)
    assert g["data.dataset"][0] == ["mnist", "fashion-mnist"]
    assert g["stdp.tau"][0] == [[10, 20], [30, 40]]
    assert g["x.label"][0] == ["a,b", "c"]
    assert g["x.flag"][0] == [True, False]
    # the overrides handed to each point are the text as typed
    assert g["training.learning_rate"][1] == ["1e-3", "2"]


@pytest.mark.parametrize("item, words", [
    ("training.learning_rate", "expected KEY=V1,V2"),
    ("=1,2", "expected KEY=V1,V2"),
    ("bad key=1,2", "expected KEY=V1,V2"),
    ("training.seed=", "empty value"),
    ("training.seed=1,,2", "empty value"),
    ("training.seed=1,1", "lists the value 1 twice"),
    ("stdp.tau=[10,20", "unbalanced brackets"),
    ('x.label="a,b', "unbalanced quote"),
])
def test_grid_errors_are_one_clear_line(item, words):
    with pytest.raises(ConfigError) as e:
        grid_mod.parse_grid([item])
    msg = str(e.value)
    assert words in msg and "\n" not in msg and repr(item) in msg


def test_grid_key_conflicts(tmp_path):
    with pytest.raises(ConfigError, match="given twice"):
        grid_mod.parse_grid(["training.seed=1,2", "training.seed=3"])
    with pytest.raises(ConfigError, match="overlap"):
        grid_mod.parse_grid(["training=1,2", "training.seed=3,4"])
    p = _toy_protocol(tmp_path)
    with pytest.raises(ConfigError, match="both set .* and swept"):
        plan(p, ["training.seed=1,2"], overrides=["training.seed=3"])
    with pytest.raises(ConfigError, match="nothing to sweep"):
        plan(p)
    with pytest.raises(ConfigError, match="zip needs grids of equal length; got training.seed: 2 values, "
                                          "training.learning_rate: 3 values"):
        plan(p, ["training.seed=1,2", "training.learning_rate=0.1,0.2,0.3"], zip=True)


def test_product_zip_and_names(tmp_path):
    p = _toy_protocol(tmp_path)
    pts = plan(p, ["training.learning_rate=0.01,0.02", "training.method=vpf,cd"])
    assert [pt.name for pt in pts] == ["learning_rate=0.01_method=vpf", "learning_rate=0.01_method=cd",
                                       "learning_rate=0.02_method=vpf", "learning_rate=0.02_method=cd"]
    assert pts[1].overrides == ("training.learning_rate=0.01", "training.method=cd")
    zipped = plan(p, ["training.learning_rate=0.01,0.02", "training.seed=3,4"], zip=True)
    assert [pt.values for pt in zipped] == [{"training.learning_rate": 0.01, "training.seed": 3},
                                            {"training.learning_rate": 0.02, "training.seed": 4}]
    # the same value typed two ways is the same point (and folder)
    assert plan(p, ["training.learning_rate=1e-3"])[0].name == plan(p, ["training.learning_rate=0.001"])[0].name
    # keys that share a last part keep enough of their path
    assert point_name({"training.seed": 1, "network.seed": 2}) == "training.seed=1_network.seed=2"
    # characters outside A-Z a-z 0-9 . _ + - are replaced, and a hash keeps such names distinct
    a, b = point_name({"x.label": "a b"}), point_name({"x.label": "a/b"})
    assert a != b and a.startswith("label=a-b~") and "/" not in b
    assert point_name({"x.v": [10, 20]}) == "v=10-20"
    assert len(point_name({"x.label": "y" * 300})) <= grid_mod.MAX_NAME


def test_sweep_table_in_the_protocol(tmp_path):
    p = _toy_protocol(tmp_path, extra="\n[sweep]\nzip = true\ntraining.learning_rate = [0.01, 0.02]\n"
                                      "training.seed = [3, 4]\n")
    pts = plan(p)
    assert [pt.name for pt in pts] == ["learning_rate=0.01_seed=3", "learning_rate=0.02_seed=4"]
    assert pts[0].overrides == ("training.learning_rate=0.01", "training.seed=3")
    # --grid replaces the table
    assert [pt.name for pt in plan(p, ["training.seed=7"])] == ["seed=7"]
    bad = _toy_protocol(tmp_path, "bad.toml", extra="\n[sweep]\ntraining.seed = 3\n")
    with pytest.raises(ConfigError, match=r"bad.toml: \[sweep\]: training.seed must be an array of values"):
        plan(bad)
    two = _toy_protocol(tmp_path, "two.toml", extra="\n[[sweep]]\ntraining.seed = [1, 2]\n"
                                                    "[[sweep]]\ntraining.method = [\"cd\"]\n")
    assert [pt.name for pt in plan(two)] == ["seed=1", "seed=2", "method=cd"]


# ---------------------------------------------------------------------------- sweeps on the cluster
def test_2x2_grid_equals_the_four_vpf_runs_and_resumes(tmp_path, client):
    p = _toy_protocol(tmp_path)
    out = tmp_path / "sw"
    grid = ["training.learning_rate=0.01,0.02", "training.method=vpf,cd"]
    t0 = time.perf_counter()
    df = sweep(p, grid, client=client, out=out, progress=False)
    first = time.perf_counter() - t0
    assert len(df) == 4 and list(df["status"]) == ["done"] * 4, df.to_string()
    assert set(df["training.method"]) == {"vpf", "cd"} and set(df["training.learning_rate"]) == {0.01, 0.02}
    assert df["epoch"].tolist() == [2] * 4 and df["objective"].notna().all()
    assert (df["wall_s"] > 0).all() and not df["reused"].any()
    on_disk = pd.read_csv(out / "results.csv")
    assert on_disk["point"].tolist() == df["point"].tolist() and (out / "results.md").is_file()

    refs = {tmp_path / "ref" / row.point: [f"training.learning_rate={row['training.learning_rate']}",
                                           f"training.method={row['training.method']}"]
            for _, row in df.iterrows()}
    _vpf_run_all(p, refs)
    for ref in refs:
        point = out / ref.name
        _same_model(point, ref)
        assert _protocol_body(point) == _protocol_body(ref)
        assert "vpf run" in (point / "command.txt").read_text()

    # run again: every point is complete, nothing runs (not even a cluster is needed)
    stamps = {d.name: (d / "model.npz").stat().st_mtime_ns for d in out.iterdir() if d.is_dir()}
    t0 = time.perf_counter()
    again = sweep(p, grid, client=client, out=out, progress=False)
    assert time.perf_counter() - t0 < first
    assert again["reused"].all() and list(again["status"]) == ["done"] * 4
    assert again["objective"].tolist() == df["objective"].tolist()
    assert stamps == {d.name: (d / "model.npz").stat().st_mtime_ns for d in out.iterdir() if d.is_dir()}

    # a point that did not finish (no completion marker) runs again; the others are skipped
    (out / "learning_rate=0.02_method=cd" / "sweep-point.json").unlink()
    third = sweep(p, grid, client=client, out=out, progress=False).set_index("point")
    assert not third.loc["learning_rate=0.02_method=cd", "reused"] and third["reused"].sum() == 3
    _same_model(out / "learning_rate=0.02_method=cd", tmp_path / "ref" / "learning_rate=0.02_method=cd")
    assert stamps["learning_rate=0.01_method=vpf"] == \
        (out / "learning_rate=0.01_method=vpf" / "model.npz").stat().st_mtime_ns

    # a changed protocol is a different point: not skipped
    changed = sweep(p, grid, client=client, out=out, progress=False, overrides=["training.epochs=1"])
    assert not changed["reused"].any() and changed["epoch"].tolist() == [1] * 4


def test_a_failing_point_is_recorded_and_the_others_finish(tmp_path, client):
    p = _toy_protocol(tmp_path)
    out = tmp_path / "sw"
    df = sweep(p, {"training.learning_rate": [-1.0, 0.01, 0.02]}, client=client, out=out,
               progress=False).set_index("point")
    bad = df.loc["learning_rate=-1.0"]
    assert bad["status"] == "failed"
    assert "training.learning_rate must be positive, got -1.0" in bad["error"] and "\n" not in bad["error"]
    assert (df.drop("learning_rate=-1.0")["status"] == "done").all()
    state = json.loads((out / "learning_rate=-1.0" / "sweep-point.json").read_text())
    assert state["status"] == "failed"
    on_disk = pd.read_csv(out / "results.csv").set_index("point")
    assert on_disk.loc["learning_rate=-1.0", "status"] == "failed"
    # a failed point is not complete: the next sweep tries it again
    again = sweep(p, {"training.learning_rate": [-1.0, 0.01, 0.02]}, client=client, out=out,
                  progress=False).set_index("point")
    assert not again.loc["learning_rate=-1.0", "reused"] and again.loc["learning_rate=0.01", "reused"]


def test_zip_from_a_sweep_table_equals_vpf_run(tmp_path, client):
    table = "\n[sweep]\nzip = true\ntraining.learning_rate = [0.01, 0.02]\ntraining.seed = [3, 4]\n"
    p = _toy_protocol(tmp_path, "tab.toml", extra=table)
    plain = _toy_protocol(tmp_path, "plain.toml")  # what vpf run accepts: the same without [sweep]
    df = sweep(p, client=client, out=tmp_path / "sw", progress=False)
    assert df["point"].tolist() == ["learning_rate=0.01_seed=3", "learning_rate=0.02_seed=4"]
    assert (df["status"] == "done").all()
    refs = {tmp_path / "ref" / "a": ["training.learning_rate=0.01", "training.seed=3"],
            tmp_path / "ref" / "b": ["training.learning_rate=0.02", "training.seed=4"]}
    _vpf_run_all(plain, refs)
    _same_model(tmp_path / "sw" / "learning_rate=0.01_seed=3", tmp_path / "ref" / "a")
    _same_model(tmp_path / "sw" / "learning_rate=0.02_seed=4", tmp_path / "ref" / "b")
    assert _protocol_body(tmp_path / "sw" / "learning_rate=0.02_seed=4") == _protocol_body(tmp_path / "ref" / "b")


def test_cli_on_an_existing_scheduler(tmp_path, client, capsys):
    p = _toy_protocol(tmp_path)
    out = tmp_path / "sw"
    address = client.scheduler.address
    rc = _cli([str(p), "--grid", "training.seed=1,2", "--set", "training.epochs=1", "--out", str(out),
               "--scheduler", address, "--no-progress"])
    assert rc == 0, capsys.readouterr()
    df = pd.read_csv(out / "results.csv")
    assert df["point"].tolist() == ["seed=1", "seed=2"] and (df["status"] == "done").all()
    # with a failing point the exit status is 1 and the point is named
    rc = _cli([str(p), "--grid", "training.learning_rate=-1", "--out", str(tmp_path / "bad"),
               "--scheduler", address, "--no-progress"])
    err = capsys.readouterr().err
    assert rc == 1 and "point learning_rate=-1 failed" in err


def test_cli_errors_are_one_line(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("VPF_DASK_SCHEDULER", raising=False)
    p = _toy_protocol(tmp_path)
    assert _cli([str(p), "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("vpf: error:") and "nothing to sweep" in err and "\n" not in err
    assert _cli([str(p), "--grid", "training.seed=1", "--workers", "2", "--scheduler", "tcp://127.0.0.1:1",
                 "--out", str(tmp_path / "x")]) == 2
    assert "--workers sizes the local cluster" in capsys.readouterr().err
    assert _cli([str(p), "--grid", "training.seed", "--out", str(tmp_path / "x")]) == 2
    assert "expected KEY=V1,V2" in capsys.readouterr().err


def test_workers_are_checked_first(tmp_path, client):
    p = _toy_protocol(tmp_path)
    text = p.read_text().replace((tmp_path / "toy.npy").as_posix(), (tmp_path / "missing.npy").as_posix())
    p.write_text(text)
    with pytest.raises(ConfigError) as e:
        sweep(p, ["training.seed=1,2"], client=client, out=tmp_path / "sw", progress=False)
    msg = str(e.value)
    assert "2 of 2 Dask workers cannot run the sweep" in msg and "missing.npy not found" in msg
    assert not any((tmp_path / "sw").glob("seed=*"))  # nothing ran


# ---------------------------------------------------------------------------- slow: failures, clusters
def _wait_for(cond, timeout=120, what="condition"):
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if cond():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def _started(folder: Path) -> bool:
    """The point in ``folder`` is running and has written its first checkpoint."""
    try:
        st = json.loads((folder / "sweep-point.json").read_text())
    except (OSError, ValueError):
        return False
    return st.get("status") == "running" and (folder / "checkpoint.npz").exists()


@pytest.mark.slow
def test_killed_workers_and_points_are_retried_and_resume(tmp_path, client):
    """SIGKILL the worker running one point (Dask reschedules it) and the process of another point
    (Dask's retries run it again): both resume from their checkpoints and equal vpf run's models."""
    p = _toy_protocol(tmp_path, epochs=200)
    out = tmp_path / "sw"
    result = {}
    th = threading.Thread(target=lambda: result.update(df=sweep(p, ["training.seed=1,2"], client=client,
                                                                out=out, progress=False)))
    th.start()
    victim, other = out / "seed=1", out / "seed=2"
    _wait_for(lambda: _started(victim) and _started(other), what="the first checkpoints of both points")
    worker_name = json.loads((victim / "sweep-point.json").read_text())["worker"].split("/", 1)[1]
    pids = client.run(os.getpid)
    names = {a: str(w["name"]) for a, w in client.scheduler_info()["workers"].items()}
    victim_pid = next(pid for addr, pid in pids.items() if names.get(addr) == worker_name)
    child = subprocess.run(["pgrep", "-f", f"vpf_spiking.sweep.point .*{other}"], capture_output=True,
                           text=True).stdout.split()
    assert len(child) == 1, child
    os.kill(int(child[0]), signal.SIGKILL)
    os.kill(victim_pid, signal.SIGKILL)

    th.join(timeout=600)
    df = result["df"].set_index("point")
    assert (df["status"] == "done").all(), df.to_string()
    for folder in (victim, other):
        state = json.loads((folder / "sweep-point.json").read_text())
        assert state["attempt"] >= 2 and state["resumed"], state
        assert "(resuming)" in (folder / "sweep.log").read_text()
    refs = {tmp_path / "ref" / "seed=1": ["training.seed=1"], tmp_path / "ref" / "seed=2": ["training.seed=2"]}
    _vpf_run_all(p, refs)
    for ref in refs:
        _same_model(out / ref.name, ref)


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_a_real_cluster_started_by_the_dask_cli(tmp_path):
    dask_cli = Path(sys.executable).parent / "dask"
    if not dask_cli.exists():
        pytest.skip("the dask command is not installed next to this Python")
    port = _free_port()
    address = f"tcp://127.0.0.1:{port}"
    procs = [subprocess.Popen([str(dask_cli), "scheduler", "--host", "127.0.0.1", "--port", str(port),
                               "--no-dashboard"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)]
    try:
        time.sleep(2)
        for i in range(2):
            procs.append(subprocess.Popen([str(dask_cli), "worker", address, "--nthreads", "1", "--nworkers", "1",
                                           "--no-dashboard", "--name", f"w{i}"],
                                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        c = distributed.Client(address, timeout="30s")
        c.wait_for_workers(2, timeout=60)
        c.close()
        p = _toy_protocol(tmp_path)
        out = tmp_path / "sw"
        rc = subprocess.run([*_cli_argv(), str(p), "--grid",
                             "training.seed=1,2", "--out", str(out), "--scheduler", address, "--no-progress"],
                            capture_output=True, text=True, timeout=300)
        assert rc.returncode == 0, rc.stdout + rc.stderr
        df = pd.read_csv(out / "results.csv")
        assert (df["status"] == "done").all() and set(df["worker"].str.split("/").str[1]) <= {"w0", "w1"}
        refs = {tmp_path / "ref" / "seed=1": ["training.seed=1"], tmp_path / "ref" / "seed=2": ["training.seed=2"]}
        _vpf_run_all(p, refs)
        for ref in refs:
            _same_model(out / ref.name, ref)
    finally:
        for proc in reversed(procs):
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()


@pytest.mark.slow
def test_ctrl_c_cancels_and_leaves_results_consistent(tmp_path):
    p = _toy_protocol(tmp_path, epochs=2000)
    out = tmp_path / "sw"
    cmd = [*_cli_argv(), str(p), "--grid", "training.seed=0,1,2",
           "--out", str(out), "--workers", "2", "--no-progress"]
    proc = subprocess.Popen(cmd, start_new_session=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    _wait_for(lambda: (out / "seed=0" / "checkpoint.npz").exists(), what="a first checkpoint")
    os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C in a terminal does
    text, _ = proc.communicate(timeout=120)
    assert proc.returncode == 130, text
    assert "interrupted" in text
    df = pd.read_csv(out / "results.csv")
    assert len(df) == 3 and set(df["status"]) <= {"cancelled", "done"}
    time.sleep(1)
    left = subprocess.run(["pgrep", "-f", f"sweep.point.*{out}"], capture_output=True, text=True).stdout.split()
    assert not left, f"point processes left running: {left}"


SPIKING = """\
kind = "spiking-train"
[network]
name = "rbm-toy"
[data]
dataset = "{data}"
n_train = 10
[spiking]
device = "{device}"
epochs = 1
eta = 0.01
seed = 0
"""


def _spiking_protocol(tmp_path, device) -> Path:
    _toy_protocol(tmp_path)  # writes toy.npy
    p = tmp_path / "spk.toml"
    p.write_text(SPIKING.format(data=(tmp_path / "toy.npy").as_posix(), device=device))
    return p


@pytest.mark.slow
def test_a_spiking_sweep_on_the_runtime_device(tmp_path, client):
    """Brian2 runtime points give the models of vpf run; their Cython modules are one shared cache."""
    p = _spiking_protocol(tmp_path, "runtime")
    out = tmp_path / "sw"
    df = sweep(p, ["spiking.eta=0.01,0.02,0.03"], client=client, out=out, progress=False)
    assert (df["status"] == "done").all(), df.to_string()
    refs = {tmp_path / "ref" / "eta=0.01": ["spiking.eta=0.01"], tmp_path / "ref" / "eta=0.03": ["spiking.eta=0.03"]}
    _vpf_run_all(p, refs)
    for ref in refs:
        _same_model(out / ref.name, ref)
    from vpf_spiking.sweep.worker import cache_root

    slots = sorted(cache_root().glob("sweep-slot-*"))
    assert slots and all((s / "cython").is_symlink() for s in slots)


@pytest.mark.slow
def test_a_standalone_sweep_compiles_once_per_worker(tmp_path):
    """cpp_standalone points: one project per worker (slot), compiled by its first point, re-run by the
    later ones; the models equal vpf run's.  About 2 minutes on 2 cores (two compilations)."""
    p = _spiking_protocol(tmp_path, "cpp_standalone")
    cache = tmp_path / "cache"
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0",
                                       silence_logs=40, env={"VPF_SPIKING_CACHE": str(cache)})
    try:
        with distributed.Client(cluster) as c:
            df = sweep(p, ["spiking.eta=0.01,0.02,0.03,0.04"], client=c, out=tmp_path / "sw", progress=False)
    finally:
        cluster.close()
    assert (df["status"] == "done").all(), df.to_string()
    slots = sorted(cache.glob("sweep-slot-*"))
    projects = [pj for s in slots for pj in (s / "cpp_standalone").iterdir()]
    assert len(slots) == 2 and len(projects) == 2 and len({pj.name for pj in projects}) == 1
    for _, walls in df.groupby("worker")["wall_s"]:
        if len(walls) > 1:  # the first point of a worker compiled; the later ones did not
            assert walls.iloc[1:].max() < walls.iloc[0], df.to_string()
    refs = {tmp_path / "ref" / "eta=0.04": ["spiking.eta=0.04"]}
    _vpf_run_all(p, refs)
    _same_model(tmp_path / "sw" / "eta=0.04", tmp_path / "ref" / "eta=0.04")


def test_the_package_api_is_callable_and_lazy():
    """``vpf_spiking.sweep(protocol, grid)`` is the sweep function; ``import vpf_spiking`` does not load it."""
    code = ("import sys, vpf_spiking; assert 'vpf_spiking.sweep' not in sys.modules; "
            "import vpf_spiking.sweep as s; from vpf_spiking.sweep import sweep; "
            "assert callable(vpf_spiking.sweep) and vpf_spiking.sweep is s and s.sweep is sweep")
    subprocess.run([sys.executable, "-c", code], check=True)
