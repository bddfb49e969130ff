"""Confabulations (Algorithm 3): exact stationary distributions of tiny models, priors, errors."""

import itertools

import numpy as np
import pytest

from vpf_spiking import generation
from vpf_spiking.errors import ConfigError, DataError, ModelError
from vpf_spiking.generation import confabulate, top_prior
from vpf_spiking.model import BoltzmannMachine
from vpf_spiking.sampling import sigmoid


def all_states(n):
    return np.array(list(itertools.product([0, 1], repeat=n)), dtype=np.float64)


def frequencies(y):
    w = 2 ** np.arange(y.shape[1])[::-1]
    return np.bincount((y @ w).astype(int), minlength=2 ** y.shape[1]) / len(y)


def tiny(sizes, intra=False, std=1.5, seed=0):
    m = BoltzmannMachine(list(sizes), intra=intra, weight_std=std, seed=seed, dtype=np.float64)
    rng = np.random.default_rng(seed + 1)
    for l in range(m.n_layers):
        m.b[l] = rng.normal(0, 0.8, m.sizes[l])
    return m


def joint_table(m):
    """p(y) of every state of a small model, as an array indexed [v, h1, h2, ...] in bits order."""
    S = all_states(m.n_units)
    logp = -m.energy(m.split(S))
    p = np.exp(logp - logp.max())
    return (p / p.sum()).reshape([2 ** n for n in m.sizes])


def algorithm3_limit(m, v_held=None):
    """Output distribution of Algorithm 3 (top_down="held") on a 2-layer DBM as K -> infinity.

    Stage 2 samples (h1, h2) from the DBM with v held at ``v_held`` (0, or the mean activation
    that ``below="mean"`` uses; E is linear in v, so this is a proper distribution); stage 1
    samples (v, h1) given that h2.  So p(v) = sum_h2 p(h2 | v = v_held) p(v | h2).
    """
    P = joint_table(m)                        # [v, h1, h2]
    if v_held is None:
        p_h2_given_v0 = P[0].sum(axis=0)
    else:
        H1, H2 = all_states(m.sizes[1]), all_states(m.sizes[2])
        logp = np.array([[-m.energy([v_held[None, :], h1[None, :], h2[None, :]])[0] for h2 in H2] for h1 in H1])
        p_h2_given_v0 = np.exp(logp - logp.max()).sum(axis=0)
    p_h2_given_v0 /= p_h2_given_v0.sum()
    p_v_given_h2 = P.sum(axis=1) / P.sum(axis=(0, 1))   # [v, h2]
    return p_v_given_h2 @ p_h2_given_v0


def tv(p, q):
    return 0.5 * np.abs(p - q).sum()


def test_rbm_confabulations_sample_the_exact_marginal():
    m = tiny((4, 3))
    exact = joint_table(m).sum(axis=1)
    v = confabulate(m, 40000, steps=30, rng=0, binary=True)
    assert tv(frequencies(v), exact) < 0.02


def sub_rbm_marginal(m):
    """p(v) of the (v, h1) pair alone: the K -> infinity output of stage 1 with top_down="pair"."""
    sub = BoltzmannMachine([m.sizes[0], m.sizes[1]], intra=[False, m.intra[1]], dtype=np.float64,
                           W=[None, m.W[1]], U=[None, m.U[1]], b=[m.b[0], m.b[1]])
    return joint_table(sub).sum(axis=1)


@pytest.mark.parametrize("intra,seed", [(False, 0), ([False, True, False], 4)])
@pytest.mark.parametrize("top_down", ["pair", "held"])
@pytest.mark.parametrize("below", ["zero", "mean"])
def test_dbm_confabulations_match_the_exact_stage_wise_limit(intra, seed, top_down, below):
    m = tiny((4, 3, 2), intra=intra, std=3.0, seed=seed)
    v_held = None if below == "zero" else sigmoid(m.b[0] / m.temperature)
    held, pair = algorithm3_limit(m, v_held), sub_rbm_marginal(m)
    v = confabulate(m, 40000, steps=30, rng=1, binary=True, top_down=top_down, below=below)
    assert tv(frequencies(v), held if top_down == "held" else pair) < 0.02
    if below == "zero":
        # power: the two readings of Algorithm 3 have different limits on this model
        assert tv(held, pair) > 0.1


def test_greyscale_output_is_p_v_given_h1():
    m = tiny((4, 3, 2))
    v, state = confabulate(m, 50, steps=3, rng=2, return_hidden=True)
    np.testing.assert_allclose(v, sigmoid(state[1] @ m.W[1].T + m.b[0]))
    assert np.all(state[2] == state[2].astype(bool))


def test_p_prior_is_the_mean_bottom_up_top_activation():
    m = tiny((4, 3, 2), std=1.0, seed=4)
    rng = np.random.default_rng(0)
    data = (rng.random((20, 4)) < 0.5).astype(np.float64)
    H1 = all_states(3)
    expected = np.zeros(2)
    for v in data:
        p1 = sigmoid(v @ m.W[1] + m.b[1])
        q1 = np.prod(np.where(H1 == 1, p1, 1 - p1), axis=1)
        expected += q1 @ sigmoid(H1 @ m.W[2] + m.b[2])
    expected /= len(data)
    got = top_prior(m, "p", data=np.repeat(data, 2000, axis=0), rng=1)
    np.testing.assert_allclose(got, expected, atol=0.01)
    np.testing.assert_array_equal(top_prior(m, "R"), [0.5, 0.5])


def prior_memory_model():
    """h1_j and h2_j (j = 0, 1) strongly coupled, v disconnected: h2 keeps the prior's imprint."""
    m = tiny((4, 3, 2), std=0.0, seed=6)
    m.W[2][:] = 0.0
    m.W[2][0, 0] = m.W[2][1, 1] = 10.0
    m.b[1][:] = -5.0
    m.b[2][:] = -5.0
    return m


@pytest.mark.parametrize("prior", [[1.0, 0.0], [0.0, 1.0]])
def test_the_prior_sets_the_starting_top_state(prior):
    m = prior_memory_model()
    _, state = confabulate(m, 2000, prior_probs=np.array(prior), steps=2, rng=0, return_hidden=True)
    np.testing.assert_allclose(state[2].mean(axis=0), prior, atol=0.1)


def test_bad_requests_are_refused():
    m = tiny((4, 3, 2))
    with pytest.raises(ConfigError, match="prior must be 'r'"):
        confabulate(m, 10, prior="x")
    with pytest.raises(ConfigError, match="needs the training data"):
        confabulate(m, 10, prior="p")
    with pytest.raises(DataError, match="4 visible units"):
        top_prior(m, "p", data=np.zeros((5, 7)))
    with pytest.raises(ConfigError, match="at least 1"):
        confabulate(m, 10, steps=0)
    with pytest.raises(ConfigError, match="prior probabilities must be 2 values"):
        confabulate(m, 10, prior_probs=[0.5, 0.5, 0.5])
    with pytest.raises(ConfigError, match="top_down must be 'pair' or 'held'"):
        confabulate(m, 10, top_down="both")
    with pytest.raises(ModelError, match="at least one hidden layer"):
        confabulate(BoltzmannMachine([5], intra=True), 10)


# --------------------------------------------------------------------------- vpf sample
def test_vpf_sample_command_writes_grid_and_npy(tmp_path, monkeypatch):
    from vpf_spiking.cli import main

    monkeypatch.setenv("MPLBACKEND", "Agg")
    m = tiny((16, 6, 4), std=0.5)
    path = m.save(tmp_path / "m.npz")
    data = (np.random.default_rng(0).random((50, 16)) < 0.5).astype(np.float32)
    np.save(tmp_path / "train.npy", data)
    for prior, extra in (("r", []), ("p", ["--data", str(tmp_path / "train.npy")])):
        rc = main(["sample", str(path), "--prior", prior, "--n", "12", "--steps", "3", "--no-progress",
                   "--out", str(tmp_path / f"{prior}.png"), "--npy", str(tmp_path / f"{prior}.npy"), *extra])
        assert rc == 0
        s = np.load(tmp_path / f"{prior}.npy")
        assert s.shape == (12, 16) and np.all((s >= 0) & (s <= 1))
        assert (tmp_path / f"{prior}.png").stat().st_size > 0


def test_vpf_sample_finds_mnist_beside_the_checkout_like_every_command(tmp_path, monkeypatch, shared_data_dir):
    """``../shared/data`` is one of the places the README promises; ``vpf sample`` looked elsewhere."""
    from vpf_spiking.cli import main

    monkeypatch.setenv("MPLBACKEND", "Agg")
    monkeypatch.delenv("VPF_DATA_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "empty-cache"))
    (tmp_path / "shared").mkdir()
    (tmp_path / "shared" / "data").symlink_to(shared_data_dir, target_is_directory=True)
    (tmp_path / "checkout").mkdir()
    monkeypatch.chdir(tmp_path / "checkout")
    path = BoltzmannMachine([784, 8], seed=0).save(tmp_path / "m.npz")
    rc = main(["sample", str(path), "--prior", "p", "--data", "mnist", "--n", "4", "--steps", "2",
               "--no-progress", "--out", "s.png"])
    assert rc == 0 and (tmp_path / "checkout" / "s.png").exists()


@pytest.mark.parametrize("args,match", [
    (["--prior", "q"], "unknown value 'q'"),
    (["--prior", "p"], "--prior p needs --data"),
    (["--steps", "0"], "--steps must be at least 1"),
])
def test_vpf_sample_command_refuses_bad_options(tmp_path, capsys, args, match):
    from vpf_spiking.cli import main

    path = tiny((16, 6, 4)).save(tmp_path / "m.npz")
    assert main(["sample", str(path), "--out", str(tmp_path / "g.png"), *args]) == 2
    assert match in capsys.readouterr().err


def test_vpf_sample_command_names_a_missing_model(tmp_path, capsys):
    from vpf_spiking.cli import main

    assert main(["sample", str(tmp_path / "nope.npz")]) == 2
    assert "no such model file" in capsys.readouterr().err


def test_below_mean_holds_ungenerated_layers_at_their_data_means():
    """With data, stage 2 of a DBM sees v at the pixel means (not a blank image): after K = 1
    the h1 it samples has the mean of p(h1 | v = mean, h2), not of p(h1 | v = 0, h2)."""
    m = tiny((6, 4, 3), std=2.0, seed=2)
    data = (np.random.default_rng(5).random((500, 6)) < 0.7).astype(np.float64)
    means = generation.lower_layer_means(m, data, rng=0)
    np.testing.assert_allclose(means[0], data.mean(axis=0))
    assert all(np.all((mu >= 0) & (mu <= 1)) for mu in means)
    _, (_, h1_mean, _) = confabulate(m, 20000, prior="p", steps=1, rng=3, data=data, return_hidden=True,
                                     top_down="held")
    _, (_, h1_zero, _) = confabulate(m, 20000, prior="p", steps=1, rng=3, data=data, return_hidden=True,
                                     top_down="held", below="zero")
    assert abs(h1_mean.mean() - h1_zero.mean()) > 0.02


def test_below_must_be_mean_or_zero():
    with pytest.raises(ConfigError, match="below must be"):
        confabulate(tiny((4, 3, 2)), 5, below="blank")


def test_models_record_how_they_were_trained_and_sampling_follows_it(tmp_path, capsys):
    """trained_by is saved with the model; vpf sample picks the K measured best for it."""
    from vpf_spiking.cli import main
    from vpf_spiking.generation import DEFAULT_STEPS, recommended_steps
    from vpf_spiking.trainers import make_trainer

    rng = np.random.default_rng(0)
    x = (rng.random((60, 16)) < 0.3).astype(np.float32)
    labels = {}
    for method, kw in (("vpf", {}), ("vpf", {"flow": "rao-blackwell"}), ("pcd", {"k": 1})):
        m = BoltzmannMachine([16, 5], seed=0)
        make_trainer(method, epochs=1, batch_size=20, progress=False, **kw).fit(m, x)
        m.save(tmp_path / f"{m.trained_by.replace(':', '-')}.npz")
        labels[m.trained_by] = BoltzmannMachine.load(tmp_path / f"{m.trained_by.replace(':', '-')}.npz").trained_by
    assert labels == {"vpf": "vpf", "vpf:rao-blackwell": "vpf:rao-blackwell", "pcd": "pcd"}
    assert recommended_steps(BoltzmannMachine([4, 2]))[0] == DEFAULT_STEPS       # untrained: the default
    assert recommended_steps(BoltzmannMachine.load(tmp_path / "vpf.npz"))[0] == DEFAULT_STEPS
    assert recommended_steps(BoltzmannMachine.load(tmp_path / "vpf-rao-blackwell.npz"))[0] == 2
    assert main(["sample", str(tmp_path / "vpf-rao-blackwell.npz"), "--n", "4", "--out", str(tmp_path / "s.png"),
                 "--no-progress"]) == 0
    assert "K = 2 Gibbs steps per stage: recommended for a vpf:rao-blackwell model" in capsys.readouterr().out
    assert main(["sample", str(tmp_path / "vpf-rao-blackwell.npz"), "--n", "4", "--steps", "7",
                 "--out", str(tmp_path / "s.png"), "--no-progress"]) == 0
    assert "Gibbs steps per stage" not in capsys.readouterr().out                  # an explicit K is kept
