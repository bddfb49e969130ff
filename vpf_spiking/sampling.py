"""Conditional distributions and Gibbs sampling for layered Boltzmann machines.

Layers without intra-layer weights are conditionally independent given their neighbours and are
sampled as a block.  A layer with intra-layer weights ``U`` is sampled by asynchronous Gibbs
sweeps over its units in a fixed order (spec section 3); the loop runs over units with the whole
batch as vector work, and keeps the layer's field up to date incrementally.
"""

from __future__ import annotations

import numpy as np
from scipy.special import expit

from .errors import ModelError


def sigmoid(x):
    return expit(x)


def bernoulli(p, rng):
    """Binary sample with P(1) = p, in the dtype of ``p``."""
    return (rng.random(p.shape, dtype=np.float32) < p).astype(p.dtype, copy=False)


def external_field(model, state, l, below=True, above=True):
    """b_l plus the input from the layers below and above layer ``l``: :meth:`BoltzmannMachine.external_field`."""
    return model.external_field(state, l, below, above)


def sample_layer(model, state, l, rng, below=True, above=True, sweeps=1, clamp=None, order=None):
    """Resample layer ``l`` in place given its neighbours; return its probabilities.

    ``clamp`` is an optional boolean (batch, n_l) mask of units that keep their value.  For
    layers with intra-layer weights the units are visited in ``order`` (default 0..n-1; distinct
    unit indices), ``sweeps`` times; the returned probabilities are those of each unit's last
    update.
    """
    T = model.temperature
    ext = model.external_field(state, l, below, above)
    U = model.U[l]
    y = state[l]
    if U is None:
        p = model.firing_probability(ext).astype(model.dtype, copy=False)
        new = bernoulli(p, rng)
        state[l] = new if clamp is None else np.where(clamp, y, new)
        return p
    n = model.sizes[l]
    order = np.arange(n) if order is None else np.asarray(order, dtype=np.intp).ravel()
    if order.size and (order.min() < -n or order.max() >= n):
        raise ModelError(f"order for layer {l} has unit indices outside 0..{n - 1}")
    order = order % n
    if np.unique(order).size != order.size:
        raise ModelError(f"order for layer {l} visits a unit twice within one sweep")
    y = np.array(y, dtype=model.dtype, copy=True)
    clamp = None if clamp is None else np.broadcast_to(np.asarray(clamp, dtype=bool), y.shape)
    p = _async_sweeps(U, ext, y, T, rng, sweeps, clamp, order)
    state[l] = y
    return p


# Units per block of the asynchronous sweep.  Inside a block the updates are sequential and
# touch only the block's own fields (a k x batch slab); the fields of the units still to be
# visited catch up once per block with one GEMM.  This is the same Markov chain as updating
# every field after every unit, with far less memory traffic.
_BLOCK = 64


def _async_sweeps(U, ext, y, T, rng, sweeps, clamp, order):
    """Sequential Gibbs sweeps over ``order`` (in place on ``y``); last probabilities per unit.

    Works in "visit order" with units along the rows: ``F[i]`` is the field of the i-th unit
    visited, as a contiguous batch vector, so a block is a plain slice of ``F``.
    """
    dtype = y.dtype
    Uo = np.ascontiguousarray(U[np.ix_(order, order)])
    rest = np.setdiff1d(np.arange(U.shape[0]), order)          # units not visited: fixed
    base = ext[:, order].T
    if rest.size:
        base = base + U[np.ix_(order, rest)] @ y[:, rest].T
    Y = np.ascontiguousarray(y[:, order].T)                      # (k_total, batch)
    C = None if clamp is None else np.ascontiguousarray(clamp[:, order].T)
    Fvisit = np.empty_like(Y)                                    # field of each unit when visited
    n = order.size
    for _ in range(sweeps):
        F = base + Uo @ Y
        # unit i turns on iff u < sigmoid(z/T), i.e. iff z > T log(u / (1 - u)): drawing the
        # thresholds in bulk leaves one comparison per unit in the loop.
        u = rng.random(Y.shape, dtype=np.float32)
        with np.errstate(divide="ignore"):
            thr = (T * np.log(u / (1 - u))).astype(dtype, copy=False)
        for s in range(0, n, _BLOCK):
            e = min(s + _BLOCK, n)
            Ub = Uo[s:e, s:e]
            delta = np.zeros((e - s, Y.shape[1]), dtype=dtype)
            for i in range(e - s):
                j = s + i
                # earlier changes in this block reach unit j through one small GEMV
                f = F[j] + Ub[i, :i] @ delta[:i] if i else F[j]
                new = (f > thr[j]).astype(dtype)
                if C is not None:
                    new = np.where(C[j], Y[j], new)
                np.subtract(new, Y[j], out=delta[i])
                Y[j] = new
                Fvisit[j] = f
            if e < n:
                F[e:] += Uo[e:, s:e] @ delta
    y[:, order] = Y.T
    if sweeps > 0 and rest.size == 0:
        p = np.empty_like(y)
        p[:, order] = sigmoid(Fvisit / T).T
        return p
    # units never visited report the probability given the final state
    p = sigmoid((ext + y @ U) / T).astype(dtype, copy=False)
    if sweeps > 0:
        p[:, order] = sigmoid(Fvisit / T).T
    return p


def bottom_up(model, v, rng, sweeps=1):
    """E-step of Algorithms 1-2: sample h1..hL bottom-up with the top-down input zeroed.

    Each layer is first sampled independently from sigmoid(W_l^T h_{l-1} + b_l); a layer with
    intra-layer weights then runs ``sweeps`` asynchronous Gibbs sweeps with the intra-layer
    input added.  Returns ``(state, probs)``; ``probs[l]`` are the bottom-up probabilities of
    layer l (for a layer with U, those of each unit's last update in the sweeps).
    """
    v = np.asarray(v, dtype=model.dtype)
    state = [v] + [np.zeros((v.shape[0], n), dtype=model.dtype) for n in model.sizes[1:]]
    probs = [v]
    for l in range(1, model.n_layers):
        # independent bottom-up sample first (spec section 3); a layer with U then runs its
        # asynchronous sweeps from there, with the intra-layer input included
        p = model.layer_probabilities(state, l, below=True, above=False)
        state[l] = bernoulli(p, rng)
        if model.U[l] is not None and sweeps > 0:
            p = sample_layer(model, state, l, rng, below=True, above=False, sweeps=sweeps)
        probs.append(p.astype(model.dtype, copy=False))
    return state, probs


def gibbs(model, state, steps, rng, clamp=None, sweeps=1, free_layers=None):
    """Run ``steps`` Gibbs steps from ``state`` (modified in place and returned).

    One step updates the odd layers, then the even ones (each conditionally independent of
    the others given them, apart from intra-layer weights, handled by sequential sweeps).
    ``clamp`` maps a layer index to a boolean mask (or True for the whole layer) of units that
    keep their value.  Returns ``(state, probs)`` with the last probabilities of each layer.
    """
    clamp = clamp or {}
    probs = [None] * model.n_layers
    layers = range(model.n_layers) if free_layers is None else free_layers
    odd = [l for l in layers if l % 2 == 1]
    even = [l for l in layers if l % 2 == 0]
    for _ in range(steps):
        for group in (odd, even):
            for l in group:
                c = clamp.get(l)
                if c is True:
                    continue
                probs[l] = sample_layer(model, state, l, rng, sweeps=sweeps, clamp=c)
    return state, probs
