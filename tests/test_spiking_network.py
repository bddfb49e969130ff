"""The spiking engine against exact results: Boltzmann sampling, the VPF gradient, z bookkeeping.

Runtime (Cython) tests are in the default suite; cpp_standalone compiles a project per network
structure (cached under ~/.cache/vpf-spiking), so only one cpp structure runs by default.
"""

import itertools

import numpy as np
import pytest
from scipy import stats

from vpf_spiking import BoltzmannMachine
from vpf_spiking.errors import ConfigError, DataError, ModelError, TrainingDiverged
from vpf_spiking.objective import flow_terms, gradient
from vpf_spiking.spiking import CLAMP1, FREE, HOLD, SpikingNetwork

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def small_model(sizes=(3, 2, 2), intra=(False, True, False), std=0.8, seed=3):
    m = BoltzmannMachine(list(sizes), intra=list(intra), weight_std=std, seed=seed, dtype=np.float64)
    r = np.random.default_rng(seed + 1)
    m.set_parameters({f"b{l}": 0.6 * r.standard_normal(n) for l, n in enumerate(m.sizes)})
    return m


def exact_distribution(m):
    states = np.array(list(itertools.product([0, 1], repeat=m.n_units)), float)
    logp = -m.energy(m.split(states)) / m.temperature
    p = np.exp(logp - logp.max())
    return states, p / p.sum()


def state_index(flat):
    return flat.astype(int) @ (1 << np.arange(flat.shape[1])[::-1])


def g_test(counts, p):
    """G-test p-value of counts against p, pooling cells with expected < 5."""
    n = counts.sum()
    e = n * p
    small = e < 5
    obs = np.append(counts[~small], counts[small].sum())
    exp = np.append(e[~small], e[small].sum())
    keep = exp > 0
    return stats.power_divergence(obs[keep], exp[keep], lambda_="log-likelihood").pvalue


def sample_counts(m, device, seconds, record_ms=100.0, replicas=64, seed=0):
    net = SpikingNetwork(m, device=device, duration_ms=seconds * 1e3, replicas=replicas,
                         record_ms=record_ms, seed=seed)
    try:
        res = net.run()
    finally:
        net.close()
    flat = np.concatenate([s for s in res.samples], axis=2)   # (times, replicas, N)
    flat = flat[2:].reshape(-1, m.n_units)                     # drop the first 200 ms (start at rest)
    return np.bincount(state_index(flat), minlength=2 ** m.n_units), res


@pytest.mark.parametrize("device,seconds,replicas", [("runtime", 3.0, 256), ("cpp_standalone", 12.0, 64)])
def test_free_network_samples_boltzmann_distribution(device, seconds, replicas):
    """Snapshots 10 tau apart from independent copies: a G-test against the exact distribution."""
    m = small_model()
    _, p = exact_distribution(m)
    counts, res = sample_counts(m, device, seconds, replicas=replicas)
    assert counts.sum() > 7000
    assert g_test(counts, p) > 1e-3
    # power: the same counts clearly reject the distribution at a temperature 20-25 % off
    for T in (0.8, 1.25):
        m2 = m.copy()
        m2.temperature = T
        _, p2 = exact_distribution(m2)
        assert g_test(counts, p2) < 1e-6, T
    assert res.n_flips > 10000


def expected_drift(m, y, rule, seconds, eta, eta_b):
    """Expected parameter change over ``seconds`` with every neuron held at y (spec section 5)."""
    scale = seconds * 1e3 / m.tau_ms
    if rule == "symmetric":
        g = gradient(m, y)
        return {k: -eta * m.temperature * scale * v if k[0] != "b" else -eta_b * m.temperature * scale * v
                for k, v in g.items()}
    # asymmetric: only the post-synaptic term y_i a_j d_j (i -> j: lower layer -> upper, i < j inside)
    _, gl = flow_terms(m, y)
    out = {}
    for l in range(1, m.n_layers):
        out[f"W{l}"] = -eta * m.temperature * scale * np.outer(y[l - 1][0], gl[l][0])
    for l in range(m.n_layers):
        if m.U[l] is not None:
            full = np.outer(y[l][0], gl[l][0])
            up = np.triu(full, 1)
            out[f"U{l}"] = -eta * m.temperature * scale * (up + up.T)
        out[f"b{l}"] = -eta_b * m.temperature * scale * gl[l][0]
    return out


def drift_variance(m, y, rule, seconds, eta, eta_b):
    """Poisson variance of every parameter's change: (eta/2)^2 times the expected event count."""
    d, _ = flow_terms(m, y)
    n = [dl[0] * seconds * 1e3 / m.tau_ms for dl in d]   # expected events per neuron
    var = {}
    for l in range(1, m.n_layers):
        v = np.outer(y[l - 1][0], n[l])
        if rule == "symmetric":
            v = v + np.outer(n[l - 1], y[l][0])
        var[f"W{l}"] = v * eta ** 2 / 4
    for l in range(m.n_layers):
        if m.U[l] is not None:
            a = np.outer(y[l][0], n[l])
            if rule == "symmetric":
                v = a + a.T
            else:
                up = np.triu(a, 1)
                v = up + up.T
            var[f"U{l}"] = v * eta ** 2 / 4
        var[f"b{l}"] = n[l] * eta_b ** 2 / 4
    return var


def check_drift(device, rule, seconds, seed=0):
    m = small_model(sizes=(4, 3), intra=(False, True), std=0.7, seed=seed)
    r = np.random.default_rng(seed)
    y = [r.integers(0, 2, (1, n)).astype(float) for n in m.sizes]
    for l in range(m.n_layers):  # make sure both states occur in every layer
        y[l][0, 0], y[l][0, -1] = 1, 0
    eta = eta_b = 1e-6  # small: the rates stay those of the starting parameters
    before = {k: v.copy() for k, v in m.parameters().items()}
    net = SpikingNetwork(m, device=device, duration_ms=seconds * 1e3, rule=rule, eta=eta, eta_b=eta_b, seed=seed)
    try:
        res = net.run(state=y, mode={l: HOLD for l in range(m.n_layers)})
    finally:
        net.close()
    assert all(np.array_equal(a, b) for a, b in zip(res.state, y)), "held neurons changed state"
    exp = expected_drift(before_model(m, before), y, rule, seconds, eta, eta_b)
    var = drift_variance(before_model(m, before), y, rule, seconds, eta, eta_b)
    zs = []
    for k, e in exp.items():
        change = m.parameters()[k] - before[k]
        zero = var[k] == 0
        assert np.all(change[zero] == 0), f"{k}: a parameter without events changed"
        zs.append((change[~zero] - e[~zero]) / np.sqrt(var[k][~zero]))
    z = np.concatenate(zs)
    assert len(z) >= 15
    # synapses of one neuron share its event count, so their z-scores are correlated: test the
    # largest (a wrong rate, sign or missing term shifts them by tens of standard deviations)
    assert np.max(np.abs(z)) < 4.5, z
    return z


def before_model(m, params):
    c = m.copy()
    c.set_parameters(params)
    return c


@pytest.mark.parametrize("rule", ["symmetric", "asymmetric"])
def test_clamped_drift_matches_vpf_gradient_runtime(rule):
    check_drift("runtime", rule, seconds=2.0)


def test_clamped_drift_matches_vpf_gradient_cpp():
    check_drift("cpp_standalone", "symmetric", seconds=20.0, seed=1)


@pytest.mark.slow
def test_clamped_drift_asymmetric_cpp():
    check_drift("cpp_standalone", "asymmetric", seconds=20.0, seed=2)


def test_plasticity_sees_state_after_transition():
    """A free post neuron with pre held at 1, asymmetric rule: every up flip adds +eta/2, every
    down flip -eta/2, so w changes by exactly (eta/2)(y_end - y_start) (minus with the old state)."""
    m = BoltzmannMachine([1, 1], dtype=np.float64, weight_std=0.0)
    eta = 0.01
    net = SpikingNetwork(m, device="runtime", duration_ms=500, rule="asymmetric", eta=eta, seed=4)
    res = net.run(state=[np.ones((1, 1)), np.zeros((1, 1))], mode={0: CLAMP1, 1: FREE})
    assert res.flips[1].sum() > 20
    assert m.W[1][0, 0] == pytest.approx(eta / 2 * res.state[1][0, 0], abs=1e-12)


def test_fields_stay_exact_while_learning():
    m = small_model(sizes=(3, 3, 2), intra=(False, True, True), std=0.5)
    net = SpikingNetwork(m, device="runtime", duration_ms=300, rule="symmetric", eta=0.05, eta_b=0.05, seed=5)
    res = net.run()
    assert res.n_flips > 50
    z = m.local_fields(res.state)
    for l, G in enumerate(net.groups):
        assert np.allclose(np.asarray(G.z[:]), z[l].ravel(), atol=1e-10)
    above = [res.state[l + 1] @ m.W[l + 1].T for l in range(m.n_layers - 1)]
    for l in range(m.n_layers - 1):
        assert np.allclose(np.asarray(net.groups[l].za[:]), above[l].ravel(), atol=1e-10)
    # weights came back into the model and stayed symmetric
    m.validate()


def test_runtime_and_cpp_agree_statistically():
    m = small_model()
    rates = {}
    for device in ("runtime", "cpp_standalone"):
        net = SpikingNetwork(m, device=device, duration_ms=2000, replicas=32, seed=11 if device == "runtime" else 12)
        try:
            res = net.run()
        finally:
            net.close()
        rates[device] = np.concatenate([e.sum(0) for e in res.events])
    a, b = rates["runtime"], rates["cpp_standalone"]
    z = (a - b) / np.sqrt(a + b)   # difference of two Poisson-like counts (conservative for a chain)
    assert np.all(np.abs(z) < 5), z


# ---------------------------------------------------------------------------- refusals
def test_bad_configurations_are_refused():
    m = small_model()
    with pytest.raises(ConfigError, match="unknown device"):
        SpikingNetwork(m, device="gpu", duration_ms=10)
    with pytest.raises(ConfigError, match="too large for tau"):
        SpikingNetwork(m, dt_ms=1.0, duration_ms=10)
    hot = m.copy()
    hot.b[0][:] = -30.0   # resting neurons would leave at exp(15)/tau: dt cannot resolve that
    with pytest.raises(ConfigError, match="too large for the rates"):
        SpikingNetwork(hot, duration_ms=10, dt_ms=0.1).run(state=[np.ones((1, 3)), np.zeros((1, 2)), np.zeros((1, 2))])
    with pytest.raises(ConfigError, match="rule"):
        SpikingNetwork(m, duration_ms=10, rule="hebbian")
    with pytest.raises(ConfigError, match="sampling only"):
        SpikingNetwork(m, duration_ms=10, rule="symmetric", replicas=2)
    with pytest.raises(ConfigError, match="multiple of dt"):
        SpikingNetwork(m, slot_ms=0.15, n_slots=2)
    net = SpikingNetwork(m, duration_ms=1.0)
    with pytest.raises(DataError, match="layer 0"):
        net.run(mode={0: np.zeros((1, 5))})
    with pytest.raises(ConfigError, match="codes"):
        net.run(mode={0: np.full((1, 3), 7.0)})
    with pytest.raises(ConfigError, match="unknown layer"):
        net.run(mode={9: 0})
    with pytest.raises(ModelError, match="binary"):
        net.run(state=[np.full((1, 3), 0.5), np.zeros((1, 2)), np.zeros((1, 2))])
    with pytest.raises(ModelError, match="layer 1"):
        net.run(state=[np.zeros((1, 3)), np.zeros((1, 4)), np.zeros((1, 2))])
    m.W[1][0, 0] = np.nan
    with pytest.raises(ModelError, match="non-finite"):
        net.run()


def test_diverged_weights_are_reported():
    m = small_model()
    net = SpikingNetwork(m, duration_ms=1.0, rule="symmetric", eta=0.01)
    net.run()
    net.synapses["W1"].w[0] = np.nan   # what a blown-up rule leaves behind
    with pytest.raises(TrainingDiverged, match="W1"):
        net._pull()


# ---------------------------------------------------------------------------- control arrays
@pytest.mark.parametrize("codegen", ["cython", "numpy"])
def test_control_arrays_read_the_slot_of_every_time_step(codegen):
    """The shape-free Cython lookup gives what Brian2's TimedArray gives, at every step."""
    from brian2 import Network, NeuronGroup, StateMonitor, defaultclock, ms

    from vpf_spiking.spiking import devices
    from vpf_spiking.spiking.equations import control_array

    devices.setup_runtime(codegen)
    defaultclock.dt = 0.1 * ms
    rows, cols, slot = 7, 3, 0.3
    values = np.arange(rows * cols, dtype=float).reshape(rows, cols)
    table = control_array(values, dt=slot * ms, name="ctl_test2d")
    column = control_array(values[:, 0], dt=slot * ms, name="ctl_test1d")
    G = NeuronGroup(cols, "a : 1\nb : 1", namespace={"ctl_test2d": table, "ctl_test1d": column}, name="ctl_probe")
    G.run_regularly("a = ctl_test2d(t, i)\nb = ctl_test1d(t)", when="start")
    mon = StateMonitor(G, ["a", "b"], record=True, when="end")
    steps = int(round((rows + 2) * slot / 0.1))      # past the end: the last slot is held
    try:
        Network(G, mon).run(steps * 0.1 * ms, namespace={})
    finally:
        devices.setup_runtime()
    slot_of_step = np.minimum(np.floor(np.arange(steps) * 0.1 / slot + 1e-9).astype(int), rows - 1)
    np.testing.assert_array_equal(mon.a[:].T, values[slot_of_step])
    np.testing.assert_array_equal(mon.b[0], values[slot_of_step, 0])


def test_control_array_code_does_not_depend_on_shape_or_slot_length():
    """So the runtime device compiles a network's code once, whatever its size and schedule."""
    from types import SimpleNamespace

    from brian2 import ms

    from vpf_spiking.spiking.equations import control_array

    owner = SimpleNamespace(clock=SimpleNamespace(dt_=1e-4))     # all that code generation asks of a group
    codes = set()
    for shape, slot in [((5,), 1.0), ((40,), 0.5), ((5, 3), 1.0), ((64, 784), 10.0)]:
        ta = control_array(np.zeros(shape), dt=slot * ms, name="ctl_same")
        codes.add((len(shape), ta.implementations["cython"].get_code(owner)))
    assert len(codes) == 2           # one code for 1-D arrays, one for 2-D arrays
