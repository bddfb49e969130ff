"""8 points of a short training protocol: one after another by ``vpf run``, then by ``vpf sweep``.

    ../shared/tools/quiet .venv/bin/python benchmarks/sweep.py [--workers 2] [--points 8]

Both runs use the same protocol (``protocols/train-rbm-mnist.toml`` cut to a few seconds per
point: a 784-100 RBM, 2 epochs on 10,000 images) and a grid over ``training.seed``; each point of
the sequential run is ``vpf run PROTOCOL --set training.seed=S --out DIR/S`` with one BLAS
thread, so both runs do the same work per point. Prints, as ``name: value`` lines:

* ``sequential_s``: wall time of the points one after another;
* ``sweep_s``: wall time of ``vpf sweep --workers N`` over the same points (cluster start included);
* ``sweep_speedup``: sequential_s / sweep_s (target >= 1.7 with 2 workers on 2 cores);
* ``sweep_overhead_s``: (sweep_s * N - sequential_s) / points, the extra wall time a point costs
  inside a sweep (process start, scheduling, bookkeeping), per worker-slot.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
VPF = str(Path(sys.executable).with_name("vpf"))
SETTINGS = ["--set", "network.name='rbm-100'", "--set", "data.n_train=10000", "--set", "training.epochs=2",
            "--set", "training.progress=false"]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--points", type=int, default=8)
    args = ap.parse_args(argv)
    protocol = str(REPO / "protocols" / "train-rbm-mnist.toml")
    seeds = list(range(args.points))
    env = {**os.environ, "VPF_BLAS_THREADS": "1", "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}
    print(f"load average before: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        t0 = time.perf_counter()
        for s in seeds:
            subprocess.run([VPF, "run", protocol, *SETTINGS, "--set", f"training.seed={s}",
                            "--out", str(tmp / "seq" / str(s))], check=True, env=env, stdout=subprocess.DEVNULL)
        sequential = time.perf_counter() - t0
        t0 = time.perf_counter()
        subprocess.run([VPF, "sweep", protocol, *SETTINGS, "--grid", "training.seed=" + ",".join(map(str, seeds)),
                        "--workers", str(args.workers), "--blas-threads", "1", "--no-progress",
                        "--out", str(tmp / "sweep")], check=True, env=env, stdout=subprocess.DEVNULL)
        swept = time.perf_counter() - t0
    print(f"points: {args.points}")
    print(f"workers: {args.workers}")
    print(f"sequential_s: {sequential:.2f}")
    print(f"sweep_s: {swept:.2f}")
    print(f"sweep_speedup: {sequential / swept:.3f}")
    print(f"sweep_overhead_s: {(swept * args.workers - sequential) / args.points:.3f}")
    print(f"load average after: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")


if __name__ == "__main__":
    main()
