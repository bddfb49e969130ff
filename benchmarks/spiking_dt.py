"""How large is the time-step error?  Sampled vs exact distribution of a 7-neuron network.

The network of tests/test_spiking_network.py (3-2-2, intra-layer links in the middle layer),
free running on cpp_standalone with 64 independent copies, snapshots every 100 ms; for each dt
prints the total variation distance and KL(exact || sampled) to the exact Boltzmann
distribution, next to the TV expected from sampling noise alone (iid multinomial draws of the
same size from the exact distribution).

Usage: ``python benchmarks/spiking_dt.py [--dts 0.1,0.25,0.5] [--seconds 60]``
"""

from __future__ import annotations

import argparse
import itertools
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from test_spiking_network import exact_distribution, small_model, state_index  # noqa: E402

from vpf_spiking.spiking import SpikingNetwork  # noqa: E402


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dts", default="0.1,0.25,0.5")
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--replicas", type=int, default=64)
    args = ap.parse_args(argv)
    m = small_model()
    _, p = exact_distribution(m)
    rng = np.random.default_rng(0)
    print("dt_ms  n_samples  TV      TV_noise(iid)  KL(p||q)   flips_per_neuron_s")
    for dt in [float(s) for s in args.dts.split(",")]:
        net = SpikingNetwork(m, device="cpp_standalone", dt_ms=dt, duration_ms=args.seconds * 1e3,
                             replicas=args.replicas, record_ms=100.0, seed=1)
        res = net.run()
        net.close()
        flat = np.concatenate(res.samples, axis=2)[2:].reshape(-1, m.n_units)
        n = len(flat)
        q = np.bincount(state_index(flat), minlength=len(p)) / n
        tv = 0.5 * np.abs(q - p).sum()
        noise = np.mean([0.5 * np.abs(rng.multinomial(n, p) / n - p).sum() for _ in range(50)])
        kl = float(np.sum(p * (np.log(p) - np.log(np.maximum(q, 1e-12)))))
        fr = res.n_flips / (m.n_units * args.replicas * res.duration_s)
        print(f"{dt:<6} {n:<10} {tv:.4f}  {noise:.4f}         {kl:.5f}    {fr:.1f}")


if __name__ == "__main__":
    main()
