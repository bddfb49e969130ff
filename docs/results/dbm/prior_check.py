"""R vs P prior on the MNIST DBMs of docs/results/dbm-mnist.md: P-prior range, shared-seed coupling, blank samples.

Run from the repository root after `vpf run protocols/dbm-mnist.toml`:
    OPENBLAS_NUM_THREADS=1 python docs/results/dbm/prior_check.py
"""
import numpy as np
from vpf_spiking.data import load_images, split_validation
from vpf_spiking.generation import confabulate, top_prior
from vpf_spiking.model import BoltzmannMachine
x, _ = split_validation(load_images("mnist", "train"), 1000)
for name in ["dbm", "dbm-intra"]:
    m = BoltzmannMachine.load(f"runs/dbm-mnist/{name}/model.npz")
    p = top_prior(m, "p", data=x, rng=0)
    r = confabulate(m, 1000, prior="r", steps=50, rng=0, chunk=1000)
    q = confabulate(m, 1000, prior="p", prior_probs=p, steps=50, rng=0, chunk=1000)
    q2 = confabulate(m, 1000, prior="p", prior_probs=p, steps=50, rng=1, chunk=1000)
    same = np.mean(np.abs(r - q).max(axis=1) < 1e-6)
    print(f"{name}: P prior min {p.min():.3f} median {np.median(p):.3f} max {p.max():.3f}; "
          f"R vs P with the same seed: {same:.1%} identical samples; "
          f"P seed 0 vs seed 1: {np.mean(np.abs(q - q2).max(axis=1) < 1e-6):.1%} identical; "
          f"blank samples (max p < 0.5): R {np.mean(r.max(axis=1) < 0.5):.1%}, P {np.mean(q.max(axis=1) < 0.5):.1%}")
