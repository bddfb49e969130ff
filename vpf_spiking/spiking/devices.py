"""Where a spiking simulation runs: Brian2 runtime, C++ standalone or CUDA standalone, as objects.

Each back-end is a :class:`Device` looked up by name in :data:`DEVICE_TABLE`
(:func:`get_device`), in the way Brian2 keeps models apart from its own devices.  Code that
simulates (:class:`~vpf_spiking.spiking.network.SpikingNetwork`, the STDP protocol) asks the
object and never branches on the name.  The life of a simulation:

``prepare(owner)``
    activate the back-end in Brian2 (and retire the previous standalone project, below);
``record(net, duration)`` / ``run(...)``
    a network that is run many times: a standalone project records its one run once and then
    reruns the binary with new values through ``device.run(run_args=...)``;
``run_once(script)``
    a simulation run once (``script(report)`` makes the Brian2 ``run`` calls);
``build(directory)``
    generate and compile a standalone project (nothing to do at runtime);
``read_back(variable)``
    values after a run;
``release(owner)``
    give Brian2 back its runtime device.

``"runtime"``
    Brian2 runs the simulation from Python, with generated Cython code (or numpy, when Cython
    cannot compile).  Compiled Cython modules are cached under :func:`cache_dir`.
``"cpp_standalone"``
    Brian2 writes a C++ project, compiles it once (7-14 s for a large network) and reruns the
    binary with new weights, states and data; nothing is recompiled until the network's
    structure changes.  Projects live under :func:`cache_dir` in a folder named by a hash of the
    structure, so even a new process reuses the compiled objects (``make`` only rebuilds what
    changed).
``"cuda_standalone"``
    The same on a GPU through brian2cuda (optional import).  Two fixes for CUDA 13 are applied:
    the generated makefile's ``-std=c++11`` becomes ``-std=c++17`` (:func:`patch_makefile`),
    and cuRAND headers and libraries are taken from the ``nvidia-curand`` wheel when the CUDA
    toolkit lacks them (:func:`curand_paths`).

Only one standalone project can be active in a process (a Brian2 limitation); preparing a
second one retires the first (:class:`StandaloneSession`).

First runs: compiling takes minutes on a fresh install, so the user is told once, before it
starts, ``compiling Brian2 code once (about N s)`` (on stderr).  At runtime that happens at the
first real Cython compile of a process whose cache folder held no compiled module (a thin
wrapper around Brian2's module loader, installed by :func:`setup_runtime`, tells a compile from
a cache hit and times it); for a standalone device, when :meth:`StandaloneDevice.build` meets a
project folder without a compiled binary.  ``N`` is the compile time last measured in such a
cold start, kept per device in ``compile_times.json`` in :func:`cache_dir`
(:func:`compile_estimate`), or, before any measurement, :data:`DEFAULT_COMPILE_S`.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
from pathlib import Path

import numpy as np

from ..errors import ConfigError

__all__ = [
    "DEVICES", "DEVICE_TABLE", "Device", "RuntimeDevice", "CppStandaloneDevice", "CudaStandaloneDevice",
    "StandaloneSession", "get_device", "check_device", "cache_dir", "setup_runtime", "build_standalone",
    "patch_makefile", "curand_paths", "compile_estimate", "record_compile_time", "DEFAULT_COMPILE_S",
    "DEVICE_ENV", "default_device", "resolve_device",
]


from .project_lock import ProjectLock  # noqa: E402
from .cuda_toolkit import (_gpu_pinned, _has_gpu, _has_nvcc, _link_unversioned,  # noqa: F401,E402
                           curand_paths, patch_makefile)
from .compile_cache import (COMPILE_TIMES_FILE, DEFAULT_COMPILE_S, _CythonCompiles,  # noqa: F401,E402
                            announce_compile, cache_dir, compile_estimate, record_compile_time)


class Device:
    """A simulation back-end; one instance serves one network or one simulation."""

    name = "?"

    def __init__(self):
        self.compile_s = None     # seconds the last build took (standalone only)
        self._built = False

    def check_available(self) -> None:
        """Raise :class:`ConfigError` (one line) when this back-end cannot run here."""

    def prepare(self, owner=None, codegen=None) -> str:
        """Activate the back-end for ``owner``; return the code generation target in use."""
        raise NotImplementedError

    def project_dir(self, key, directory=None):
        """Folder of the compiled project (``directory``, or one named ``key`` in the cache); None if none."""
        return None

    def report(self, progress: bool, desc: str = "simulation"):
        """The ``report`` argument of Brian2's ``run`` that shows progress on this back-end."""
        return None

    def record(self, net, duration) -> None:
        """Prepare ``net`` for repeated :meth:`run` calls of ``duration`` each."""

    def build(self, directory) -> float:
        """Generate and compile the project (no-op at runtime); return the seconds it took."""
        return 0.0

    def run(self, net, duration, *, directory=None, values=None, arrays=None, seed=None, restart=()):
        """One run of a recorded network with new ``values`` and ``arrays``.

        ``values`` maps ``(object, variable name)`` to an array, ``arrays`` a TimedArray to its new
        values; ``seed`` seeds this run's random streams (where the back-end can); ``restart`` are
        neuron groups whose control schedule starts with this run (their ``t0``).
        """
        raise NotImplementedError

    def run_once(self, script, *, directory=None, progress=False, desc="simulation") -> dict:
        """Run ``script(report)``, which makes Brian2 ``run`` calls, once; return timings (s)."""
        raise NotImplementedError

    def read_back(self, variable, last=None) -> np.ndarray:
        """A variable's values after the last run as float64; ``last``: the last run's part of a recording."""
        return np.array(variable, dtype=np.float64)

    def release(self, owner=None) -> None:
        """Give the process back to Brian2's runtime device (standalone projects)."""

    def _retire(self):
        """Called when another standalone project takes over (a simulation that owns itself)."""

    def _let_go(self):
        """Give up the compiled project for other processes (standalone devices hold a lock)."""


# ============================================================================ runtime
def _cython_works() -> bool:
    try:
        import Cython  # noqa: F401
    except ImportError:
        return False
    return shutil.which("gcc") is not None or shutil.which("cc") is not None


def setup_runtime(codegen: str | None = None) -> str:
    """Activate Brian2's runtime device; return the code generation target in use."""
    from brian2 import prefs, set_device

    set_device("runtime")
    if codegen is None:
        codegen = "cython" if _cython_works() else "numpy"
    if codegen not in ("cython", "numpy"):
        raise ConfigError(f"unknown runtime code generation target {codegen!r}; use 'cython' or 'numpy'")
    prefs.codegen.target = codegen
    folder = cache_dir() / "cython"
    prefs.codegen.runtime.cython.cache_dir = str(folder)
    prefs.codegen.runtime.cython.multiprocess_safe = True
    if codegen == "cython":
        _CythonCompiles.watch(folder)
    return codegen


def _tqdm_report(desc):
    """A Brian2 ``report`` callable that drives a tqdm bar."""
    from ..progress import progress_bar as tqdm

    bar = {"b": None}

    def report(elapsed, completed, start, duration):
        if bar["b"] is None:
            bar["b"] = tqdm(total=100, desc=desc, unit="%", leave=False)
        bar["b"].n = round(100 * float(completed), 1)
        bar["b"].refresh()
        if completed >= 1.0:
            bar["b"].close()

    return report


class RuntimeDevice(Device):
    """Brian2's runtime device: every run is executed from Python as it is called."""

    name = "runtime"

    def prepare(self, owner=None, codegen=None) -> str:
        return setup_runtime(codegen)

    def report(self, progress, desc="simulation"):
        return _tqdm_report(desc) if progress else None

    def run(self, net, duration, *, directory=None, values=None, arrays=None, seed=None, restart=()):
        from brian2 import seed as brian_seed

        for (obj, name), v in (values or {}).items():
            setattr(obj, name, v)
        # the runtime clock goes on from run to run: control schedules are read at t - t0
        for G in restart:
            G.t0 = net.t
        for ta, v in (arrays or {}).items():
            ta.values[:] = v.reshape(ta.values.shape)
        if seed is not None:
            brian_seed(seed)
        net.run(duration, namespace={})

    def run_once(self, script, *, directory=None, progress=False, desc="simulation") -> dict:
        t0 = time.perf_counter()
        script(self.report(progress, desc))
        return {"run_s": time.perf_counter() - t0}

    def read_back(self, variable, last=None):
        values = np.array(variable, dtype=np.float64)
        # runtime monitors accumulate over runs
        return values if last is None else values[-int(last):]


# ============================================================================ standalone
class StandaloneSession:
    """Book-keeping of the one standalone project a process may hold."""

    active = None  # the owner object of the current project

    @classmethod
    def claim(cls, owner, kind: str):
        get_device(kind).prepare(owner)

    @classmethod
    def release(cls, owner):
        from brian2 import device, set_device

        if cls.active is owner:
            device.reinit()
            set_device("runtime")
            cls.active = None


def _retire(owner):
    if hasattr(owner, "_retire"):
        owner._retire()


class StandaloneDevice(Device):
    """A Brian2 standalone device: the runs are recorded into a project, compiled, then executed.

    A compiled project is one folder per network structure, shared by every process; its binary
    writes its results into that folder.  So a process holds the project's lock file
    (``<project>.lock``, an exclusive ``flock``) from its first build until :meth:`release`: a
    second process with the same structure (two commands, sweep points, parallel tests) waits,
    saying so, instead of rebuilding or reading the project under the other's feet.  The lock
    goes with the process, so a killed run leaves none behind.
    """

    _lock = None

    def _hold_project(self, directory):
        """Take the project's lock (waiting, with a message, while another process holds it)."""
        if self._lock is None:
            self._lock = ProjectLock(directory)

    def _let_go(self):
        if self._lock is not None:
            self._lock.release()
            self._lock = None

    def prepare(self, owner=None, codegen=None) -> str:
        from brian2 import device, set_device

        self.check_available()
        owner = self if owner is None else owner
        if StandaloneSession.active is not None:
            device.reinit()
            _retire(StandaloneSession.active)
        else:
            try:
                device.reinit()
            except Exception:  # the runtime device has nothing to reset
                pass
        import gc

        gc.collect()  # old objects would push the new ones to suffixed names (a full rebuild)
        set_device(self.name, build_on_run=False)
        self.configure()
        StandaloneSession.active = owner
        return self.name

    def configure(self) -> None:
        """Preferences the back-end needs once it is the active Brian2 device."""

    def project_dir(self, key, directory=None):
        return Path(directory) if directory else cache_dir() / self.name / str(key)

    def report(self, progress, desc="simulation"):
        return "text" if progress else None

    def record(self, net, duration):
        net.run(duration, namespace={})

    def build(self, directory) -> float:
        """Generate, patch and compile the current standalone project (does not run it)."""
        from brian2 import device
        from brian2.codegen.cpp_prefs import get_compiler_and_args

        t = time.perf_counter()
        directory = Path(directory)
        self._hold_project(directory)
        new_project = not self.compiled(directory)
        if new_project:
            announce_compile(self.name)
        directory.mkdir(parents=True, exist_ok=True)
        device.build(directory=str(directory), compile=False, run=False, with_output=False)
        self.patch_project(directory)
        compiler, _ = get_compiler_and_args()
        try:
            device.compile_source(str(directory), compiler, debug=False, clean=False)
        except RuntimeError as exc:
            raise ConfigError(f"compiling the {self.name} project in {directory} failed: {exc} "
                              f"(see {directory}/make.log, if present)") from None
        self.compile_s = time.perf_counter() - t
        self._built = True
        if new_project:
            record_compile_time(self.name, self.compile_s)
        return self.compile_s

    @staticmethod
    def compiled(directory) -> bool:
        """Whether ``directory`` holds a compiled project (its binary), so a build only updates it."""
        return any((Path(directory) / name).is_file() for name in ("main", "main.exe"))

    def patch_project(self, directory) -> None:
        """Fix the generated project before it is compiled."""

    def seed_environment(self, seed) -> dict:
        """Environment variables that carry a run's seed into the binary."""
        return {}

    def run(self, net, duration, *, directory=None, values=None, arrays=None, seed=None, restart=()):
        from brian2 import device

        run_args = {getattr(obj, name): v for (obj, name), v in (values or {}).items()}
        for ta, v in (arrays or {}).items():
            run_args[ta] = v.reshape(ta.values.shape)
        if not self._built:
            self.build(directory)
        for key, value in self.seed_environment(seed).items():
            device.run_environment_variables[key] = value
            os.environ.pop(key, None)  # brian2 copies it there; a stale value only causes log noise
        try:
            device.run(directory=str(directory), with_output=False, run_args=run_args)
        finally:
            # run_args arrays are content-named files: delete them or they pile up
            for fname in list(device.run_args_arrays):
                p = Path(directory) / "static_arrays" / fname
                for q in (p, p.with_name(p.name + ".lock")):
                    if q.exists():
                        q.unlink()

    def run_once(self, script, *, directory=None, progress=False, desc="simulation") -> dict:
        from brian2 import device

        script(self.report(progress, desc))
        compile_s = self.build(directory)
        t0 = time.perf_counter()
        device.run(directory=str(directory), with_output=bool(progress))
        return {"compile_s": compile_s, "run_s": time.perf_counter() - t0}

    def release(self, owner=None):
        StandaloneSession.release(self if owner is None else owner)
        self._let_go()


#: ``run_args`` cannot carry a seed: the binary reads it from the environment before the run
_SEED_CODE = """
{
    const char* _vpf_seed = getenv("VPF_SEED");
    if (_vpf_seed != NULL && atol(_vpf_seed) >= 0) {
        for (int _i = 0; _i < (int)brian::_random_generators.size(); _i++)
            brian::_random_generators[_i].seed((unsigned long)atol(_vpf_seed) + _i);
    }
}
"""


class CppStandaloneDevice(StandaloneDevice):
    """Brian2's C++ standalone device."""

    name = "cpp_standalone"

    def record(self, net, duration):
        from brian2 import device

        device.insert_code("main", _SEED_CODE)
        net.run(duration, namespace={})

    def seed_environment(self, seed):
        return {"VPF_SEED": str(-1 if seed is None else int(seed))}


# ============================================================================ CUDA
class CudaStandaloneDevice(StandaloneDevice):
    """brian2cuda's CUDA standalone device (not seeded per run: cuRAND seeds itself)."""

    name = "cuda_standalone"

    def check_available(self):
        try:
            import brian2cuda  # noqa: F401
        except ImportError as exc:
            raise ConfigError("device 'cuda_standalone' needs brian2cuda "
                              f"(pip install 'vpf-spiking[cuda]'): {exc}") from None
        if not _has_nvcc():
            raise ConfigError("device 'cuda_standalone' needs the CUDA compiler nvcc "
                              "(not on PATH, nor under $CUDA_PATH or /usr/local/cuda)")
        if not (_has_gpu() or _gpu_pinned()):
            raise ConfigError("device 'cuda_standalone' needs an NVIDIA GPU (none found); "
                              "set VPF_CUDA_NO_GPU=1 to build the project without one")

    def configure(self):
        from brian2 import prefs

        # Without a GPU in the build machine brian2cuda cannot query one: pin a target instead.
        if _gpu_pinned():
            prefs.devices.cuda_standalone.cuda_backend.detect_gpus = False
            prefs.devices.cuda_standalone.cuda_backend.gpu_id = 0
            prefs.devices.cuda_standalone.cuda_backend.compute_capability = float(
                os.environ.get("VPF_CUDA_COMPUTE_CAPABILITY") or 9.0)
        inc, lib = curand_paths()
        if inc:
            prefs.codegen.cpp.include_dirs = list(prefs.codegen.cpp.include_dirs) + [inc]
        if lib:
            prefs.codegen.cpp.library_dirs = list(prefs.codegen.cpp.library_dirs) + [lib]
            prefs.codegen.cpp.runtime_library_dirs = list(prefs.codegen.cpp.runtime_library_dirs) + [lib]
            _link_unversioned(Path(lib))

    def patch_project(self, directory):
        patch_makefile(directory)


# ============================================================================ the table
#: name -> back-end class; the one place a new device is added
DEVICE_TABLE: dict[str, type[Device]] = {
    "runtime": RuntimeDevice,
    "cpp_standalone": CppStandaloneDevice,
    "cuda_standalone": CudaStandaloneDevice,
}
DEVICES = tuple(DEVICE_TABLE)


def check_device(name: str) -> str:
    """``name`` if it names a back-end, else a one-line ConfigError (availability is checked on use)."""
    if name not in DEVICE_TABLE:
        raise ConfigError(f"unknown device {name!r}; choose one of {', '.join(DEVICES)}")
    return name


#: environment variable that sets the default device of every command (``runtime``, ...)
DEVICE_ENV = "VPF_DEVICE"


def _cxx_compiler() -> str | None:
    for name in (os.environ.get("CXX"), "g++", "c++", "clang++"):
        path = shutil.which(name) if name else None
        if path:
            return path
    return None


def default_device() -> str:
    """The device every command and simulation uses when none is given.

    One policy for ``vpf train --engine spiking``, ``vpf stdp``, ``vpf simulate``, the protocol
    kinds and the library: ``$VPF_DEVICE`` when set; otherwise ``cpp_standalone`` where a C++
    compiler exists (a network compiles once per structure, in 7-35 s, and later runs of any
    command reuse the binary; the runtime device's first Cython compile takes longer and every
    run is slower), else ``runtime``.  ``cuda_standalone`` is never picked by default (a GPU is
    asked for explicitly, or through ``$VPF_DEVICE``).
    """
    name = os.environ.get(DEVICE_ENV, "").strip()
    if name:
        if name not in DEVICE_TABLE:
            raise ConfigError(f"${DEVICE_ENV}={name!r} names no device; choose one of {', '.join(DEVICES)}")
        return name
    return "cpp_standalone" if _cxx_compiler() else "runtime"


def resolve_device(name: str | None) -> str:
    """``name`` checked, or :func:`default_device` when it is None."""
    return default_device() if name is None else check_device(name)


def get_device(name: str) -> Device:
    """A new back-end object for ``name`` (see :data:`DEVICE_TABLE`)."""
    return DEVICE_TABLE[check_device(name)]()


def build_standalone(directory, kind: str) -> None:
    """Generate, patch and compile the current standalone project of back-end ``kind`` (does not run it)."""
    get_device(kind).build(directory)
