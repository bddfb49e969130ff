import numpy as np
import pandas as pd
import pytest

from vpf_spiking.errors import ConfigError, DataError
from vpf_spiking.evaluation.reconstruction import (Corruption, l2_errors, parse_patterns, reconstruct,
                                                    reconstruction_errors, summarize_errors)
from vpf_spiking.model import BoltzmannMachine


@pytest.mark.parametrize("pattern", ["rows", "columns"])
def test_mask_corrupts_exactly_k_distinct_lines(pattern, rng):
    m = Corruption(pattern, 2).mask(50, rng, (6, 7)).reshape(50, 6, 7)
    lines = m.all(axis=2) if pattern == "rows" else m.all(axis=1)
    assert (lines.sum(axis=1) == 2).all()
    other = m.any(axis=2) if pattern == "rows" else m.any(axis=1)
    assert (other == lines).all()  # whole lines only
    # different images get different lines
    assert len({tuple(r) for r in lines}) > 8


def test_bad_patterns_raise():
    with pytest.raises(ConfigError, match="pattern"):
        Corruption("diagonal", 3)
    with pytest.raises(ConfigError, match="positive"):
        Corruption("rows", 0)
    with pytest.raises(ConfigError, match="cannot corrupt"):
        Corruption("rows", 9).mask(2, np.random.default_rng(0), (8, 8))
    with pytest.raises(ConfigError, match="rows:K"):
        parse_patterns(["rows-4"])
    assert parse_patterns(["rows:4", ("columns", 2)]) == [Corruption("rows", 4), Corruption("columns", 2)]


def prototype_rbm(protos, strength=8.0):
    """An RBM whose hidden unit j detects (and generates) prototype j, tolerant to a few bad pixels."""
    protos = np.asarray(protos, dtype=np.float64)
    n_v = protos.shape[1]
    W = strength * (2 * protos.T - 1)
    c = np.full(len(protos), -2 * strength)
    m = BoltzmannMachine([n_v, len(protos)], seed=0, dtype=np.float64)
    m.set_parameters({"W1": W, "b0": np.full(n_v, -strength / 2), "b1": c})
    return m


def test_model_that_knows_the_data_reconstructs_better_than_a_blank_one(rng):
    p = np.array([1, 1, 1, 1, 0, 0, 0, 0, 1, 1, 0, 0, 1, 0, 1, 0], dtype=float)
    protos = np.stack([p, 1 - p])
    x = protos[rng.integers(0, 2, 300)]
    good = prototype_rbm(protos)
    blank = BoltzmannMachine([16, 2], weight_std=0.0, dtype=np.float64)
    mask = Corruption("rows", 1).mask(len(x), rng, (4, 4))
    rec = reconstruct(good, x, mask, steps=10, rng=rng)
    assert np.array_equal(rec[~mask], x[~mask])  # intact pixels are clamped
    e_good, e_blank = l2_errors(x, rec).mean(), l2_errors(x, reconstruct(blank, x, mask, 10, rng)).mean()
    assert e_blank == pytest.approx(1.0, abs=0.02)  # 4 pixels at probability 1/2: sqrt(4/4)
    assert e_good < 0.1


def test_l2_errors_match_numpy(rng):
    a, b = rng.random((7, 20)), rng.random((7, 20))
    np.testing.assert_allclose(l2_errors(a, b), np.linalg.norm(a - b, axis=1))


def test_reconstruction_errors_are_reproducible_and_summarized(rng):
    m = BoltzmannMachine([16, 5], weight_std=0.5, seed=3)
    x = (rng.random((40, 16)) < 0.3).astype(np.float32)
    kw = dict(corruptions=["rows:1", "columns:2"], steps=3, seeds=(0, 1), image_shape=(4, 4), chunk=16)
    e1 = reconstruction_errors(m, x, **kw)
    e2 = reconstruction_errors(m, x, **kw)
    pd.testing.assert_frame_equal(e1, e2)
    assert len(e1) == 2 * 2 * 40
    t = summarize_errors(e1)
    assert list(t["corruption"]) == ["1 rows", "2 columns"]
    g = e1[e1.corruption == "2 columns"]
    assert t.loc[1, "mean_error"] == pytest.approx(g.error.mean())
    per_seed = g.groupby("seed").error.mean()
    assert t.loc[1, "se_seeds"] == pytest.approx(per_seed.std(ddof=1) / np.sqrt(2))
    assert t.loc[1, "se_images"] == pytest.approx((g.groupby("seed").error.std(ddof=1) / np.sqrt(40)).mean())


def test_wrong_shapes_raise(rng):
    m = BoltzmannMachine([16, 5])
    x = np.zeros((3, 15), dtype=np.float32)
    with pytest.raises(DataError, match="visible units"):
        reconstruct(m, x, np.zeros_like(x, dtype=bool), 1, rng)


def test_pixel_mean_baseline_uses_the_same_corruptions(rng):
    x = (rng.random((30, 16)) < 0.4).astype(np.float32)
    mean = x.mean(axis=0)
    e = reconstruction_errors(None, x, ["rows:1"], steps=1, seeds=(5,), image_shape=(4, 4), baseline=mean)
    m = BoltzmannMachine([16, 3], seed=0)
    e_model = reconstruction_errors(m, x, ["rows:1"], steps=1, seeds=(5,), image_shape=(4, 4))
    # recover each image's corrupted row from the model run's clamping: same masks for both
    from vpf_spiking.evaluation.reconstruction import Corruption, _mask_and_rng
    mask, _ = _mask_and_rng(Corruption("rows", 1), 5, 30, (4, 4))
    expected = np.linalg.norm(np.where(mask, x - mean, 0), axis=1)
    np.testing.assert_allclose(e.error, expected, rtol=1e-6)
    assert len(e_model) == len(e)
    with pytest.raises(ConfigError, match="baseline"):
        reconstruction_errors(None, x, ["rows:1"], image_shape=(4, 4))
