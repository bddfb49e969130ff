"""Running a sweep on Dask: :func:`sweep`.

The client side: it plans the points (:mod:`.grid`), skips those complete in the output folder,
finds or starts a cluster, checks every worker (:data:`.worker.PROBE_SOURCE`), submits one task
per point (:func:`.worker.run_point`), shows a progress bar, and rewrites ``results.csv`` and
``results.md`` after every finished point.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import logging
import os
import shlex
import sys
import time
import uuid
from pathlib import Path

from ..errors import ConfigError
from . import grid as grid_mod
from .results import atomic_write_text, is_complete, results_frame, write_results
from .worker import make_probe, run_point

__all__ = ["sweep", "plan", "SCHEDULER_ENV", "default_workers"]

SCHEDULER_ENV = "VPF_DASK_SCHEDULER"


def _one_line(text) -> str:
    return " ".join(str(text).split())


def default_workers() -> int:
    """Cores this process may use (cgroup and affinity limits included)."""
    try:
        from dask.system import CPU_COUNT

        return max(1, int(CPU_COUNT))
    except ImportError:
        try:
            return len(os.sched_getaffinity(0))
        except AttributeError:
            return os.cpu_count() or 1


# ---------------------------------------------------------------------------- planning
def _load(protocol):
    """(config, config without [sweep], its [sweep] grids, protocol path for the workers or None
    for a dict, the protocol as given)."""
    from ..protocols import ProtocolConfig, load_protocol, resolve_kind

    if isinstance(protocol, (str, os.PathLike)):
        config = load_protocol(protocol)
        path = Path(config.source)
        given = str(protocol)
    elif isinstance(protocol, dict):
        config = protocol if isinstance(protocol, ProtocolConfig) else ProtocolConfig(dict(protocol))
        resolve_kind(config)
        path = None
        given = None
    else:
        raise ConfigError(f"a protocol must be a file path or a dict, got {type(protocol).__name__}")
    tables = grid_mod.grid_from_table(config, config.source)
    base = ProtocolConfig({k: v for k, v in config.items() if k != "sweep"}, source=config.source)
    return config, base, tables, path, given


def plan(protocol, grid=None, zip=False, overrides=()):
    """The points of a sweep (a list of :class:`~vpf_spiking.sweep.grid.Point`), without running.

    ``grid`` (``--grid`` strings or a dict of lists) replaces the protocol's ``[sweep]`` tables;
    without it the tables are used.  ``overrides`` (``--set`` items) apply to every point.
    """
    _, base, tables, _, _ = _load(protocol)
    return _plan(base, tables, grid, zip, overrides)[0]


def _plan(base, tables, grid, zip, overrides):
    from ..protocols import apply_overrides

    overrides = [str(o) for o in (overrides or ())]
    if grid:
        grids = [(grid_mod.parse_grid(grid), zip)]
    elif tables:
        grids = [(g, z or zip) for g, z in tables]
    else:
        raise ConfigError(f"{base.source}: nothing to sweep; give --grid KEY=V1,V2 or a [sweep] table "
                          f"(e.g. training.learning_rate = [1e-3, 1e-2])")
    fixed_keys = {o.partition("=")[0].strip() for o in overrides}
    for g, _ in grids:
        both = sorted(fixed_keys & set(g))
        if both:
            raise ConfigError(f"{both[0]} is both set (--set) and swept (--grid); keep one")
    points = grid_mod.combine(grid_mod.make_points(g, z) for g, z in grids)
    apply_overrides(base, overrides)  # a malformed --set fails here, once
    keys = []
    for p in points:
        keys.extend(k for k in p.values if k not in keys)
    return points, keys, overrides


def _effective(base, overrides, point):
    from ..protocols import apply_overrides, dump_toml

    eff = apply_overrides(base, list(overrides) + list(point.overrides))
    digest = hashlib.sha256(dump_toml(dict(eff)).encode()).hexdigest()[:16]
    return eff, digest


# ---------------------------------------------------------------------------- cluster
def _connect(client, scheduler, n_workers, n_points, blas_threads):
    """(client, whether we opened it, cluster we started or None, description)."""
    try:
        import distributed
    except ImportError:
        raise ConfigError("vpf sweep needs Dask: pip install 'vpf-spiking[sweep]' "
                          "(dask[distributed])") from None
    if client is not None:
        if scheduler or n_workers:
            raise ConfigError("give either a Dask client or scheduler/n_workers, not both")
        return client, False, None, "the given Dask client"
    address = scheduler or os.environ.get(SCHEDULER_ENV, "").strip() or None
    if address:
        if n_workers:
            raise ConfigError("--workers sizes the local cluster; with --scheduler the cluster's "
                              "workers run the points (start more with 'dask worker ADDRESS')")
        try:
            client = distributed.Client(address, timeout="30s")
        except Exception as exc:  # OSError, TimeoutError, ValueError for a bad address
            raise ConfigError(f"cannot reach the Dask scheduler at {address}: {_one_line(exc)}") from None
        return client, True, None, f"the Dask cluster at {address}"
    cores = default_workers()
    if n_workers is not None and (not isinstance(n_workers, int) or n_workers < 1):
        raise ConfigError(f"--workers must be a positive whole number, got {n_workers!r}")
    n = n_workers or max(1, min(cores, n_points))
    blas = blas_threads or max(1, cores // n)
    from .worker import blas_env

    cluster = distributed.LocalCluster(n_workers=n, threads_per_worker=1, processes=True,
                                       dashboard_address=":0", env=blas_env(blas),
                                       silence_logs=logging.ERROR)
    client = distributed.Client(cluster)
    return client, True, cluster, f"a local cluster of {n} worker{'s' * (n != 1)}"


def _wait_for_workers(client, timeout=60):
    import distributed  # noqa: F401

    try:
        client.wait_for_workers(1, timeout=timeout)
    except Exception:
        raise ConfigError(f"no Dask workers connected to {client.scheduler.address} within {timeout} s; "
                          f"start some with: dask worker {client.scheduler.address}") from None


def _check_workers(client, probe_args):
    """Run the start-up check on every worker; ConfigError naming each failing one."""
    from .worker import make_probe

    results = client.run(make_probe(), probe_args, on_error="return")
    problems, found = [], {}
    for addr, res in sorted(results.items()):
        if isinstance(res, BaseException):
            problems.append(f"worker {addr}: the check could not run ({type(res).__name__}: {_one_line(res)})")
        elif res.get("errors"):
            problems.append(f"worker {addr} ({res.get('host')}): " + "; ".join(res["errors"]))
        else:
            found[addr] = res
    from .._version import __version__

    for addr, res in sorted(found.items()):
        if res.get("version") not in (None, __version__):
            print(f"vpf sweep: note: worker {addr} ({res.get('host')}) has vpf-spiking {res['version']}, "
                  f"this client {__version__}", file=sys.stderr)
    for line in problems:
        print(f"vpf sweep: {line}", file=sys.stderr)
    if problems:
        raise ConfigError(f"{len(problems)} of {len(results)} Dask workers cannot run the sweep; "
                          f"{problems[0]}")
    return found


def _blas_per_host(found: dict, blas_threads):
    if blas_threads:
        return int(blas_threads)
    hosts: dict = {}
    for res in found.values():
        h = hosts.setdefault(res["host"], {"cores": res["cores"], "workers": 0})
        h["workers"] += 1
    return {host: max(1, h["cores"] // h["workers"]) for host, h in hosts.items()}


def _dashboard(client):
    """The dashboard's address, when the scheduler serves one (it needs bokeh there)."""
    try:
        if "dashboard" in client.scheduler_info().get("services", {}) and client.run_on_scheduler(make_probe("has_bokeh")):
            return client.dashboard_link
    except Exception:
        pass
    return None


# ---------------------------------------------------------------------------- the sweep
def sweep(protocol, grid=None, client=None, out=None, zip=False, overrides=(), *, n_workers=None,
          scheduler=None, retries=2, progress=True, check=True, blas_threads=None, command=None):
    """Run ``protocol`` once per point of ``grid`` on Dask; return the results table.

    Every point runs as ``vpf run PROTOCOL --set KEY=VALUE ... --out OUT/<point>`` would, in a
    process of its own on a Dask worker.

    Parameters
    ----------
    protocol : path or dict
        A protocol file (or a shipped protocol's name), or a parsed protocol.
    grid : dict or list of str, optional
        ``{"training.learning_rate": [1e-3, 1e-2], ...}`` or ``["training.learning_rate=1e-3,1e-2"]``
        (values typed as by ``--set``).  Default: the protocol's ``[sweep]`` table(s).
    client : distributed.Client, optional
        Use this client's cluster.  Default: ``scheduler``, else ``$VPF_DASK_SCHEDULER``, else a
        :class:`~distributed.LocalCluster` started (and closed) here.
    out : path, optional
        The sweep folder: one folder per point, ``results.csv``, ``results.md``, ``sweep.json``.
        Default ``runs/<protocol name>-sweep``.
    zip : bool
        Pair the grids' values in order instead of taking their product.
    overrides : list of str
        ``KEY=VALUE`` items applied to every point before its grid values.
    n_workers : int, optional
        Workers of the local cluster (default: one per core, at most one per point); one
        thread each.
    scheduler : str, optional
        Address of a running Dask scheduler, e.g. ``tcp://10.0.0.5:8786``.
    retries : int
        Times Dask runs a point again whose process was killed (e.g. out of memory); the
        point resumes from its checkpoint.  A point that fails with an error is not retried.
    progress : bool
        Show a progress bar (points done / running / failed) and the dashboard address.
    check : bool
        Check every worker first: ``vpf_spiking`` imports, the protocol, the sweep folder and
        the data are reachable.
    blas_threads : int, optional
        BLAS threads per point (default: a machine's cores divided by its workers).
    command : str, optional
        The sweep's command line, recorded in each point's ``command.txt``.

    Returns
    -------
    pandas.DataFrame
        One row per point: ``point`` (its folder), the grid values, ``status`` (``done``,
        ``failed``, ``cancelled``, ``pending``), ``wall_s``, ``reused`` (finished by an earlier
        sweep), ``attempts``, ``worker``, ``error`` and the run's summary figures (the last row
        of its main CSV, e.g. ``metrics.csv`` for ``train``).  The same table is ``results.csv``.
    """
    from ..protocols import dump_toml, resolve_kind

    _, base, tables, path, given = _load(protocol)
    points, keys, overrides = _plan(base, tables, grid, zip, overrides)
    out = Path(out) if out is not None else Path("runs") / f"{base.name}-sweep"
    if out.exists() and not out.is_dir():
        raise ConfigError(f"{out}: exists and is not a folder")
    out = out.absolute()
    out.mkdir(parents=True, exist_ok=True)
    if path is None:  # a dict: the workers read it from the sweep folder
        path = out / "base-protocol.toml"
        atomic_write_text(path, dump_toml(dict(base)))
        given = str(path)
    path = Path(path).absolute()
    func = resolve_kind(base)
    resume_ok = "resume" in inspect.signature(func).parameters
    sweep_line = command or shlex.join([Path(sys.argv[0]).name or "python"] + sys.argv[1:])

    rows, specs, data_needed = {}, [], []
    for p in points:
        eff, digest = _effective(base, overrides, p)
        folder = out / p.name
        d = eff.get("data")
        if isinstance(d, dict) and isinstance(d.get("dataset"), str):
            item = [d["dataset"], d.get("data_dir") if isinstance(d.get("data_dir"), str) else None]
            if item not in data_needed:
                data_needed.append(item)
        state = is_complete(folder, digest)
        if state is not None:
            rows[p.name] = {"point": p.name, "values": p.values, "status": "done", "reused": True,
                            "wall_s": state.get("wall_s"), "attempts": state.get("attempt"),
                            "worker": state.get("worker"), "error": "", "summary": state.get("summary", {})}
            continue
        rows[p.name] = {"point": p.name, "values": p.values, "status": "pending", "reused": False}
        sets = [a for o in list(overrides) + list(p.overrides) for a in ("--set", o)]
        line = shlex.join(["vpf", "run", given, *sets, "--out", str(folder)]) + f"  # a point of: {sweep_line}"
        specs.append({"point": p.name, "values": p.values, "protocol": str(path), "cwd": os.getcwd(),
                      "out": str(folder), "overrides": list(overrides) + list(p.overrides), "hash": digest,
                      "kind": base["kind"], "resume_ok": resume_ok, "command": line})
    order = [p.name for p in points]

    def table():
        return results_frame([rows[n] for n in order], keys)

    atomic_write_text(out / "sweep.json", json.dumps({
        "protocol": str(path), "command": sweep_line, "zip": bool(zip), "overrides": overrides,
        "grid": {k: list(dict.fromkeys(grid_mod.value_text(p.values[k]) for p in points if k in p.values))
                 for k in keys},
        "points": order, "started": time.strftime("%Y-%m-%d %H:%M:%S")}, indent=1) + "\n")
    write_results(out, table())
    n_reused = len(points) - len(specs)
    say = print if progress else (lambda *a, **k: None)
    if not specs:
        say(f"sweep: all {len(points)} points are complete in {out}/ (nothing to run)")
        return table()

    client, own_client, cluster, where = _connect(client, scheduler, n_workers, len(specs), blas_threads)
    try:
        return _run(client, cluster, where, specs, rows, table, out, n_reused, len(points), retries,
                    progress, check, blas_threads, data_needed, path, say)
    finally:
        for thing in (client if own_client else None, cluster):
            if thing is not None:
                try:
                    thing.close()
                except Exception:
                    pass


def _run(client, cluster, where, specs, rows, table, out, n_reused, n_points, retries, progress, check,
         blas_threads, data_needed, path, say):
    import distributed
    from tqdm.auto import tqdm

    if cluster is None:
        _wait_for_workers(client)
    found = {}
    if check:
        found = _check_workers(client, {"cwd": os.getcwd(), "protocol": str(path), "out": str(out),
                                        "data": data_needed})
    if cluster is not None:
        blas = blas_threads or max(1, default_workers() // max(1, len(client.scheduler_info()["workers"])))
    elif found:
        blas = _blas_per_host(found, blas_threads)
    else:
        blas = blas_threads or 1
    workers = client.scheduler_info().get("workers", {})
    n_workers = len(workers)
    threads = sum(int(w.get("nthreads", 1)) for w in workers.values()) or 1
    dash = _dashboard(client)
    say(f"sweep: {n_points} points ({n_reused} complete already) on {where}"
        + (f"; dashboard {dash}" if dash else "") + f"; results in {out}/")

    cancel = distributed.Event(f"vpf-sweep-cancel-{uuid.uuid4().hex}", client=client)
    token = uuid.uuid4().hex[:8]
    futures = {}
    for spec in specs:
        spec = {**spec, "blas_threads": blas, "cancel": cancel.name}
        fut = client.submit(run_point, spec, key=f"vpf-sweep-{spec['point']}-{token}", pure=False,
                            retries=retries)
        futures[fut] = spec["point"]
    bar = tqdm(total=n_points, initial=n_reused, unit="point", desc="sweep", disable=not progress,
               dynamic_ncols=True)
    counts = {"done": n_reused, "failed": 0}
    keys = {f.key for f in futures}

    def running():
        try:
            busy = sum(1 for ks in client.processing().values() for k in ks if k in keys)
            return min(busy, threads)
        except Exception:
            return min(len(pending), threads)

    def postfix():
        bar.set_postfix(done=counts["done"], running=running(), failed=counts["failed"], refresh=True)

    pending = set(futures)
    t0 = time.perf_counter()
    try:
        postfix()
        while pending:
            try:
                finished, _ = distributed.wait(list(pending), timeout=1.0, return_when="FIRST_COMPLETED")
            except TimeoutError:
                postfix()
                continue
            for fut in finished:
                pending.discard(fut)
                name = futures[fut]
                rows[name] = _outcome(fut, rows[name], retries)
                if rows[name]["status"] == "done":
                    counts["done"] += 1
                else:
                    counts["failed"] += 1
                    if progress:
                        bar.write(f"failed: {name}: {rows[name].get('error', '')}")
                bar.update(1)
            write_results(out, table())
            postfix()
    except KeyboardInterrupt:
        try:
            cancel.set()
        except Exception:
            pass
        for fut in pending:
            name = futures[fut]
            if rows[name]["status"] == "pending":
                rows[name] = {**rows[name], "status": "cancelled", "error": "interrupted (Ctrl-C)"}
        write_results(out, table())
        try:
            client.cancel(list(pending), force=True)
        except Exception:
            pass
        bar.close()
        print(f"vpf sweep: interrupted; {counts['done']} of {n_points} points done; run the same "
              f"command again to continue (finished points are skipped, started ones resume)",
              file=sys.stderr)
        raise
    bar.close()
    df = table()
    say(f"sweep: {counts['done']} done, {counts['failed']} failed in {time.perf_counter() - t0:.1f} s; "
        f"wrote {out / 'results.csv'} and {out / 'results.md'}")
    return df


def _outcome(fut, row, retries):
    """The row for a finished future: its result, or the failure it ended with."""
    status = fut.status
    if status == "finished":
        try:
            return fut.result()
        except Exception as exc:  # the result could not be read back
            return {**row, "status": "failed", "error": _one_line(f"{type(exc).__name__}: {exc}")}
    if status == "cancelled":
        return {**row, "status": "cancelled", "error": "cancelled"}
    try:
        exc = fut.exception()
    except Exception as e:  # noqa: BLE001
        exc = e
    name = type(exc).__name__
    if name == "KilledWorker":
        msg = "every worker that ran this point died (Dask gave up: KilledWorker)"
    elif name == "PointCrashed":
        msg = f"{exc} (after {retries} retr{'y' if retries == 1 else 'ies'})"
    else:
        msg = f"{name}: {exc}"
    return {**row, "status": "failed", "error": _one_line(msg)}
