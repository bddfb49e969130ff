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


# ---------------------------------------------------------------------------- the fused RB-VPF kernel (RBMs)
def rbm(sizes=(30, 20), dtype=np.float64, T=1.0, seed=1):
    m = BoltzmannMachine(list(sizes), weight_std=0.5, seed=seed, dtype=dtype, temperature=T)
    rng = np.random.default_rng(seed + 10)
    for b in m.b:
        b[:] = rng.normal(size=b.shape)
    return m


@pytest.mark.parametrize("dtype,T", [(np.float64, 1.0), (np.float64, 1.3), (np.float32, 1.0), (np.float32, 0.7)])
def test_fused_rao_blackwell_kernel_equals_the_reference(dtype, T, monkeypatch):
    """Same random numbers: the same hidden sample as the reference sampler, the same gradient and K."""
    from vpf_spiking.trainers.base import uniform
    from vpf_spiking.trainers.vpf import RaoBlackwellWorkspace

    m = rbm(dtype=dtype, T=T)
    v = (np.random.default_rng(0).random((17, 30)) < 0.4).astype(dtype)
    ws = RaoBlackwellWorkspace(m, 17)
    ws.v[...] = v
    calls = []
    matmul = np.matmul
    monkeypatch.setattr(np, "matmul", lambda *a, **k: calls.append(a[0].shape) or matmul(*a, **k))
    K = ws.compute(m, np.random.default_rng(5))
    monkeypatch.undo()
    assert len(calls) == 3  # hidden field, visible field, one gradient product
    # the reference: h ~ Bernoulli(p(h | v)) from the same stream, then rao_blackwell_gradient at [v, h]
    rng = np.random.default_rng(5)
    p = m.firing_probability(m.external_field([v, None], 1, above=False))
    h = (uniform(rng, np.empty_like(p)) < p).astype(dtype)
    assert np.array_equal(ws.h, h)
    ref, K_ref = rao_blackwell_gradient(m, [v, h])
    tol = dict(rtol=1e-12, atol=1e-15) if dtype == np.float64 else dict(rtol=2e-5, atol=1e-7)
    assert K == pytest.approx(K_ref, rel=tol["rtol"])
    assert ws.grads.keys() == ref.keys()
    for k in ref:
        assert ws.grads[k].dtype == dtype
        np.testing.assert_allclose(ws.grads[k], ref[k], err_msg=k, **tol)
    assert not np.any(ws.grads["b1"])


def test_fused_rao_blackwell_sampler_is_the_conditional():
    """Many draws at one visible state: the mean of h is sigmoid(field / T)."""
    from vpf_spiking.trainers.vpf import RaoBlackwellWorkspace

    m = rbm((8, 6), dtype=np.float32, T=1.4)
    v = (np.random.default_rng(2).random((1, 8)) < 0.5).astype(np.float32)
    ws = RaoBlackwellWorkspace(m, 20000)
    ws.v[...] = v
    ws.compute(m, np.random.default_rng(3))
    p = sigmoid(m.external_field([v, None], 1, above=False)[0].astype(np.float64) / m.temperature)
    se = np.sqrt(p * (1 - p) / 20000)
    assert np.all(np.abs(ws.h.mean(axis=0) - p) < 5 * se + 1e-6)


@pytest.mark.parametrize("optimizer", ["adam", "sgd"])
def test_fused_rao_blackwell_epoch_equals_the_generic_epoch(optimizer):
    """An RBM through the fused kernel and through rao_blackwell_gradient: the same training run."""
    x = mnist_like(230)  # the last minibatch is smaller (a second workspace)
    kw = dict(batch_size=50, flow="rao-blackwell", optimizer=optimizer, learning_rate=0.05,
              weight_decay=1e-3, momentum=0.5 if optimizer == "sgd" else 0.0, progress=False)
    out = {}
    for path in ("fused", "generic"):
        m = rbm((16, 8), dtype=np.float64)
        tr = VPFTrainer(epochs=1, **kw)
        rng = np.random.default_rng(4)
        epoch = tr._rao_blackwell_epoch if path == "fused" else tr._rao_blackwell_generic_epoch
        Ks = [epoch(m, x.astype(np.float64), rng, None, e) for e in (1, 2, 3)]
        out[path] = (m, Ks, rng.random())
    (mf, Kf, rf), (mg, Kg, rg) = out["fused"], out["generic"]
    assert rf == rg  # the same random numbers were drawn
    np.testing.assert_allclose(Kf, Kg, rtol=1e-10)
    for k, p in mg.parameters().items():
        np.testing.assert_allclose(mf.parameters()[k], p, rtol=1e-9, atol=1e-12, err_msg=k)
    assert not np.allclose(mf.W[1], rbm((16, 8)).W[1])  # it trained


def test_rao_blackwell_resume_is_exact(tmp_path):
    x = mnist_like()
    kw = dict(batch_size=32, flow="rao-blackwell", seed=2, progress=False)
    straight = BoltzmannMachine([16, 8], seed=1)
    VPFTrainer(epochs=3, **kw).fit(straight, x)
    ck = tmp_path / "rb.npz"
    part = BoltzmannMachine([16, 8], seed=1)
    VPFTrainer(epochs=1, checkpoint=ck, **kw).fit(part, x)
    resumed = BoltzmannMachine([16, 8], seed=5)
    VPFTrainer(epochs=3, checkpoint=ck, **kw).fit(resumed, x, resume=True)
    for k, p in straight.parameters().items():
        assert np.array_equal(resumed.parameters()[k], p), k


def test_rao_blackwell_trains_a_dbm_and_leaves_the_top_biases():
    """DBMs take the generic path: the top layer resampled, its flip terms (and bias gradient) dropped."""
    m = BoltzmannMachine([16, 6, 4], seed=0)
    top = m.b[2].copy()
    hist = VPFTrainer(epochs=3, learning_rate=0.02, flow="rao-blackwell", progress=False, seed=0).fit(m, mnist_like())
    assert np.all(np.isfinite(hist["objective"]))
    assert np.array_equal(m.b[2], top)
