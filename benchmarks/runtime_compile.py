"""Benchmark: Cython compiles of the runtime device when the network's size or schedule changes.

Builds and runs RBMs of three shapes with three schedules (3-2 with 1 slot of 5 ms, 5-4 with 3
slots of 2 ms, 7-3 with 8 slots of 1 ms) on the runtime device, each in a fresh cache, twice:

* ``shape_free``: the engine as shipped (control arrays by :func:`equations.control_array`,
  whose Cython code does not contain the array's shape or slot length);
* ``brian2``: the baseline, Brian2's own ``TimedArray`` code (which writes shape and slot length
  into the code), measured in the same run.

Prints ``name: value`` lines: compiled modules and seconds for the first network and for the two
later ones, and ``later_networks_speedup`` (baseline seconds / shape-free seconds).

    python benchmarks/runtime_compile.py
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile

CHILD = r"""
import glob, json, os, sys, time
import numpy as np
os.environ["VPF_SPIKING_CACHE"] = sys.argv[1]
from vpf_spiking import BoltzmannMachine
from vpf_spiking.spiking import SpikingNetwork, equations
if sys.argv[2] == "brian2":
    equations._shape_free_cython = lambda ta: None       # keep Brian2's TimedArray code
out = []
modules = lambda: len(glob.glob(sys.argv[1] + "/cython/*.so"))
for sizes, n_slots, slot_ms in [([3, 2], 1, 5.0), ([5, 4], 3, 2.0), ([7, 3], 8, 1.0)]:
    m = BoltzmannMachine(sizes, seed=0, dtype=np.float64)
    before, t = modules(), time.perf_counter()
    net = SpikingNetwork(m, device="runtime", slot_ms=slot_ms, n_slots=n_slots, rule="symmetric", eta=0.01, seed=1)
    net.run()
    net.close()
    out.append({"modules": modules() - before, "seconds": time.perf_counter() - t})
print(json.dumps(out))
"""


def measure(variant):
    with tempfile.TemporaryDirectory() as cache:
        res = subprocess.run([sys.executable, "-c", CHILD, cache, variant], capture_output=True, text=True, check=True)
    return json.loads(res.stdout.strip().splitlines()[-1])


def main():
    results = {variant: measure(variant) for variant in ("brian2", "shape_free")}
    for variant, runs in results.items():
        print(f"first_network_modules_{variant}: {runs[0]['modules']}")
        print(f"first_network_s_{variant}: {runs[0]['seconds']:.1f}")
        print(f"later_networks_modules_{variant}: {sum(r['modules'] for r in runs[1:])}")
        print(f"later_networks_s_{variant}: {sum(r['seconds'] for r in runs[1:]):.1f}")
    later = {v: sum(r["seconds"] for r in runs[1:]) for v, runs in results.items()}
    print(f"later_networks_speedup: {later['brian2'] / later['shape_free']:.1f}")


if __name__ == "__main__":
    main()
