"""Annealed importance sampling (AIS) estimates of log Z (Salakhutdinov & Murray 2008).

AIS walks a population of independent runs through intermediate distributions
p_beta ~ f_beta for beta_0 = 0 < beta_1 < ... < beta_K = 1, from a base distribution with a
known normaliser Z_0 to the target.  Run i accumulates the log importance weight
sum_k [log f_{beta_k}(x_k) - log f_{beta_{k-1}}(x_k)], then moves x with a Markov transition that
leaves p_{beta_k} invariant.  mean(w) is an unbiased estimate of Z / Z_0.

The annealing loop (:func:`ais`) knows nothing about the model: it talks to an
:class:`IntermediateDistribution`.  :class:`RBMAnnealing` is the RBM path of the paper; a
DBM path is another subclass (e.g. annealing over (v, h2) with h1 summed out analytically).

Error bar: with w_i = exp(log w_i), log Z_hat = log Z_0 + log mean(w); its standard error by the
delta method is sd(w) / (sqrt(n) mean(w)).  We also report log(mean(w) +- 3 sd(w)/sqrt(n)) as
Salakhutdinov & Murray do.  These bars only see the spread of the weights: when the annealing is
too short, all runs can miss the same modes and the estimate is biased low with a small bar.
"""

from __future__ import annotations

import itertools
import time
import warnings
from dataclasses import dataclass, field

import numpy as np

from ..errors import ConfigError, DataError, ModelError, VPFWarning
from ..model import pixel_log_odds, softplus
from ..sampling import bernoulli, sigmoid
from ..trainers.threads import blas_threads as limit_blas_threads


# ---------------------------------------------------------------------------- schedules
def annealing_schedule(n_betas=14500, kind="sm") -> np.ndarray:
    """Inverse temperatures from 0 to 1 (both included), ``n_betas`` values.

    ``kind="sm"``: Salakhutdinov & Murray's piecewise-linear schedule (500 steps on [0, 0.5],
    4,000 on [0.5, 0.9], 10,000 on [0.9, 1] for 14,500 in all; the same proportions for
    other sizes); ``"linear"``; ``"geometric"`` (from 1e-4 up, plus 0).
    """
    n = int(n_betas)
    if n < 2:
        raise ConfigError(f"AIS needs at least 2 inverse temperatures, got {n_betas}")
    if kind == "linear":
        return np.linspace(0.0, 1.0, n)
    if kind == "geometric":
        return np.concatenate([[0.0], np.geomspace(1e-4, 1.0, n - 1)])
    if kind != "sm":
        raise ConfigError(f"annealing schedule must be 'sm', 'linear' or 'geometric', got {kind!r}")
    if n < 8:
        return np.linspace(0.0, 1.0, n)
    n1 = max(1, round(n * 500 / 14500))
    n2 = max(1, round(n * 4000 / 14500))
    n3 = n - n1 - n2
    return np.concatenate([np.linspace(0.0, 0.5, n1, endpoint=False),
                           np.linspace(0.5, 0.9, n2, endpoint=False),
                           np.linspace(0.9, 1.0, n3)])


# ---------------------------------------------------------------------------- interface
class IntermediateDistribution:
    """The family p_beta(x) ~ f_beta(x), beta in [0, 1], that AIS anneals through.

    Subclasses set ``log_z_base`` (log Z of the normalised f_0) and implement
    :meth:`sample_base`, :meth:`log_f` and :meth:`transition`; they may override :meth:`step`
    to share work between the weight update and the transition.
    """

    log_z_base: float = 0.0

    def sample_base(self, n, rng):
        raise NotImplementedError

    def log_f(self, x, beta) -> np.ndarray:
        """Unnormalised log-probability at ``beta``, float64 of shape (n_runs,)."""
        raise NotImplementedError

    def transition(self, x, beta, rng):
        """One Markov step that leaves p_beta invariant."""
        raise NotImplementedError

    def step(self, x, beta_prev, beta, rng):
        """Weight increment log f_beta(x) - log f_beta_prev(x), then move x under p_beta."""
        lw = self.log_f(x, beta) - self.log_f(x, beta_prev)
        return self.transition(x, beta, rng), lw


@dataclass
class AISResult:
    """log Z estimate with its error bars and the raw log weights."""

    log_z: float
    se: float
    log_z_lower: float
    log_z_upper: float
    log_weights: np.ndarray = field(repr=False)
    log_z_base: float = 0.0
    n_betas: int = 0
    wall_s: float = 0.0

    @property
    def n_runs(self) -> int:
        return int(len(self.log_weights))

    @property
    def ess(self) -> float:
        """Effective sample size of the importance weights, (sum w)^2 / sum w^2."""
        w = np.exp(self.log_weights - self.log_weights.max())
        return float(w.sum() ** 2 / (w ** 2).sum())

    def as_dict(self) -> dict:
        return {"log_z": self.log_z, "se": self.se, "log_z_lower": self.log_z_lower,
                "log_z_upper": self.log_z_upper, "n_runs": self.n_runs, "n_betas": self.n_betas,
                "ess": self.ess, "wall_s": self.wall_s}


def summarize_log_weights(log_w, log_z_base=0.0) -> tuple[float, float, float, float]:
    """(log Z, delta-method SE, log(mean - 3 sd/sqrt n), log(mean + 3 sd/sqrt n))."""
    log_w = np.asarray(log_w, dtype=np.float64)
    n = len(log_w)
    m = log_w.max()
    w = np.exp(log_w - m)
    mean = w.mean()
    sd = w.std(ddof=1) if n > 1 else 0.0
    log_z = log_z_base + m + np.log(mean)
    se = sd / (np.sqrt(n) * mean)
    lo = mean - 3 * sd / np.sqrt(n)
    lower = log_z_base + m + np.log(lo) if lo > 0 else -np.inf
    upper = log_z_base + m + np.log(mean + 3 * sd / np.sqrt(n))
    return float(log_z), float(se), float(lower), float(upper)


def ais(dist: IntermediateDistribution, betas, n_runs=100, rng=None, progress=False,
        blas_threads=1) -> AISResult:
    """Estimate log Z of the beta = 1 member of ``dist`` with ``n_runs`` parallel AIS runs.

    ``blas_threads`` caps the BLAS threads during the loop (None: no cap; see
    :func:`vpf_spiking.trainers.threads.blas_threads`).
    """
    betas = np.asarray(betas, dtype=np.float64)
    if betas.ndim != 1 or len(betas) < 2 or betas[0] != 0.0 or betas[-1] != 1.0 or np.any(np.diff(betas) <= 0):
        raise ConfigError("AIS inverse temperatures must increase strictly from 0 to 1")
    if n_runs < 2:
        raise ConfigError(f"AIS needs at least 2 runs for an error bar, got {n_runs}")
    rng = np.random.default_rng(rng)
    t0 = time.perf_counter()
    x = dist.sample_base(n_runs, rng)
    log_w = np.zeros(n_runs, dtype=np.float64)
    steps = range(1, len(betas))
    if progress:
        from ..progress import progress_bar as tqdm
        steps = tqdm(steps, desc="AIS", unit="beta", mininterval=1.0)
    # A (100 x 784) @ (784 x 500) product is too small to share between threads: on a busy
    # 2-core machine two BLAS threads made each step ~20x slower than one.
    with limit_blas_threads(blas_threads):
        for k in steps:
            x, lw = dist.step(x, betas[k - 1], betas[k], rng)
            log_w += lw
    if not np.all(np.isfinite(log_w)):
        raise ModelError("AIS produced non-finite importance weights (model parameters too large?)")
    log_z, se, lo, hi = summarize_log_weights(log_w, dist.log_z_base)
    return AISResult(log_z, se, lo, hi, log_w, dist.log_z_base, len(betas), time.perf_counter() - t0)


# ---------------------------------------------------------------------------- RBM path
def base_rate_bias(data, n_visible, smoothing=1.0) -> np.ndarray:
    """Visible biases of the base-rate model: logit of the (Laplace-smoothed) pixel marginals.

    In the units of :class:`RBMAnnealing`, whose parameters are already divided by T, so this is
    :func:`vpf_spiking.model.pixel_log_odds` at temperature 1 (zeros without data).
    """
    if data is None:
        return np.zeros(n_visible)
    data = np.asarray(data)
    if data.ndim != 2 or data.shape[1] != n_visible:
        raise DataError(f"base-rate data has shape {data.shape}, the model has {n_visible} visible units")
    return pixel_log_odds(data, temperature=1.0, smoothing=smoothing)


class RBMAnnealing(IntermediateDistribution):
    """RBM path: f_beta(v) = exp((1-beta) b_A.v + beta b.v) prod_j (1 + exp(beta (c_j + v.W_j))).

    The base (beta = 0) is an RBM with visible biases b_A from the data's base rates and no
    weights; its n_h hidden units are then free coins, so log Z_0 = sum_i softplus(b_A,i) +
    n_h log 2 (f_0 carries the factor prod_j (1 + e^0) = 2^n_h).  The transition
    is one Gibbs step of the joint p_beta(v, h) ~ exp((1-beta) b_A.v + beta(b.v + c.h + v W h)),
    whose v-marginal is f_beta.  Parameters are divided by the temperature T.
    """

    def __init__(self, model, base_data=None):
        if not model.is_rbm:
            raise ModelError(f"RBMAnnealing needs an RBM (2 layers, no intra-layer weights), got sizes {model.sizes}")
        T = model.temperature
        self.dtype = model.dtype
        self.W = (model.W[1] / T).astype(model.dtype)
        self.b = model.b[0].astype(np.float64) / T
        self.c = model.b[1].astype(np.float64) / T
        self.b_base = base_rate_bias(base_data, model.sizes[0])
        self.log_z_base = float(softplus(self.b_base).sum() + model.sizes[1] * np.log(2.0))
        self._db = self.b - self.b_base

    def sample_base(self, n, rng):
        p = sigmoid(self.b_base).astype(self.dtype)
        return bernoulli(np.broadcast_to(p, (n, len(p))), rng)

    def _pre(self, v):
        # float32 GEMM for speed; the softplus differences below are taken in float64
        return (v @ self.W).astype(np.float64) + self.c

    def log_f(self, v, beta):
        a = self._pre(v)
        vd = v.astype(np.float64)
        return vd @ ((1 - beta) * self.b_base + beta * self.b) + softplus(beta * a).sum(axis=1)

    def _move(self, a, beta, rng):
        # sampling needs no float64: the probabilities are taken in the model's dtype
        h = bernoulli(sigmoid((beta * a).astype(self.dtype)), rng)
        field = beta * (h @ self.W.T) + ((1 - beta) * self.b_base + beta * self.b).astype(self.dtype)
        return bernoulli(sigmoid(field), rng)

    def transition(self, v, beta, rng):
        return self._move(self._pre(v), beta, rng)

    def step(self, v, beta_prev, beta, rng):
        a = self._pre(v)
        lw = (beta - beta_prev) * (v.astype(np.float64) @ self._db) \
            + (softplus(beta * a) - softplus(beta_prev * a)).sum(axis=1)
        return self._move(a, beta, rng), lw


def rbm_log_unnormalized(model, v, chunk=5000) -> np.ndarray:
    """-F(v)/T = b.v/T + sum_j softplus((c_j + v.W_j)/T): the log of the unnormalised p(v)."""
    if not model.is_rbm:
        raise ModelError("the free energy here is for RBMs; use the DBM path for deeper models")
    v = np.asarray(v, dtype=model.dtype)
    if v.ndim != 2 or v.shape[1] != model.sizes[0]:
        raise DataError(f"data has shape {v.shape}, the model has {model.sizes[0]} visible units")
    return -model.free_energy(v, chunk=chunk) / model.temperature


def rbm_log_likelihood(model, x, log_z) -> tuple[float, float]:
    """Mean test log-likelihood (nats) mean(-F(v)/T) - log Z and its SE over the images."""
    lp = rbm_log_unnormalized(model, x) - log_z
    return float(lp.mean()), float(lp.std(ddof=1) / np.sqrt(len(lp)))


def evaluate_ais(model, test, base_data=None, n_betas=14500, n_runs=100, schedule="sm",
                 seed=0, progress=False) -> dict:
    """AIS log Z of an RBM and its mean test log-likelihood (nats), with error bars.

    ``ll_se`` is the SE over test images; ``log_z_se`` the AIS SE, which enters every image's
    log-likelihood with the same sign, so the two are reported separately.
    """
    res = ais(RBMAnnealing(model, base_data), annealing_schedule(n_betas, schedule), n_runs,
              np.random.default_rng(seed), progress)
    ll, ll_se = rbm_log_likelihood(model, test, res.log_z)
    out = res.as_dict()
    out.update({"log_z_se": res.se, "test_ll": ll, "ll_se": ll_se})
    del out["se"]
    problems = ais_warnings(model, out)
    for message in problems:
        warnings.warn(message, VPFWarning, stacklevel=2)
    out["warning"] = "; ".join(problems)
    return out


#: effective sample size below which an AIS estimate is called unconverged
MIN_ESS = 10.0
#: |parameter| / T beyond which every unit is saturated: the model has diverged, AIS is meaningless
MAX_SANE_FIELD = 1e3


def rbm_log_z_bounds(model) -> tuple[float, float]:
    """Bounds every RBM obeys: -E(0)/T = 0 <= log Z <= (n_v + n_h) log 2 + max_x (-E(x)/T).

    The maximum is bounded by the sum of the positive parts of all weights and biases over T.
    """
    pos = sum(float(np.clip(p, 0, None).sum(dtype=np.float64)) for p in (model.W[1], model.b[0], model.b[1]))
    return 0.0, (model.sizes[0] + model.sizes[1]) * float(np.log(2.0)) + pos / model.temperature


def ais_warnings(model, result: dict) -> list[str]:
    """Why an AIS ``result`` of ``model`` (an RBM) should not be trusted; empty when none applies."""
    out = []
    log_z = result["log_z"]
    big = max(float(np.max(np.abs(p))) for p in model.parameters().values()) / model.temperature
    if not np.isfinite(log_z):
        out.append(f"AIS gave log Z = {log_z}: the estimate is not finite")
    else:
        lo, hi = rbm_log_z_bounds(model)
        if not lo - 1e-6 * abs(hi) <= log_z <= hi * (1 + 1e-9) + 1e-9:
            out.append(f"AIS gave log Z = {log_z:.4g}, outside the bounds every RBM obeys [{lo:.4g}, {hi:.4g}]")
    if big > MAX_SANE_FIELD:
        out.append(f"log Z = {log_z:.4g} comes from a model whose largest |parameter|/T is {big:.3g}: "
                   f"it has diverged and no AIS estimate of it means anything")
    if result.get("ess", np.inf) < MIN_ESS:
        out.append(f"AIS effective sample size {result['ess']:.1f} of {result.get('n_runs', '?')} runs is below "
                   f"{MIN_ESS:g}: log Z is unconverged and probably too low (use more inverse temperatures)")
    return out


# ---------------------------------------------------------------------------- exact log Z
def _bits(n):
    return np.array(list(itertools.product([0.0, 1.0], repeat=n)), dtype=np.float64) if n else np.zeros((1, 0))


def exact_log_z(model, max_enumerated=22) -> float:
    """log Z by enumeration, for small models (checks of AIS).

    Without intra-layer weights, the layers of one parity (odd or even, whichever has fewer
    units) are enumerated and the others, then conditionally independent, summed analytically
    (an RBM with 10 hidden units enumerates 2^10 states whatever its visible size).  With
    intra-layer weights every state of the whole model is enumerated.
    """
    T = model.temperature
    L = model.n_layers
    W = [None] + [w.astype(np.float64) / T for w in model.W[1:]]
    b = [x.astype(np.float64) / T for x in model.b]
    if any(model.intra):
        if model.n_units > max_enumerated:
            raise ModelError(f"exact log Z enumerates 2^{model.n_units} states: too many (max 2^{max_enumerated})")
        w, bias = model.dense()
        w, bias = w / T, bias / T
        total = []
        for y in _chunks_of_states(model.n_units):
            total.append(logsumexp_rows(0.5 * np.einsum("bi,ij,bj->b", y, w, y) + y @ bias))
        return float(np.logaddexp.reduce(total))
    parity = min((0, 1), key=lambda p: sum(model.sizes[p::2]))
    enum = list(range(parity, L, 2))
    free = [l for l in range(L) if l % 2 != parity]
    n_enum = sum(model.sizes[l] for l in enum)
    if n_enum > max_enumerated:
        raise ModelError(f"exact log Z enumerates 2^{n_enum} states: too many (max 2^{max_enumerated})")
    offsets = np.concatenate([[0], np.cumsum([model.sizes[l] for l in enum])])
    total = []
    for y in _chunks_of_states(n_enum):
        ys = {l: y[:, offsets[i]:offsets[i + 1]] for i, l in enumerate(enum)}
        val = sum(ys[l] @ b[l] for l in enum)
        for l in free:
            f = np.broadcast_to(b[l], (y.shape[0], len(b[l]))).copy()
            if l - 1 in ys:
                f += ys[l - 1] @ W[l]
            if l + 1 in ys:
                f += ys[l + 1] @ W[l + 1].T
            val = val + softplus(f).sum(axis=1)
        total.append(logsumexp_rows(val))
    return float(np.logaddexp.reduce(total))


def logsumexp_rows(v):
    m = v.max()
    return m + np.log(np.exp(v - m).sum())


def _chunks_of_states(n, chunk_bits=14):
    """All 2^n binary vectors, in chunks of at most 2^chunk_bits rows (bounded memory)."""
    lo = min(n, chunk_bits)
    low = _bits(lo)
    for high in _bits(n - lo):
        yield np.hstack([np.broadcast_to(high, (len(low), n - lo)), low])
