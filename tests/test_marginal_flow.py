"""Marginal flow (probability flow on the RBM free energy), checked exactly on small float64 models."""

import itertools

import numpy as np
import pytest
from scipy.optimize import minimize

from vpf_spiking import marginal_flow as mf
from vpf_spiking.errors import ModelError
from vpf_spiking.model import BoltzmannMachine


def rbm(n_v=5, n_h=3, seed=0, T=1.0, std=0.9):
    m = BoltzmannMachine([n_v, n_h], weight_std=std, seed=seed, dtype=np.float64, temperature=T)
    rng = np.random.default_rng(seed + 7)
    m.b[0][:] = rng.normal(0, 0.7, n_v)
    m.b[1][:] = rng.normal(0, 0.7, n_h)
    return m


def all_states(n):
    return np.array(list(itertools.product([0.0, 1.0], repeat=n)))


def exact_marginal(m):
    """p(v) by enumerating (v, h)."""
    V, H = all_states(m.sizes[0]), all_states(m.sizes[1])
    logp = np.array([[-m.energy([v[None], h[None]])[0] / m.temperature for h in H] for v in V])
    logp = np.logaddexp.reduce(logp, axis=1)
    p = np.exp(logp - logp.max())
    return V, p / p.sum()


@pytest.mark.parametrize("T", [1.0, 1.6])
def test_log_rates_are_free_energy_differences(T):
    m = rbm(T=T, seed=1)
    V, p = exact_marginal(m)
    logp = dict(zip(map(tuple, V), np.log(p)))
    x = V[[3, 10, 17, 30]]
    got = mf.flip_log_rates(m, x)
    for r, v in enumerate(x):
        for i in range(len(v)):
            w = v.copy()
            w[i] = 1 - w[i]
            # (F(v) - F(v')) / 2T = (log p(v') - log p(v)) / 2
            assert got[r, i] == pytest.approx(0.5 * (logp[tuple(w)] - logp[tuple(v)]), abs=1e-10)


@pytest.mark.parametrize("T", [1.0, 0.7])
def test_gradient_matches_finite_differences(T):
    m = rbm(T=T, seed=2)
    x = (np.random.default_rng(3).random((11, 5)) < 0.5).astype(float)
    grads, K = mf.gradient(m, x, return_objective=True, chunk=4)
    assert K == pytest.approx(mf.objective(m, x), rel=1e-12)
    eps = 1e-6
    for key, p in m.parameters().items():
        for idx in np.ndindex(p.shape):
            old = p[idx]
            p[idx] = old + eps
            up = mf.objective(m, x)
            p[idx] = old - eps
            down = mf.objective(m, x)
            p[idx] = old
            assert grads[key][idx] == pytest.approx((up - down) / (2 * eps), abs=1e-7), (key, idx)


def test_hidden_biases_get_a_gradient():
    """Unlike VPF's hidden terms (docs/theory.md), the marginal flow moves the hidden biases."""
    m = rbm(seed=4)
    x = (np.random.default_rng(5).random((50, 5)) < 0.3).astype(float)
    assert np.max(np.abs(mf.gradient(m, x)["b1"])) > 1e-3


def population_gradient(m, V, p):
    """sum_v p(v) dK(v)/dtheta (each state's gradient weighted by its probability)."""
    total = None
    for v, w in zip(V, p):
        g = mf.gradient(m, v[None])
        total = {k: w * a for k, a in g.items()} if total is None else {k: total[k] + w * g[k] for k in g}
    return total


def test_the_model_distribution_is_a_fixed_point():
    m = rbm(seed=6)
    V, p = exact_marginal(m)
    g = population_gradient(m, V, p)
    assert max(float(np.max(np.abs(a))) for a in g.values()) < 1e-12
    # power: under another distribution the population gradient is not 0
    q = np.full(len(V), 1.0 / len(V))
    g = population_gradient(m, V, q)
    assert max(float(np.max(np.abs(a))) for a in g.values()) > 1e-2


def test_minimising_the_population_flow_recovers_the_data_distribution():
    """Fit an RBM of the same size to the exact p(v) of a teacher RBM from a perturbed start:
    the fitted marginal matches the teacher's (KL < 1e-4)."""
    teacher = rbm(n_v=4, n_h=2, seed=8, std=1.5)
    V, p = exact_marginal(teacher)
    student = teacher.copy()
    rng = np.random.default_rng(9)
    for a in student.parameters().values():
        a += rng.normal(0, 0.3, a.shape)
    keys = list(student.parameters())

    def unpack(theta):
        out, k = {}, 0
        for key in keys:
            shape = student.parameters()[key].shape
            n = int(np.prod(shape))
            out[key] = theta[k:k + n].reshape(shape)
            k += n
        return out

    def f(theta):
        student.set_parameters(unpack(theta))
        K = sum(w * mf.objective(student, v[None]) for v, w in zip(V, p))
        g = population_gradient(student, V, p)
        return K, np.concatenate([g[k].ravel() for k in keys])

    theta0 = np.concatenate([student.parameters()[k].ravel() for k in keys])
    res = minimize(f, theta0, jac=True, method="BFGS", options={"gtol": 1e-10, "maxiter": 2000})
    student.set_parameters(unpack(res.x))
    _, q = exact_marginal(student)
    kl = float(np.sum(p * np.log(p / q)))
    start = teacher.copy()
    start.set_parameters(unpack(theta0))
    _, q0 = exact_marginal(start)
    assert float(np.sum(p * np.log(p / q0))) > 1e-2  # the start was really off
    assert kl < 1e-4


def test_refuses_models_other_than_rbms():
    dbm = BoltzmannMachine([4, 3, 2], dtype=np.float64)
    with pytest.raises(ModelError, match="needs an RBM"):
        mf.objective(dbm, np.zeros((1, 4)))
    intra = BoltzmannMachine([4, 3], intra=[False, True], dtype=np.float64)
    with pytest.raises(ModelError, match="needs an RBM"):
        mf.gradient(intra, np.zeros((1, 4)))


def test_a_random_subset_of_flips_is_unbiased():
    """Averaged over every subset of m flips, the scaled subset gradient is the full gradient."""
    m = rbm(n_v=5, seed=10)
    x = (np.random.default_rng(11).random((7, 5)) < 0.5).astype(float)
    full = mf.gradient(m, x)
    subsets = list(itertools.combinations(range(5), 2))
    mean = {k: np.mean([mf.gradient(m, x, flips=list(J))[k] for J in subsets], axis=0) for k in full}
    for k in full:
        np.testing.assert_allclose(mean[k], full[k], atol=1e-12)
    assert not np.allclose(mf.gradient(m, x, flips=[0, 1])["W1"], full["W1"])
