"""VPFRBM: the scikit-learn style estimator."""

import numpy as np
import pytest

sklearn = pytest.importorskip("sklearn")

from sklearn.base import clone  # noqa: E402
from sklearn.datasets import load_digits  # noqa: E402
from sklearn.exceptions import NotFittedError  # noqa: E402
from sklearn.linear_model import LogisticRegression  # noqa: E402
from sklearn.model_selection import train_test_split  # noqa: E402
from sklearn.pipeline import Pipeline, make_pipeline  # noqa: E402
from sklearn.preprocessing import Binarizer  # noqa: E402
from sklearn.utils.estimator_checks import parametrize_with_checks  # noqa: E402

from vpf_spiking.errors import ConfigError, DataError  # noqa: E402
from vpf_spiking.estimator import VPFRBM  # noqa: E402
from vpf_spiking.model import BoltzmannMachine  # noqa: E402


@pytest.fixture(scope="module")
def digits():
    """sklearn's 8x8 digits, binarised at half the maximum grey level, split 70/30."""
    X, y = load_digits(return_X_y=True)
    Xb = (X / 16.0 > 0.5).astype(np.float32)
    return train_test_split(Xb, y, test_size=0.3, random_state=0)


PARAMS = dict(n_components=32, method="cd", learning_rate=0.05, batch_size=20, n_iter=3, optimizer="sgd",
              momentum=0.5, k=2, weight_decay=1e-3, flow="marginal", flips=8, visible_bias_init="zero",
              random_state=7, verbose=True)


def test_parameters_are_derived_from_the_trainer_declaration():
    from vpf_spiking.trainers import params

    names = set(VPFRBM().get_params())
    renamed = {"epochs": "n_iter", "seed": "random_state", "progress": "verbose"}
    assert names == {"n_components", "method"} | {renamed.get(o, o) for o in params.OPTIONS} - {"e_step_sweeps"}
    defaults = VPFRBM().get_params()
    assert defaults["weight_decay"] == 1e-4 and defaults["optimizer"] == "adam"
    assert defaults["visible_bias_init"] == "marginals" and defaults["learning_rate"] == 0.01


def test_get_params_round_trip_and_clone():
    est = VPFRBM(**PARAMS)
    assert est.get_params() == PARAMS
    other = VPFRBM().set_params(**PARAMS)
    assert other.get_params() == PARAMS
    c = clone(est)
    assert c is not est and c.get_params() == PARAMS
    with pytest.raises(ValueError):
        est.set_params(n_hidden=3)
    with pytest.raises(TypeError, match="n_hidden"):
        VPFRBM(n_hidden=3)


def test_fit_transform_gibbs_score(digits):
    Xtr, Xte, _, _ = digits
    est = VPFRBM(n_components=20, n_iter=2, random_state=0).fit(Xtr)
    assert isinstance(est.model_, BoltzmannMachine) and est.model_.sizes == (64, 20)
    assert est.components_.shape == (20, 64)
    assert est.intercept_hidden_.shape == (20,) and est.intercept_visible_.shape == (64,)
    assert est.n_features_in_ == 64 and len(est.history_) == 2
    H = est.transform(Xte)
    assert H.shape == (len(Xte), 20) and np.all((H >= 0) & (H <= 1))
    # transform is p(h=1|v): check against the model directly
    from scipy.special import expit

    np.testing.assert_allclose(H, expit(Xte @ est.model_.W[1] + est.model_.b[1]), rtol=1e-5)
    v = est.gibbs(Xte[:5])
    assert v.shape == (5, 64) and set(np.unique(v)) <= {0.0, 1.0}
    s = est.score_samples(Xte)
    assert s.shape == (len(Xte),) and np.all(s <= 0)
    np.testing.assert_array_equal(s, est.score_samples(Xte))  # fixed random_state: same flips


def test_score_samples_matches_exact_pseudo_likelihood_term():
    """With one row and a known flipped unit, the score is n * log p(v_i | v_-i) computed by hand."""
    est = VPFRBM(n_components=3, n_iter=1, random_state=0).fit(np.eye(4, dtype=np.float32)[[0, 1, 2, 3] * 5])
    m = est.model_
    v = np.array([[1, 0, 1, 0]], dtype=np.float32)
    i = np.random.RandomState(est.random_state).randint(0, 4, 1)[0]

    def logp_joint_marginal(x):  # log of the unnormalised p(v) by summing over all hidden states
        hs = np.array([[(k >> j) & 1 for j in range(3)] for k in range(8)], dtype=np.float64)
        e = -(x @ m.b[0]) - hs @ m.b[1] - (x @ m.W[1].astype(np.float64)) @ hs.T
        return np.log(np.exp(-e).sum())

    vf = v.copy()
    vf[0, i] = 1 - vf[0, i]
    a, b = logp_joint_marginal(v[0].astype(np.float64)), logp_joint_marginal(vf[0].astype(np.float64))
    expected = 4 * (a - np.logaddexp(a, b))
    assert est.score_samples(v)[0] == pytest.approx(expected, rel=1e-5)


def test_score_samples_and_transform_agree_with_bernoulli_rbm(digits):
    """Given the same weights and random_state, BernoulliRBM computes the same numbers."""
    from sklearn.neural_network import BernoulliRBM

    Xtr, Xte = digits[0], digits[1]
    est = VPFRBM(n_components=16, n_iter=2, random_state=3).fit(Xtr)
    ref = BernoulliRBM(n_components=16, random_state=3)
    ref.components_ = est.components_.astype(np.float64)
    ref.intercept_hidden_ = est.intercept_hidden_.astype(np.float64)
    ref.intercept_visible_ = est.intercept_visible_.astype(np.float64)
    ref.n_features_in_ = 64
    np.testing.assert_allclose(est.score_samples(Xte), ref.score_samples(Xte.astype(np.float64)), rtol=1e-4, atol=1e-3)
    np.testing.assert_allclose(est.transform(Xte), ref.transform(Xte.astype(np.float64)), rtol=1e-4, atol=1e-6)


def test_pipeline_on_digits_learns_useful_features(digits):
    """RBM features + logistic regression on binarised digits.

    Measured (random_state 0..3): 0.876-0.885 test accuracy after VPF training; the same pipeline
    with an untrained RBM (1 epoch at learning rate 1e-9) gives 0.58.  BernoulliRBM (64 units, lr 0.05, 20
    epochs) gives 0.88 on this split.
    """
    Xtr, Xte, ytr, yte = digits

    def accuracy(**kw):
        params = {"n_components": 64, "n_iter": 20, "random_state": 0, **kw}
        pipe = Pipeline([("rbm", VPFRBM(**params)),
                         ("clf", LogisticRegression(max_iter=3000))])
        return pipe.fit(Xtr, ytr).score(Xte, yte)

    # one BLAS thread: with other work on the 2 cores, two threads made this test ~10x slower
    from vpf_spiking.trainers.threads import blas_threads

    with blas_threads(1):
        trained = accuracy()
        untrained = accuracy(learning_rate=1e-9, n_iter=1)
    assert trained > 0.83, trained
    assert trained > untrained + 0.15, (trained, untrained)


def test_errors_are_clear(digits):
    Xtr = digits[0]
    with pytest.raises(NotFittedError):
        VPFRBM().transform(Xtr)
    with pytest.raises(DataError, match="binary"):
        VPFRBM(n_iter=1).fit(Xtr * 0.5)
    with pytest.raises(ConfigError, match="method"):
        VPFRBM(method="gd", n_iter=1).fit(Xtr)
    with pytest.raises(ConfigError, match="n_iter must be >= 1, got 0"):
        VPFRBM(n_iter=0).fit(Xtr)
    with pytest.raises(ConfigError, match="momentum applies to optimizer sgd"):
        VPFRBM(n_iter=1, momentum=0.5).fit(Xtr)
    est = VPFRBM(n_components=4, n_iter=1, random_state=0).fit(Xtr)
    with pytest.raises(DataError, match="64"):
        est.transform(Xtr[:, :10])


def test_partial_fit(digits):
    Xtr = digits[0]
    est = VPFRBM(n_components=8, random_state=0)
    est.partial_fit(Xtr[:200])
    W1 = est.components_.copy()
    est.partial_fit(Xtr[200:400])
    assert est.components_.shape == (8, 64) and not np.allclose(W1, est.components_)


def test_works_without_scikit_learn():
    """Fallback get_params / set_params / fit_transform when sklearn cannot be imported."""
    import subprocess
    import sys

    code = (
        "import sys; sys.modules['sklearn'] = None\n"
        "import numpy as np\n"
        "from vpf_spiking.estimator import VPFRBM\n"
        "e = VPFRBM(n_components=3, n_iter=2, random_state=0)\n"
        "assert e.get_params()['n_components'] == 3\n"
        "assert e.set_params(n_components=4) is e and e.n_components == 4\n"
        "try:\n    e.set_params(bogus=1)\nexcept ValueError:\n    pass\nelse:\n    raise SystemExit('no error')\n"
        "x = (np.random.default_rng(0).random((40, 6)) > 0.5).astype(np.float32)\n"
        "h = e.fit_transform(x)\n"
        "assert h.shape == (40, 4)\n"
        "print('ok', repr(e).startswith('VPFRBM('))\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "ok True"


# ---------------------------------------------------------------------------- scikit-learn's common checks
# Reasons, kept short: pytest prints them for every expected failure.
_BINARY = "fit takes binary X only; the check fits real-valued data (run binarised in the pipeline below)"
_BARE_FAILS = [  # every one fails at fit with "VPFRBM.fit needs binary X" (measured with scikit-learn 1.9)
    "check_dict_unchanged", "check_dont_overwrite_parameters", "check_dtype_object", "check_estimators_dtypes",
    "check_estimators_fit_returns_self", "check_estimators_nan_inf", "check_estimators_overwrite_params",
    "check_estimators_pickle", "check_f_contiguous_array_estimator", "check_fit2d_1feature", "check_fit2d_1sample",
    "check_fit2d_predict1d", "check_fit_check_is_fitted", "check_fit_idempotent", "check_fit_score_takes_y",
    "check_methods_sample_order_invariance", "check_methods_subset_invariance", "check_n_features_in",
    "check_n_features_in_after_fitting", "check_pipeline_consistency", "check_readonly_memmap_input",
    "check_transformer_data_not_an_array", "check_transformer_general", "check_transformer_preserve_dtypes",
]
# score_samples flips one unit per row, drawn from random_state in row order, as BernoulliRBM does
# (scikit-learn expects BernoulliRBM to fail these two as well); in a Pipeline the fitted step is the
# object inside `steps`, so that parameter's hash changes at fit (Binarizer + BernoulliRBM fails too).
_SCORE = "score_samples is a stochastic pseudo-likelihood drawn in row order (as BernoulliRBM's)"
_PIPELINE = "Pipeline artefact: the fitted step is the object in `steps` (BernoulliRBM fails it too)"


def _expected_failed_checks(estimator):
    if isinstance(estimator, Pipeline):
        return {"check_methods_sample_order_invariance": _SCORE, "check_methods_subset_invariance": _SCORE,
                "check_estimators_overwrite_params": _PIPELINE, "check_dont_overwrite_parameters": _PIPELINE}
    return dict.fromkeys(_BARE_FAILS, _BINARY)


_SMALL = dict(n_components=4, n_iter=1, batch_size=10, random_state=0)


@parametrize_with_checks([VPFRBM(**_SMALL), make_pipeline(Binarizer(threshold=0.5), VPFRBM(**_SMALL))],
                         expected_failed_checks=_expected_failed_checks, xfail_strict=True)
def test_scikit_learn_estimator_checks(estimator, check):
    check(estimator)

