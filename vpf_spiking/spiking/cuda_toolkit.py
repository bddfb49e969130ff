"""What the ``cuda_standalone`` back-end needs from the machine: nvcc, a GPU, cuRAND, a C++17 makefile.

brian2cuda 1.0b1 writes ``-std=c++11`` into its makefile, which CUDA 13's headers refuse
(:func:`patch_makefile`), and expects cuRAND in the CUDA toolkit, which pip-installed CUDA keeps
in the ``nvidia-curand`` wheel (:func:`curand_paths`).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path


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


def curand_paths(search_locations=None):
    """Include and library folders of the ``nvidia-curand`` wheel (``nvidia/curand`` for CUDA 12,
    ``nvidia/cu13`` for CUDA 13), or ``(None, None)``.

    ``search_locations`` defaults to the folders of the ``nvidia`` namespace package.
    """
    if search_locations is None:
        import importlib.util

        spec = importlib.util.find_spec("nvidia")
        if spec is None or not spec.submodule_search_locations:
            return None, None
        search_locations = spec.submodule_search_locations
    for root in search_locations:
        for header in sorted(Path(root).glob("*/include/curand.h")):
            base = header.parent.parent
            lib = base / "lib"
            return str(base / "include"), (str(lib) if lib.is_dir() else None)
    return None, None


def _has_gpu() -> bool:
    return (shutil.which("nvidia-smi") is not None or Path("/dev/nvidia0").exists()
            or any(Path("/proc/driver/nvidia/gpus").glob("*")))


def _has_nvcc() -> bool:
    cuda = os.environ.get("CUDA_PATH") or os.environ.get("CUDA_HOME")
    return (shutil.which("nvcc") is not None or (cuda is not None and Path(cuda, "bin", "nvcc").exists())
            or Path("/usr/local/cuda/bin/nvcc").exists())


def _gpu_pinned() -> bool:
    return bool(os.environ.get("VPF_CUDA_COMPUTE_CAPABILITY") or os.environ.get("VPF_CUDA_NO_GPU"))


def _link_unversioned(lib: Path):
    """The wheel ships ``libcurand.so.10`` without the unversioned link name the linker wants."""
    link = lib / "libcurand.so"
    if not link.exists():
        versioned = sorted(lib.glob("libcurand.so.*"))
        if versioned:
            try:
                link.symlink_to(versioned[0].name)
            except OSError:
                pass
