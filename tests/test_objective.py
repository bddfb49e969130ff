"""The VPF objective's math (spec sections 1-2), checked numerically on small float64 models."""

import numpy as np
import pytest

from vpf_spiking.model import BoltzmannMachine
from vpf_spiking.objective import flow, gradient, objective

STRUCTURES = {
    "rbm": ([6, 4], False),
    "three-layer": ([5, 4, 3], False),
    "intra": ([5, 4, 3], [False, True, True]),
    "fully-observed": ([7], True),
}


def random_model(sizes, intra, seed, temperature=1.0, std=0.7):
    m = BoltzmannMachine(sizes, intra=intra, weight_std=std, seed=seed, dtype=np.float64, temperature=temperature)
    rng = np.random.default_rng(seed + 100)
    for b in m.b:
        b[:] = rng.normal(0, 0.7, size=b.shape)
    return m


def random_state(model, batch, seed):
    rng = np.random.default_rng(seed)
    return [(rng.random((batch, n)) < 0.5).astype(np.float64) for n in model.sizes]


@pytest.mark.parametrize("temperature", [1.0, 1.7])
@pytest.mark.parametrize("name", list(STRUCTURES))
def test_gradient_matches_finite_differences(name, temperature):
    sizes, intra = STRUCTURES[name]
    model = random_model(sizes, intra, seed=3, temperature=temperature)
    state = random_state(model, 13, seed=4)
    grads, K = gradient(model, state, return_objective=True)
    assert K == pytest.approx(objective(model, state), rel=1e-12)
    eps = 1e-6
    checked = 0
    for key, p in model.parameters().items():
        num = np.zeros_like(p)
        for idx in np.ndindex(p.shape):
            if key.startswith("U"):
                i, j = idx
                if i >= j:
                    continue  # U is symmetric: perturb (i, j) and (j, i) together
                pairs = [(i, j), (j, i)]
            else:
                pairs = [idx]
            saved = p.copy()
            for q in pairs:
                p[q] += eps
            up = objective(model, state)
            p[...] = saved
            for q in pairs:
                p[q] -= eps
            down = objective(model, state)
            p[...] = saved
            d = (up - down) / (2 * eps)
            for q in pairs:
                # a symmetric pair shares one parameter: each entry carries the pair's derivative
                num[q] = d
            checked += 1
        np.testing.assert_allclose(grads[key], num, rtol=1e-6, atol=1e-8, err_msg=f"{name}: {key}")
    assert checked > 20


@pytest.mark.parametrize("name", list(STRUCTURES))
def test_flip_energy_difference_is_local_field(name):
    sizes, intra = STRUCTURES[name]
    model = random_model(sizes, intra, seed=5)
    state = random_state(model, 9, seed=6)
    flat = model.join(state)
    z = model.join(model.local_fields(state))
    E = model.energy(state)
    for j in range(model.n_units):
        flipped = flat.copy()
        flipped[:, j] = 1 - flipped[:, j]
        dE = E - model.energy(model.split(flipped))
        np.testing.assert_allclose(dE, (1 - 2 * flat[:, j]) * z[:, j], rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("temperature", [1.0, 0.6])
@pytest.mark.parametrize("name", list(STRUCTURES))
def test_flip_rates_satisfy_detailed_balance(name, temperature):
    """p(y) d_j(y) = p(y^(j)) d_j(y^(j)) for every state and unit: MPF rates leave p(y) stationary."""
    sizes, intra = STRUCTURES[name]
    model = random_model(sizes, intra, seed=7, temperature=temperature)
    state = random_state(model, 11, seed=8)
    flat = model.join(state)
    E = model.energy(state)
    d = model.join(model.flip_rates(state))
    for j in range(model.n_units):
        flipped = flat.copy()
        flipped[:, j] = 1 - flipped[:, j]
        Ef = model.energy(model.split(flipped))
        df = model.join(model.flip_rates(model.split(flipped)))
        # log p(y) + log d_j(y) == log p(y') + log d_j(y')
        lhs = -E / temperature + np.log(d[:, j])
        rhs = -Ef / temperature + np.log(df[:, j])
        np.testing.assert_allclose(lhs, rhs, rtol=1e-12, atol=1e-10)


def test_flow_is_sum_of_rates():
    model = random_model([6, 4], False, seed=9)
    state = random_state(model, 5, seed=10)
    rates = model.join(model.flip_rates(state))
    np.testing.assert_allclose(flow(model, state), rates.sum(axis=1), rtol=1e-12)
