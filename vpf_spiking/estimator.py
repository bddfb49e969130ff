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
from .trainers import params

try:  # scikit-learn is a test/bench dependency only
    from sklearn.base import BaseEstimator, ClassNamePrefixFeaturesOutMixin, TransformerMixin
except ImportError:  # pragma: no cover - exercised only where sklearn is absent

    class ClassNamePrefixFeaturesOutMixin:
        """Feature names ``vpfrbm0, vpfrbm1, ...`` (and, with scikit-learn, ``set_output``) need sklearn."""

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


# The estimator's parameters: its own, then every trainer option of
# :mod:`vpf_spiking.trainers.params` under scikit-learn's names and with the defaults that suit
# small tabular data sets.  get_params / set_params / clone read the generated signature.
_RENAMED = {"epochs": "n_iter", "seed": "random_state", "progress": "verbose"}
_DEFAULTS = {"learning_rate": 0.01, "n_iter": 10, "random_state": None, "verbose": False}
_SKIPPED = ("e_step_sweeps",)  # an RBM has no intra-layer weights, so the E-step has no sweeps
_OWN = {"n_components": 256, "method": "vpf"}
_PARAMS = {**_OWN, **{_RENAMED.get(o.name, o.name): _DEFAULTS.get(_RENAMED.get(o.name, o.name), o.default)
                      for o in params.OPTIONS.values() if o.name not in _SKIPPED}}
_TRAINER_NAME = {est: opt for opt, est in _RENAMED.items()}


def _signature():
    P = inspect.Parameter
    return inspect.Signature([P("self", P.POSITIONAL_OR_KEYWORD)]
                             + [P(name, P.KEYWORD_ONLY, default=d) for name, d in _PARAMS.items()])


def _params_doc():
    lines = []
    for name in _PARAMS:
        opt = params.OPTIONS.get(_TRAINER_NAME.get(name, name))
        if opt is not None and name not in ("learning_rate", *_RENAMED.values()):  # documented by hand
            lines += [f"    {name} : {opt.kind.__name__}, default {_PARAMS[name]!r}", f"        {opt.help}."]
    return "\n".join(lines)


class VPFRBM(ClassNamePrefixFeaturesOutMixin, TransformerMixin, BaseEstimator):
    """Bernoulli RBM trained by variational probability flow (VPF), CD-k or PCD-k.

    Parameters (keywords only)
    ----------
    n_components : int, default 256
        Number of hidden units.
    method : {{"vpf", "cd", "pcd"}}, default "vpf"
        Training algorithm (:func:`vpf_spiking.trainers.make_trainer`).
    learning_rate : float or None, default 0.01
        Step size.  The default 0.01 (with Adam) suits data sets of a few thousand rows, where an
        epoch has few updates; None takes the trainers' default (1e-3, tuned for MNIST).
    n_iter : int, default 10
        Epochs (passes over the training data).
    random_state : int, RandomState, Generator or None, default None
        Seed of the initial weights, of training and of :meth:`gibbs` / :meth:`score_samples`.
    verbose : bool or int, default False
        Show a progress bar while fitting.

    The other trainer options, as in :mod:`vpf_spiking.trainers.params` (None takes the
    trainer's default; ``k`` is read by CD / PCD only):

{trainer_options}

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

    def __init__(self, **kwargs):
        unknown = sorted(set(kwargs) - set(_PARAMS))
        if unknown:
            raise TypeError(f"VPFRBM got unexpected keyword argument(s) {unknown} (valid: {', '.join(_PARAMS)})")
        # store only, as scikit-learn asks: fit validates
        for name, default in _PARAMS.items():
            setattr(self, name, kwargs.get(name, default))

    __init__.__signature__ = _signature()

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
        # the wording of scikit-learn's check_array where it has one, so the common checks recognise it
        if hasattr(X, "toarray"):
            raise DataError("VPFRBM does not accept sparse input; pass a dense array (X.toarray())")
        if np.iscomplexobj(X):
            raise DataError("Complex data not supported: X must be real (0/1, or in [0, 1] after fit)")
        try:
            X = np.asarray(X, dtype=np.float32)
        except (TypeError, ValueError) as exc:
            raise DataError(f"X must be a numeric matrix ({exc})") from None
        if X.ndim != 2:
            raise DataError(f"X must be a 2-D matrix (n_samples, n_features), got shape {X.shape}; Reshape your "
                            "data, e.g. X.reshape(1, -1) for a single sample")
        for axis, what in ((0, "sample"), (1, "feature")):
            if X.shape[axis] == 0:
                raise DataError(f"Found array with 0 {what}(s) (shape={X.shape}) while a minimum of 1 is required.")
        if not np.all(np.isfinite(X)):
            raise DataError("X contains NaN or infinite values")
        if np.any(X < 0):
            raise DataError("Negative values in data passed to VPFRBM: X must be binary (fit) or in [0, 1]")
        if binary:
            if np.any((X != 0) & (X != 1)):
                raise DataError("VPFRBM.fit needs binary X (values 0 or 1); threshold greyscale data, e.g. X > 0.5")
        elif np.any(X > 1):
            raise DataError("X values must lie in [0, 1]")
        if fitted and X.shape[1] != self.n_features_in_:
            raise DataError(f"X has {X.shape[1]} features, but VPFRBM is expecting {self.n_features_in_} features "
                            "as input")
        return X

    def _check_fitted(self):
        if not hasattr(self, "model_"):
            try:
                from sklearn.exceptions import NotFittedError
            except ImportError:  # pragma: no cover
                NotFittedError = ConfigError
            raise NotFittedError(f"this {type(self).__name__} is not fitted yet; call fit first")

    def _trainer(self, epochs=None):
        """The trainer for the current parameters (checked under their estimator names); ``epochs`` overrides n_iter."""
        from .trainers import make_trainer

        method = params.METHOD.check(self.method, "method")
        kw = {}
        for name in _PARAMS:
            opt = params.OPTIONS.get(_TRAINER_NAME.get(name, name))
            value = getattr(self, name)
            if opt is None or method not in opt.methods or value is None or name in ("random_state", "verbose"):
                continue  # not an option of this method, or the default, or set just below
            kw[opt.name] = opt.check(value, name)
        kw.update(seed=self._fit_seed, progress=bool(self.verbose))
        if epochs is not None:
            kw["epochs"] = epochs
        return make_trainer(method, **kw)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.positive_only = True  # X is binary (fit) or in [0, 1] (transform, score)
        tags.transformer_tags.preserves_dtype = ["float32"]  # the model computes in float32
        return tags

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
        self.history_ = self._trainer().fit(self.model_, X)
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
    def _n_features_out(self):
        """Output width for get_feature_names_out (names vpfrbm0, vpfrbm1, ...)."""
        return self.components_.shape[0]

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
        self._check_fitted()
        X = self._check_X(X, binary=False, fitted=True)
        return self.model_.hidden_probabilities(X)

    def free_energy(self, X):
        """F(v) with p(v) ~ exp(-F(v)/T): -b.v - T sum_j log(1 + exp((c_j + v.W_j)/T))."""
        self._check_fitted()
        return self.model_.free_energy(np.asarray(X, dtype=np.float64))

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
        from .sampling import bernoulli

        self._check_fitted()
        v = self._check_X(v, binary=False, fitted=True)
        m, rng = self.model_, self.random_state_
        h = bernoulli(m.hidden_probabilities(v).astype(m.dtype, copy=False), rng)
        return bernoulli(m.visible_probabilities(h).astype(m.dtype, copy=False), rng)


VPFRBM.__doc__ = VPFRBM.__doc__.format(trainer_options=_params_doc())

__all__ = ["VPFRBM"]
