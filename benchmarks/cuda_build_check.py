"""Generate and compile (not run) the cuda_standalone project of a small spiking network.

Proves the CUDA-13 handling without a GPU: the makefile's -std=c++11 -> -std=c++17 rewrite and
cuRAND from the nvidia-curand wheel.  Usage: ``VPF_CUDA_NO_GPU=1 python benchmarks/cuda_build_check.py``
"""

import os
import time

import numpy as np

os.environ.setdefault("VPF_CUDA_NO_GPU", "1")

from vpf_spiking import BoltzmannMachine  # noqa: E402
from vpf_spiking.spiking import SpikingNetwork  # noqa: E402
from vpf_spiking.spiking import devices as dev  # noqa: E402

m = BoltzmannMachine([3, 2, 2], intra=[False, True, False], dtype=np.float64)
net = SpikingNetwork(m, device="cuda_standalone", duration_ms=10, rule="symmetric", eta=0.01)
t = time.perf_counter()
dev.build_standalone(net.directory, "cuda_standalone")
print(f"cuda_project: {net.directory}")
print(f"cuda_compile_s: {time.perf_counter() - t:.1f}")
print(f"cuda_binary_exists: {(net.directory / 'main').exists()}")
mk = (net.directory / "makefile").read_text()
print(f"makefile_std_cxx17: {'-std=c++17' in mk and '-std=c++11' not in mk}")
