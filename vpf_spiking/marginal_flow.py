"""Marginal flow: probability flow on the free energy of an RBM (an extension beyond the paper).

VPF completes each example with a sampled h and lowers the flow out of the joint state (v, h);
by the hidden-flow theorem (docs/theory.md) the hidden units' terms then carry no signal, so the
hidden biases, the prior over h, are never fitted. Marginal flow sums the hidden units out, as
Sohl-Dickstein, Battaglino & DeWeese (2011) did for RBMs, and flows between visible states only:

    F(v) = -b.v - T sum_j softplus(z_j / T),      z_j = c_j + sum_i v_i W_ij
    K    = mean over data v of sum_i exp((F(v) - F(v^(i))) / 2T)

where v^(i) is v with bit i flipped. Every parameter gets a gradient, the hidden biases included;
with data drawn from the model, the expected gradient is exactly 0 (the flow is symmetric in
v <-> v^(i)), so the model distribution is a fixed point.

Locality: the update of W_ij needs, for each visible flip k, the hidden unit j's probability
with and without that flip (sigmoid(z_j/T) and sigmoid((z_j + (1 - 2 v_k) W_kj)/T)), i.e. unit j
must see every visible flip's effect on its own field. That is local to the synapse's two
neurons only if the hidden neuron can evaluate "what if v_k flipped" for each k; it is not the
transition-triggered rule of the spiking engine, so marginal flow has no spiking form here.
Cost: O(n_v n_h) exponentials per example (the flipped fields), against O(n_v + n_h) for VPF.
"""

from __future__ import annotations

import numpy as np

from .errors import ModelError, TrainingDiverged


def _check_rbm(model):
    if model.n_layers != 2 or any(u is not None for u in model.U):
        raise ModelError("marginal flow needs an RBM (two layers, no intra-layer weights): the free "
                         "energy sums the hidden units out in closed form only there")


def _softplus(x):
    return np.logaddexp(0.0, x)


def _sigmoid(x):
    return 0.5 * (1.0 + np.tanh(0.5 * x))


def flip_log_rates(model, v) -> np.ndarray:
    """(F(v) - F(v^(i))) / 2T for every example and visible unit: the log flow rates, (B, n_v)."""
    _check_rbm(model)
    T = model.temperature
    W, b, c = model.W[1], model.b[0], model.b[1]
    v = np.asarray(v, dtype=model.dtype)
    delta = 1.0 - 2.0 * v
    u = (v @ W + c) / T                                   # (B, n_h)
    u_flip = u[:, None, :] + delta[:, :, None] * (W / T)[None, :, :]   # (B, n_v, n_h)
    sp = (_softplus(u_flip) - _softplus(u)[:, None, :]).sum(axis=2)
    return 0.5 * (delta * b / T + sp)


def objective(model, v) -> float:
    """K: mean over the rows of ``v`` of the flow out of v to its one-bit flips."""
    return float(np.mean(np.exp(flip_log_rates(model, v)).sum(axis=1, dtype=np.float64)))


def gradient(model, v, return_objective: bool = False, chunk: int = 25, flips=None):
    """Gradient of the marginal flow K, keyed like :meth:`BoltzmannMachine.parameters` (W1, b0, b1).

    Parameters
    ----------
    flips : array of int or None
        Visible units whose flips are counted (the same for every example); None counts all.
        With a uniformly random subset of m units the result, scaled by n_v / m, is an unbiased
        estimate of the full gradient at m / n_v of the cost.
    chunk : int
        Examples per block of the (block, flips, n_h) tensor of flipped fields (bounds memory).

    Notes
    -----
    With s = sigmoid(u), u = z / T and E = exp(delta_i W_ij / T), the flipped field's softplus
    difference is log(1 - s + s E) and its sigmoid s E / (1 - s + s E): one exp table per
    minibatch, one log and one division per (example, flip, hidden unit).
    """
    _check_rbm(model)
    T = model.temperature
    W, b, c = model.W[1], model.b[0], model.b[1]
    dt = model.dtype
    v = np.asarray(v, dtype=dt)
    B, n_v = v.shape
    J = np.arange(n_v) if flips is None else np.asarray(flips, dtype=np.intp)
    WJ = W[J] / T
    E_up, E_down = np.exp(WJ), np.exp(-WJ)                # flips 0 -> 1 and 1 -> 0
    gW, gb, gc = np.zeros_like(W), np.zeros_like(b), np.zeros_like(c)
    gWJ = np.zeros_like(WJ)
    K = 0.0
    for a in range(0, B, chunk):
        x = v[a:a + chunk]
        xJ = x[:, J]
        delta = 1.0 - 2.0 * xJ
        s = _sigmoid((x @ W + c) / T)                      # (b, n_h)
        E = np.where(xJ[:, :, None] > 0.5, E_down[None], E_up[None])   # (b, m, n_h)
        r = E * s[:, None, :]
        denom = r + (1.0 - s)[:, None, :]
        s_flip = r / denom
        e = np.exp(0.5 * (delta * b[J] / T + np.log(denom).sum(axis=2)))   # (b, m)
        K += float(e.sum(dtype=np.float64))
        # dE_i/dc_j = (s'_ij - s_j) / 2T;  A_j = sum_i e_i (s'_ij - s_j)
        A = np.einsum("bi,bij->bj", e, s_flip) - e.sum(axis=1, keepdims=True) * s
        gc += A.sum(axis=0)
        gb[J] += (e * delta).sum(axis=0)
        # dE_i/dW_kj = (v_k (s'_ij - s_j) + [k = i] delta_k s'_kj) / 2T
        gW += x.T @ A
        gWJ += np.einsum("bk,bkj->kj", e * delta, s_flip)
    gW[J] += gWJ
    scale = n_v / len(J) / (2.0 * T * B)
    grads = {"W1": (gW * scale).astype(dt, copy=False), "b0": (gb * scale).astype(dt, copy=False),
             "b1": (gc * scale).astype(dt, copy=False)}
    if return_objective:
        K *= n_v / len(J) / B
        if not np.isfinite(K):
            raise TrainingDiverged("the marginal-flow objective became non-finite; lower the learning rate")
        return grads, K
    return grads


__all__ = ["flip_log_rates", "gradient", "objective"]
