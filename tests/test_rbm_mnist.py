"""RBMs trained briefly on real MNIST reconstruct test digits (v -> p(h|v) -> p(v|h)).

Two bars: the untrained model (every pixel 1/2, MSE about 0.25) and the far harder mean-image
predictor (every pixel its training-set mean, MSE 0.084 on these 1,000 test images).

Measured when written (MSE per pixel on the first 1,000 test images): VPF, rbm-200, 5 epochs on
5,000 images, batch 50, Adam 1e-2: 0.035; CD-1, rbm-500, one epoch on 10,000 images, Adam 3e-3:
0.058.  VPF gets several epochs because its first epoch's E-step samples h with the random
initial weights, so h is independent of v and that epoch learns little beyond the biases (one
VPF epoch on 10,000 images: 0.077-0.083, barely below the mean image).
"""

import numpy as np
import pytest
from scipy.special import expit

from vpf_spiking.data import load_images
from vpf_spiking.model import BoltzmannMachine
from vpf_spiking.trainers import make_trainer

pytestmark = pytest.mark.data


@pytest.fixture(scope="module")
def mnist(shared_data_dir):
    x = load_images("mnist", "train", data_dir=shared_data_dir)
    test = load_images("mnist", "test", data_dir=shared_data_dir)[:1000]
    return x, test


def recon_mse(model, v):
    ph = expit(v @ model.W[1] + model.b[1])
    pv = expit(ph @ model.W[1].T + model.b[0])
    return float(np.mean((v - pv) ** 2))


def test_vpf_rbm_reconstructs_mnist(mnist):
    x, test = mnist
    baseline = float(np.mean((test - x.mean(axis=0)) ** 2))
    model = BoltzmannMachine.from_network("rbm-200", seed=0)
    before = recon_mse(model, test)
    df = make_trainer("vpf", epochs=5, batch_size=50, learning_rate=1e-2, progress=False).fit(model, x[:5000])
    after = recon_mse(model, test)
    assert before > 0.2
    assert after < before / 5
    assert after < 0.6 * baseline
    assert df["objective"].is_monotonic_decreasing


def test_cd1_rbm_reconstructs_mnist_after_one_epoch(mnist):
    x, test = mnist
    baseline = float(np.mean((test - x.mean(axis=0)) ** 2))
    model = BoltzmannMachine.from_network("rbm-500", seed=0)
    before = recon_mse(model, test)
    make_trainer("cd", epochs=1, batch_size=100, learning_rate=3e-3, progress=False).fit(model, x[:10000])
    after = recon_mse(model, test)
    assert after < before / 3
    assert after < 0.85 * baseline
