"""Where a spiking network runs: Brian2 runtime, C++ standalone or CUDA standalone, behind one option.

``"runtime"``
    Brian2 runs the simulation from Python, with generated Cython code (or numpy, when Cython
    cannot compile).  Compiled Cython modules are cached under :func:`cache_dir`.
``"cpp_standalone"``
    Brian2 writes a C++ project, compiles it once (7-14 s for a large network) and reruns the
    binary with new weights, states and data through ``device.run(run_args=...)``; nothing is
    recompiled until the network's structure changes.  Projects live under :func:`cache_dir`
    in a folder named by a hash of the structure, so even a new process reuses the compiled
    objects (``make`` only rebuilds what changed).
``"cuda_standalone"``
    The same on a GPU through brian2cuda (optional import).  Two fixes for CUDA 13 are applied:
    the generated makefile's ``-std=c++11`` becomes ``-std=c++17``, and cuRAND headers and
    libraries are taken from the ``nvidia-curand`` wheel when the CUDA toolkit lacks them.

Only one standalone project can be active in a process (a Brian2 limitation); building a
second one retires the first (:class:`StandaloneSession`).
"""

from __future__ import annotations

import os
from pathlib import Path

from ..errors import ConfigError

DEVICES = ("runtime", "cpp_standalone", "cuda_standalone")


def cache_dir() -> Path:
    """``$VPF_SPIKING_CACHE`` or ``~/.cache/vpf-spiking/brian2``."""
    root = os.environ.get("VPF_SPIKING_CACHE")
    path = Path(root) if root else Path.home() / ".cache" / "vpf-spiking" / "brian2"
    path.mkdir(parents=True, exist_ok=True)
    return path


def check_device(name: str) -> str:
    if name not in DEVICES:
        raise ConfigError(f"unknown device {name!r}; choose one of {', '.join(DEVICES)}")
    return name


def _cython_works() -> bool:
    try:
        import Cython  # noqa: F401
    except ImportError:
        return False
    import shutil

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
    prefs.codegen.runtime.cython.cache_dir = str(cache_dir() / "cython")
    prefs.codegen.runtime.cython.multiprocess_safe = True
    return codegen


class StandaloneSession:
    """Book-keeping of the one standalone project a process may hold."""

    active = None  # the owner object of the current project

    @classmethod
    def claim(cls, owner, kind: str):
        from brian2 import device, set_device

        if kind == "cuda_standalone":
            _import_brian2cuda()
        if cls.active is not None:
            device.reinit()
            cls.active._retired = True
            cls.active._drop_objects()
        else:
            try:
                device.reinit()
            except Exception:  # the runtime device has nothing to reset
                pass
        import gc

        gc.collect()  # old objects would push the new ones to suffixed names (a full rebuild)
        set_device(kind, build_on_run=False)
        if kind == "cuda_standalone":
            _cuda_prefs()
        cls.active = owner

    @classmethod
    def release(cls, owner):
        from brian2 import device, set_device

        if cls.active is owner:
            device.reinit()
            set_device("runtime")
            cls.active = None


def _import_brian2cuda():
    try:
        import brian2cuda  # noqa: F401
    except ImportError as exc:
        raise ConfigError("device 'cuda_standalone' needs brian2cuda "
                          f"(pip install 'vpf-spiking[cuda]'): {exc}") from None


def _curand_paths():
    """Include and library folders of the ``nvidia-curand`` wheel (``nvidia/curand`` for CUDA 12,
    ``nvidia/cu13`` for CUDA 13), if installed."""
    import importlib.util

    spec = importlib.util.find_spec("nvidia")
    if spec is None or not spec.submodule_search_locations:
        return None, None
    for root in spec.submodule_search_locations:
        for header in sorted(Path(root).glob("*/include/curand.h")):
            base = header.parent.parent
            lib = base / "lib"
            return str(base / "include"), (str(lib) if lib.is_dir() else None)
    return None, None


def _cuda_prefs():
    from brian2 import prefs

    # Without a GPU in the build machine brian2cuda cannot query one: pin a target instead.
    cc = os.environ.get("VPF_CUDA_COMPUTE_CAPABILITY")
    if cc or os.environ.get("VPF_CUDA_NO_GPU"):
        prefs.devices.cuda_standalone.cuda_backend.detect_gpus = False
        prefs.devices.cuda_standalone.cuda_backend.gpu_id = 0
        prefs.devices.cuda_standalone.cuda_backend.compute_capability = float(cc or 9.0)
    inc, lib = _curand_paths()
    if inc:
        prefs.codegen.cpp.include_dirs = list(prefs.codegen.cpp.include_dirs) + [inc]
    if lib:
        prefs.codegen.cpp.library_dirs = list(prefs.codegen.cpp.library_dirs) + [lib]
        prefs.codegen.cpp.runtime_library_dirs = list(prefs.codegen.cpp.runtime_library_dirs) + [lib]
        # the wheel ships libcurand.so.10 without the unversioned link name the linker wants
        link = Path(lib) / "libcurand.so"
        if not link.exists():
            versioned = sorted(Path(lib).glob("libcurand.so.*"))
            if versioned:
                try:
                    link.symlink_to(versioned[0].name)
                except OSError:
                    pass


def patch_makefile(directory) -> bool:
    """CUDA 13's nvcc rejects ``-std=c++11`` (Thrust/CUB need C++17): rewrite it in place."""
    changed = False
    for name in ("makefile", "Makefile"):
        path = Path(directory) / name
        if path.exists():
            text = path.read_text()
            new = text.replace("-std=c++11", "-std=c++17").replace("-std=c++14", "-std=c++17")
            if new != text:
                path.write_text(new)
                changed = True
    return changed


def build_standalone(directory, kind: str) -> None:
    """Generate, patch and compile the current standalone project (does not run it)."""
    from brian2 import device
    from brian2.codegen.cpp_prefs import get_compiler_and_args

    directory = str(directory)
    device.build(directory=directory, compile=False, run=False, with_output=False)
    if kind == "cuda_standalone":
        patch_makefile(directory)
    compiler, _ = get_compiler_and_args()
    try:
        device.compile_source(directory, compiler, debug=False, clean=False)
    except RuntimeError as exc:
        raise ConfigError(f"compiling the {kind} project in {directory} failed: {exc} "
                          f"(see {directory}/make.log, if present)") from None
