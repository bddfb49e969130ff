"""Quality of model samples judged by a classifier trained on the real images.

A Boltzmann machine's samples are scored with four numbers:

- ``blank``: the share of nearly blank images (mean pixel below ``blank_threshold``, by
  default 0.02, i.e. fewer than about 16 of 784 pixels on; see :func:`blank_fraction`);
- ``confident``: the share of samples to which the classifier gives a class probability of
  at least ``threshold`` (default 0.9); real test digits score about 0.9 and above, noise
  and blank images far less;
- ``classes`` and ``class_entropy``: among the confident samples, the number of classes that
  hold at least ``min_share`` (default 5%) of them, and the entropy in **nats** of their
  class histogram (``log(10) = 2.303`` for ten equally used classes, 0 for one class), which
  show mode collapse;
- ``frechet``: the Fréchet distance (as in FID, Heusel et al. 2017) between the samples and
  reference images in the classifier's hidden-feature space (the ReLU activations of its
  hidden layer); smaller is better.

The classifier (:class:`SampleClassifier`) is a small scikit-learn
:class:`~sklearn.neural_network.MLPClassifier`. A plain MLP is over-confident far from its
training data (dense 50% noise has more pixels on than any digit, drives the ReLU units hard,
and gets class probabilities above 0.9), so by default it is also trained on a *reject* class:
``reject_share`` (10%) extra images, half Bernoulli noise with a density drawn uniformly from
[0, 0.7], half training digits with their pixels shuffled (digit density, no strokes). Its
probabilities for the digit classes then stay low on structure-less images; the reject column
is dropped from :meth:`SampleClassifier.predict_proba`, whose rows then sum to at most 1. The
classifier is cached on disk under the SHA-256 of its
training images, labels and settings (scikit-learn version included), so each setting is
trained once per machine: the folder is ``$VPF_CACHE_DIR`` when set, else
``$XDG_CACHE_HOME/vpf-spiking/classifiers`` (default ``~/.cache/vpf-spiking/classifiers``).
A cache file is a joblib pickle that this module wrote itself; it is named by the checksum and
holds the checksum again, which is checked on load (a mismatching or unreadable file is
retrained and overwritten). Do not point the cache at files from elsewhere: unpickling runs code.

scikit-learn is an optional dependency (extras ``test`` and ``bench``); it is imported when a
classifier is built.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

from ..errors import ConfigError, DataError

__all__ = [
    "SampleClassifier", "blank_fraction", "classifier_cache_dir", "confident_share",
    "class_histogram", "class_coverage", "class_entropy", "frechet_distance",
    "frechet_from_moments", "sample_quality", "stroke_components",
]

CACHE_FORMAT = 1
REJECT = -1  # label of the reject class (noise and pixel-shuffled digits)


# --------------------------------------------------------------------------------------------
# Checks

def _as_images(x, label, n_features=None) -> np.ndarray:
    x = np.asarray(x)
    if x.dtype.kind not in "biuf":
        raise DataError(f"{label}: dtype {x.dtype} is not numeric")
    if x.ndim != 2:
        raise DataError(f"{label}: expected a 2-D matrix (n_images, n_pixels), found shape {x.shape}")
    if x.shape[0] == 0:
        raise DataError(f"{label}: no images (shape {x.shape})")
    if n_features is not None and x.shape[1] != n_features:
        raise DataError(f"{label}: images have {x.shape[1]} pixels, the classifier expects "
                        f"{n_features}")
    x = x.astype(np.float32, copy=False)
    if not np.isfinite(x).all():
        raise DataError(f"{label}: contains NaN or infinite values")
    return x


def _check_share(value, name, low_open=False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise ConfigError(f"{name} must be a number in [0, 1], got {value!r}")
    value = float(value)
    if not (0 < value <= 1 if low_open else 0 <= value <= 1):
        raise ConfigError(f"{name} must be in {'(0, 1]' if low_open else '[0, 1]'}, got {value}")
    return value


def _as_probabilities(p) -> np.ndarray:
    p = np.asarray(p, dtype=np.float64)
    if p.ndim != 2 or p.shape[1] < 1:
        raise DataError(f"class probabilities must be an (n_samples, n_classes) matrix, "
                        f"found shape {p.shape}")
    if not np.isfinite(p).all() or (p < 0).any():
        raise DataError("class probabilities must be finite and non-negative")
    return p


# --------------------------------------------------------------------------------------------
# Classifier-free metric

def blank_fraction(samples, threshold: float = 0.02) -> float:
    """Share of nearly blank images: those whose mean pixel value is below ``threshold``.

    Parameters
    ----------
    samples : (n, d) array
        Images, 0/1 or greyscale in [0, 1].
    threshold : float
        Mean-pixel cut-off in (0, 1]; the default 0.02 means fewer than 2% of the pixels on
        (fewer than 15.68 of 784). Real MNIST digits have about 10-20% of their pixels on.
    """
    x = _as_images(samples, "samples")
    threshold = _check_share(threshold, "blank threshold", low_open=True)
    return float(np.mean(x.mean(axis=1, dtype=np.float64) < threshold))


def stroke_components(images, shape=(28, 28), threshold=0.5) -> np.ndarray:
    """Connected components (8-connectivity) of each image thresholded at ``threshold``.

    A digit is one stroke or a few; broken strokes in samples show up as extra components.
    """
    from scipy import ndimage

    structure = np.ones((3, 3), dtype=bool)
    return np.array([ndimage.label(np.asarray(im).reshape(shape) > threshold, structure)[1] for im in images])


# --------------------------------------------------------------------------------------------
# Metrics on class probabilities

def confident_share(probabilities, threshold: float = 0.9) -> float:
    """Share of samples whose largest class probability is at least ``threshold``."""
    p = _as_probabilities(probabilities)
    threshold = _check_share(threshold, "threshold")
    return float(np.mean(p.max(axis=1) >= threshold)) if len(p) else 0.0


def class_histogram(probabilities, threshold: float = 0.9) -> np.ndarray:
    """Counts per class (int64, length n_classes) of the confident samples' predicted classes."""
    p = _as_probabilities(probabilities)
    threshold = _check_share(threshold, "threshold")
    confident = p.max(axis=1) >= threshold
    return np.bincount(p[confident].argmax(axis=1), minlength=p.shape[1]).astype(np.int64)


def class_coverage(probabilities, threshold: float = 0.9, min_share: float = 0.05) -> int:
    """Number of classes holding at least ``min_share`` of the confident samples (0 if none)."""
    min_share = _check_share(min_share, "min_share")
    counts = class_histogram(probabilities, threshold)
    total = counts.sum()
    return int(np.count_nonzero(counts >= min_share * total)) if total else 0


def class_entropy(probabilities, threshold: float = 0.9) -> float:
    """Entropy in nats of the class histogram of the confident samples (0 if there are none).

    ``log(n_classes)`` when the classes are used equally, 0 when only one class occurs.
    """
    counts = class_histogram(probabilities, threshold).astype(np.float64)
    total = counts.sum()
    if not total:
        return 0.0
    q = counts[counts > 0] / total
    return float(max(0.0, -(q * np.log(q)).sum()))


# --------------------------------------------------------------------------------------------
# Fréchet distance

def frechet_from_moments(mu1, sigma1, mu2, sigma2, eps: float = 1e-6) -> float:
    """Fréchet distance of two Gaussians: ``|mu1-mu2|^2 + tr(S1 + S2 - 2 (S1 S2)^(1/2))``.

    The matrix square root comes from :func:`scipy.linalg.sqrtm`; if it is not finite (singular
    covariances, e.g. fewer samples than features) ``eps`` is added to both diagonals and it is
    computed again. Small imaginary parts from round-off are dropped. The result is clipped at 0.
    """
    from scipy import linalg

    mu1, mu2 = np.atleast_1d(np.asarray(mu1, np.float64)), np.atleast_1d(np.asarray(mu2, np.float64))
    s1, s2 = np.atleast_2d(np.asarray(sigma1, np.float64)), np.atleast_2d(np.asarray(sigma2, np.float64))
    if mu1.shape != mu2.shape or s1.shape != s2.shape or s1.shape != (len(mu1), len(mu1)):
        raise DataError(f"Fréchet distance: mismatched shapes, means {mu1.shape} and {mu2.shape}, "
                        f"covariances {s1.shape} and {s2.shape}")
    diff = mu1 - mu2
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # sqrtm warns on singular input; handled below
        covmean = linalg.sqrtm(s1 @ s2)
        if not np.isfinite(covmean).all():
            offset = np.eye(len(s1)) * eps
            covmean = linalg.sqrtm((s1 + offset) @ (s2 + offset))
    covmean = np.real(covmean)
    value = diff @ diff + np.trace(s1) + np.trace(s2) - 2.0 * np.trace(covmean)
    return float(max(0.0, value))


def frechet_distance(samples, reference, classifier=None) -> float:
    """Fréchet distance between two sets of images (or feature vectors).

    Parameters
    ----------
    samples, reference : (n, d) arrays
        Each set needs at least 2 rows.
    classifier : SampleClassifier, optional
        When given, both sets are mapped to its hidden features
        (:meth:`SampleClassifier.features`) first, as for FID; otherwise the columns are used
        as they are.
    """
    a = _as_images(samples, "samples")
    b = _as_images(reference, "reference")
    if classifier is not None:
        a, b = classifier.features(a), classifier.features(b)
    a, b = a.astype(np.float64), b.astype(np.float64)
    if a.shape[1] != b.shape[1]:
        raise DataError(f"Fréchet distance: samples have {a.shape[1]} features, the reference "
                        f"{b.shape[1]}")
    if len(a) < 2 or len(b) < 2:
        raise DataError("Fréchet distance needs at least 2 samples and 2 reference images")
    return frechet_from_moments(a.mean(0), np.cov(a, rowvar=False),
                                b.mean(0), np.cov(b, rowvar=False))


# --------------------------------------------------------------------------------------------
# The classifier

def classifier_cache_dir() -> Path:
    """``$VPF_CACHE_DIR`` when set, else ``$XDG_CACHE_HOME/vpf-spiking/classifiers``."""
    env = os.environ.get("VPF_CACHE_DIR", "").strip()
    if env:
        return Path(env).expanduser()
    from ..data import cache_dir
    return cache_dir() / "classifiers"


def _checksum(x: np.ndarray, y: np.ndarray, settings: dict) -> str:
    h = hashlib.sha256()
    h.update(json.dumps(settings, sort_keys=True).encode())
    h.update(repr(x.shape).encode())
    h.update(np.ascontiguousarray(x, dtype=np.float32).tobytes())
    h.update(np.ascontiguousarray(y, dtype=np.int64).tobytes())
    return h.hexdigest()


class SampleClassifier:
    """A small MLP (one ReLU hidden layer) trained on labelled images, cached on disk.

    Parameters
    ----------
    images : (n, d) array
        Training images (0/1 or greyscale in [0, 1]).
    labels : (n,) int array
        Their classes.
    n_train : int, optional
        Use only the first ``n_train`` images (default: all).
    hidden : int
        Width of the hidden layer (its activations are the Fréchet features).
    max_iter : int
        Training epochs (Adam); 20 epochs of 256 units reach about 98% test accuracy on
        binarised MNIST.
    seed : int
        Seed of the weight initialisation, the mini-batch order and the reject images.
    reject_share : float
        Number of extra reject-class images as a share of the training images (0: no reject
        class; see the module docstring).
    cache_dir : path, optional
        Cache folder (default :func:`classifier_cache_dir`).
    use_cache : bool
        False: neither read nor write the cache.

    Attributes
    ----------
    model : sklearn.neural_network.MLPClassifier
    checksum : str
        SHA-256 of the training data and settings; the cache file is ``<checksum>.joblib``.
    cache_path : Path or None
    from_cache : bool
        True when the model was loaded from the cache rather than trained.
    train_seconds : float
        Training time (0 when loaded from the cache).
    """

    def __init__(self, images, labels, n_train=None, hidden: int = 256, max_iter: int = 20,
                 seed: int = 0, reject_share: float = 0.1, cache_dir=None,
                 use_cache: bool = True):
        x = _as_images(images, "training images")
        y = np.asarray(labels)
        if y.ndim != 1 or len(y) != len(x) or y.dtype.kind not in "iu":
            raise DataError(f"training labels must be an integer vector of length {len(x)}, "
                            f"found {y.dtype} {y.shape}")
        for name, value in (("hidden", hidden), ("max_iter", max_iter)):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise ConfigError(f"{name} must be a positive integer, got {value!r}")
        if n_train is not None:
            if isinstance(n_train, bool) or not isinstance(n_train, (int, np.integer)) \
                    or not 1 <= n_train <= len(x):
                raise ConfigError(f"n_train must be a whole number from 1 to {len(x)}, "
                                  f"got {n_train!r}")
            x, y = x[:n_train], y[:n_train]
        if len(np.unique(y)) < 2:
            raise DataError("training labels hold fewer than 2 classes")
        if (y == REJECT).any():
            raise DataError(f"training labels must not use {REJECT} (the reject class)")
        reject_share = _check_share(reject_share, "reject_share")
        import sklearn

        self.settings = {"format": CACHE_FORMAT, "kind": "MLPClassifier", "hidden": int(hidden),
                         "max_iter": int(max_iter), "seed": int(seed), "reject_share": reject_share,
                         "sklearn": sklearn.__version__}
        self.checksum = _checksum(x, y, self.settings)
        self.cache_path = None
        if use_cache:
            folder = Path(cache_dir).expanduser() if cache_dir is not None else classifier_cache_dir()
            self.cache_path = folder / f"{self.checksum}.joblib"
        self.from_cache = False
        self.train_seconds = 0.0
        self.model = self._load() if self.cache_path is not None else None
        if self.model is None:
            self.model = self._train(x, y)
            if self.cache_path is not None:
                self._save()
        else:
            self.from_cache = True

    @classmethod
    def from_dataset(cls, name: str = "mnist", data_dir=None, binarize: bool = True, **kwargs):
        """Train (or load) on the training split of ``name`` (see :func:`vpf_spiking.data.load_images`)."""
        from ..data import load_images, load_labels

        return cls(load_images(name, "train", data_dir=data_dir, binarize=binarize),
                   load_labels(name, "train", data_dir=data_dir), **kwargs)

    # -- training and cache ------------------------------------------------------------------
    def _reject_images(self, x) -> np.ndarray:
        n = int(round(self.settings["reject_share"] * len(x)))
        rng = np.random.default_rng(self.settings["seed"])
        n_noise = n - n // 2
        density = rng.uniform(0.0, 0.7, size=(n_noise, 1))
        noise = (rng.random((n_noise, x.shape[1])) < density).astype(np.float32)
        rows = x[rng.integers(0, len(x), size=n // 2)]
        shuffled = np.take_along_axis(rows, np.argsort(rng.random(rows.shape), axis=1), axis=1)
        return np.concatenate([noise, shuffled.astype(np.float32)])

    def _train(self, x, y):
        from sklearn.exceptions import ConvergenceWarning
        from sklearn.neural_network import MLPClassifier

        model = MLPClassifier(hidden_layer_sizes=(self.settings["hidden"],), activation="relu",
                              max_iter=self.settings["max_iter"], batch_size=128,
                              random_state=self.settings["seed"])
        start = time.perf_counter()
        junk = self._reject_images(x)
        if len(junk):
            x = np.concatenate([x, junk])
            y = np.concatenate([y.astype(np.int64), np.full(len(junk), REJECT, np.int64)])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            model.fit(x, y)
        self.train_seconds = time.perf_counter() - start
        return model

    def _load(self):
        if not self.cache_path.is_file():
            return None
        import joblib
        from sklearn.neural_network import MLPClassifier

        try:
            payload = joblib.load(self.cache_path)
        except Exception:
            return None
        if not isinstance(payload, dict) or payload.get("checksum") != self.checksum \
                or payload.get("settings") != self.settings \
                or not isinstance(payload.get("model"), MLPClassifier):
            return None
        return payload["model"]

    def _save(self):
        import joblib

        folder = self.cache_path.parent
        try:
            folder.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{self.checksum[:16]}.", suffix=".part")
            os.close(fd)
            try:
                joblib.dump({"checksum": self.checksum, "settings": self.settings,
                             "model": self.model}, tmp)
                os.replace(tmp, self.cache_path)
            finally:
                if os.path.exists(tmp):
                    os.unlink(tmp)
        except OSError as exc:
            warnings.warn(f"classifier not cached in {folder}: {exc.strerror or exc}", stacklevel=3)

    # -- use -----------------------------------------------------------------------------------
    @property
    def n_features(self) -> int:
        return int(self.model.n_features_in_)

    @property
    def classes(self) -> np.ndarray:
        """The real classes (without the reject class), in the column order of the probabilities."""
        return self.model.classes_[self.model.classes_ != REJECT]

    def predict_proba(self, samples) -> np.ndarray:
        """Probabilities of the real classes, (n, n_classes), columns as :attr:`classes`.

        With a reject class the rows sum to 1 minus the reject probability.
        """
        p = self.model.predict_proba(_as_images(samples, "samples", self.n_features))
        return p[:, self.model.classes_ != REJECT]

    def reject_share(self, samples) -> float:
        """Share of samples put in the reject class (0 without one)."""
        p = self.model.predict_proba(_as_images(samples, "samples", self.n_features))
        return float(np.mean(self.model.classes_[p.argmax(axis=1)] == REJECT))

    def features(self, samples) -> np.ndarray:
        """Hidden-layer activations ``relu(x W0 + b0)``, (n, hidden) float64."""
        x = _as_images(samples, "samples", self.n_features).astype(np.float64)
        return np.maximum(x @ self.model.coefs_[0] + self.model.intercepts_[0], 0.0)

    def accuracy(self, images, labels) -> float:
        """Share of ``images`` classified as ``labels``."""
        pred = self.classes[self.predict_proba(images).argmax(axis=1)]
        return float(np.mean(pred == np.asarray(labels)))


# --------------------------------------------------------------------------------------------
# All together

def sample_quality(samples, classifier: SampleClassifier, reference=None, threshold: float = 0.9,
                   min_share: float = 0.05, blank_threshold: float = 0.02) -> dict:
    """All sample-quality scores of ``samples`` as a dict.

    Keys: ``blank`` (:func:`blank_fraction`), ``confident`` (:func:`confident_share`),
    ``classes`` (:func:`class_coverage`), ``class_entropy`` (:func:`class_entropy`, nats) and,
    when ``reference`` images (e.g. the test set) are given, ``frechet``
    (:func:`frechet_distance` in the classifier's hidden-feature space).
    """
    x = _as_images(samples, "samples", classifier.n_features)
    p = classifier.predict_proba(x)
    out = {"blank": blank_fraction(x, blank_threshold),
           "confident": confident_share(p, threshold),
           "classes": class_coverage(p, threshold, min_share),
           "class_entropy": class_entropy(p, threshold)}
    if reference is not None:
        out["frechet"] = frechet_distance(x, reference, classifier)
    return out
