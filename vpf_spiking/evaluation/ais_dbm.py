"""Test log-likelihood lower bound of a deep Boltzmann machine (no intra-layer weights).

What is computed (Salakhutdinov & Hinton 2009; Salakhutdinov & Larochelle 2010):

1. log Z by AIS.  Without intra-layer weights the layers split into odd (h1, h3, ...) and even
   (v, h2, ...) ones, and the DBM is *exactly* an RBM whose "visible" units are the odd layers
   and whose "hidden" units are the even layers (every weight joins an odd and an even layer).
   Summing the even layers out analytically leaves a distribution over the odd layers only -
   for the usual 2-layer DBM, over h1 alone, with v and h2 summed out:
   f(h1) = exp(b1.h1) prod_i (1 + e^{b0_i + (W1 h1)_i}) prod_k (1 + e^{b2_k + (h1 W2)_k}).
   :func:`dbm_as_rbm` builds that RBM and :class:`~vpf_spiking.evaluation.ais.RBMAnnealing`
   anneals it (base-rate biases on the odd layers from their mean-field activations on data).
2. A variational lower bound on log p(v) for every test image, with a fully factorised
   mean-field q(h1) q(h2) ... fitted by coordinate ascent (each layer in turn given the
   others, which never decreases the bound):
   log p(v) >= E_q[-E(v, h)/T] + H(q) - log Z.
   The mean test bound uses the AIS log Z; the AIS error bar moves every image's bound by the
   same amount and is reported separately.

The result is a *lower bound* on the mean test log-likelihood only up to the AIS error: AIS
tends to underestimate log Z, which would make the reported bound too high.  A cheap check
catches gross failures: log Z >= log p*(v) >= the mean-field bound of any single image, so
``log_z_floor`` (the largest of those over the test images and the blank image) must not exceed
the AIS estimate; ``ais_below_floor`` flags it and ``test_bound_at_floor`` is the mean test
bound with log Z replaced by that floor (an upper limit on what the bound can be).
"""

from __future__ import annotations

import numpy as np

from ..errors import ConfigError, DataError, ModelError
from ..model import BoltzmannMachine
from .ais import RBMAnnealing, ais, annealing_schedule


def _check_dbm(model):
    if model.n_layers < 3:
        raise ModelError(f"the DBM bound needs at least two hidden layers, got sizes {model.sizes} "
                         "(use evaluate_ais for an RBM)")
    if any(model.intra):
        raise ModelError("the DBM AIS bound is for models without intra-layer weights "
                         f"(this one has U in layers {[l for l, u in enumerate(model.intra) if u]})")


def _parity_layers(model):
    odd = list(range(1, model.n_layers, 2))
    even = list(range(0, model.n_layers, 2))
    return odd, even


def dbm_as_rbm(model, explicit="odd") -> BoltzmannMachine:
    """The RBM with the same energy and log Z: odd layers as visible, even layers as hidden.

    ``explicit="even"`` swaps the roles (v, h2, ... visible; h1, h3, ... hidden), so that AIS
    anneals over the even layers with the odd ones summed out.
    """
    _check_dbm(model)
    if explicit not in ("odd", "even"):
        raise ConfigError(f"explicit must be 'odd' or 'even', got {explicit!r}")
    odd, even = _parity_layers(model)
    n = model.sizes
    oo = np.concatenate([[0], np.cumsum([n[l] for l in odd])])
    eo = np.concatenate([[0], np.cumsum([n[l] for l in even])])
    W = np.zeros((oo[-1], eo[-1]), dtype=model.dtype)
    for i, lo in enumerate(odd):
        for j, le in enumerate(even):
            if le == lo - 1:        # W[lo] joins layer lo-1 (rows) to lo (columns)
                W[oo[i]:oo[i + 1], eo[j]:eo[j + 1]] = model.W[lo].T
            elif le == lo + 1:
                W[oo[i]:oo[i + 1], eo[j]:eo[j + 1]] = model.W[le]
    b_vis = np.concatenate([model.b[l] for l in odd])
    b_hid = np.concatenate([model.b[l] for l in even])
    if explicit == "even":
        W, b_vis, b_hid = np.ascontiguousarray(W.T), b_hid, b_vis
    return BoltzmannMachine(list(W.shape), intra=False, temperature=model.temperature,
                            dtype=model.dtype, name=f"{model.name}-as-rbm",
                            W=[None, W], U=[None, None], b=[b_vis, b_hid])


def mean_field(model, v, iterations=50, tol=1e-6):
    """Fully factorised q(h|v) = prod Bernoulli(mu): layer-wise coordinate ascent on the bound.

    Starts bottom-up (top-down input zeroed, as the E-step), then updates the hidden layers
    in turn, each given its neighbours' current means, until no mean moves by more than
    ``tol`` or after ``iterations`` passes.  Returns the list [v, mu1, ..., muL] (float64).
    """
    m64 = model.copy(np.float64)  # the bound is summed over thousands of units: float64 throughout
    L = model.n_layers - 1
    mu = [np.asarray(v, dtype=np.float64)]
    for l in range(1, L + 1):
        mu.append(None)
        mu[l] = m64.layer_probabilities(mu, l, above=False)
    for _ in range(iterations):
        change = 0.0
        for l in range(1, L + 1):
            new = m64.layer_probabilities(mu, l)  # given the means of both neighbours
            change = max(change, float(np.max(np.abs(new - mu[l]))) if new.size else 0.0)
            mu[l] = new
        if change < tol:
            break
    return mu


def _entropy(mu):
    with np.errstate(divide="ignore", invalid="ignore"):
        h = -(mu * np.log(mu) + (1 - mu) * np.log1p(-mu))
    return np.nan_to_num(h, nan=0.0).sum(axis=1)


def variational_bound_unnormalized(model, v, iterations=50, chunk=2000) -> np.ndarray:
    """E_q[-E(v, h)/T] + H(q) per image: log p*(v) lower bound before subtracting log Z."""
    _check_dbm(model)
    v = np.asarray(v)
    if v.ndim != 2 or v.shape[1] != model.sizes[0]:
        raise DataError(f"data has shape {v.shape}, the model has {model.sizes[0]} visible units")
    T = model.temperature
    W = [None] + [w.astype(np.float64) / T for w in model.W[1:]]
    b = [x.astype(np.float64) / T for x in model.b]
    out = np.empty(len(v))
    for a in range(0, len(v), chunk):
        mu = mean_field(model, v[a:a + chunk], iterations)
        val = sum(mu[l] @ b[l] for l in range(model.n_layers))
        for l in range(1, model.n_layers):
            val = val + np.einsum("bi,bi->b", mu[l - 1] @ W[l], mu[l])
        val = val + sum(_entropy(mu[l]) for l in range(1, model.n_layers))
        out[a:a + len(mu[0])] = val
    return out


def evaluate_dbm_ais(model, test, base_data=None, n_betas=14500, n_runs=100, schedule="sm",
                     seed=0, mf_iterations=50, progress=False, explicit="odd") -> dict:
    """AIS log Z of a DBM and the mean mean-field lower bound on the test log-likelihood.

    ``base_data`` (training images) sets the base-rate biases of the annealing's base model:
    the logit of the mean-field activations of the explicit layers on those images (the images
    themselves for v).  ``explicit``: which layers AIS walks over, "odd" (h1, ...; v and h2
    summed out) or "even" (v, h2, ...; h1 summed out) - see :func:`dbm_as_rbm`.

    Returns the keys of :meth:`AISResult.as_dict` plus ``log_z_se`` (AIS), ``test_bound`` (mean
    over test images of the variational bound, nats) and ``bound_se`` (its SE over images).
    """
    _check_dbm(model)
    rbm = dbm_as_rbm(model, explicit)
    if base_data is not None:
        odd, even = _parity_layers(model)
        mu = mean_field(model, np.asarray(base_data[:10000]), mf_iterations)
        base_data = np.concatenate([mu[l] for l in (odd if explicit == "odd" else even)], axis=1)
    dist = RBMAnnealing(rbm, base_data)
    res = ais(dist, annealing_schedule(n_betas, schedule), n_runs, np.random.default_rng(seed), progress)
    unnorm = variational_bound_unnormalized(model, test, mf_iterations)
    bound = unnorm - res.log_z
    # log Z >= log p*(v) >= the mean-field bound for any single v: the blank image and every
    # test image give a floor that a trustworthy AIS estimate must clear
    blank = variational_bound_unnormalized(model, np.zeros((1, model.sizes[0])), mf_iterations)[0]
    floor = float(max(blank, unnorm.max()))
    out = res.as_dict()
    out.update({"explicit": explicit, "log_z_se": res.se, "test_bound": float(bound.mean()),
                "bound_se": float(bound.std(ddof=1) / np.sqrt(len(bound))),
                "log_z_floor": floor, "ais_below_floor": bool(res.log_z < floor),
                "test_bound_at_floor": float(unnorm.mean() - floor)})
    del out["se"]
    if res.log_z < floor:
        import warnings
        warnings.warn(f"AIS log Z = {res.log_z:.2f} is below the lower bound {floor:.2f} given by single "
                      "states: the annealing missed modes; use more inverse temperatures/runs. The "
                      "mean test bound is at most test_bound_at_floor.", RuntimeWarning, stacklevel=2)
    return out


__all__ = ["dbm_as_rbm", "mean_field", "variational_bound_unnormalized", "evaluate_dbm_ais"]
