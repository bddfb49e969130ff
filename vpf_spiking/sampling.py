"""Conditional distributions and Gibbs sampling for layered Boltzmann machines.

Layers without intra-layer weights are conditionally independent given their neighbours and are
sampled as a block.  A layer with intra-layer weights ``U`` is sampled by asynchronous Gibbs
sweeps over its units in a fixed order (spec section 3); the loop runs over units with the whole
batch as vector work, and keeps the layer's field up to date incrementally.
"""

from __future__ import annotations

import numpy as np
from scipy.special import expit


def sigmoid(x):
    return expit(x)


def bernoulli(p, rng):
    """Binary sample with P(1) = p, in the dtype of ``p``."""
    return (rng.random(p.shape, dtype=np.float32) < p).astype(p.dtype, copy=False)


def external_field(model, state, l, below=True, above=True):
    """b_l plus the input from the layers below and above layer ``l`` (no intra-layer term)."""
    f = np.broadcast_to(model.b[l], (state[0].shape[0], model.sizes[l])).astype(model.dtype)
    if below and l > 0:
        f = f + state[l - 1] @ model.W[l]
    if above and l + 1 < model.n_layers:
        f = f + state[l + 1] @ model.W[l + 1].T
    return f


def sample_layer(model, state, l, rng, below=True, above=True, sweeps=1, clamp=None, order=None):
    """Resample layer ``l`` in place given its neighbours; return its probabilities.

    ``clamp`` is an optional boolean (batch, n_l) mask of units that keep their value.  For
    layers with intra-layer weights the units are visited in ``order`` (default 0..n-1),
    ``sweeps`` times; the returned probabilities are those of each unit's last update.
    """
    T = model.temperature
    ext = external_field(model, state, l, below, above)
    U = model.U[l]
    y = state[l]
    if U is None:
        p = sigmoid(ext / T).astype(model.dtype, copy=False)
        new = bernoulli(p, rng)
        state[l] = new if clamp is None else np.where(clamp, y, new)
        return p
    y = np.array(y, dtype=model.dtype, copy=True)
    field = ext + y @ U
    p = sigmoid(field / T).astype(model.dtype, copy=False)
    order = np.arange(model.sizes[l]) if order is None else np.asarray(order)
    for _ in range(sweeps):
        u = rng.random((y.shape[0], len(order)), dtype=np.float32)
        for k, j in enumerate(order):
            pj = sigmoid(field[:, j] / T)
            new = (u[:, k] < pj).astype(model.dtype)
            if clamp is not None:
                new = np.where(clamp[:, j], y[:, j], new)
            delta = new - y[:, j]
            p[:, j] = pj
            if np.any(delta):
                y[:, j] = new
                field += delta[:, None] * U[j][None, :]
    state[l] = y
    return p


def bottom_up(model, v, rng, sweeps=1):
    """E-step of Algorithms 1-2: sample h1..hL bottom-up with the top-down input zeroed.

    Returns ``(state, probs)``; ``probs[l]`` are the bottom-up probabilities of layer l.
    """
    v = np.asarray(v, dtype=model.dtype)
    state = [v] + [np.zeros((v.shape[0], n), dtype=model.dtype) for n in model.sizes[1:]]
    probs = [v]
    for l in range(1, model.n_layers):
        probs.append(sample_layer(model, state, l, rng, below=True, above=False, sweeps=sweeps))
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
