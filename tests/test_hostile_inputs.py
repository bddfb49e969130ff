"""Hostile inputs and faults: every one ends in one line ``vpf: error: ...``, exit status 2, no
traceback, and leaves every file of an existing run folder as it was.

Each case builds its inputs in a fresh folder and runs ``vpf`` in-process
(:func:`vpf_spiking.cli.main`).  The run folder ``good`` (a finished two-epoch run) is the one
the cases try to clobber; a case may name more folders to protect.  Faults of the machine:
a read-only output folder (chmod; skipped as root, which ignores permissions; and a read-only
mount in a user namespace where ``unshare`` allows it), a full disk (simulated by writes that
fail with ENOSPC, as on a full disk; and a real full tmpfs in a user namespace where ``unshare``
allows it), running out of memory, a held lock and a closed output pipe.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
import socket
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from vpf_spiking import cli
from vpf_spiking import io as vio

from test_protocols import toy_data

LOCK = ".vpf.lock"
ROOT = os.geteuid() == 0 if hasattr(os, "geteuid") else False
ROOT_REASON = ("running as root, which ignores file permissions, so chmod cannot make a folder read-only "
               "(the read-only mount case covers it where unshare is allowed)")


@dataclass
class World:
    root: Path
    toy: Path          # 60 binary rows of 9 values (rbm-toy)
    toy_test: Path     # .npz with train and test arrays
    good: Path         # a finished run folder: vpf train rbm-toy --epochs 2
    model: Path        # good/model.npz


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("hostile")
    toy = toy_data(root / "toy.npy", n=60)
    x = np.load(toy)
    np.savez(root / "toy_test.npz", train=x, test=x[:10])
    good = root / "good"
    rc = cli.main(["train", "rbm-toy", "--data", str(toy), "--epochs", "2", "--batch-size", "20", "--out", str(good),
                   "--no-progress"])
    assert rc == 0
    return World(root, toy, root / "toy_test.npz", good, good / "model.npz")


def digest(folder: Path) -> dict:
    """Content hash and modification time of every file (the lock file aside)."""
    out = {}
    for f in sorted(folder.rglob("*")):
        if f.is_file() and f.name != LOCK:
            st = f.stat()
            out[f.relative_to(folder).as_posix()] = (hashlib.sha256(f.read_bytes()).hexdigest(), st.st_mtime_ns)
    return out


# ---------------------------------------------------------------------------- case builders
def train(w, *extra, data=None, net="rbm-toy", out=None):
    return ["train", str(net), "--data", str(data or w.toy), "--out", str(out or w.good), "--no-progress",
            "--batch-size", "20", *map(str, extra)]


def npy(array, name="x.npy"):
    def build(w, d, mp):
        np.save(d / name, array)
        return train(w, data=d / name)
    return build


def raw(content: bytes, name="x.npy"):
    def build(w, d, mp):
        (d / name).write_bytes(content)
        return train(w, data=d / name)
    return build


def npz(**arrays):
    def build(w, d, mp):
        np.savez(d / "x.npz", **arrays)
        return train(w, data=d / "x.npz")
    return build


def opts(*extra, data=None):
    return lambda w, d, mp: train(w, *extra, data=data)


def network(text):
    def build(w, d, mp):
        (d / "net.toml").write_text(text)
        return train(w, net=d / "net.toml")
    return build


NET = """name = "n"
[[layers]]
size = 9
[[layers]]
size = 4
"""

PROTOCOL = """kind = "train"
[network]
name = "rbm-toy"
[data]
dataset = "{toy}"
[training]
epochs = 1
batch_size = 20
progress = false
"""


def protocol(text, *extra, out=True):
    def build(w, d, mp):
        p = d / "p.toml"
        p.write_text(text.replace("{toy}", w.toy.as_posix()).replace("{model}", w.model.as_posix()))
        return ["run", str(p), *map(str, extra)] + (["--out", str(w.good)] if out else [])
    return build


def model_file(make, command="info"):
    def build(w, d, mp):
        path = make(w, d)
        if command == "info":
            return ["info", str(path)]
        return ["sample", str(path), "--out", str(w.good / "samples.png"), "--n", "4", "--steps", "2", "--no-progress"]
    return build


def _model_arrays(w):
    with np.load(w.model) as f:
        return {k: f[k] for k in f.files}


def edited_model(edit):
    def make(w, d):
        arrays = _model_arrays(w)
        edit(arrays)
        np.savez(d / "m.npz", **arrays)
        return d / "m.npz"
    return make


def _set(key, value):
    def edit(a):
        a[key] = value
    return edit


def _drop(key):
    def edit(a):
        del a[key]
    return edit


def _nan_w(a):
    a["W1"] = a["W1"].copy()
    a["W1"][0, 0] = np.nan


def _copy_good(w, d, name="copy"):
    dst = d / name
    shutil.copytree(w.good, dst)
    return dst


def resume_of_copy(edit_checkpoint=None, *extra, data=None):
    """--resume of a copy of ``good`` (protected too), after ``edit_checkpoint(arrays)``."""
    def build(w, d, mp):
        dst = _copy_good(w, d)
        if edit_checkpoint is not None:
            with np.load(dst / "checkpoint.npz") as f:
                arrays = {k: f[k] for k in f.files}
            edit_checkpoint(arrays)
            np.savez(dst / "checkpoint.npz", **arrays)
        return train(w, "--resume", *extra, data=data, out=dst), [dst]
    return build


def _inf_moment(a):
    key = next(k for k in a if k.startswith("optim.V."))
    a[key] = a[key].copy()
    a[key].flat[0] = np.inf


def _exploded_history(a):
    meta = json.loads(str(a["meta"]))
    meta["history"][-1]["objective"] = 1e40
    a["meta"] = np.array(json.dumps(meta))


def other_data(w, d, mp):
    x = np.load(w.toy)
    np.save(d / "other.npy", 1 - x)
    dst = _copy_good(w, d)
    return train(w, "--resume", "--epochs", 3, data=d / "other.npy", out=dst), [dst]


def other_network(w, d, mp):
    (d / "net.toml").write_text(NET.replace("size = 4", "size = 5"))
    dst = _copy_good(w, d)
    return train(w, "--resume", "--epochs", 3, net=d / "net.toml", out=dst), [dst]


def env_data_dir(w, d, mp):
    (d / "file").write_text("")
    mp.setenv("VPF_DATA_DIR", str(d / "file"))
    return train(w, data="mnist")


def demo_without_data(w, d, mp):
    empty = d / "empty"
    empty.mkdir()
    mp.setenv("VPF_DATA_DIR", str(empty))
    mp.setenv("XDG_CACHE_HOME", str(d / "cache"))
    mp.setenv("VPF_DATA_MIRRORS", (d / "no-mirror").as_uri())
    mp.setattr("vpf_spiking.data.SYSTEM_DIRS", ())
    mp.chdir(d)
    return ["demo", "--epochs", "1", "--n-train", "10", "--out", str(w.good)]


def out_is_file(w, d, mp):
    (d / "f").write_text("x")
    return train(w, out=d / "f")


def out_under_file(w, d, mp):
    (d / "f").write_text("x")
    return train(w, out=d / "f" / "run")


def read_only(w, d, mp):
    if ROOT:
        pytest.skip(ROOT_REASON)
    (d / "ro").mkdir()
    (d / "ro").chmod(0o555)
    return train(w, out=d / "ro" / "run")


def read_only_existing_run(w, d, mp):
    if ROOT:
        pytest.skip(ROOT_REASON)
    dst = _copy_good(w, d)
    for f in [dst, *dst.iterdir()]:
        f.chmod(0o555 if f.is_dir() else 0o444)
    return train(w, "--resume", "--epochs", 3, out=dst), [dst]


def read_only_sample(w, d, mp):
    if ROOT:
        pytest.skip(ROOT_REASON)
    (d / "ro").mkdir()
    (d / "ro").chmod(0o555)
    return ["sample", str(w.model), "--out", str(d / "ro" / "s.png"), "--n", "4", "--steps", "2", "--no-progress"]


class _FullDisk:
    """A file whose writes fail as on a full disk."""

    def __init__(self, fh):
        self.fh = fh

    def write(self, data):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    def __getattr__(self, name):
        return getattr(self.fh, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.fh.close()


def full_disk(resume):
    def build(w, d, mp):
        real_open = open
        mp.setattr(vio, "open", lambda *a, **k: _FullDisk(real_open(*a, **k)), raising=False)
        if resume:
            dst = _copy_good(w, d)
            return train(w, "--resume", "--epochs", 3, out=dst), [dst]
        return train(w, out=d / "new")
    return build


def full_disk_sample(w, d, mp):
    real_open = open
    mp.setattr(vio, "open", lambda *a, **k: _FullDisk(real_open(*a, **k)), raising=False)
    return ["sample", str(w.model), "--out", str(d / "s.png"), "--n", "4", "--steps", "2", "--no-progress"]


def out_of_memory(w, d, mp):
    def boom(*a, **k):
        raise MemoryError("Unable to allocate 1.00 TiB for an array with shape (1000000, 250000)")
    mp.setattr("vpf_spiking.trainers.base.probe_metrics", boom)
    return train(w, out=d / "new")


def locked(host=None):
    def build(w, d, mp):
        dst = _copy_good(w, d)
        (dst / LOCK).write_text(json.dumps({"pid": os.getpid(), "host": host or socket.gethostname(),
                                            "started": "now"}))
        return train(w, "--resume", "--epochs", 3, out=dst), [dst]
    return build


def diverging(w, d, mp):
    return train(w, "--lr", "1e6", "--optimizer", "sgd", "--epochs", "3", out=d / "new")


def sample_cmd(*extra, model=None):
    return lambda w, d, mp: ["sample", str(model or w.model), "--n", "4", "--steps", "2", "--no-progress",
                             *[str(e).replace("{d}", str(d)) for e in extra]]


def npy_under_file(w, d, mp):
    (d / "f").write_text("x")
    return ["sample", str(w.model), "--out", str(d / "s.png"), "--npy", str(d / "f" / "x.npy"), "--n", "4",
            "--steps", "2", "--no-progress"]


def evaluate_cmd(*extra):
    return lambda w, d, mp: ["evaluate", str(w.model), "--data", str(w.toy_test), "--reconstruction",
                             "--steps", "1", "--seeds", "0", *map(str, extra)]


rng = np.random.default_rng(0)
BIN = (rng.random((20, 9)) < 0.5).astype(np.float32)
GREY = rng.random((20, 9)).astype(np.float32)

CASES = [
    # -- data files
    ("data-missing", lambda w, d, mp: train(w, data=d / "none.npy"), "no such file"),
    ("data-garbage", raw(b"this is not numpy"), "not a .npy/.npz file"),
    ("data-pickle", raw(b"\x80\x04K\x01."), "pickle"),
    ("data-text", raw(b"0,1\n1,0\n"), "not a .npy/.npz file"),
    ("data-truncated-npz", raw(b"PK\x03\x04 cut", "x.npz"), "not a readable"),
    ("data-1d", npy(np.zeros(9, np.float32)), "2-D matrix"),
    ("data-3d", npy(np.zeros((2, 3, 3), np.float32)), "reshape"),
    ("data-empty", npy(np.zeros((0, 9), np.float32)), "empty matrix"),
    ("data-nan", npy(np.where(BIN > 0, np.nan, 0).astype(np.float32)), "NaN"),
    ("data-inf", npy(np.where(BIN > 0, np.inf, 0).astype(np.float32)), "infinite"),
    ("data-greyscale", npy(GREY), "--binarize"),
    ("data-greyscale-out-of-range", npy(GREY * 7), "not binary"),
    ("data-255-with-binarize", lambda w, d, mp: (np.save(d / "x.npy", (BIN * 255).astype(np.uint8)),
                                                 train(w, "--binarize", data=d / "x.npy"))[1], "outside [0, 1]"),
    ("data-wrong-width", npy(np.zeros((20, 5), np.float32)), "5"),
    ("data-complex", npy(BIN.astype(np.complex64)), "not numeric"),
    ("data-strings", npy(np.array([["a"] * 9])), "not numeric"),
    ("data-object", lambda w, d, mp: (np.save(d / "x.npy", np.full((2, 9), None, dtype=object), allow_pickle=True),
                                      train(w, data=d / "x.npy"))[1], "object array"),
    ("data-npz-two-arrays", npz(a=BIN, b=BIN), "holds 2 arrays"),
    ("data-npz-test-wrong-width", npz(train=BIN, test=BIN[:, :8]), "'test' array has 8 columns"),
    ("data-npz-test-greyscale", npz(train=BIN, test=GREY), "not binary"),
    ("data-npz-only-test", npz(test=BIN), "no 'train' array"),
    ("data-folder", lambda w, d, mp: train(w, data=d), "is a folder"),
    ("data-unknown-name", opts(data="mnistt"), "unknown data set"),
    ("data-dir-missing", lambda w, d, mp: train(w, "--data-dir", d / "nowhere", data="mnist"), "does not exist"),
    ("data-env-not-a-folder", env_data_dir, "VPF_DATA_DIR"),
    ("demo-without-data", demo_without_data, "mnist"),
    # -- model files
    ("model-missing", model_file(lambda w, d: d / "none.npz"), "no such model file"),
    ("model-garbage", model_file(lambda w, d: (d / "m.npz").write_bytes(b"junk") and d / "m.npz"), "not an .npz"),
    ("model-is-npy", model_file(lambda w, d: (np.save(d / "m.npy", BIN), d / "m.npy")[1]), ".npy array"),
    ("model-truncated", model_file(lambda w, d: (d / "m.npz").write_bytes(w.model.read_bytes()[:200]) and d / "m.npz"),
     "not a readable"),
    ("model-folder", model_file(lambda w, d: d), "is a folder"),
    ("model-no-format", model_file(edited_model(_drop("format"))), "format"),
    ("model-wrong-format", model_file(edited_model(_set("format", np.array("something-else")))), "format"),
    ("model-checkpoint-as-model", model_file(lambda w, d: w.good / "checkpoint.npz"), "not a vpf-spiking model"),
    ("model-damaged-meta", model_file(edited_model(_set("meta", np.array("{not json")))), "damaged 'meta'"),
    ("model-nan-weight", model_file(edited_model(_nan_w)), "non-finite"),
    ("model-missing-array", model_file(edited_model(_drop("b1"))), "missing array"),
    ("model-wrong-shape", model_file(edited_model(_set("W1", np.zeros((9, 3), np.float32)))), "shape"),
    ("model-pickled", model_file(edited_model(_set("W1", np.array([None, 1], dtype=object)))), "not a readable"),
    ("sample-missing-model", model_file(lambda w, d: d / "none.npz", command="sample"), "no such model file"),
    ("evaluate-missing-model", lambda w, d, mp: ["evaluate", str(d / "none.npz"), "--data", str(w.toy_test),
                                                 "--reconstruction"], "no such model file"),
    # -- network TOML
    ("net-unknown-name", lambda w, d, mp: train(w, net="no-such-net"), "no such network file"),
    ("net-invalid-toml", network("[[layers]\nsize = 9"), "invalid TOML"),
    ("net-not-utf8", lambda w, d, mp: ((d / "net.toml").write_bytes(b"\xff\xfe\x00\x01junk"),
                                       train(w, net=d / "net.toml"))[1], "UTF-8"),
    ("net-no-layers", network('name = "n"\n'), "[[layers]]"),
    ("net-size-zero", network(NET.replace("size = 4", "size = 0")), "positive integer"),
    ("net-size-negative", network(NET.replace("size = 4", "size = -4")), "positive integer"),
    ("net-size-string", network(NET.replace("size = 4", 'size = "4"')), "positive integer"),
    ("net-unknown-key", network(NET + "colour = 1\n"), "unknown key"),
    ("net-intra-not-bool", network(NET.replace("size = 4", "size = 4\nintra = 1")), "intra"),
    ("net-single-layer", network('[[layers]]\nsize = 9\n'), "intra"),
    ("net-negative-weight-std", network(NET + "[init]\nweight_std = -0.5\n"), "weight_std"),
    ("net-zero-temperature", network(NET + "[neuron]\ntemperature = 0\n"), "temperature"),
    ("net-negative-seed", network(NET + "[init]\nseed = -1\n"), "seed"),
    ("net-huge-hidden-layer", network(NET.replace("size = 4", "size = 10000000000")), "of memory"),
    ("net-width-mismatch", network(NET.replace("size = 9", "size = 10")), "visible units"),
    # -- protocol TOML
    ("proto-missing", lambda w, d, mp: ["run", str(d / "none.toml"), "--out", str(w.good)], "no such protocol"),
    ("proto-folder", lambda w, d, mp: ["run", str(d), "--out", str(w.good)], "is a folder"),
    ("proto-invalid-toml", protocol("kind = [\n"), "invalid TOML"),
    ("proto-not-utf8", lambda w, d, mp: ((d / "p.toml").write_bytes(b"kind = \"\xff\""),
                                         ["run", str(d / "p.toml"), "--out", str(w.good)])[1], "UTF-8"),
    ("proto-no-kind", protocol("name = 'x'\n"), "missing top-level key 'kind'"),
    ("proto-unknown-kind", protocol("kind = 'nonsense'\n"), "unknown kind"),
    ("proto-kind-not-string", protocol("kind = 3\n"), "must be a string"),
    ("proto-unknown-top-key", protocol("extra = 1\n" + PROTOCOL), "the top level"),
    ("proto-unknown-training-key", protocol(PROTOCOL.replace("epochs = 1", "epoch = 1")), "'epoch'"),
    ("proto-epochs-zero", protocol(PROTOCOL.replace("epochs = 1", "epochs = 0")), "epochs"),
    ("proto-epochs-string", protocol(PROTOCOL.replace("epochs = 1", 'epochs = "1"')), "epochs"),
    ("proto-no-dataset", protocol(PROTOCOL.replace('dataset = "{toy}"', "")), "dataset"),
    ("proto-network-both", protocol(PROTOCOL.replace('name = "rbm-toy"', 'name = "rbm-toy"\npath = "x.toml"')),
     "exactly one"),
    ("proto-network-neither", protocol(PROTOCOL.replace('name = "rbm-toy"', "")), "exactly one"),
    ("proto-binarize-not-bool", protocol(PROTOCOL.replace('[data]', '[data]\nbinarize = "yes"')), "binarize"),
    ("proto-bad-set", protocol(PROTOCOL, "--set", "training.epochs"), "KEY=VALUE"),
    ("proto-set-into-scalar", protocol(PROTOCOL, "--set", "kind.x=1"), "not a table"),
    ("proto-bad-name", protocol(PROTOCOL.replace('kind = "train"', 'kind = "train"\nname = "../up"'), out=False),
     "plain file name"),
    ("proto-cannot-resume", protocol('kind = "ais"\n[model]\npath = "{model}"\n[data]\ndataset = "{toy}"\n',
                                     "--resume"), "cannot resume"),
    ("proto-reconstruction-missing-model", protocol('kind = "reconstruction"\n[model]\npath = "none.npz"\n'
                                                    '[data]\ndataset = "{toy}"\n'), "no such model file"),
    ("proto-into-existing-run", protocol(PROTOCOL), "holds the results of an earlier run"),
    # -- command-line options
    ("opt-into-existing-run", opts(), "--overwrite"),
    ("opt-epochs-zero", opts("--epochs", 0), "--epochs"),
    ("opt-lr-negative", opts("--lr", -1), "--lr"),
    ("opt-lr-nan", opts("--lr", "nan"), "--lr"),
    ("opt-batch-size-zero", opts("--batch-size", 0), "--batch-size"),
    ("opt-method", opts("--method", "sgd"), "--method"),
    ("opt-optimizer", opts("--optimizer", "rmsprop"), "--optimizer"),
    ("opt-k-with-vpf", opts("--k", 2), "--k"),
    ("opt-validation-too-large", opts("--validation", 1000), "validation"),
    ("opt-n-train-zero", opts("--n-train", 0), "n_train"),
    ("opt-seed-negative", opts("--seed", -1), "--seed"),
    ("opt-weight-decay-negative", opts("--weight-decay", -1), "--weight-decay"),
    ("opt-resume-and-overwrite", opts("--resume", "--overwrite"), "choose one"),
    ("opt-resume-fewer-epochs", resume_of_copy(None, "--epochs", 1), "holds 2 epochs"),
    ("opt-resume-other-settings", resume_of_copy(None, "--epochs", 3, "--lr", 0.5), "different settings"),
    ("opt-resume-other-data", other_data, "other training data"),
    ("opt-resume-other-network", other_network, "sizes"),
    ("opt-resume-nonfinite-checkpoint", resume_of_copy(_inf_moment, "--epochs", 3), "non-finite"),
    ("opt-resume-exploded-checkpoint", resume_of_copy(_exploded_history, "--epochs", 3), "diverged"),
    ("opt-sample-n-zero", sample_cmd("--n", 0, "--out", "{d}/s.png"), "--n"),
    ("opt-sample-prior", sample_cmd("--prior", "x", "--out", "{d}/s.png"), "--prior"),
    ("opt-sample-prior-p-without-data", sample_cmd("--prior", "p", "--out", "{d}/s.png"), "--data"),
    ("opt-evaluate-n-test-zero", evaluate_cmd("--n-test", 0), "--n-test"),
    # -- output paths
    ("out-is-a-file", out_is_file, "not a folder"),
    ("out-under-a-file", out_under_file, "f"),
    ("sample-out-not-png", sample_cmd("--out", "{d}/s.txt"), ".png"),
    ("sample-out-is-folder", sample_cmd("--out", "{d}"), ".png"),
    ("sample-npy-under-a-file", npy_under_file, "/f"),
    # -- faults
    ("fault-read-only-out", read_only, "ro"),
    ("fault-read-only-run-folder", read_only_existing_run, "copy"),
    ("fault-read-only-sample", read_only_sample, "s.png"),
    ("fault-full-disk-new-run", full_disk(resume=False), "no space left on device"),
    ("fault-full-disk-resume", full_disk(resume=True), "no space left on device"),
    ("fault-full-disk-sample", full_disk_sample, "no space left on device"),
    ("fault-out-of-memory", out_of_memory, "out of memory"),
    ("fault-lock-held", locked(), "in use by a running process"),
    ("fault-lock-other-host", locked("elsewhere.invalid"), "elsewhere.invalid"),
    ("fault-diverging", diverging, "diverged"),
]


def _writable_again(folder):
    for f in [folder, *folder.rglob("*")]:
        if not f.is_symlink():
            try:
                f.chmod(0o755 if f.is_dir() else 0o644)
            except OSError:
                pass


@pytest.mark.parametrize("build, needle", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_hostile_input_is_one_line_and_changes_nothing(world, tmp_path, monkeypatch, capsys, build, needle):
    case = tmp_path / "case"
    case.mkdir()
    try:
        built = build(world, case, monkeypatch)
        argv, protected = (built if isinstance(built, tuple) else (built, []))
        protected = [world.good, *protected]
        before = [digest(f) for f in protected]
        capsys.readouterr()
        rc = cli.main(argv)
        out, err = capsys.readouterr()
        assert rc == 2, (rc, out, err)
        assert "Traceback" not in err and "Traceback" not in out
        lines = err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("vpf: error: "), f"expected one error line, got {err!r}"
        if needle:
            assert needle in lines[0], f"{needle!r} not in {lines[0]!r}"
        assert [digest(f) for f in protected] == before, "a file of an existing run folder changed"
        assert not (world.good / LOCK).exists()
        new = case / "new"
        assert not new.exists(), f"a failed run left {sorted(p.name for p in new.iterdir())}"
    finally:
        monkeypatch.undo()
        _writable_again(tmp_path)


def test_there_are_at_least_60_cases():
    assert len(CASES) >= 60 and len({c[0] for c in CASES}) == len(CASES)


def test_a_closed_pipe_ends_quietly(world, monkeypatch, capsys):
    class ClosedPipe:
        def write(self, s):
            raise BrokenPipeError(errno.EPIPE, "Broken pipe")

        def flush(self):
            raise BrokenPipeError(errno.EPIPE, "Broken pipe")

    monkeypatch.setattr(sys, "stdout", ClosedPipe())
    rc = cli.main(["info", "--json", str(world.model)])
    monkeypatch.undo()
    assert rc == 141 and capsys.readouterr().err == ""


def test_a_closed_pipe_in_a_real_pipeline(world):
    # vpf info --json MODEL | (exit at once): no traceback, no error line, the SIGPIPE status
    code = ("import os, sys; r, w = os.pipe(); os.close(r); os.dup2(w, 1); "
            "from vpf_spiking.cli import main; sys.exit(main(['info', '--json', sys.argv[1]]))")
    proc = subprocess.run([sys.executable, "-c", code, str(world.model)], capture_output=True, text=True)
    assert proc.returncode == 141 and proc.stderr == "", proc.stderr


def test_a_stale_lock_is_taken_over(world, tmp_path, capsys):
    dst = tmp_path / "copy"
    shutil.copytree(world.good, dst)
    done = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    (dst / LOCK).write_text(json.dumps({"pid": int(done.stdout), "host": socket.gethostname(), "started": "then"}))
    assert cli.main(train(world, "--resume", "--epochs", 3, out=dst)) == 0
    err = capsys.readouterr().err
    assert "taking over the stale lock" in err and not (dst / LOCK).exists()


def test_overwrite_replaces_an_earlier_run(world, tmp_path, capsys):
    dst = tmp_path / "copy"
    shutil.copytree(world.good, dst)
    (dst / "notes.txt").write_text("mine")
    assert cli.main(train(world, "--epochs", 1, "--overwrite", out=dst)) == 0
    assert (dst / "notes.txt").read_text() == "mine"  # only the run's own files are replaced
    assert (dst / "command.txt").read_text().count("vpf train") == 1
    assert len((dst / "metrics.csv").read_text().splitlines()) == 2


# ---------------------------------------------------------------------------- real file systems
def _unshare_ok():
    if shutil.which("unshare") is None:
        return False
    try:
        return subprocess.run(["unshare", "-rm", "sh", "-c", "mount -t tmpfs -o size=64k tmpfs /mnt 2>/dev/null "
                               "|| mount -t tmpfs -o size=64k tmpfs /tmp"], capture_output=True,
                              timeout=10).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


UNSHARE = _unshare_ok()
UNSHARE_REASON = "unshare -rm (a user namespace with its own mounts) is not allowed here"


def _in_namespace(script, tmp_path):
    env = dict(os.environ, PY=sys.executable)
    proc = subprocess.run(["unshare", "-rm", "sh", "-ec", script], capture_output=True, text=True, env=env,
                          cwd=tmp_path, timeout=120)
    return proc


@pytest.mark.skipif(not UNSHARE, reason=UNSHARE_REASON)
@pytest.mark.parametrize("mount, needle", [("ro,size=256k", "read-only file system"),
                                           ("size=256k", "no space left on device")])
def test_real_read_only_and_full_file_systems(world, tmp_path, mount, needle):
    # a copy of the good run inside a small tmpfs (read-only, or filled up), then --resume into it
    (tmp_path / "mnt").mkdir()
    fill = "" if mount.startswith("ro") else "dd if=/dev/zero of=mnt/fill bs=1k count=400 2>/dev/null || true; "
    script = (f"mount -t tmpfs -o size=256k tmpfs mnt; cp -r {world.good} mnt/run; "
              + ("mount -o remount,ro mnt; " if mount.startswith("ro") else fill)
              + "sha256sum mnt/run/* > before.txt; "
              + f"$PY -m vpf_spiking.cli train rbm-toy --data {world.toy} --out mnt/run --resume --epochs 3 "
              "--batch-size 20 --no-progress 2> err.txt && echo rc=0 > rc.txt || echo rc=$? > rc.txt; "
              "sha256sum mnt/run/* > after.txt")
    proc = _in_namespace(script, tmp_path)
    assert proc.returncode == 0, proc.stderr
    err = (tmp_path / "err.txt").read_text()
    assert (tmp_path / "rc.txt").read_text().strip() == "rc=2", err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("vpf: error: ") and needle in lines[0], err
    assert (tmp_path / "before.txt").read_text() == (tmp_path / "after.txt").read_text()


# ---------------------------------------------------------------------------- divergence
@pytest.mark.parametrize("poison", ["moment", "weight", "objective"])
def test_divergence_keeps_the_last_good_checkpoint(world, tmp_path, poison):
    from vpf_spiking.checkpoint import load_checkpoint, non_finite
    from vpf_spiking.errors import TrainingDiverged
    from vpf_spiking.model import BoltzmannMachine
    from vpf_spiking.trainers import make_trainer

    x = np.load(world.toy)
    ck = tmp_path / "ck.npz"
    trainer = make_trainer("vpf", epochs=5, batch_size=20, checkpoint=ck, progress=False)
    run_epoch = trainer._run_epoch

    def sick_epoch(model, x, rng, bar, epoch):
        k = run_epoch(model, x, rng, bar, epoch)
        if epoch == 3:
            if poison == "moment":
                trainer.optimizer_.slots["V"]["W1"][0, 0] = np.inf  # Adam's second moment overflowed
            elif poison == "weight":
                model.W[1][0, 0] = np.nan
            else:
                return k * 1e7  # K blew up: far above 10^6 times the first epoch's
        return k

    trainer._run_epoch = sick_epoch
    with pytest.raises(TrainingDiverged, match="diverged in epoch 3") as excinfo:
        trainer.fit(BoltzmannMachine([9, 4], seed=0), x)
    assert "epoch 2" in str(excinfo.value) and str(ck) in str(excinfo.value)
    kept = load_checkpoint(ck)  # loads: its whole state is finite
    assert kept.epoch == 2 and not any(non_finite(a) for a in kept.optimizer.values())
