"""Contrastive divergence CD-k and persistent CD-k (PCD-k) for RBMs: the baselines of the paper."""

from __future__ import annotations

import numpy as np

from ..errors import ConfigError, DataError
from . import params
from .base import Trainer, uniform


class CDTrainer(Trainer):
    """Contrastive divergence CD-k (or persistent PCD-k) for RBMs, descending the negative log-likelihood.

    Positive phase: the hidden probabilities p(h | v) of the data.  Negative phase: k steps of
    block Gibbs sampling h -> v -> h starting from a sample of p(h | v) (CD) or from the
    persistent chains (PCD: ``batch_size`` fantasy particles, started from the first minibatch's
    hidden sample, advanced by k steps per update); the negative statistics use the binary
    visible sample and the hidden probabilities of the last step.  The epoch's objective is the
    mean squared reconstruction error per pixel, v versus p(v | h) with h ~ p(h | v).

    ``CDTrainer(epochs=None, persistent=False, checkpoint=None, **options)`` (keywords only);
    ``persistent=True`` is PCD (method ``"pcd"``).  The options
    (:mod:`vpf_spiking.trainers.params`):

    Parameters
    ----------
    {options}
    """

    def __init__(self, *, persistent=False, epochs=None, checkpoint=None, **options):
        self.persistent = bool(persistent)
        self.method = "pcd" if self.persistent else "cd"
        super().__init__(epochs, checkpoint=checkpoint, **options)
        self.chains_ = None
        self._buffers = {}

    def check_model(self, model) -> None:
        if not model.is_rbm:
            raise ConfigError(f"{self.method.upper()}-k is implemented for RBMs only (2 layers, no intra-layer "
                              f"weights); this model has sizes {list(model.sizes)} and intra {list(model.intra)}: "
                              f"train it with VPFTrainer (method 'vpf')")

    def _reset_state(self):
        self.chains_ = None

    def _extra_state(self) -> dict:
        return {} if self.chains_ is None else {"chains_h": self.chains_}

    def _load_extra_state(self, extra):
        self.chains_ = None if "chains_h" not in extra else np.array(extra["chains_h"], copy=True)

    def _bufs(self, model, bp):
        key = (bp, model.dtype, tuple(model.sizes))
        b = self._buffers.get(key)
        if b is None:
            nv, nh = model.sizes
            bn = self.batch_size if self.persistent else bp
            dt = model.dtype
            b = {"V": np.empty((bp + bn, nv), dt), "H": np.empty((bp + bn, nh), dt),
                 "h": np.empty((bn, nh), dt), "zv": np.empty((bn, nv), dt), "uv": np.empty((bn, nv), dt),
                 "uh": np.empty((max(bp, bn), nh), dt), "rv": np.empty((bp, nv), dt),
                 "grads": {k: np.empty_like(v) for k, v in model.parameters().items()}}
            if len(self._buffers) > 4:
                self._buffers.clear()
            self._buffers[key] = b
        return b

    def step(self, model, v, rng) -> float:
        """One CD/PCD update on a minibatch ``v`` (batch, n_visible) of 0/1; returns its reconstruction error."""
        self.check_model(model)
        v = np.asarray(v, dtype=model.dtype)
        if v.ndim != 2 or v.shape[1] != model.sizes[0]:
            raise DataError(f"minibatch has shape {v.shape}, expected (batch, {model.sizes[0]})")
        b = self._bufs(model, v.shape[0])
        b["V"][:v.shape[0]] = v
        return self._apply(model, b, v.shape[0], rng)

    def _apply(self, model, b, bp, rng) -> float:
        dt = model.dtype
        V, H = b["V"], b["H"]
        v, hp = V[:bp], H[:bp]
        vn, hn = V[bp:], H[bp:]
        bn = vn.shape[0]
        up, down = model.hidden_probabilities, model.visible_probabilities  # in place into the buffers

        up(v, out=hp)  # positive phase: p(h | v)
        h0 = b["uh"][:bp]
        uniform(rng, h0)
        np.less(h0, hp, out=h0)  # h0 ~ p(h | v)
        if self.persistent:
            if self.chains_ is None or self.chains_.shape != (bn, H.shape[1]) or self.chains_.dtype != dt:
                # fantasy particles start at the first minibatch's hidden sample (cycled to fill)
                self.chains_ = np.ascontiguousarray(np.resize(h0, (bn, H.shape[1])), dtype=dt)
            h = self.chains_
            recon = down(h0, out=b["rv"])
        else:
            h = b["h"]
            h[...] = h0
            recon = None
        pv = b["zv"]
        for step in range(self.k):
            down(h, out=pv)
            if recon is None:
                recon = b["rv"]
                recon[...] = pv
            uniform(rng, b["uv"])
            np.less(b["uv"], pv, out=vn)  # v' ~ p(v | h)
            up(vn, out=hn)  # p(h | v')
            if step + 1 < self.k or self.persistent:
                u = b["uh"][:bn]
                uniform(rng, u)
                np.less(u, hn, out=h)  # persistent chains end on a sample
        err = float(np.mean(np.square(np.subtract(v, recon, out=recon))))
        # dNLL/dW = <v h>_model - <v h>_data = [v; v']^T [-p/bp; p'/bn]
        g = b["grads"]
        np.mean(vn, axis=0, out=g["b0"])
        g["b0"] -= v.mean(axis=0)
        hp *= dt.type(-1.0 / bp)
        hn *= dt.type(1.0 / bn)
        np.sum(H, axis=0, out=g["b1"])
        np.matmul(V.T, H, out=g["W1"])
        self._ensure_optimizer().step(model.parameters(), g)
        return err

    def _run_epoch(self, model, x, rng, bar, epoch) -> float:
        def step(idx):
            b = self._bufs(model, len(idx))
            np.take(x, idx, axis=0, out=b["V"][:len(idx)])
            return self._apply(model, b, len(idx), rng)

        return self._minibatches(x.shape[0], rng, bar, epoch, step, "the reconstruction error", "recon", ".4g")


CDTrainer.__doc__ = CDTrainer.__doc__.format(options=params.numpy_doc("cd").replace("\n", "\n    "))

__all__ = ["CDTrainer"]
