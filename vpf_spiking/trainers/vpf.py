"""VPF training (spec sections 2-3): the M-step kernel, the VPF trainer and its online reference.

VPF epoch: the E-step samples the hidden layers of *every* training example once with the
parameters at the start of the epoch (RBM: h ~ Bernoulli(sigmoid((W^T v + c)/T)); DBM:
:func:`vpf_spiking.sampling.bottom_up`, with ``e_step_sweeps`` asynchronous sweeps in layers
that have intra-layer weights); the M-step then descends the probability flow K over the joint
states in shuffled minibatches.  There is no Gibbs chain and no negative phase.  Every
minibatch step is a handful of GEMMs plus a few fused elementwise passes over the preallocated
buffers of :class:`FlowWorkspace` (see ``docs/training.md`` and ``benchmarks/rbm_epoch.py``).

``flow="rao-blackwell"`` on an RBM runs :class:`RaoBlackwellWorkspace` instead: no E-step, h
sampled per minibatch with the current parameters, three GEMMs per minibatch; its reference is
:func:`rao_blackwell_gradient`.
"""

from __future__ import annotations

import math

import numpy as np

from .. import marginal_flow
from ..errors import ConfigError, TrainingDiverged
from ..objective import gradient
from ..sampling import bottom_up
from . import params
from .base import Trainer, check_training_data, uniform

_E_CHUNK = 2000  # rows per E-step block: big enough for efficient GEMMs, small enough for cache


# ---------------------------------------------------------------------------- M-step kernel
class FlowWorkspace:
    """Buffers and arithmetic of one VPF M-step (gradient of K) for a fixed batch size.

    Layer ``l``'s buffer ``buf[l]`` has ``3B`` rows ``[g; y; g]`` with ``g = a d / (T B)``.  Its
    views ``[y; g]`` and ``[g; y]`` are contiguous, so the weight gradient
    ``y_{l-1}^T g_l + g_{l-1}^T y_l`` is a single GEMM ``[y_{l-1}; g_{l-1}]^T [g_l; y_l]``.
    The trainer writes minibatches straight into :attr:`y` (no copies).
    """

    def __init__(self, model, batch: int):
        self.batch = B = int(batch)
        self.sizes = tuple(model.sizes)
        self.dtype = dt = model.dtype
        L = model.n_layers
        self.buf = [np.zeros((3 * B, n), dtype=dt) for n in model.sizes]
        self.y = [b[B:2 * B] for b in self.buf]
        self.z = [np.empty((B, n), dtype=dt) for n in model.sizes]
        self.s = [np.empty((B, n), dtype=dt) for n in model.sizes]
        # a layer needs a temporary only when its field has more than one matrix term
        self.tmp = [np.empty((B, n), dtype=dt) if ((l > 0) + (l + 1 < L) + bool(model.intra[l])) > 1 else None
                    for l, n in enumerate(model.sizes)]
        self.utmp = [np.empty((n, n), dtype=dt) if model.intra[l] else None for l, n in enumerate(model.sizes)]
        self.grads = {k: np.empty_like(v) for k, v in model.parameters().items()}

    def fits(self, model, batch) -> bool:
        return self.batch == batch and self.sizes == tuple(model.sizes) and self.dtype == model.dtype

    def _field(self, model, l):
        """z_l = b_l + y_{l-1} W_l + y_{l+1} W_{l+1}^T + y_l U_l, written into self.z[l]."""
        z, y, tmp = self.z[l], self.y, self.tmp[l]
        terms = []
        if l > 0:
            terms.append((y[l - 1], model.W[l]))
        if l + 1 < model.n_layers:
            terms.append((y[l + 1], model.W[l + 1].T))
        if model.U[l] is not None:
            terms.append((y[l], model.U[l]))
        np.matmul(terms[0][0], terms[0][1], out=z)
        for a, w in terms[1:]:
            np.matmul(a, w, out=tmp)
            z += tmp
        z += model.b[l]
        return z

    def compute(self, model) -> float:
        """Fill :attr:`grads` with dK/dtheta at the state in :attr:`y`; return K (mean over the batch)."""
        B, L = self.batch, model.n_layers
        inv_B = self.dtype.type(1.0 / B)
        T = model.temperature
        K = 0.0
        with np.errstate(over="ignore", invalid="ignore"):
            for l in range(L):
                y, s, buf = self.y[l], self.s[l], self.buf[l]
                z = self._field(model, l)
                np.subtract(self.dtype.type(0.5), y, out=s)  # a = 1/2 - y
                if T != 1.0:
                    s *= self.dtype.type(1.0 / T)  # s = a / T
                np.multiply(s, z, out=z)
                np.exp(z, out=z)  # d = exp(a z / T)
                K += float(z.sum())
                # g = a d / (T B); written where the GEMMs below read it
                g = buf[:B] if l > 0 else buf[2 * B:]
                np.multiply(s, z, out=g)
                g *= inv_B
                if 0 < l < L - 1:
                    buf[2 * B:] = g
                np.sum(g, axis=0, out=self.grads[f"b{l}"])
            for l in range(1, L):
                np.matmul(self.buf[l - 1][B:].T, self.buf[l][:2 * B], out=self.grads[f"W{l}"])
            for l in range(L):
                if model.U[l] is not None:
                    g = self.buf[l][:B] if l > 0 else self.buf[l][2 * B:]
                    t = self.utmp[l]
                    np.matmul(self.y[l].T, g, out=t)
                    G = self.grads[f"U{l}"]
                    np.add(t, t.T, out=G)  # exactly symmetric
                    np.fill_diagonal(G, 0)
        return K / B


class RaoBlackwellWorkspace:
    """Buffers and arithmetic of one Rao-Blackwellised VPF M-step of an RBM, for a fixed batch size.

    :meth:`compute` samples ``h ~ p(h | v)`` with the current parameters and fills :attr:`grads`
    with the gradient of K with the hidden flip terms dropped (K itself includes them), the
    numbers of :func:`rao_blackwell_gradient` at the state ``[v, h]``.  Exactly three GEMMs:

    1. the hidden field ``zh = v W + c`` (E-step field and, elementwise, the hidden flip terms);
    2. the visible field ``zv = h W^T + b``;
    3. the gradient ``dK/dW = g_v^T h`` with ``g_v = (1/2 - v) exp((1/2 - v) zv / T) / (T B)``.

    Everything else is in-place elementwise work on preallocated buffers: the uniforms are drawn
    straight into :attr:`h` (the stream of :func:`~vpf_spiking.trainers.base.uniform`, as in the
    E-step), and ``h = [u < sigmoid(zh / T)]`` is evaluated as ``u (1 + exp(-zh / T)) < 1``,
    which needs one ``exp``, several times cheaper than the logistic.  The two forms can disagree
    only when ``u`` lies within float rounding of the probability (none in 2e7 float32 draws
    tried; a test checks equal samples).  The trainer gathers each minibatch into :attr:`v`.
    ``dK/db_h`` is 0 (the dropped terms are the only ones that depend on c).
    """

    def __init__(self, model, batch: int):
        if not model.is_rbm:
            raise ConfigError(f"RaoBlackwellWorkspace is for RBMs (2 layers, no intra-layer weights), got sizes "
                              f"{list(model.sizes)}")
        self.batch = B = int(batch)
        self.sizes = tuple(model.sizes)
        self.dtype = dt = model.dtype
        nv, nh = model.sizes
        self.v = np.zeros((B, nv), dtype=dt)   # the minibatch
        self.zv = np.empty((B, nv), dtype=dt)  # visible field, then d_v = exp(a_v zv / T)
        self.gv = np.empty((B, nv), dtype=dt)  # a_v / T, then g_v
        self.zh = np.empty((B, nh), dtype=dt)  # hidden field
        self.ph = np.empty((B, nh), dtype=dt)  # u (1 + exp(-zh / T)), then the hidden flip terms
        self.h = np.empty((B, nh), dtype=dt)   # uniforms, then the sample h
        self.grads = {k: np.zeros_like(v) for k, v in model.parameters().items()}

    def fits(self, model, batch) -> bool:
        return (self.batch == batch and self.sizes == tuple(model.sizes) and self.dtype == model.dtype
                and model.is_rbm)

    def compute(self, model, rng) -> float:
        """Sample h into :attr:`h` from ``rng``, fill :attr:`grads`; return K at ``[v, h]`` (batch mean)."""
        f = self.dtype.type
        T = model.temperature
        W, b, c = model.W[1], model.b[0], model.b[1]
        v, zv, gv, zh, ph, h = self.v, self.zv, self.gv, self.zh, self.ph, self.h
        with np.errstate(over="ignore", invalid="ignore"):
            # GEMM 1: hidden field; h = [u < sigmoid(x)] with x = zh / T, evaluated as
            # u (1 + exp(-x)) < 1 (one exp in place of the logistic, which costs several times more)
            np.matmul(v, W, out=zh)
            zh += c
            np.multiply(zh, f(-1.0 / T), out=ph)
            np.exp(ph, out=ph)
            ph += f(1)
            uniform(rng, h)
            ph *= h
            np.less(ph, f(1), out=h)
            # hidden flip terms exp((1/2 - h) zh / T): part of K, no gradient
            np.subtract(f(0.5), h, out=ph)
            ph *= zh
            if T != 1.0:
                ph *= f(1.0 / T)
            np.exp(ph, out=ph)
            K = float(ph.sum())
            # GEMM 2: visible field; g_v = a d / (T B)
            np.matmul(h, W.T, out=zv)
            zv += b
            np.subtract(f(0.5), v, out=gv)
            if T != 1.0:
                gv *= f(1.0 / T)
            zv *= gv
            np.exp(zv, out=zv)
            K += float(zv.sum())
            gv *= zv
            gv *= f(1.0 / self.batch)
            grads = self.grads
            np.sum(gv, axis=0, out=grads["b0"])
            # GEMM 3: the gradient product
            np.matmul(gv.T, h, out=grads["W1"])
            grads["b1"].fill(0)  # the optimizer used it as scratch
        return K / self.batch


def flow_gradient(model, state):
    """dK/dtheta and K at a joint state (list of per-layer (batch, n_l) arrays), via the fast kernel.

    The same numbers as :func:`vpf_spiking.objective.gradient`, computed the way the trainer does.
    """
    y = model.check_state(state)
    ws = FlowWorkspace(model, y[0].shape[0])
    for dst, src in zip(ws.y, y):
        dst[...] = src
    K = ws.compute(model)
    return {k: v.copy() for k, v in ws.grads.items()}, K


def online_vpf(model, x, learning_rate, seed=0, sweeps=1):
    """What :class:`vpf_spiking.spiking.SpikingTrainer` does in expectation, in numpy.

    Per example, in order: the bottom-up E-step with the *current* parameters
    (:func:`vpf_spiking.sampling.bottom_up`), then one SGD step on K of that example.  With
    ``learning_rate = eta * T * learn_ms / tau`` it is the spiking trainer without the
    event-count noise, which makes it the reference for the spiking engine.  Updates ``model``
    in place and returns it; raises :class:`TrainingDiverged` (with ``examples_done``) when the
    parameters stop being finite.
    """
    x = check_training_data(model, x)
    learning_rate = params.OPTIONS["learning_rate"].check(learning_rate)
    rng = np.random.default_rng(seed)
    with np.errstate(over="ignore", invalid="ignore"):
        for k in range(len(x)):
            state, _ = bottom_up(model, x[k:k + 1], rng, sweeps=sweeps)
            g = gradient(model, state)
            new = {key: v - learning_rate * g[key] for key, v in model.parameters().items()}
            if not all(np.all(np.isfinite(v)) for v in new.values()):
                err = TrainingDiverged(f"online VPF diverged at example {k} (learning rate {learning_rate:g}); "
                                       "lower the learning rate")
                err.examples_done = k
                raise err
            model.set_parameters(new)
    return model


# ---------------------------------------------------------------------------- trainer
class VPFTrainer(Trainer):
    """Variational probability flow: E-step once per epoch, M-step = minibatch descent on K.

    ``VPFTrainer(epochs=None, checkpoint=None, **options)``; ``checkpoint`` (a path or None) is
    written atomically after every epoch.  The options (:mod:`vpf_spiking.trainers.params`):

    Parameters
    ----------
    {options}
    """

    method = "vpf"

    def training_label(self) -> str:
        return "vpf" if self.flow == "joint" else f"vpf:{self.flow}"

    def __init__(self, epochs=None, *, checkpoint=None, **options):
        super().__init__(epochs, checkpoint=checkpoint, **options)
        self._ws = {}

    def _workspace(self, model, batch, kind=None):
        """The preallocated kernel (``kind``: :class:`FlowWorkspace` by default) for this batch size."""
        kind = FlowWorkspace if kind is None else kind
        ws = self._ws.get((kind, batch))
        if ws is None or not ws.fits(model, batch):
            if len(self._ws) > 4:
                self._ws.clear()
            ws = self._ws[(kind, batch)] = kind(model, batch)
        return ws

    # -- E-step
    def e_step(self, model, x, rng) -> list:
        """Sample the hidden layers of every example in ``x``: returns the joint state (x included).

        RBM: h ~ Bernoulli(sigmoid((x W + c) / T)) in blocks with preallocated buffers (the same
        random numbers and samples as :func:`vpf_spiking.sampling.bottom_up`).  Other models:
        ``bottom_up`` with ``e_step_sweeps`` sweeps, block by block.  A fully observed model has
        no hidden layer, so the state is just ``[x]``.
        """
        n = x.shape[0]
        if model.n_layers == 1:
            return [x]
        if model.is_rbm:
            H = np.empty((n, model.sizes[1]), dtype=model.dtype)
            m = min(_E_CHUNK, n)
            z = np.empty((m, model.sizes[1]), dtype=model.dtype)
            u = np.empty_like(z)
            for i in range(0, n, m):
                k = min(m, n - i)
                zk, uk = z[:k], u[:k]
                model.hidden_probabilities(x[i:i + k], out=zk)  # the numbers bottom_up computes
                uniform(rng, uk)
                np.less(uk, zk, out=H[i:i + k])
            return [x, H]
        states = [x] + [np.empty((n, s), dtype=model.dtype) for s in model.sizes[1:]]
        m = max(1, min(n, 10 * _E_CHUNK))  # big blocks: intra-layer sweeps loop over units
        for i in range(0, n, m):
            st, _ = bottom_up(model, x[i:i + m], rng, sweeps=self.e_step_sweeps)
            for l in range(1, model.n_layers):
                states[l][i:i + m] = st[l]
        return states

    # -- M-step
    def step(self, model, state) -> float:
        """One M-step on a joint minibatch state (list of per-layer (batch, n_l) 0/1 arrays).

        Updates ``model`` in place with the trainer's optimizer; returns K at ``state`` before
        the update.
        """
        y = model.check_state(state)
        ws = self._workspace(model, y[0].shape[0])
        for dst, src in zip(ws.y, y):
            dst[...] = src
        K = self._apply(model, ws)
        if not math.isfinite(K):
            raise TrainingDiverged(f"the VPF objective K became {K}; lower the learning rate (now {self.learning_rate})")
        return K

    def _apply(self, model, ws) -> float:
        K = ws.compute(model)
        if not math.isfinite(K):
            return K
        self._ensure_optimizer().step(model.parameters(), ws.grads)
        return K

    def check_model(self, model) -> None:
        super().check_model(model)
        if self.flow == "marginal" and not (model.is_rbm and model.U[0] is None):
            raise ConfigError(f"flow='marginal' needs an RBM without intra-layer weights (the free energy sums "
                              f"the hidden units out in closed form only there); this model has sizes "
                              f"{list(model.sizes)}")
        if self.flow == "rao-blackwell" and (model.n_layers < 2 or model.U[-1] is not None):
            raise ConfigError("flow='rao-blackwell' needs a hidden top layer without intra-layer weights "
                              "(it resamples that layer from its exact, factorial conditional)")

    def _run_epoch(self, model, x, rng, bar, epoch) -> float:
        if self.flow == "marginal":
            return self._marginal_epoch(model, x, rng, bar, epoch)
        if self.flow == "rao-blackwell":
            return self._rao_blackwell_epoch(model, x, rng, bar, epoch)
        states = self.e_step(model, x, rng)

        def step(idx):
            ws = self._workspace(model, len(idx))
            for dst, src in zip(ws.y, states):
                # mode="clip": with the default "raise", numpy buffers out= through a temporary
                # (4x slower); the indices come from a permutation, so nothing is clipped
                np.take(src, idx, axis=0, out=dst, mode="clip")
            return self._apply(model, ws)

        return self._minibatches(x.shape[0], rng, bar, epoch, step, "the objective K", "K", ".5g")


    # -- extensions beyond the paper (docs/theory.md)
    def _marginal_epoch(self, model, x, rng, bar, epoch) -> float:
        n_v = model.sizes[0]
        m = n_v if self.flips in (0, None) or self.flips >= n_v else int(self.flips)
        opt = self._ensure_optimizer()

        def step(idx):
            J = None if m == n_v else np.sort(rng.choice(n_v, size=m, replace=False))
            grads, K = marginal_flow.gradient(model, x[idx], return_objective=True, flips=J)
            opt.step(model.parameters(), grads)
            return K

        return self._minibatches(x.shape[0], rng, bar, epoch, step, "the marginal flow K", "K", ".5g")

    def _rao_blackwell_epoch(self, model, x, rng, bar, epoch) -> float:
        """Top layer resampled per minibatch with the current parameters; its flip terms dropped.

        RBM: the fused kernel :class:`RaoBlackwellWorkspace` (three GEMMs per minibatch, no
        E-step). Other models: :meth:`_rao_blackwell_generic_epoch`.
        """
        if not model.is_rbm:
            return self._rao_blackwell_generic_epoch(model, x, rng, bar, epoch)
        opt = self._ensure_optimizer()

        def step(idx):
            ws = self._workspace(model, len(idx), RaoBlackwellWorkspace)
            np.take(x, idx, axis=0, out=ws.v, mode="clip")  # no temporary (see _run_epoch)
            K = ws.compute(model, rng)
            if math.isfinite(K):
                opt.step(model.parameters(), ws.grads)
            return K

        return self._minibatches(x.shape[0], rng, bar, epoch, step, "the objective K", "K", ".5g")

    def _rao_blackwell_generic_epoch(self, model, x, rng, bar, epoch) -> float:
        """Any model with a factorial top layer, through :func:`rao_blackwell_gradient`.

        The layers below the top come from the epoch's E-step, as in plain VPF (for an RBM: the
        data). Per minibatch the top layer is sampled with the current parameters from the same
        random stream as the fused kernel (float32 uniforms), so on an RBM both give the same
        training run up to float rounding (tested).
        """
        L = model.n_layers - 1
        lower = self.e_step(model, x, rng)[:L] if L > 1 else [x]
        opt = self._ensure_optimizer()

        def step(idx):
            y = [np.take(s, idx, axis=0) for s in lower]
            z_top = model.external_field([*y, None], L, above=False)
            p_top = model.firing_probability(z_top).astype(model.dtype, copy=False)
            top = uniform(rng, np.empty_like(p_top))
            np.less(top, p_top, out=top)
            grads, K = rao_blackwell_gradient(model, [*y, top], z_top)
            opt.step(model.parameters(), grads)
            return K

        return self._minibatches(x.shape[0], rng, bar, epoch, step, "the objective K", "K", ".5g")


def rao_blackwell_gradient(model, state, z_top=None):
    """Gradient of K with the top layer's flip terms dropped, and K with them included.

    ``state``'s top layer must be a sample of its exact conditional given the layer below
    (``z_top``, its field, saves recomputing it). By the hidden-flow theorem the dropped terms
    have zero expected gradient, so this has the expected gradient of VPF with a fresh E-step;
    for an RBM it costs three matrix products (hidden field, visible field, one gradient product).
    """
    y = model.check_state(state)
    T, L, B = model.temperature, model.n_layers - 1, y[0].shape[0]
    if model.U[L] is not None:
        raise ConfigError("flow='rao-blackwell' needs a top layer without intra-layer weights "
                          "(its exact conditional is then factorial)")
    if z_top is None:
        z_top = model.external_field(y, L, above=False)
    K = float(np.exp((0.5 - y[L]) * z_top / T).sum(dtype=np.float64))
    g = []
    for l in range(L):
        z = model.external_field(y, l)
        if model.U[l] is not None:
            z = z + y[l] @ model.U[l]
        a = 0.5 - y[l]
        d = np.exp(a * z / T)
        K += float(d.sum(dtype=np.float64))
        g.append((a * d / (T * B)).astype(model.dtype, copy=False))
    grads = {}
    for l in range(1, L + 1):
        G = g[l - 1].T @ y[l]
        if l < L:
            G += y[l - 1].T @ g[l]
        grads[f"W{l}"] = G
    for l in range(L):
        if model.U[l] is not None:
            G = y[l].T @ g[l]
            G = G + G.T
            np.fill_diagonal(G, 0.0)
            grads[f"U{l}"] = G
    for l in range(L):
        grads[f"b{l}"] = g[l].sum(axis=0)
    grads[f"b{L}"] = np.zeros_like(model.b[L])
    return grads, K / B


VPFTrainer.__doc__ = VPFTrainer.__doc__.format(options=params.numpy_doc("vpf").replace("\n", "\n    "))

__all__ = ["FlowWorkspace", "RaoBlackwellWorkspace", "VPFTrainer", "flow_gradient", "online_vpf",
           "rao_blackwell_gradient"]
