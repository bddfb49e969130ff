"""Gradient-descent optimisers that update a model's parameter arrays in place.

Both optimisers take a dict ``name -> array`` of parameters (the views returned by
:meth:`BoltzmannMachine.parameters`) and a dict of gradients with the same keys, and change the
parameter arrays in place.  Weight decay ``lambda * w`` is added to the gradient of the weights
(``W<l>`` and ``U<l>``), never to the biases.  The gradient arrays are used as scratch space (their
contents are destroyed); the trainers own them.

The optimiser state is a flat dict of arrays (:meth:`Optimizer.state_arrays`), so a checkpoint can
store it in a pickle-free ``.npz`` and a resumed run continues bit for bit.
"""

from __future__ import annotations

import math
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from .errors import ConfigError

OPTIMIZERS = ("adam", "sgd")


def _decays(name: str) -> bool:
    return name[:1] in ("W", "U")


# Elementwise updates run over cache-sized chunks (several passes over a 784x500 float32 matrix
# stay in L2 instead of streaming from memory each time), split across threads when cores are
# idle: numpy releases the GIL inside ufunc loops.  On a busy machine waking a worker costs more
# than it saves (measured: ~2 ms per step under a load of 9 on 2 cores), so threads are used only
# while the 1-minute load average leaves a core free.  Every element sees the same operations, so
# results do not depend on the chunking or on the thread count.  VPF_THREADS=n overrides.
CHUNK = 1 << 16
try:
    _CORES = len(os.sched_getaffinity(0))
except AttributeError:  # pragma: no cover - not Linux
    _CORES = os.cpu_count() or 1
THREADS = max(1, min(4, int(os.environ.get("VPF_THREADS", 0)) or _CORES))
_pool = None
_pool_lock = threading.Lock()
_load_checked = [0.0, True]


def _get_pool():
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(max_workers=max(1, THREADS - 1), thread_name_prefix="vpf-optim")
        return _pool


def _cores_idle() -> bool:
    if os.environ.get("VPF_THREADS"):
        return True
    now = time.monotonic()
    if now - _load_checked[0] > 2.0:
        try:
            _load_checked[1] = os.getloadavg()[0] + 1 <= _CORES
        except OSError:  # pragma: no cover
            _load_checked[1] = True
        _load_checked[0] = now
    return _load_checked[1]


def chunked(fn, *arrays) -> None:
    """Call ``fn(*pieces)`` on matching cache-sized pieces of same-shape arrays, in parallel.

    Arrays that are not C-contiguous (no flat view) are processed whole.
    """
    n = arrays[0].size
    if n <= CHUNK or not all(a.flags.c_contiguous for a in arrays):
        fn(*arrays)
        return
    flat = [a.reshape(-1) for a in arrays]
    starts = list(range(0, n, CHUNK))

    def run(part):
        for i in part:
            fn(*(f[i:i + CHUNK] for f in flat))

    k = min(THREADS, len(starts)) if _cores_idle() else 1
    if k <= 1:
        run(starts)
        return
    parts = [starts[j::k] for j in range(k)]
    futures = [_get_pool().submit(run, part) for part in parts[1:]]
    run(parts[0])
    for f in futures:
        f.result()


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
                    g += wd * p
                u *= mom
                u += g
                np.multiply(u, lr, out=g)
                p -= g

            chunked(update, p, g, self._slot("velocity", name, p))
        else:
            def update(p, g):
                if wd:
                    g += wd * p
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
                g += wd * p
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
