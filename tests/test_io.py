"""vpf_spiking.io: atomic writes, tagged npz, tables, TOML, figures, OS-error messages, locks, deferred Ctrl-C."""

import errno
import json
import os
import signal
import socket
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from vpf_spiking import io
from vpf_spiking.errors import ConfigError, ModelError


def _only(folder):
    return sorted(p.name for p in folder.iterdir())


def test_atomic_text_and_bytes_replace_and_leave_no_temporary(tmp_path):
    f = tmp_path / "sub" / "a.txt"
    io.atomic_write_text(f, "one")
    io.atomic_write_text(f, "two")
    assert f.read_text() == "two"
    io.atomic_write_bytes(tmp_path / "b.bin", b"\x00\x01")
    assert (tmp_path / "b.bin").read_bytes() == b"\x00\x01"
    assert _only(tmp_path / "sub") == ["a.txt"]
    # the usual permissions (umask), not mkstemp's 0600
    assert (f.stat().st_mode & 0o777) == (0o666 & ~_umask())


def _umask():
    m = os.umask(0)
    os.umask(m)
    return m


def test_a_failing_block_keeps_the_old_file(tmp_path):
    f = tmp_path / "keep.txt"
    f.write_text("old")
    with pytest.raises(RuntimeError):
        with io.atomic_open(f) as fh:
            fh.write("half")
            raise RuntimeError("boom")
    assert f.read_text() == "old" and _only(tmp_path) == ["keep.txt"]


def test_an_os_error_names_the_target_not_the_temporary(tmp_path, monkeypatch):
    class Full:
        def __init__(self, fh):
            self.fh = fh

        def write(self, data):
            raise OSError(errno.ENOSPC, "No space left on device")

        def __getattr__(self, name):
            return getattr(self.fh, name)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.fh.close()

    real_open = open
    monkeypatch.setattr(io, "open", lambda *a, **k: Full(real_open(*a, **k)), raising=False)
    target = tmp_path / "m.npz"
    with pytest.raises(OSError) as excinfo:
        io.atomic_savez(target, {"a": np.zeros(3)})
    assert excinfo.value.errno == errno.ENOSPC and excinfo.value.filename == str(target)
    msg = io.describe_os_error(excinfo.value)
    assert msg.startswith(f"{target}: no space left on device") and "disk is full" in msg
    assert _only(tmp_path) == []


@pytest.mark.parametrize("code, fragment", [(errno.EROFS, "another output folder"),
                                            (errno.EACCES, "permissions"), (errno.ENOENT, "no such file")])
def test_describe_os_error(code, fragment):
    msg = io.describe_os_error(OSError(code, os.strerror(code), "/x/y"))
    assert msg.startswith("/x/y: ") and fragment in msg and "\n" not in msg
    assert io.describe_os_error(OSError(code, os.strerror(code))).startswith(os.strerror(code)[0].lower())


def test_check_writable(tmp_path, monkeypatch):
    assert io.check_writable(tmp_path / "new") == tmp_path / "new" and _only(tmp_path / "new") == []

    def full(*a, **k):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(io, "open", full, raising=False)
    with pytest.raises(OSError) as excinfo:
        io.check_writable(tmp_path)
    assert excinfo.value.filename == str(tmp_path)


def test_make_folder_under_a_file_is_named(tmp_path):
    (tmp_path / "f").write_text("")
    with pytest.raises(OSError) as excinfo:
        io.make_folder(tmp_path / "f" / "sub")
    assert "f" in io.describe_os_error(excinfo.value)


def test_tagged_npz_round_trip_and_refusals(tmp_path):
    path = io.atomic_savez(tmp_path / "x", {"format": np.array("fmt"), "a": np.arange(3)})
    assert path.name == "x.npz"
    data = io.read_tagged_npz(path, "fmt", "thing", ModelError)
    np.testing.assert_array_equal(data["a"], np.arange(3))
    with pytest.raises(ModelError, match="not a vpf-spiking thing"):
        io.read_tagged_npz(path, "other", "thing", ModelError)
    with pytest.raises(ModelError, match="no such thing file"):
        io.read_tagged_npz(tmp_path / "none.npz", "fmt", "thing", ModelError)
    with pytest.raises(ModelError, match="is a folder"):
        io.read_tagged_npz(tmp_path, "fmt", "thing", ModelError)
    (tmp_path / "junk.npz").write_bytes(b"junk")
    with pytest.raises(ModelError, match="not an .npz archive"):
        io.read_tagged_npz(tmp_path / "junk.npz", "fmt", "thing", ModelError)
    (tmp_path / "cut.npz").write_bytes(path.read_bytes()[:40])
    with pytest.raises(ModelError, match="not a readable thing file"):
        io.read_tagged_npz(tmp_path / "cut.npz", "fmt", "thing", ModelError)


def test_old_homes_still_import():
    from vpf_spiking.model import atomic_savez, read_tagged_npz
    from vpf_spiking.protocols.config import dump_toml

    assert atomic_savez is io.atomic_savez and read_tagged_npz is io.read_tagged_npz and dump_toml is io.dump_toml


def test_csv_table_json_and_toml(tmp_path):
    import tomllib

    df = pd.DataFrame({"a": [1, 2], "b": [0.5, 0.25]})
    io.write_csv(df, tmp_path / "t.csv")
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "t.csv"), df)
    csv, md = io.write_table(df, tmp_path / "tab")
    assert csv.name == "tab.csv" and md.name == "tab.md" and "| a |" in md.read_text().replace("|   a |", "| a |")
    csv, md = io.write_table(df, tmp_path / "plain", markdown=False)
    assert md is None and not (tmp_path / "plain.md").exists()
    io.write_json(tmp_path / "j.json", {"x": np.float32(1.5), "y": np.arange(2)})
    assert json.loads((tmp_path / "j.json").read_text()) == {"x": 1.5, "y": [0, 1]}
    doc = {"kind": "train", "x": [1, 2.5], "t": {"flag": True, "s": "q\"uote"}, "m": [{"a": 1}, {"a": 2}]}
    io.write_toml(tmp_path / "p.toml", doc, header="# hi\n")
    text = (tmp_path / "p.toml").read_text()
    assert text.startswith("# hi\n") and tomllib.loads(text) == doc


def test_figures_are_png_only(tmp_path):
    from matplotlib.figure import Figure

    fig = Figure()
    fig.subplots().plot([0, 1])
    assert io.save_figure(fig, tmp_path / "f.png").read_bytes()[:4] == b"\x89PNG"
    for bad in ("f.txt", "f", "f.pdf"):
        with pytest.raises(ConfigError, match="ending in .png"):
            io.save_figure(fig, tmp_path / bad)
    assert _only(tmp_path) == ["f.png"]


def test_read_text_refusals(tmp_path):
    (tmp_path / "bin.toml").write_bytes(b"\xff\xfe\x00junk")
    with pytest.raises(ConfigError, match="not UTF-8"):
        io.read_text(tmp_path / "bin.toml", "network")
    with pytest.raises(ConfigError, match="is a folder"):
        io.read_text(tmp_path, "network")


# ---------------------------------------------------------------------------- locks
def test_lock_refuses_a_live_holder_and_releases(tmp_path):
    path = tmp_path / ".lock"
    with io.FolderLock(path, note="first"):
        entry = json.loads(path.read_text())
        assert entry["pid"] == os.getpid() and entry["host"] == socket.gethostname() and entry["note"] == "first"
        with pytest.raises(ConfigError, match="in use by a running process"):
            io.FolderLock(path).acquire()
    assert not path.exists()


def test_lock_of_another_host_is_refused(tmp_path):
    path = tmp_path / ".lock"
    path.write_text(json.dumps({"pid": 1, "host": "elsewhere.invalid", "started": "then"}))
    with pytest.raises(ConfigError, match="on host elsewhere.invalid"):
        io.FolderLock(path).acquire()
    assert path.exists()  # not ours to remove


def test_stale_lock_is_taken_over_with_a_message(tmp_path, capsys):
    proc = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead = int(proc.stdout)
    path = tmp_path / ".lock"
    path.write_text(json.dumps({"pid": dead, "host": socket.gethostname(), "started": "earlier"}))
    lock = io.FolderLock(path).acquire()
    assert "taking over the stale lock" in capsys.readouterr().err
    assert json.loads(path.read_text())["pid"] == os.getpid()
    lock.release()
    assert not path.exists()


def test_a_reused_pid_counts_as_stale(tmp_path, capsys):
    # our own parent runs, but it is not the process that wrote the lock (another start time)
    path = tmp_path / ".lock"
    start = io._process_start(os.getppid())
    if start is None:
        pytest.skip("no /proc here to tell process start times")
    path.write_text(json.dumps({"pid": os.getppid(), "host": socket.gethostname(), "started": "long ago",
                                "process_start": start + 1}))
    io.FolderLock(path).acquire().release()
    assert "stale" in capsys.readouterr().err


# ---------------------------------------------------------------------------- Ctrl-C held back
def test_interrupts_deferred_holds_sigint_until_the_block_ends():
    # other tests (Dask, Brian2) may have installed their own SIGINT handler; this one tests Python's
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        _check_interrupts_deferred()
    finally:
        signal.signal(signal.SIGINT, previous)


def _check_interrupts_deferred():
    done = []
    with pytest.raises(KeyboardInterrupt):
        with io.interrupts_deferred():
            os.kill(os.getpid(), signal.SIGINT)
            done.append("still ran")
    assert done == ["still ran"]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    with io.interrupts_deferred():  # no signal: nothing raised
        pass
