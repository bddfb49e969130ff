"""Gradient-descent optimisers that update a model's parameter arrays in place.

Both optimisers take a dict ``name -> array`` of parameters (the views returned by
:meth:`BoltzmannMachine.parameters`) and a dict of gradients with the same keys, and change the
parameter arrays in place.  Weight decay ``lambda * w`` is added to the gradient of the weights
(``W<l>`` and ``U<l>``), never to the biases.  The gradient arrays are used as scratch space (their
contents are destroyed); the trainers own them.

The optimiser state is a flat dict of arrays (:meth:`Optimizer.state_arrays`), so a checkpoint can
store it in a pickle-free ``.npz`` and a resumed run continues bit for bit.  The elementwise
updates run through :func:`vpf_spiking.trainers.threads.chunked` (cache-sized pieces, threads
only while a core is free).

Every pass is an in-place numpy ufunc (``out=``) and nothing is allocated per step: the weight
decay term ``lambda * w`` goes through a per-thread, chunk-sized scratch buffer that stays in
cache (:func:`_scratch`), where ``g += wd * w`` used to allocate a temporary of every chunk on
every step.  Adam makes 10 passes per parameter array (12 with weight decay), SGD 2 (4 with
momentum; +2 with weight decay); the results are bit for bit those of the plain numpy
expressions (tested).  Why not fewer passes: numpy has no fused multiply-add ufunc, and BLAS
``axpy`` (one pass for ``y += a x``) through ``scipy.linalg.blas`` holds the GIL (so the
elementwise threads would queue on it) and lets OpenBLAS thread every call over 10,000 elements,
which measured 10x slower with 2 BLAS threads on a loaded 2-core machine.
"""

from __future__ import annotations

import math
import threading

import numpy as np

from ..errors import ConfigError
from .threads import CHUNK, chunked

OPTIMIZERS = ("adam", "sgd")


_local = threading.local()


def _scratch(like: np.ndarray) -> np.ndarray:
    """A per-thread buffer with the shape and dtype of ``like`` (contents undefined).

    ``chunked`` hands out pieces of at most ``CHUNK`` elements, so the buffer is small, is
    allocated once per thread and dtype, and stays in cache between passes.
    """
    bufs = getattr(_local, "bufs", None)
    if bufs is None:
        bufs = _local.bufs = {}
    buf = bufs.get(like.dtype)
    if buf is None or buf.size < like.size:
        buf = bufs[like.dtype] = np.empty(max(like.size, CHUNK), dtype=like.dtype)
    return buf[:like.size].reshape(like.shape)


def _add_decay(g, p, wd) -> None:
    """``g += wd * p`` without a temporary (same rounding: the product, then the sum)."""
    s = _scratch(p)
    np.multiply(p, wd, out=s)
    g += s


def _decays(name: str) -> bool:
    """Weight decay applies to the weights W<l> and U<l>, never to the biases b<l> (the paper's setting)."""
    return name[:1] in ("W", "U")


class Optimizer:
    """Common part: learning rate, weight decay, step counter and the state dict."""

    kind = "base"

    def __init__(self, learning_rate: float, weight_decay: float = 0.0):
        if not (isinstance(learning_rate, (int, float)) and math.isfinite(learning_rate) and learning_rate > 0):
            raise ConfigError(f"learning_rate must be a positive number, got {learning_rate!r}")
        if not (isinstance(weight_decay, (int, float)) and math.isfinite(weight_decay) and weight_decay >= 0):
            raise ConfigError(f"weight_decay must be a non-negative number, got {weight_decay!r}")
        self.learning_rate = float(learning_rate)
        self.weight_decay = float(weight_decay)
        self.t = 0
        self.slots: dict[str, dict[str, np.ndarray]] = {}  # slot name -> param name -> array

    def _slot(self, slot: str, name: str, like: np.ndarray) -> np.ndarray:
        arrays = self.slots.setdefault(slot, {})
        a = arrays.get(name)
        if a is None or a.shape != like.shape or a.dtype != like.dtype:
            a = arrays[name] = np.zeros_like(like)
        return a

    def step(self, params: dict, grads: dict) -> None:
        """Apply one update to every parameter that has a gradient (in place)."""
        self.t += 1
        for name, g in grads.items():
            self._update(name, params[name], g)

    def _update(self, name, p, g):  # pragma: no cover - abstract
        raise NotImplementedError

    # ------------------------------------------------------------------ state
    def state_arrays(self) -> dict:
        """Everything needed to continue exactly: ``{"t": ..., "<slot>.<param>": array}``."""
        out = {"t": np.array(self.t, dtype=np.int64)}
        for slot, arrays in self.slots.items():
            for name, a in arrays.items():
                out[f"{slot}.{name}"] = a.copy()
        return out

    def load_state_arrays(self, arrays: dict) -> None:
        """Restore the state written by :meth:`state_arrays`."""
        if "t" not in arrays:
            raise ConfigError("optimizer state has no step counter 't'")
        self.t = int(arrays["t"])
        self.slots = {}
        for key, a in arrays.items():
            if key == "t":
                continue
            slot, _, name = key.partition(".")
            if slot not in self.slot_names or not name:
                raise ConfigError(f"optimizer state entry {key!r} does not belong to a {self.kind} optimizer")
            self.slots.setdefault(slot, {})[name] = np.array(a, copy=True)

    slot_names: tuple = ()


class SGD(Optimizer):
    """Plain (or momentum) gradient descent: ``u = momentum * u + g;  w -= lr * u``.

    Parameters
    ----------
    learning_rate : float
    momentum : float
        0 for plain SGD (then no state is kept).
    weight_decay : float
        lambda in the added gradient term lambda * w (weights only).
    """

    kind = "sgd"
    slot_names = ("velocity",)

    def __init__(self, learning_rate: float = 0.01, momentum: float = 0.0, weight_decay: float = 0.0):
        super().__init__(learning_rate, weight_decay)
        if not (isinstance(momentum, (int, float)) and 0 <= momentum < 1):
            raise ConfigError(f"momentum must be in [0, 1), got {momentum!r}")
        self.momentum = float(momentum)

    def _update(self, name, p, g):
        f = p.dtype.type
        lr, mom, wd = f(self.learning_rate), f(self.momentum), f(self.weight_decay) if _decays(name) else 0

        if self.momentum:
            def update(p, g, u):
                if wd:
                    _add_decay(g, p, wd)
                u *= mom
                u += g
                np.multiply(u, lr, out=g)
                p -= g

            chunked(update, p, g, self._slot("velocity", name, p))
        else:
            def update(p, g):
                if wd:
                    _add_decay(g, p, wd)
                g *= lr
                p -= g

            chunked(update, p, g)


class Adam(Optimizer):
    """Adam (Kingma & Ba 2015) in the form of their Algorithm 1's efficient variant.

    ``w -= lr_t * m / (sqrt(v) + eps_t)`` with ``lr_t = lr * sqrt(1 - b2^t) / (1 - b1^t)`` and
    ``eps_t = eps * sqrt(1 - b2^t)``.  To save passes over the weights, the state keeps the
    unnormalised sums ``M = m / (1 - b1)`` and ``V = v / (1 - b2)`` (``M = b1 M + g``,
    ``V = b2 V + g^2``); the factors are folded into the scalars.
    """

    kind = "adam"
    slot_names = ("M", "V")

    def __init__(self, learning_rate: float = 1e-3, beta1: float = 0.9, beta2: float = 0.999,
                 eps: float = 1e-8, weight_decay: float = 0.0):
        super().__init__(learning_rate, weight_decay)
        for what, b in (("beta1", beta1), ("beta2", beta2)):
            if not (isinstance(b, (int, float)) and 0 <= b < 1):
                raise ConfigError(f"{what} must be in [0, 1), got {b!r}")
        if not (isinstance(eps, (int, float)) and eps > 0):
            raise ConfigError(f"eps must be positive, got {eps!r}")
        self.beta1, self.beta2, self.eps = float(beta1), float(beta2), float(eps)

    def step(self, params: dict, grads: dict) -> None:
        self.t += 1
        b1, b2, t = self.beta1, self.beta2, self.t
        lr_t = self.learning_rate * math.sqrt(1 - b2 ** t) / (1 - b1 ** t)
        eps_t = self.eps * math.sqrt(1 - b2 ** t)
        # m / (sqrt(v) + eps_t) = (1-b1) M / (sqrt(1-b2) (sqrt(V) + eps_t / sqrt(1-b2)))
        self._scale = lr_t * (1 - b1) / math.sqrt(1 - b2)
        self._eps = eps_t / math.sqrt(1 - b2)
        for name, g in grads.items():
            self._update(name, params[name], g)

    def _update(self, name, p, g):
        f = p.dtype.type
        b1, b2, eps, scale = f(self.beta1), f(self.beta2), f(self._eps), f(self._scale)
        wd = f(self.weight_decay) if _decays(name) else 0
        M, V = self._slot("M", name, p), self._slot("V", name, p)

        def update(p, g, M, V):
            if wd:
                _add_decay(g, p, wd)
            M *= b1
            M += g
            V *= b2
            np.square(g, out=g)  # g is scratch from here on
            V += g
            np.sqrt(V, out=g)
            g += eps
            np.divide(M, g, out=g)
            g *= scale
            p -= g

        chunked(update, p, g, M, V)


def make_optimizer(name: str, learning_rate: float, weight_decay: float = 0.0, momentum: float = 0.0) -> Optimizer:
    """``"adam"`` or ``"sgd"`` (with optional momentum); anything else is a :class:`ConfigError`."""
    name = str(name).lower()
    if name == "adam":
        if momentum:
            raise ConfigError("momentum applies to optimizer='sgd' only (Adam has its own beta1)")
        return Adam(learning_rate, weight_decay=weight_decay)
    if name == "sgd":
        return SGD(learning_rate, momentum=momentum, weight_decay=weight_decay)
    raise ConfigError(f"unknown optimizer {name!r} (choose one of {', '.join(OPTIMIZERS)})")
