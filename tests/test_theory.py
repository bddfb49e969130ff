"""The hidden-flow theorem (docs/theory.md), checked by exact enumeration on small float64 models.

Theorem: if a layer's units are drawn from their exact conditional given everything else the flip
terms see, the expected gradient of that layer's flip terms vanishes for every parameter. Each
"vanishes" test below has a twin where the premise fails (stale parameters, a factorial draw that
ignores intra-layer weights, a DBM middle layer sampled bottom-up) and the expectation is not 0,
so the tests would fail if the zero were an accident of the formula.
"""

import itertools

import numpy as np
import pytest
from scipy.optimize import minimize, minimize_scalar
from scipy.special import expit, logit

from vpf_spiking.model import BoltzmannMachine
from vpf_spiking.objective import flow_terms


def random_model(sizes, intra=False, seed=0, temperature=1.0, std=0.8):
    m = BoltzmannMachine(sizes, intra=intra, weight_std=std, seed=seed, dtype=np.float64,
                         temperature=temperature)
    rng = np.random.default_rng(seed + 50)
    for b in m.b:
        b[:] = rng.normal(0, 0.8, size=b.shape)
    return m


def all_states(n):
    return np.array(list(itertools.product([0.0, 1.0], repeat=n)))


def layer_term_gradient(model, state, layer):
    """Gradient of sum_{j in layer} d_j (per example) for every parameter, as a dict of arrays.

    The spec's gradient (objective.gradient) with the per-unit factors g of all other layers set to
    0: d_j depends on a parameter only through z_j, and dd_j/dz_j = g_j.
    """
    y = model.check_state(state)
    _, g = flow_terms(model, y)
    g = [gl if l == layer else np.zeros_like(gl) for l, gl in enumerate(g)]
    B = y[0].shape[0]
    grads = {}
    for l in range(1, model.n_layers):
        grads[f"W{l}"] = (y[l - 1].T @ g[l] + g[l - 1].T @ y[l]) / B
    for l in range(model.n_layers):
        if model.U[l] is not None:
            G = y[l].T @ g[l]
            G = (G + G.T) / B
            np.fill_diagonal(G, 0.0)
            grads[f"U{l}"] = G
        grads[f"b{l}"] = g[l].sum(axis=0) / B
    return grads


def expected_gradient(model, states, weights, layer):
    """sum_s w_s * gradient of layer's flip terms at state s (weights sum to 1)."""
    total = None
    for s, w in zip(states, weights):
        gr = layer_term_gradient(model, [np.atleast_2d(x) for x in s], layer)
        if total is None:
            total = {k: w * v for k, v in gr.items()}
        else:
            for k in total:
                total[k] += w * gr[k]
    return total


def max_abs(grads):
    return max(float(np.max(np.abs(v))) for v in grads.values())


def factorial(p, states):
    """Probabilities of binary vectors under independent Bernoulli(p)."""
    return np.prod(np.where(states == 1, p, 1 - p), axis=1)


def rbm_posterior(model, v, params_from=None):
    """Enumerated (states, weights) of h ~ prod_j sigmoid(z_j/T) for one v (RBM)."""
    src = params_from or model
    H = all_states(model.sizes[1])
    p = expit((src.b[1] + v @ src.W[1]) / src.temperature)
    return [(v, h) for h in H], factorial(p, H)


@pytest.mark.parametrize("temperature", [1.0, 0.6, 2.3])
def test_rbm_hidden_terms_have_zero_expected_gradient(temperature):
    model = random_model([5, 4], seed=1, temperature=temperature)
    rng = np.random.default_rng(2)
    for _ in range(3):
        v = (rng.random(5) < 0.5).astype(float)
        states, w = rbm_posterior(model, v)
        assert w.sum() == pytest.approx(1.0)
        grads = expected_gradient(model, states, w, layer=1)
        assert max_abs(grads) < 1e-12
        # the visible terms do carry a gradient at the same states
        assert max_abs(expected_gradient(model, states, w, layer=0)) > 1e-2


def test_rbm_hidden_terms_pull_toward_a_stale_conditional():
    """With h drawn from older parameters (a stale E-step) the expectation is no longer 0."""
    model = random_model([5, 4], seed=3)
    stale = model.copy()
    stale.b[1] = stale.b[1] - 1.0
    v = np.array([1.0, 0, 1, 1, 0])
    states, w = rbm_posterior(model, v, params_from=stale)
    grads = expected_gradient(model, states, w, layer=1)
    assert max_abs(grads) > 1e-2
    # its bias gradient points so that gradient descent lowers c: toward the stale conditional
    assert np.all(grads["b1"] > 0)


def test_scalar_identity():
    """E_{h~sigmoid(z/T)} d/dz[(1/2-h) exp((1/2-h) z/T)] = 0 for every z and T."""
    for T in (0.5, 1.0, 3.0):
        for z in np.linspace(-6, 6, 25):
            s = expit(z / T)
            dz = (-s * np.exp(-z / (2 * T)) + (1 - s) * np.exp(z / (2 * T))) / (2 * T)
            assert abs(dz) < 1e-12


def exact_layer_conditional(model, fixed, layer):
    """Enumerated exact p(y_layer | other layers) (with intra-layer weights, not factorial)."""
    n = model.sizes[layer]
    Y = all_states(n)
    states = []
    for y in Y:
        s = [np.array(x, dtype=float) for x in fixed]
        s[layer] = y
        states.append(s)
    E = np.array([model.energy([np.atleast_2d(x) for x in s])[0] for s in states])
    w = np.exp(-(E - E.min()) / model.temperature)
    return states, w / w.sum()


def test_intra_layer_hidden_terms_vanish_under_the_exact_conditional():
    model = random_model([4, 4], intra=[False, True], seed=5, temperature=1.3)
    v = np.array([1.0, 0, 1, 0])
    states, w = exact_layer_conditional(model, [v, np.zeros(4)], layer=1)
    grads = expected_gradient(model, states, w, layer=1)
    assert "U1" in grads
    assert max_abs(grads) < 1e-12


def test_intra_layer_hidden_terms_do_not_vanish_under_a_factorial_draw():
    """Sampling h from sigmoid of the inter-layer field alone (ignoring U) breaks the premise."""
    model = random_model([4, 4], intra=[False, True], seed=5, temperature=1.3)
    v = np.array([1.0, 0, 1, 0])
    H = all_states(4)
    p = expit((model.b[1] + v @ model.W[1]) / model.temperature)
    states = [(v, h) for h in H]
    grads = expected_gradient(model, states, factorial(p, H), layer=1)
    assert max_abs(grads) > 1e-2


def dbm_bottom_up(model, v):
    """Algorithm 2's E-step for [v, h1, h2]: h1 ~ sigmoid(bottom-up field), h2 ~ p(h2 | h1)."""
    T = model.temperature
    H1, H2 = all_states(model.sizes[1]), all_states(model.sizes[2])
    p1 = expit((model.b[1] + v @ model.W[1]) / T)
    w1 = factorial(p1, H1)
    states, weights = [], []
    for h1, a in zip(H1, w1):
        p2 = expit((model.b[2] + h1 @ model.W[2]) / T)
        for h2, b in zip(H2, factorial(p2, H2)):
            states.append((v, h1, h2))
            weights.append(a * b)
    return states, np.array(weights)


def test_dbm_top_layer_terms_vanish_middle_layer_terms_do_not():
    model = random_model([4, 3, 3], seed=7)
    v = np.array([0.0, 1, 1, 0])
    states, w = dbm_bottom_up(model, v)
    assert max_abs(expected_gradient(model, states, w, layer=2)) < 1e-12
    middle = expected_gradient(model, states, w, layer=1)
    assert max_abs(middle) > 1e-2


def test_dbm_middle_layer_gradient_drives_the_top_down_input_to_zero():
    """With W2 = 0 the middle layer's bottom-up draw is exact and its expectation vanishes;
    with W2 != 0, a descent step on the middle terms shrinks the top-down input's magnitude."""
    model = random_model([4, 3, 3], seed=8)
    W2 = model.W[2].copy()
    model.W[2][:] = 0.0
    v = np.array([1.0, 1, 0, 0])
    states, w = dbm_bottom_up(model, v)
    assert max_abs(expected_gradient(model, states, w, layer=1)) < 1e-12

    model.W[2][:] = W2
    states, w = dbm_bottom_up(model, v)
    g = expected_gradient(model, states, w, layer=1)["W2"]

    def mean_sq_top_down(W):
        return sum(wt * np.sum((W @ s[2]) ** 2) for s, wt in zip(states, w))

    step = 1e-3
    assert mean_sq_top_down(W2 - step * g) < mean_sq_top_down(W2)


def test_dbm_top_layer_with_intra_weights_vanishes_under_its_exact_conditional():
    model = random_model([3, 3, 3], intra=[False, False, True], seed=9)
    v, h1 = np.array([1.0, 0, 1]), np.array([0.0, 1, 1])
    states, w = exact_layer_conditional(model, [v, h1, np.zeros(3)], layer=2)
    assert max_abs(expected_gradient(model, states, w, layer=2)) < 1e-12


@pytest.mark.parametrize("T", [1.0, 0.7, 2.0])
@pytest.mark.parametrize("p", [0.05, 0.3, 0.5, 0.9])
def test_visible_term_population_minimiser_is_the_log_odds(p, T):
    """E_v[d] = p e^{-z/2T} + (1-p) e^{z/2T} is minimised at z = T logit p."""
    res = minimize_scalar(lambda z: p * np.exp(-z / (2 * T)) + (1 - p) * np.exp(z / (2 * T)),
                          bounds=(-30, 30), method="bounded", options={"xatol": 1e-10})
    assert res.x == pytest.approx(T * logit(p), abs=1e-6)


def test_visible_terms_fit_a_calibrated_decoder():
    """Minimising the expected visible flow of a 1-visible, 1-hidden model over (b0, W) makes
    sigmoid(z_v(h)/T) equal the data's q(v = 1 | h) for both h: a factorial decoder p(v | h)."""
    T = 1.0
    q_h = np.array([0.6, 0.4])           # q(h)
    q_v_given_h = np.array([0.2, 0.85])  # q(v = 1 | h)

    def expected_visible_flow(theta):
        b, w = theta
        total = 0.0
        for h in (0, 1):
            z = b + w * h
            p = q_v_given_h[h]
            total += q_h[h] * (p * np.exp(-z / (2 * T)) + (1 - p) * np.exp(z / (2 * T)))
        return total

    res = minimize(expected_visible_flow, x0=[0.0, 0.0], method="BFGS", options={"gtol": 1e-10})
    b, w = res.x
    fitted = expit(np.array([b, b + w]) / T)
    np.testing.assert_allclose(fitted, q_v_given_h, atol=1e-5)
