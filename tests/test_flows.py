"""The VPF trainer's flow option: joint (the paper), rao-blackwell and marginal (extensions)."""

import itertools

import numpy as np
import pytest

from vpf_spiking.errors import ConfigError
from vpf_spiking.model import BoltzmannMachine
from vpf_spiking.objective import gradient
from vpf_spiking.sampling import sigmoid
from vpf_spiking.trainers import VPFTrainer
from vpf_spiking.trainers.vpf import rao_blackwell_gradient


def model(sizes, intra=False, seed=0):
    m = BoltzmannMachine(sizes, intra=intra, weight_std=0.9, seed=seed, dtype=np.float64)
    rng = np.random.default_rng(seed + 3)
    for b in m.b:
        b[:] = rng.normal(0, 0.7, b.shape)
    return m


def top_states(m, lower):
    """Every top-layer state with its exact conditional probability given ``lower`` (one example)."""
    L = m.n_layers - 1
    p = sigmoid(m.external_field([*lower, None], L, above=False)[0] / m.temperature)
    for t in itertools.product([0.0, 1.0], repeat=m.sizes[L]):
        t = np.array(t)
        yield [*lower, t[None]], float(np.prod(np.where(t == 1, p, 1 - p)))


@pytest.mark.parametrize("sizes,intra", [([5, 3], False), ([4, 3, 3], False), ([4, 3, 2], [False, True, False])])
def test_rao_blackwell_has_the_expected_gradient_of_a_fresh_e_step(sizes, intra):
    """Averaged over the top layer's exact conditional, the estimator equals VPF's gradient."""
    m = model(sizes, intra)
    rng = np.random.default_rng(1)
    lower = [(rng.random((1, n)) < 0.5).astype(float) for n in sizes[:-1]]
    rb, full = None, None
    for state, w in top_states(m, lower):
        g_rb, _ = rao_blackwell_gradient(m, state)
        g_full = gradient(m, state)
        rb = {k: w * v for k, v in g_rb.items()} if rb is None else {k: rb[k] + w * g_rb[k] for k in rb}
        full = {k: w * v for k, v in g_full.items()} if full is None else {k: full[k] + w * g_full[k] for k in full}
    for k in full:
        np.testing.assert_allclose(rb[k], full[k], atol=1e-12, err_msg=k)
    # power: state by state the two differ (the dropped terms are noise, not zero)
    state, _ = next(top_states(m, lower))
    assert not np.allclose(rao_blackwell_gradient(m, state)[0][f"W{len(sizes) - 1}"],
                           gradient(m, state)[f"W{len(sizes) - 1}"])


def mnist_like(n=300, d=16, seed=0):
    rng = np.random.default_rng(seed)
    protos = (rng.random((3, d)) < 0.4)
    x = protos[rng.integers(0, 3, n)] ^ (rng.random((n, d)) < 0.05)
    return x.astype(np.float32)


@pytest.mark.parametrize("flow", ["joint", "rao-blackwell", "marginal"])
def test_every_flow_trains_an_rbm_and_lowers_its_objective(flow):
    x = mnist_like()
    m = BoltzmannMachine([16, 8], seed=0)
    tr = VPFTrainer(epochs=6, learning_rate=0.02, flow=flow, flips=0, progress=False, seed=0)
    hist = tr.fit(m, x)
    K = list(hist["objective"])
    assert K[-1] < K[0]
    assert tr.config()["flow"] == flow


def test_marginal_flow_moves_the_hidden_biases_and_joint_flow_barely_does():
    """The theorem's prediction at work: VPF's hidden terms give the hidden biases no signal."""
    x = mnist_like(600)
    moved = {}
    for flow in ("joint", "marginal"):
        m = BoltzmannMachine([16, 8], seed=0)
        VPFTrainer(epochs=10, learning_rate=0.02, flow=flow, flips=0, progress=False, seed=0,
                   weight_decay=0.0).fit(m, x)
        moved[flow] = float(np.sqrt(np.mean(m.b[1] ** 2)))
    assert moved["marginal"] > 2 * moved["joint"]


def test_flow_options_are_checked():
    with pytest.raises(ConfigError, match="flow"):
        VPFTrainer(epochs=1, flow="sideways")
    with pytest.raises(ConfigError, match="needs an RBM"):
        VPFTrainer(epochs=1, flow="marginal", progress=False).fit(BoltzmannMachine([16, 4, 3]), mnist_like())
    with pytest.raises(ConfigError, match="top layer without intra-layer"):
        VPFTrainer(epochs=1, flow="rao-blackwell", progress=False).fit(
            BoltzmannMachine([16, 4], intra=[False, True]), mnist_like())
    with pytest.raises(ConfigError, match="flips"):
        VPFTrainer(epochs=1, flips=-1)
