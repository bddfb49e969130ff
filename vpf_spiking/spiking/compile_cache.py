"""Where the spiking engine caches compiled Brian2 code, and the one-time "compiling" notice.

A first spiking command on a fresh install compiles Brian2 code for minutes; so that the user is
not left at 0 %, :func:`announce_compile` says so once, with the time the last compile took on
this machine (``compile_times.json`` in :func:`cache_dir`) or a documented default.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

def cache_dir() -> Path:
    """``$VPF_SPIKING_CACHE`` or ``~/.cache/vpf-spiking/brian2``."""
    root = os.environ.get("VPF_SPIKING_CACHE")
    path = Path(root) if root else Path.home() / ".cache" / "vpf-spiking" / "brian2"
    path.mkdir(parents=True, exist_ok=True)
    return path


# ============================================================================ first-run compile notice
#: seconds a cold start compiles, before one was measured on this machine: runtime, the 29 Cython
#: modules of a first network (about 85 s on the 2-core development machine, docs/spiking.md);
#: cpp_standalone, the STDP protocol's project (33 s there); cuda_standalone, a rough guess
DEFAULT_COMPILE_S = {"runtime": 90.0, "cpp_standalone": 35.0, "cuda_standalone": 60.0}
COMPILE_TIMES_FILE = "compile_times.json"


def _compile_times_path() -> Path:
    return cache_dir() / COMPILE_TIMES_FILE


def _read_compile_times() -> dict:
    try:
        data = json.loads(_compile_times_path().read_text())
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def compile_estimate(kind: str) -> float:
    """Seconds a cold compile of back-end ``kind`` took when last measured here, else the default."""
    entry = _read_compile_times().get(kind)
    try:
        seconds = float(entry["seconds"] if isinstance(entry, dict) else entry)
        if seconds > 0 and seconds == seconds:
            return seconds
    except (KeyError, TypeError, ValueError):
        pass
    return DEFAULT_COMPILE_S.get(kind, 60.0)


def record_compile_time(kind: str, seconds: float) -> None:
    """Store a measured cold-compile time of ``kind`` in ``compile_times.json`` (best effort, atomic)."""
    data = _read_compile_times()
    data[kind] = {"seconds": round(float(seconds), 1), "measured": time.strftime("%Y-%m-%d %H:%M:%S")}
    path = _compile_times_path()
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(json.dumps(data, indent=1, sort_keys=True))
        os.replace(tmp, path)
    except OSError:
        try:
            tmp.unlink()
        except OSError:
            pass


def announce_compile(kind: str) -> None:
    """Tell the user, on stderr, that Brian2 is about to compile (and for about how long)."""
    print(f"compiling Brian2 code once (about {compile_estimate(kind):.0f} s); later runs reuse it from "
          f"{cache_dir()}", file=sys.stderr, flush=True)


class _CythonCompiles:
    """Announces and times the runtime device's real Cython compiles (not cache hits).

    Wraps ``_load_module`` of Brian2's Cython extension manager, the one place a module is either
    loaded from the cache folder or compiled into it.  A cold start (no compiled module in the
    folder when the runtime device was first prepared for it) is announced at its first compile
    and its compile seconds are recorded; a warm cache compiles rarely and says nothing.
    """

    installed = False
    folders: dict = {}  # cache folder -> {"cold": bool, "announced": bool, "seconds": float}

    @classmethod
    def watch(cls, folder) -> None:
        folder = os.path.realpath(folder)
        if folder not in cls.folders:
            cold = not any(Path(folder).glob("*.so")) and not any(Path(folder).glob("*.pyd"))
            cls.folders[folder] = {"cold": cold, "announced": False, "seconds": 0.0}
        if cls.installed:
            return
        try:
            from brian2.codegen.runtime.cython_rt.extension_manager import cython_extension_manager as mgr
        except ImportError:  # pragma: no cover - Cython or the module layout is missing
            return
        original = getattr(mgr, "_load_module", None)
        if original is None:  # pragma: no cover - another Brian2 version
            return

        def load_module(module_path, *args, **kwargs):
            if os.path.isfile(module_path):
                return original(module_path, *args, **kwargs)
            state = cls.folders.get(os.path.realpath(os.path.dirname(module_path)))
            if state is not None and state["cold"] and not state["announced"]:
                state["announced"] = True
                announce_compile("runtime")
            t0 = time.perf_counter()
            try:
                return original(module_path, *args, **kwargs)
            finally:
                if state is not None and state["cold"]:
                    state["seconds"] += time.perf_counter() - t0
                    record_compile_time("runtime", state["seconds"])

        mgr._load_module = load_module
        cls.installed = True
