"""What runs on a Dask worker: the start-up check and one point of a sweep.

:func:`run_point` runs a point as a child process (``python -m vpf_spiking.sweep.point``, the
same calls as ``vpf run``) in the sweep's working folder, with

* the BLAS pools of the child capped (``OMP_NUM_THREADS``, ``OPENBLAS_NUM_THREADS``,
  ``MKL_NUM_THREADS``, ``VPF_BLAS_THREADS``, ``VPF_THREADS``) so that the workers of one machine
  together use its cores once;
* ``VPF_SPIKING_CACHE`` pointing at a cache folder owned by this worker thread
  (:func:`slot_dir`): a C++/CUDA standalone project (one per network structure) is compiled by
  the first point of a worker that needs it and re-run by its later points, and no two workers
  ever build or run in the same project folder at once; the runtime device's Cython modules
  live in the machine's shared cache (``<cache>/cython``, locked per module by Brian2), so they
  are compiled once per machine;
* its output in ``sweep.log`` and its state in ``sweep-point.json`` (:mod:`.results`).

A point that fails with an error (exit status 1 or 2) is *recorded* as failed, with its
one-line error; a point whose process is killed (a signal, e.g. the out-of-memory killer)
raises :class:`PointCrashed`, so that Dask's ``retries`` run it again, resuming from the
point's checkpoint.  A worker that dies itself is replaced by Dask (its nanny) and the point
rescheduled; the child dies with it (``PR_SET_PDEATHSIG``).
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

from .results import LOG_FILE, is_complete, read_state, summary_figures, write_state

__all__ = ["run_point", "PointCrashed", "slot_dir", "PROBE_SOURCE", "make_probe", "blas_env"]

ERROR_PREFIX = "vpf: error: "
BLAS_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "VPF_BLAS_THREADS")


class PointCrashed(RuntimeError):
    """The point's process was killed (not an error of the run): Dask retries the point."""


def blas_env(n: int) -> dict:
    """Environment capping every BLAS pool (and the package's elementwise workers) at ``n``."""
    n = str(max(1, int(n)))
    env = {v: n for v in BLAS_VARS}
    env["VPF_THREADS"] = n
    return env


# ---------------------------------------------------------------------------- Brian2 cache slots
_slots: dict = {}
_slots_lock = threading.Lock()


def cache_root() -> Path:
    """``$VPF_SPIKING_CACHE`` or ``~/.cache/vpf-spiking/brian2`` (the spiking engine's cache)."""
    root = os.environ.get("VPF_SPIKING_CACHE")
    return Path(root) if root else Path.home() / ".cache" / "vpf-spiking" / "brian2"


def slot_dir() -> Path:
    """This worker thread's own cache folder, ``<cache root>/sweep-slot-<k>``.

    ``k`` is the lowest slot whose lock file (``sweep-slots/slot-<k>.lock``) no live process
    holds; the lock is held for the life of the worker, so a worker keeps its slot (and what it
    compiled) from point to point, and a worker started later, even by another sweep, finds
    the compiled code of a slot freed by a finished one.
    """
    ident = threading.get_ident()
    with _slots_lock:
        if ident not in _slots:
            _slots[ident] = _acquire_slot()
        return _slots[ident][0]


def _acquire_slot():
    root = cache_root()
    locks = root / "sweep-slots"
    try:
        import fcntl

        locks.mkdir(parents=True, exist_ok=True)
    except (ImportError, OSError):  # no flock (Windows) or no writable cache: one folder per process
        return root / f"sweep-pid-{os.getpid()}-{threading.get_ident()}", None
    for k in range(4096):
        fh = open(locks / f"slot-{k}.lock", "a+")
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            fh.close()
            continue
        fh.seek(0)
        fh.truncate()
        fh.write(f"{socket.gethostname()} pid {os.getpid()}\n")
        fh.flush()
        slot = root / f"sweep-slot-{k}"
        _share_cython(root, slot)
        return slot, fh
    return root / f"sweep-pid-{os.getpid()}-{threading.get_ident()}", None


def _share_cython(root: Path, slot: Path) -> None:
    """Point ``slot/cython`` at ``root/cython``: Brian2 locks each Cython module while it builds it
    (``multiprocess_safe``), so the runtime device's modules are compiled once per machine and
    shared; only the standalone projects (which runs also write their results into) stay per slot."""
    link = slot / "cython"
    try:
        slot.mkdir(parents=True, exist_ok=True)
        (root / "cython").mkdir(parents=True, exist_ok=True)
        if not link.exists() and not link.is_symlink():
            link.symlink_to(root / "cython", target_is_directory=True)
    except OSError:
        pass  # no symlinks here: the slot compiles its own Cython modules


# ---------------------------------------------------------------------------- one point
def _worker_label() -> str:
    try:
        from distributed import get_worker

        w = get_worker()
        return f"{socket.gethostname()}/{w.name}"
    except Exception:
        return f"{socket.gethostname()}/{os.getpid()}"


def _cancel_checker(name):
    """A function telling whether the sweep was cancelled (a Dask Event set by the client)."""
    if not name:
        return lambda: False
    state = {"event": None, "next": 0.0, "set": False}

    def cancelled():
        now = time.monotonic()
        if state["set"] or now < state["next"]:
            return state["set"]
        state["next"] = now + 1.0
        try:
            if state["event"] is None:
                from distributed import Event

                state["event"] = Event(name)
            state["set"] = bool(state["event"].is_set())
        except Exception:
            pass
        return state["set"]

    return cancelled


def _stop(proc: subprocess.Popen) -> None:
    """SIGTERM the child's process group, then SIGKILL after 5 s."""
    for sig, wait in ((signal.SIGTERM, 5.0), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(proc.pid, sig)
        except (ProcessLookupError, PermissionError, AttributeError):
            try:
                proc.send_signal(sig)
            except ProcessLookupError:
                return
        try:
            proc.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue


def _last_error(log: Path, offset: int) -> str:
    try:
        with open(log, "rb") as fh:
            fh.seek(offset)
            text = fh.read().decode("utf-8", "replace")
    except OSError:
        return ""
    lines = [ln.strip() for ln in text.replace("\r", "\n").splitlines() if ln.strip()]
    for ln in reversed(lines):
        if ln.startswith(ERROR_PREFIX):
            return ln[len(ERROR_PREFIX):]
    return lines[-1] if lines else ""


def _describe(rc: int) -> str:
    if rc < 0:
        try:
            return f"was killed by {signal.Signals(-rc).name}"
        except ValueError:
            return f"was killed by signal {-rc}"
    return f"exited with status {rc}"


def run_point(spec: dict) -> dict:
    """Run one point (see the module docstring); return its row for ``results.csv``.

    ``spec`` keys: ``point``, ``values``, ``protocol``, ``cwd``, ``out`` (the point's folder),
    ``overrides``, ``hash``, ``kind``, ``resume_ok``, ``command``, ``blas_threads`` (int, or a
    dict host -> int), ``cancel`` (name of a Dask Event, or None).
    """
    folder = Path(spec["out"])
    row = {"point": spec["point"], "values": spec["values"], "reused": False}
    done = is_complete(folder, spec["hash"])
    if done is not None:  # finished by an earlier attempt whose result never reached the client
        return {**row, "status": "done", "reused": True, "wall_s": done.get("wall_s"),
                "attempts": done.get("attempt"), "worker": done.get("worker"), "error": "",
                "summary": done.get("summary", {})}
    folder.mkdir(parents=True, exist_ok=True)
    prev = read_state(folder)
    same = prev is not None and prev.get("hash") == spec["hash"]
    resume = bool(spec.get("resume_ok")) and same
    attempt = int(prev.get("attempt", 0)) + 1 if same else 1
    worker = _worker_label()
    state = {"status": "running", "hash": spec["hash"], "point": spec["point"], "values": spec["values"],
             "attempt": attempt, "worker": worker, "resumed": resume,
             "started": time.strftime("%Y-%m-%d %H:%M:%S")}
    write_state(folder, state)

    blas = spec.get("blas_threads") or 1
    if isinstance(blas, dict):
        blas = blas.get(socket.gethostname(), 1)
    env = dict(os.environ)
    env.update(blas_env(blas))
    env["VPF_SPIKING_CACHE"] = str(slot_dir())
    env["TQDM_DISABLE"] = "1"
    env["PYTHONUNBUFFERED"] = "1"
    env["VPF_SWEEP_PARENT_PID"] = str(os.getpid())
    child = {"protocol": str(spec["protocol"]), "out": str(folder), "overrides": list(spec["overrides"]),
             "resume": resume, "command": spec["command"]}
    cmd = [sys.executable, "-m", "vpf_spiking.sweep.point", json.dumps(child)]

    log = folder / LOG_FILE
    cancelled = _cancel_checker(spec.get("cancel"))
    t0 = time.perf_counter()
    with open(log, "a", encoding="utf-8") as fh:
        fh.write(f"==== {time.strftime('%Y-%m-%d %H:%M:%S')} attempt {attempt} on {worker}"
                 f"{' (resuming)' if resume else ''}: {spec['command']}\n")
        fh.flush()
        offset = fh.tell()
        proc = subprocess.Popen(cmd, cwd=spec["cwd"], env=env, stdout=fh, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)
        rc, was_cancelled = None, False
        try:
            while rc is None:
                try:
                    rc = proc.wait(timeout=0.25)
                except subprocess.TimeoutExpired:
                    if cancelled():
                        was_cancelled = True
                        _stop(proc)
                        rc = proc.returncode
        except BaseException:
            _stop(proc)
            raise
    wall = round(time.perf_counter() - t0, 3)
    state.update(wall_s=wall, finished=time.strftime("%Y-%m-%d %H:%M:%S"), returncode=rc)
    row.update(wall_s=wall, attempts=attempt, worker=worker, summary={})

    if was_cancelled:
        state.update(status="cancelled", error="cancelled")
        write_state(folder, state)
        return {**row, "status": "cancelled", "error": "cancelled"}
    if rc == 0:
        summary = summary_figures(folder, spec.get("kind", ""))
        state.update(status="done", error="", summary=summary)
        write_state(folder, state)  # the completion marker, written last
        return {**row, "status": "done", "error": "", "summary": summary}
    error = _last_error(log, offset) or _describe(rc)
    if rc in (1, 2, 130):
        state.update(status="failed", error=error)
        write_state(folder, state)
        return {**row, "status": "failed", "error": error}
    message = f"the point's process {_describe(rc)} (attempt {attempt}); last output: {error}"
    state.update(status="crashed", error=message)
    write_state(folder, state)
    raise PointCrashed(message)


# ---------------------------------------------------------------------------- start-up check
#: Source of the check run on every worker before any point.  It is compiled into a module of
#: its own (:func:`make_probe`) so that Dask ships it by value: it must run even where
#: ``vpf_spiking`` itself does not import, to say so.
PROBE_SOURCE = r'''
import json, os, socket, subprocess, sys

INNER = r"""
import json, os, sys
args = json.loads(sys.argv[1])
errors = []
try:
    import vpf_spiking
    from vpf_spiking import data as data_mod
    from vpf_spiking.protocols import default_data_dir
except Exception as exc:
    print(json.dumps({"errors": ["vpf_spiking does not import with %s: %s: %s"
                                 % (sys.executable, type(exc).__name__, exc)]}))
    sys.exit(0)
if not os.path.isfile(args["protocol"]):
    errors.append("protocol file %s is not reachable" % args["protocol"])
out = args["out"]
try:
    os.makedirs(out, exist_ok=True)
    probe = os.path.join(out, ".probe-%s-%d" % (os.uname().nodename if hasattr(os, "uname") else "host", os.getpid()))
    with open(probe, "w") as fh:
        fh.write("ok")
    os.remove(probe)
except OSError as exc:
    errors.append("cannot write into the sweep folder %s: %s" % (out, exc))
checked = None
for dataset, data_dir in args["data"]:
    key = dataset.strip().lower().replace("_", "-")
    if key in data_mod.DATASETS:
        try:
            if checked is None:
                checked = {}
            if data_dir not in checked:
                checked[data_dir] = data_mod.check_data(default_data_dir(data_dir))
            table = checked[data_dir]
            bad = table[(table["dataset"] == key) & (table["status"] != "ok")]
            if len(bad):
                r = bad.iloc[0]
                errors.append("data set %s is not reachable (%s %s: %s, %s); set VPF_DATA_DIR on the "
                              "worker or data.data_dir" % (dataset, r["split"], r["kind"], r["status"], r["detail"]))
        except Exception as exc:
            errors.append("data set %s: %s" % (dataset, " ".join(str(exc).split())))
    elif not os.path.exists(os.path.expanduser(dataset)):
        errors.append("data file %s not found (relative paths are read from %s)" % (dataset, os.getcwd()))
print(json.dumps({"errors": errors, "version": getattr(vpf_spiking, "__version__", "?")}))
"""


def probe(args):
    """Check that this worker can run the sweep's points; return what was found."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:
        cores = os.cpu_count() or 1
    found = {"host": socket.gethostname(), "pid": os.getpid(), "cores": cores,
             "python": sys.executable, "errors": [], "version": None}
    if not os.path.isdir(args["cwd"]):
        found["errors"].append("the working folder %s does not exist here (use a shared filesystem "
                               "or the same paths on every machine)" % args["cwd"])
        return found
    try:
        proc = subprocess.run([sys.executable, "-c", INNER, json.dumps(args)], cwd=args["cwd"],
                              capture_output=True, text=True, timeout=args.get("timeout", 300))
    except Exception as exc:
        found["errors"].append("cannot start %s: %s" % (sys.executable, exc))
        return found
    lines = [ln for ln in proc.stdout.splitlines() if ln.strip()]
    try:
        res = json.loads(lines[-1])
    except (IndexError, ValueError):
        tail = " ".join((proc.stderr or proc.stdout or "no output").split())[-300:]
        found["errors"].append("the check failed: %s" % tail)
        return found
    found.update(res)
    return found


def has_bokeh():
    """Whether bokeh (which the dashboard needs) imports here."""
    import importlib.util

    return importlib.util.find_spec("bokeh") is not None
'''


def make_probe(name="probe"):
    """A function of :data:`PROBE_SOURCE` (``probe``, ``has_bokeh``), in a module Dask pickles by
    value (so it runs where ``vpf_spiking`` is not installed)."""
    namespace = {"__name__": "vpf_sweep_probe"}
    exec(compile(PROBE_SOURCE, "<vpf-sweep-probe>", "exec"), namespace)
    return namespace[name]
