"""Sample-quality scores: blank share, classifier confidence and coverage, Fréchet distance."""

import numpy as np
import pytest

from vpf_spiking.errors import ConfigError, DataError
from vpf_spiking.evaluation import (SampleClassifier, blank_fraction, class_coverage, class_entropy,
                                    confident_share, frechet_distance, sample_quality)
from vpf_spiking.evaluation.sample_quality import class_histogram, classifier_cache_dir

try:
    import sklearn  # noqa: F401
except ImportError:
    sklearn = None
needs_sklearn = pytest.mark.skipif(sklearn is None, reason="scikit-learn is not installed")

N_TRAIN = 3000


# ---------------------------------------------------------------------------------------------
# Without data

def test_blank_fraction():
    x = np.zeros((10, 784), np.float32)
    x[:3, :100] = 1          # 12.8% on: not blank
    x[3, :15] = 1            # 1.9% on: blank
    x[4, :16] = 1            # 2.04% on: not blank
    assert blank_fraction(x) == pytest.approx(0.6)
    assert blank_fraction(np.zeros((5, 784))) == 1.0
    assert blank_fraction(np.ones((5, 784))) == 0.0
    assert blank_fraction(x, threshold=0.2) == 1.0
    with pytest.raises(ConfigError):
        blank_fraction(x, threshold=0)
    with pytest.raises(DataError):
        blank_fraction(np.zeros(784))


def test_probability_metrics():
    p = np.full((6, 3), 0.05)
    p[[0, 1, 2], 0] = 0.9    # three confident for class 0
    p[3, 1] = 0.95           # one confident for class 1
    p[4] = [0.5, 0.3, 0.2]   # not confident
    p[5] = [0.0, 0.0, 1.0]   # one confident for class 2
    assert confident_share(p) == pytest.approx(5 / 6)
    np.testing.assert_array_equal(class_histogram(p), [3, 1, 1])
    assert class_coverage(p) == 3
    assert class_coverage(p, min_share=0.3) == 1
    q = np.array([3, 1, 1]) / 5
    assert class_entropy(p) == pytest.approx(-(q * np.log(q)).sum())
    none = np.full((4, 3), 1 / 3)
    assert confident_share(none) == 0 and class_coverage(none) == 0 and class_entropy(none) == 0


def test_frechet_gaussians():
    rng = np.random.default_rng(0)
    cov = np.diag([1.0, 2.0, 0.5, 1.5])
    a = rng.multivariate_normal(np.zeros(4), cov, size=20000)
    b = rng.multivariate_normal(np.zeros(4), cov, size=20000)
    assert frechet_distance(a, a) == pytest.approx(0, abs=1e-6)
    assert frechet_distance(a, b) < 0.01
    shift = np.array([1.0, -2.0, 0.5, 0.0])
    assert frechet_distance(a, b + shift) == pytest.approx(shift @ shift, rel=0.02)
    # scaled covariance: tr(S1 + S2 - 2 sqrt(S1 S2)) = (sqrt(1) - sqrt(4))^2 * tr(cov) = tr(cov)
    assert frechet_distance(a, 2 * b) == pytest.approx(np.trace(cov), rel=0.03)
    # fewer samples than features: singular covariances, still finite
    small = rng.normal(size=(5, 50))
    assert np.isfinite(frechet_distance(small, small + 1))
    with pytest.raises(DataError):
        frechet_distance(a, b[:, :3])


@needs_sklearn
def test_classifier_arguments(tmp_path):
    x = np.zeros((20, 784), np.float32)
    y = np.arange(20) % 2
    with pytest.raises(ConfigError):
        SampleClassifier(x, y, n_train=0, cache_dir=tmp_path)
    with pytest.raises(DataError):
        SampleClassifier(x, y[:5], cache_dir=tmp_path)
    with pytest.raises(DataError):
        SampleClassifier(x, np.zeros(20, int), cache_dir=tmp_path)


def test_cache_dir_env(monkeypatch, tmp_path):
    monkeypatch.setenv("VPF_CACHE_DIR", str(tmp_path / "c"))
    assert classifier_cache_dir() == tmp_path / "c"
    monkeypatch.delenv("VPF_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert classifier_cache_dir() == tmp_path / "xdg" / "vpf-spiking" / "classifiers"


@needs_sklearn
def test_cache_reused_and_verified(tmp_path):
    rng = np.random.default_rng(1)
    y = np.arange(400) % 2
    x = (rng.random((400, 784)) < 0.05).astype(np.float32)
    x[y == 1, :200] = 1
    first = SampleClassifier(x, y, hidden=16, max_iter=5, cache_dir=tmp_path)
    assert not first.from_cache and first.cache_path == tmp_path / f"{first.checksum}.joblib"
    assert first.cache_path.is_file()
    second = SampleClassifier(x, y, hidden=16, max_iter=5, cache_dir=tmp_path)
    assert second.from_cache and second.train_seconds == 0
    np.testing.assert_array_equal(first.predict_proba(x), second.predict_proba(x))
    # other data or settings: another checksum, trained afresh
    other = SampleClassifier(x, y, hidden=16, max_iter=6, cache_dir=tmp_path)
    assert not other.from_cache and other.checksum != first.checksum
    # a damaged file is not trusted: retrained and overwritten
    first.cache_path.write_bytes(b"garbage")
    third = SampleClassifier(x, y, hidden=16, max_iter=5, cache_dir=tmp_path)
    assert not third.from_cache
    assert SampleClassifier(x, y, hidden=16, max_iter=5, cache_dir=tmp_path).from_cache
    assert not SampleClassifier(x, y, hidden=16, max_iter=5, use_cache=False).from_cache


# ---------------------------------------------------------------------------------------------
# Real MNIST

@pytest.fixture(scope="module")
def mnist(shared_data_dir, tmp_path_factory):
    from vpf_spiking.data import load_images, load_labels

    clf = SampleClassifier.from_dataset("mnist", data_dir=shared_data_dir, n_train=N_TRAIN,
                                        cache_dir=tmp_path_factory.mktemp("classifiers"))
    x = load_images("mnist", "test", data_dir=shared_data_dir)
    y = load_labels("mnist", "test", data_dir=shared_data_dir)
    return clf, x, y


@pytest.mark.data
@needs_sklearn
def test_real_test_images_score_high(mnist):
    clf, x, y = mnist
    assert clf.accuracy(x[:2000], y[:2000]) > 0.85
    q = sample_quality(x[:2000], clf)
    assert set(q) == {"blank", "confident", "classes", "class_entropy"}
    assert q["blank"] == 0
    assert q["confident"] >= 0.6
    assert q["classes"] >= 9
    assert q["class_entropy"] > 0.9 * np.log(10)


@pytest.mark.data
@needs_sklearn
def test_noise_and_blank_score_low(mnist):
    clf, x, _ = mnist
    rng = np.random.default_rng(7)
    zeros = sample_quality(np.zeros((200, 784), np.float32), clf)
    assert zeros["blank"] == 1.0 and zeros["confident"] <= 0.1
    for noise in ((rng.random((500, 784)) < 0.5).astype(np.float32),   # Bernoulli(0.5)
                  rng.random((500, 784)).astype(np.float32),            # uniform grey
                  (rng.random((500, 784)) < 0.13).astype(np.float32)):  # digit density
        q = sample_quality(noise, clf)
        assert q["blank"] == 0 and q["confident"] <= 0.1, q


@pytest.mark.data
@needs_sklearn
def test_one_class_coverage(mnist):
    clf, x, y = mnist
    q = sample_quality(x[y == 3], clf)
    assert q["classes"] == 1
    assert q["class_entropy"] < 0.5


@pytest.mark.data
@needs_sklearn
def test_frechet_real_vs_noise(mnist):
    clf, x, _ = mnist
    rng = np.random.default_rng(3)
    noise = (rng.random((1000, 784)) < 0.5).astype(np.float32)
    same = frechet_distance(x[:2000], x[5000:7000], clf)
    far = frechet_distance(noise, x[5000:7000], clf)
    assert same * 10 < far
    q = sample_quality(x[:2000], clf, reference=x[5000:7000])
    assert q["frechet"] == pytest.approx(same)
    features = clf.features(x[:10])
    assert features.shape == (10, 256) and (features >= 0).all()


# ---------------------------------------------------------------------------------------------
# The sample-quality protocol kind

@pytest.mark.data
@needs_sklearn
def test_sample_quality_protocol_kind(shared_data_dir, tmp_path, monkeypatch):
    import pandas as pd

    from vpf_spiking.data import load_images
    from vpf_spiking.model import BoltzmannMachine, pixel_log_odds
    from vpf_spiking.protocols import ProtocolConfig, run_protocol

    small = SampleClassifier.from_dataset.__func__

    def from_dataset(cls, name="mnist", data_dir=None, **kw):  # a small classifier, trained once here
        return small(cls, name, data_dir=data_dir, n_train=N_TRAIN, cache_dir=tmp_path / "classifiers")

    monkeypatch.setattr(SampleClassifier, "from_dataset", classmethod(from_dataset))
    m = BoltzmannMachine([784, 20], seed=0)
    m.b[0][:] = pixel_log_odds(load_images("mnist", "train", data_dir=shared_data_dir)[:2000])
    m.save(tmp_path / "model.npz")
    doc = {"kind": "sample-quality", "name": "t", "model": {"path": str(tmp_path / "model.npz")},
           "data": {"dataset": "mnist", "data_dir": str(shared_data_dir), "n_train": 2000, "n_test": 500},
           "samples": {"n": 60, "steps": 2, "prior": "r"}}
    res = run_protocol(ProtocolConfig(doc, source="t.toml"), out_dir=tmp_path / "out")
    table = pd.read_csv(tmp_path / "out" / "sample_quality.csv")
    assert table.loc[0, "steps"] == 2 and table.loc[0, "prior"] == "r" and table.loc[0, "n"] == 60
    for key in ("blank", "confident", "classes", "class_entropy", "frechet"):
        assert key in table and np.isfinite(table.loc[0, key])
    assert (tmp_path / "out" / "samples.png").stat().st_size > 1000
    assert res["frechet"] > 0
    doc["samples"]["below"] = "half"
    with pytest.raises(ConfigError, match="below"):
        run_protocol(ProtocolConfig(doc, source="t.toml"), out_dir=tmp_path / "bad")


def test_experiment_tables_score_confabulations_of_the_digit_data_sets_only(monkeypatch):
    import sys

    from vpf_spiking.protocols.sample_quality import _classifier, score_samples

    sq = sys.modules["vpf_spiking.evaluation.sample_quality"]  # the module (the package exports the function)

    assert score_samples(np.zeros((3, 4)), {"dataset": "my.npy", "data_dir": None}, np.zeros((3, 4))) == {}
    seen = {}

    def fake_from_dataset(cls, name, data_dir=None, **kw):
        seen["name"] = name
        seen["calls"] = seen.get("calls", 0) + 1
        return "clf"

    monkeypatch.setattr(sq.SampleClassifier, "from_dataset", classmethod(fake_from_dataset))
    monkeypatch.setattr(sq, "sample_quality", lambda s, clf, reference=None: {"blank": 0.5, "classes": 3})
    _classifier.cache_clear()   # one classifier per data set and process: not the fake one for later tests
    try:
        out = score_samples(np.zeros((3, 4)), {"dataset": "fashion-mnist", "data_dir": None}, np.zeros((3, 4)))
        score_samples(np.zeros((3, 4)), {"dataset": "fashion-mnist", "data_dir": None}, np.zeros((3, 4)))
    finally:
        _classifier.cache_clear()
    assert out == {"samples_blank": 0.5, "samples_classes": 3} and seen == {"name": "fashion-mnist", "calls": 1}
