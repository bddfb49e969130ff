"""The model's conditionals and free energy against brute-force enumeration of tiny models."""

import itertools

import numpy as np
import pytest

from vpf_spiking.errors import ModelError
from vpf_spiking.model import BoltzmannMachine, pixel_log_odds, softplus


def tiny(sizes, T=1.3, seed=0, intra=False):
    m = BoltzmannMachine(sizes, intra=intra, weight_std=0.8, seed=seed, dtype=np.float64, temperature=T)
    rng = np.random.default_rng(seed + 1)
    for b in m.b:
        b[:] = rng.normal(0, 0.8, size=b.shape)
    return m


def states(n):
    return np.array(list(itertools.product([0.0, 1.0], repeat=n)))


def joint(m):
    """Every joint state (as per-layer arrays) and its normalised probability exp(-E/T) / Z."""
    ys = states(m.n_units)
    logp = -m.energy(m.split(ys)) / m.temperature
    p = np.exp(logp - logp.max())
    return m.split(ys), p / p.sum()


def conditional_on(m, layer, given):
    """p(y_layer = 1 | every other layer = given[l]) by summing the joint over matching states."""
    y, p = joint(m)
    keep = np.ones(len(p), dtype=bool)
    for l, g in given.items():
        keep &= np.all(y[l] == g, axis=1)
    return (p[keep, None] * y[layer][keep]).sum(axis=0) / p[keep].sum()


@pytest.mark.parametrize("T", [1.0, 1.3])
def test_rbm_conditionals_match_enumeration(T):
    m = tiny([3, 2], T=T)
    for v in states(3):
        np.testing.assert_allclose(m.hidden_probabilities(v[None])[0], conditional_on(m, 1, {0: v}), rtol=1e-12)
    for h in states(2):
        np.testing.assert_allclose(m.visible_probabilities(h[None])[0], conditional_on(m, 0, {1: h}), rtol=1e-12)


@pytest.mark.parametrize("T", [1.0, 0.7])
def test_rbm_free_energy_matches_enumeration(T):
    m = tiny([3, 2], T=T)
    H = states(2)
    for v in states(3):
        e = m.energy([np.repeat(v[None], len(H), 0), H])  # E(v, h) for every h
        F = -T * np.logaddexp.reduce(-e / T)
        assert m.free_energy(v[None])[0] == pytest.approx(F, rel=1e-12, abs=1e-12)


def test_free_energy_in_float32_and_chunks():
    m64 = tiny([5, 4])
    v = states(5)
    m32 = m64.copy(np.float32)
    np.testing.assert_allclose(m32.free_energy(v.astype(np.float32)), m64.free_energy(v), rtol=1e-5)
    np.testing.assert_allclose(m64.free_energy(v, chunk=3), m64.free_energy(v), rtol=1e-14)
    assert m64.free_energy(v.astype(bool)).dtype == np.float64


def test_dbm_layer_conditionals_match_enumeration():
    m = tiny([2, 3, 2])
    for v, h2 in itertools.product(states(2), states(2)):
        state = [v[None], np.zeros((1, 3)), h2[None]]
        np.testing.assert_allclose(m.layer_probabilities(state, 1)[0], conditional_on(m, 1, {0: v, 2: h2}),
                                   rtol=1e-12)
        # bottom-up: as if h2 were off (the E-step's zeroed top-down input)
        np.testing.assert_allclose(m.layer_probabilities(state, 1, above=False)[0],
                                   conditional_on(m, 1, {0: v, 2: np.zeros(2)}), rtol=1e-12)
        np.testing.assert_allclose(m.hidden_probabilities(v[None])[0], conditional_on(m, 1, {0: v, 2: np.zeros(2)}),
                                   rtol=1e-12)
    for h1 in states(3):
        state = [np.zeros((1, 2)), h1[None], np.zeros((1, 2))]
        np.testing.assert_allclose(m.layer_probabilities(state, 0)[0], conditional_on(m, 0, {1: h1, 2: np.zeros(2)}),
                                   rtol=1e-12)
        np.testing.assert_allclose(m.layer_probabilities(state, 2)[0], conditional_on(m, 2, {0: np.zeros(2), 1: h1}),
                                   rtol=1e-12)


def test_external_field_is_the_local_field_without_intra_terms():
    m = tiny([3, 4, 2], intra=[False, True, False])
    rng = np.random.default_rng(0)
    y = [(rng.random((6, n)) < 0.5).astype(float) for n in m.sizes]
    z = m.local_fields(y)
    np.testing.assert_allclose(m.external_field(y, 1), z[1] - y[1] @ m.U[1], rtol=1e-12)
    np.testing.assert_allclose(m.external_field(y, 0), z[0], rtol=1e-12)
    np.testing.assert_allclose(m.external_field(y, 2, above=True), z[2], rtol=1e-12)


def test_in_place_conditionals_give_the_same_numbers():
    m = BoltzmannMachine([20, 7], seed=3, weight_std=0.5, temperature=1.3)
    v = (np.random.default_rng(1).random((9, 20)) < 0.5).astype(np.float32)
    out = np.empty((9, 7), np.float32)
    assert m.hidden_probabilities(v, out=out) is out
    assert np.array_equal(out, m.hidden_probabilities(v))
    assert out.dtype == np.float32
    hv = np.empty((9, 20), np.float32)
    assert np.array_equal(m.visible_probabilities(out, out=hv), m.visible_probabilities(out))
    z = np.linspace(-3, 3, 7).astype(np.float32)
    np.testing.assert_allclose(m.firing_probability(z), 1 / (1 + np.exp(-z / 1.3)), rtol=1e-6)


def test_conditionals_refuse_models_they_do_not_apply_to():
    fo = BoltzmannMachine([4], intra=True)
    with pytest.raises(ModelError, match="no hidden layer"):
        fo.hidden_probabilities(np.zeros((1, 4)))
    with pytest.raises(ModelError, match="RBMs"):
        BoltzmannMachine([4, 3, 2]).free_energy(np.zeros((1, 4)))
    with pytest.raises(ModelError, match="expected"):
        BoltzmannMachine([4, 3]).free_energy(np.zeros((1, 5)))


def test_pixel_log_odds():
    x = np.array([[1, 0, 1], [1, 0, 0], [1, 0, 1], [1, 0, 0]], dtype=np.float32)
    x64 = x.astype(np.float64)
    p = (x64.sum(0) + 1.0) / (4 + 2.0)
    np.testing.assert_allclose(pixel_log_odds(x), np.log(p / (1 - p)), rtol=1e-12)
    np.testing.assert_allclose(pixel_log_odds(x, temperature=2.0, smoothing=0.5),
                               2.0 * np.log((x64.sum(0) + 0.5) / (4 - x64.sum(0) + 0.5)), rtol=1e-12)
    # the independent model with these biases fires at the smoothed marginals
    m = BoltzmannMachine([3, 1], temperature=2.0, dtype=np.float64)
    m.b[0][:] = pixel_log_odds(x, temperature=2.0)
    np.testing.assert_allclose(m.visible_probabilities(np.zeros((1, 1)))[0], p, rtol=1e-12)
    with pytest.raises(ModelError, match="smoothing"):
        pixel_log_odds(x, smoothing=0)
    with pytest.raises(ModelError, match="2-D"):
        pixel_log_odds(x[0])


def test_softplus_is_stable():
    x = np.array([-800.0, -3.0, 0.0, 2.0, 800.0])
    np.testing.assert_allclose(softplus(x), np.logaddexp(0, x), rtol=1e-14)
