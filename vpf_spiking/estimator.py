"""A scikit-learn style RBM trained by VPF (or CD / PCD): :class:`VPFRBM`.

It mirrors :class:`sklearn.neural_network.BernoulliRBM` (``fit``, ``transform``, ``score_samples``,
``gibbs``, ``components_``, ``intercept_hidden_``, ``intercept_visible_``), so it drops into a
``Pipeline`` in front of a classifier.  scikit-learn is optional: without it the class still
offers ``get_params`` / ``set_params`` / ``fit_transform``.
"""

from __future__ import annotations

import inspect

import numpy as np

from .errors import ConfigError, DataError

try:  # scikit-learn is a test/bench dependency only
    from sklearn.base import BaseEstimator, TransformerMixin
except ImportError:  # pragma: no cover - exercised only where sklearn is absent

    class BaseEstimator:
        """Minimal get_params/set_params following scikit-learn's conventions."""

        @classmethod
        def _get_param_names(cls):
            sig = inspect.signature(cls.__init__)
            return sorted(p.name for p in sig.parameters.values()
                          if p.name != "self" and p.kind != p.VAR_KEYWORD)

        def get_params(self, deep=True):
            return {name: getattr(self, name) for name in self._get_param_names()}

        def set_params(self, **params):
            valid = self._get_param_names()
            for key, value in params.items():
                if key not in valid:
                    raise ValueError(f"invalid parameter {key!r} for {type(self).__name__} (valid: {valid})")
                setattr(self, key, value)
            return self

        def __repr__(self):
            args = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
            return f"{type(self).__name__}({args})"

    class TransformerMixin:
        def fit_transform(self, X, y=None, **fit_params):
            return self.fit(X, y, **fit_params).transform(X)


class VPFRBM(TransformerMixin, BaseEstimator):
    """Bernoulli RBM trained by variational probability flow (VPF), CD-k or PCD-k.

    Parameters
    ----------
    n_components : int
        Number of hidden units.
    method : {"vpf", "cd", "pcd"}
        Training algorithm (:func:`vpf_spiking.trainers.make_trainer`).
    learning_rate : float or None
        Step size.  The default 0.01 (with Adam) suits data sets of a few thousand rows, where an
        epoch has few updates; None takes the trainers' default (1e-3, tuned for MNIST).
    batch_size : int
        Examples per update.
    n_iter : int
        Epochs (passes over the training data).
    optimizer : {"adam", "sgd"} or None
        None takes the trainer's default.
    k : int
        Gibbs steps per update for CD / PCD (ignored by VPF).
    weight_decay : float
        L2 penalty on the weights.
    random_state : int or None
        Seed of the initial weights, of training and of :meth:`gibbs` / :meth:`score_samples`.
    verbose : bool or int
        Show a progress bar while fitting.

    Attributes
    ----------
    components_ : ndarray (n_components, n_features)
        Weights, as in BernoulliRBM (the transpose of ``model_.W[1]``).
    intercept_hidden_, intercept_visible_ : ndarray
        Hidden and visible biases.
    model_ : BoltzmannMachine
        The trained model (save it with ``model_.save(path)``).
    history_ : pandas.DataFrame
        Per-epoch training metrics.
    n_features_in_ : int
    """

    def __init__(self, n_components=256, method="vpf", learning_rate=0.01, batch_size=100, n_iter=10,
                 optimizer=None, k=1, weight_decay=1e-4, random_state=None, verbose=False):
        self.n_components = n_components
        self.method = method
        self.learning_rate = learning_rate
        self.batch_size = batch_size
        self.n_iter = n_iter
        self.optimizer = optimizer
        self.k = k
        self.weight_decay = weight_decay
        self.random_state = random_state
        self.verbose = verbose

    # ------------------------------------------------------------------ helpers
    def _seed(self) -> int:
        rs = self.random_state
        if rs is None:
            return int(np.random.default_rng().integers(2**31 - 1))
        if isinstance(rs, (int, np.integer)):
            return int(rs)
        if isinstance(rs, np.random.RandomState):
            return int(rs.randint(2**31 - 1))
        if isinstance(rs, np.random.Generator):
            return int(rs.integers(2**31 - 1))
        raise ConfigError(f"random_state must be None, an int or a numpy random generator, got {rs!r}")

    def _check_X(self, X, binary, fitted):
        try:
            X = np.asarray(X, dtype=np.float32)
        except (TypeError, ValueError) as exc:
            raise DataError(f"X must be a numeric matrix ({exc})") from None
        if X.ndim != 2 or X.shape[0] == 0 or X.shape[1] == 0:
            raise DataError(f"X must be a non-empty 2-D matrix (n_samples, n_features), got shape {X.shape}")
        if not np.all(np.isfinite(X)):
            raise DataError("X contains NaN or infinite values")
        if binary:
            if np.any((X != 0) & (X != 1)):
                raise DataError("VPFRBM.fit needs binary X (values 0 or 1); threshold greyscale data, e.g. X > 0.5")
        elif np.any((X < 0) | (X > 1)):
            raise DataError("X values must lie in [0, 1]")
        if fitted and X.shape[1] != self.n_features_in_:
            raise DataError(f"X has {X.shape[1]} features, but VPFRBM was fitted with {self.n_features_in_}")
        return X

    def _check_fitted(self):
        if not hasattr(self, "model_"):
            try:
                from sklearn.exceptions import NotFittedError
            except ImportError:  # pragma: no cover
                NotFittedError = ConfigError
            raise NotFittedError(f"this {type(self).__name__} is not fitted yet; call fit first")

    def _trainer(self, epochs):
        from .trainers import make_trainer

        if self.method not in ("vpf", "cd", "pcd"):
            raise ConfigError(f"method must be 'vpf', 'cd' or 'pcd', got {self.method!r}")
        kw = {"epochs": int(epochs), "batch_size": int(self.batch_size), "weight_decay": float(self.weight_decay),
              "seed": self._fit_seed, "progress": bool(self.verbose)}
        if self.learning_rate is not None:
            kw["learning_rate"] = float(self.learning_rate)
        if self.optimizer is not None:
            kw["optimizer"] = self.optimizer
        if self.method != "vpf":
            kw["k"] = int(self.k)
        return make_trainer(self.method, **kw)

    # ------------------------------------------------------------------ API
    def fit(self, X, y=None):
        """Train on binary ``X`` of shape (n_samples, n_features); ``y`` is ignored."""
        from .model import BoltzmannMachine

        X = self._check_X(X, binary=True, fitted=False)
        if int(self.n_components) < 1:
            raise ConfigError(f"n_components must be at least 1, got {self.n_components}")
        self._fit_seed = self._seed()
        self.n_features_in_ = X.shape[1]
        self.model_ = BoltzmannMachine([X.shape[1], int(self.n_components)], seed=self._fit_seed,
                                       name="vpfrbm")
        self.history_ = self._trainer(self.n_iter).fit(self.model_, X)
        self.random_state_ = np.random.default_rng(self._fit_seed + 1)
        return self

    def partial_fit(self, X, y=None):
        """One epoch over ``X`` (initialising on the first call).

        Each call builds a fresh trainer, so optimizer moments (Adam) and persistent chains (PCD)
        start over on every call; the weights carry on.
        """
        from .model import BoltzmannMachine

        first = not hasattr(self, "model_")
        X = self._check_X(X, binary=True, fitted=not first)
        if first:
            self._fit_seed = self._seed()
            self.n_features_in_ = X.shape[1]
            self.model_ = BoltzmannMachine([X.shape[1], int(self.n_components)], seed=self._fit_seed,
                                           name="vpfrbm")
            self.random_state_ = np.random.default_rng(self._fit_seed + 1)
        self._fit_seed += 1  # new minibatch order and E-step samples on every call
        self._trainer(1).fit(self.model_, X)
        return self

    @property
    def components_(self):
        self._check_fitted()
        return self.model_.W[1].T

    @property
    def intercept_hidden_(self):
        self._check_fitted()
        return self.model_.b[1]

    @property
    def intercept_visible_(self):
        self._check_fitted()
        return self.model_.b[0]

    def transform(self, X):
        """Hidden-unit probabilities p(h_j = 1 | v) for every row of ``X`` (values in [0, 1])."""
        from .sampling import sigmoid

        self._check_fitted()
        X = self._check_X(X, binary=False, fitted=True)
        m = self.model_
        return sigmoid((X @ m.W[1] + m.b[1]) / m.temperature)

    def free_energy(self, X):
        """F(v) with p(v) ~ exp(-F(v)/T): -b.v - T sum_j log(1 + exp((c_j + v.W_j)/T))."""
        self._check_fitted()
        m = self.model_
        X = np.asarray(X, dtype=np.float64)
        T = m.temperature
        pre = (X @ m.W[1].astype(np.float64) + m.b[1]) / T
        return -X @ m.b[0].astype(np.float64) - T * np.logaddexp(0, pre).sum(axis=1)

    def score_samples(self, X):
        """Pseudo-likelihood of each row, as BernoulliRBM computes it.

        For each row one visible unit i is chosen at random and flipped, giving v'; the score is
        ``n_features * log sigmoid((F(v') - F(v)) / T)``, a stochastic estimate of the
        log pseudo-likelihood sum_i log p(v_i | v_-i).  The random choice uses ``random_state``
        exactly as BernoulliRBM does (an int seed flips the same units on every call).
        """
        self._check_fitted()
        X = self._check_X(X, binary=False, fitted=True)
        # the same draw as BernoulliRBM (RandomState.randint), so equal weights give equal scores
        rs = self.random_state
        rng = rs if isinstance(rs, np.random.RandomState) else np.random.RandomState(rs)
        idx = rng.randint(0, X.shape[1], X.shape[0])
        rows = np.arange(X.shape[0])
        Xc = X.astype(np.float64)
        Xf = Xc.copy()
        Xf[rows, idx] = 1 - Xf[rows, idx]
        d = (self.free_energy(Xf) - self.free_energy(Xc)) / self.model_.temperature
        return X.shape[1] * -np.logaddexp(0, -d)

    def gibbs(self, v):
        """One Gibbs step from visible states ``v``: h ~ p(h | v), then v' ~ p(v | h).

        Returns the new visible sample (float 0/1), like BernoulliRBM.gibbs.
        """
        from .sampling import bernoulli, sigmoid

        self._check_fitted()
        v = self._check_X(v, binary=False, fitted=True)
        m = self.model_
        rng = self.random_state_
        h = bernoulli(sigmoid((v @ m.W[1] + m.b[1]) / m.temperature).astype(m.dtype), rng)
        return bernoulli(sigmoid((h @ m.W[1].T + m.b[0]) / m.temperature).astype(m.dtype), rng)


__all__ = ["VPFRBM"]
