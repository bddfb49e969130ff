"""VPF recovers a known fully observed Boltzmann machine (exact KL divergence by enumeration).

Measured when this test was written (20,000 exact samples, Adam lr 0.01, 20 epochs): KL from the
true distribution to the learnt one 0.0025-0.0090 over five random true models (0.0044 for the
one below), from an initial 0.5-2.0.  The thresholds leave about 3x margin.
"""

import itertools

import numpy as np

from vpf_spiking.model import BoltzmannMachine
from vpf_spiking.networks import load_network
from vpf_spiking.trainers import VPFTrainer


def log_probs(model):
    states = np.array(list(itertools.product([0, 1], repeat=model.sizes[0])), dtype=np.float64)
    lp = -model.copy(np.float64).energy([states]) / model.temperature
    return states, lp - np.logaddexp.reduce(lp)


def kl(lp, lq):
    return float(np.sum(np.exp(lp) * (lp - lq)))


def test_vpf_recovers_a_known_fully_observed_bm():
    true = BoltzmannMachine([10], intra=True, weight_std=0.5, seed=1, dtype=np.float64)
    true.b[0][:] = np.random.default_rng(101).normal(0, 0.5, 10)
    states, lp = log_probs(true)
    x = states[np.random.default_rng(1).choice(len(states), size=20000, p=np.exp(lp))].astype(np.float32)

    model = BoltzmannMachine.from_network(load_network("bm-10"), seed=0)  # the shipped 10-unit network, float32
    assert model.sizes == (10,) and model.intra == [True]
    kl0 = kl(lp, log_probs(model)[1])
    df = VPFTrainer(20, batch_size=100, learning_rate=0.01, seed=0, progress=False).fit(model, x)
    kl1 = kl(lp, log_probs(model)[1])

    assert kl0 > 0.3
    assert kl1 < 0.015
    assert kl1 < kl0 / 50
    assert df["objective"].iloc[-1] < df["objective"].iloc[0]
    # the learnt couplings are the true ones up to sampling noise
    assert np.corrcoef(model.U[0][np.triu_indices(10, 1)], true.U[0][np.triu_indices(10, 1)])[0, 1] > 0.95
