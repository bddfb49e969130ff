"""The VPF objective (probability flow out of the data states) and its local gradient.

For joint states y (visible and, after the E-step, hidden), spec section 2::

    K = mean over examples of sum_j d_j,     d_j = exp(a_j z_j / T),  a_j = 1/2 - y_j
    dK/dw_ij = (y_i a_j d_j + y_j a_i d_i) / T
    dK/db_j  = a_j d_j / T

With g_j = a_j d_j / T per unit and example, every weight gradient is a sum of two outer
products ``y_i g_j + g_i y_j``: two GEMMs per weight matrix, which is where all the time goes.
"""

from __future__ import annotations

import numpy as np

from .errors import TrainingDiverged


def flow_terms(model, state):
    """Per-layer ``(d, g)``: flip rates d and the per-unit gradient factor g = a d / T."""
    y = model.check_state(state)
    z = model.local_fields(y)
    T = model.temperature
    d, g = [], []
    for yl, zl in zip(y, z):
        a = 0.5 - yl
        dl = np.exp(a * zl / T)
        d.append(dl)
        g.append(a * dl / T)
    return d, g


def flow(model, state) -> np.ndarray:
    """K per example: the sum of every unit's flip rate (probability flow out of the state)."""
    d, _ = flow_terms(model, state)
    return sum(dl.sum(axis=1, dtype=np.float64) for dl in d)


def objective(model, state) -> float:
    """K(theta): the mean flow over the batch."""
    return float(np.mean(flow(model, state)))


def gradient(model, state, return_objective: bool = False):
    """Gradient of the mean flow K with respect to every parameter of ``model``.

    Returns a dict with the keys of :meth:`BoltzmannMachine.parameters` (and, if asked, K).
    """
    y = model.check_state(state)
    d, g = flow_terms(model, y)
    B = y[0].shape[0]
    dt = model.dtype
    grads = {}
    for l in range(1, model.n_layers):
        # y_{l-1}^T g_l + g_{l-1}^T y_l, with the batch mean folded into one scale
        G = y[l - 1].T.astype(dt, copy=False) @ g[l] + g[l - 1].T @ y[l].astype(dt, copy=False)
        grads[f"W{l}"] = (G / B).astype(dt, copy=False)
    for l in range(model.n_layers):
        if model.U[l] is not None:
            G = y[l].T.astype(dt, copy=False) @ g[l]
            G = (G + G.T) / B
            np.fill_diagonal(G, 0.0)
            grads[f"U{l}"] = G.astype(dt, copy=False)
    for l in range(model.n_layers):
        grads[f"b{l}"] = (g[l].sum(axis=0) / B).astype(dt, copy=False)
    if return_objective:
        K = float(np.mean(sum(dl.sum(axis=1, dtype=np.float64) for dl in d)))
        if not np.isfinite(K):
            raise TrainingDiverged("the VPF objective became non-finite; lower the learning rate")
        return grads, K
    return grads
