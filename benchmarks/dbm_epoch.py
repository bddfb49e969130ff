"""Time one VPF epoch of the 2-layer MNIST DBM (784-500-1000), without and with intra-layer weights.

Prints ``name: value`` lines:

    dbm_epoch_s: ...        one epoch (E-step + M-step), no intra-layer weights
    dbm_intra_epoch_s: ...  the same with U in both hidden layers (dbm-500-1000-intra)
    intra_overhead: ...     their ratio (target <= 3)

Usage: ``python benchmarks/dbm_epoch.py [--n N] [--repeats R]`` (defaults: all 60,000 MNIST
training images, 1 repeat; the fastest repeat is reported).  Wall-clock seconds: on a shared
machine they are noisy.
"""

import argparse
import time

import numpy as np

from vpf_spiking.data import load_images
from vpf_spiking.model import BoltzmannMachine
from vpf_spiking.trainers import VPFTrainer


def epoch_seconds(network, x, repeats):
    best = np.inf
    for r in range(repeats):
        model = BoltzmannMachine.from_network(network, seed=r)
        trainer = VPFTrainer(epochs=1, batch_size=100, learning_rate=1e-3, seed=r, progress=False)
        t0 = time.perf_counter()
        trainer.fit(model, x)
        best = min(best, time.perf_counter() - t0)
    return best


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=60000, help="training images (default: all 60,000)")
    ap.add_argument("--repeats", type=int, default=1, help="repeats per model; the fastest is reported")
    args = ap.parse_args(argv)
    x = load_images("mnist", "train")[:args.n]
    plain = epoch_seconds("dbm-500-1000", x, args.repeats)
    print(f"dbm_epoch_s: {plain:.2f}", flush=True)
    intra = epoch_seconds("dbm-500-1000-intra", x, args.repeats)
    print(f"dbm_intra_epoch_s: {intra:.2f}")
    print(f"intra_overhead: {intra / plain:.2f}")
    print(f"n_examples: {len(x)}")


if __name__ == "__main__":
    main()
