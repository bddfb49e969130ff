"""CPU time of one asynchronous Gibbs sweep over a 1,000-unit layer with intra-layer weights.

Prints ``name: value`` lines: ``sweep_s`` (one sweep, :func:`vpf_spiking.sampling._async_sweeps`),
``gemm_s`` (one (batch x 1000) @ (1000 x 1000) float32 GEMM, the arithmetic floor) and their
ratio (and with ``--naive`` the first, unit-by-unit implementation), for ``--batch`` chains (default 5,000); best of 3 repeats, process CPU time.
Run with ``OPENBLAS_NUM_THREADS=1`` for single-core numbers.
"""

import argparse
import time

import numpy as np

from vpf_spiking import sampling


def naive_sweep(U, ext, y, rng):
    """The first implementation: update the whole (batch x n) field after every unit (rank 1)."""
    field = ext + y @ U
    u = rng.random(y.shape, dtype=np.float32)
    for j in range(y.shape[1]):
        new = (u[:, j] < sampling.sigmoid(field[:, j])).astype(y.dtype)
        delta = new - y[:, j]
        if np.any(delta):
            y[:, j] = new
            field += delta[:, None] * U[j][None, :]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=5000)
    ap.add_argument("--units", type=int, default=1000)
    ap.add_argument("--naive", action="store_true", help="also time the first, unit-by-unit implementation")
    args = ap.parse_args(argv)
    B, n = args.batch, args.units
    rng = np.random.default_rng(0)
    U = np.triu(0.05 * rng.standard_normal((n, n)), 1)
    U = (U + U.T).astype(np.float32)
    ext = rng.standard_normal((B, n)).astype(np.float32)
    y = np.zeros((B, n), np.float32)
    order = np.arange(n)
    sweep, gemm = np.inf, np.inf
    for _ in range(3):
        t = time.process_time()
        sampling._async_sweeps(U, ext, y, 1.0, rng, 1, None, order)
        sweep = min(sweep, time.process_time() - t)
        t = time.process_time()
        y @ U
        gemm = min(gemm, time.process_time() - t)
    print(f"sweep_s: {sweep:.3f}")
    print(f"gemm_s: {gemm:.3f}")
    print(f"sweep_over_gemm: {sweep / gemm:.1f}")
    if args.naive:
        t = time.process_time()
        naive_sweep(U, ext, np.zeros((B, n), np.float32), rng)
        print(f"naive_sweep_s: {time.process_time() - t:.3f}")


if __name__ == "__main__":
    main()
