import numpy as np
import pytest
from scipy.special import logsumexp

from vpf_spiking.errors import ConfigError, DataError
from vpf_spiking.evaluation.parzen import parzen_evaluate, parzen_log_density


def brute_force(x, s, sigma):
    d2 = ((x[:, None, :] - s[None, :, :]) ** 2).sum(axis=2)
    d = x.shape[1]
    return logsumexp(-d2 / (2 * sigma ** 2), axis=1) - np.log(len(s)) - d / 2 * np.log(2 * np.pi * sigma ** 2)


def test_matches_brute_force_for_every_sigma_and_chunking(rng):
    x = rng.random((37, 30))
    s = (rng.random((53, 30)) < 0.4).astype(np.float32)
    sig = np.logspace(-1, 0, 10)
    got = parzen_log_density(x, s, sig, chunk=8)
    for i, sg in enumerate(sig):
        np.testing.assert_allclose(got[i], brute_force(x, s.astype(float), sg), rtol=1e-10, atol=1e-8)
    np.testing.assert_allclose(parzen_log_density(x, s, 0.3), brute_force(x, s.astype(float), 0.3), rtol=1e-10)


def test_samples_equal_to_test_set_score_high(rng):
    x = (rng.random((200, 50)) < 0.5).astype(float)
    sigma = 0.1
    self_score = parzen_log_density(x, x, sigma)
    # the sample on top of each point contributes exp(0): a lower bound that other sets miss
    floor = -np.log(len(x)) - 25 * np.log(2 * np.pi * sigma ** 2)
    assert (self_score >= floor - 1e-9).all()
    other = parzen_log_density(x, (rng.random((200, 50)) < 0.5).astype(float), sigma)
    assert self_score.mean() > other.mean() + 100


def test_sigma_is_chosen_on_validation(rng):
    centres = rng.random((5, 10))
    samples = centres[rng.integers(0, 5, 400)] + 0.3 * rng.standard_normal((400, 10))
    valid = centres[rng.integers(0, 5, 100)] + 0.3 * rng.standard_normal((100, 10))
    test = centres[rng.integers(0, 5, 100)] + 0.3 * rng.standard_normal((100, 10))
    res = parzen_evaluate(test, valid, samples)
    v = res["validation"]
    assert res["sigma"] == v.sigma[v.mean_log_density.idxmax()]
    assert 0.1 < res["sigma"] < 1.0  # the true spread is 0.3: neither end of the grid
    lp = parzen_log_density(test, samples, res["sigma"])
    assert res["mean"] == pytest.approx(lp.mean())
    assert res["se"] == pytest.approx(lp.std(ddof=1) / 10)


def test_bad_input_raises(rng):
    with pytest.raises(DataError, match="pixels"):
        parzen_log_density(rng.random((3, 4)), rng.random((3, 5)), 0.2)
    with pytest.raises(ConfigError, match="positive"):
        parzen_log_density(rng.random((3, 4)), rng.random((3, 4)), [0.2, -1])
    with pytest.raises(DataError, match="non-finite"):
        parzen_log_density(np.full((2, 4), np.nan), rng.random((3, 4)), 0.2)
