"""Batch trainers: VPF (Algorithms 1-2 of the spec) for any Boltzmann machine, CD-k / PCD-k for RBMs.

All trainers share one interface::

    trainer = make_trainer("vpf", epochs=10, batch_size=100, learning_rate=1e-3)
    metrics = trainer.fit(model, x)            # pandas DataFrame, one row per epoch

and update ``model`` in place.  The work is vectorised float32 numpy: every minibatch step is a
handful of GEMMs plus a few fused elementwise passes over preallocated buffers (see
``docs/training.md`` and ``benchmarks/rbm_epoch.py``).

VPF epoch (spec section 3): the E-step samples the hidden layers of *every* training example once
with the parameters at the start of the epoch (RBM: h ~ Bernoulli(sigmoid((W^T v + c)/T));
DBM: :func:`vpf_spiking.sampling.bottom_up`, with ``e_step_sweeps`` asynchronous sweeps in layers
that have intra-layer weights); the M-step then descends the probability flow K over the joint
states in shuffled minibatches.  There is no Gibbs chain and no negative phase.
"""

from __future__ import annotations

import contextlib
import math
import os
import sys
import time
from pathlib import Path

import numpy as np
from scipy.special import expit

from .checkpoint import data_fingerprint, load_checkpoint, same_fingerprint, save_checkpoint
from .errors import ConfigError, DataError, TrainingDiverged
from .optim import make_optimizer

PROBE_EXAMPLES = 1000  # training examples used for the cheap per-epoch reconstruction metric
_E_CHUNK = 2000  # rows per E-step block: big enough for efficient GEMMs, small enough for cache


def blas_threads_guard():
    """Context manager limiting BLAS to one thread while the machine is busy.

    Multi-threaded OpenBLAS on these minibatch-sized GEMMs is 5-70x *slower* than one thread when
    the cores are already taken by other processes (measured on a 2-core machine at load 3-10),
    and at most about 2x faster on idle cores.  So when the 1-minute load average at the start of
    ``fit`` leaves no core free, training runs with one BLAS thread.  ``VPF_BLAS_THREADS=n`` sets
    the count explicitly.  Needs threadpoolctl (installed with scikit-learn); without it, nothing
    changes.
    """
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover
        return contextlib.nullcontext()
    env = os.environ.get("VPF_BLAS_THREADS", "")
    if env.strip():
        try:
            return threadpool_limits(max(1, int(env)), user_api="blas")
        except ValueError:
            raise ConfigError(f"VPF_BLAS_THREADS must be a whole number, got {env!r}") from None
    try:
        cores = len(os.sched_getaffinity(0))
        busy = os.getloadavg()[0] + 1 > cores
    except (AttributeError, OSError):  # pragma: no cover - not Linux
        busy = False
    return threadpool_limits(1, user_api="blas") if busy and cores > 1 else contextlib.nullcontext()


# ---------------------------------------------------------------------------- data checks
def check_data(model, x) -> np.ndarray:
    """Return ``x`` as a C-contiguous array of the model's dtype, or raise :class:`DataError`.

    ``x`` must be 2-D (examples x visible units), non-empty, finite and binary (0/1).
    """
    if x is None:
        raise DataError("training data is None; pass a 2-D array of 0/1 values")
    try:
        x = np.asarray(x)
    except Exception as exc:
        raise DataError(f"training data cannot be read as an array ({exc})") from None
    nv = model.sizes[0]
    if x.ndim != 2:
        raise DataError(f"training data must be 2-D (examples x {nv} visible units), got shape {x.shape}")
    if x.shape[1] != nv:
        raise DataError(f"training data has {x.shape[1]} columns but the model has {nv} visible units")
    if x.shape[0] == 0:
        raise DataError("training data has no examples")
    if not (np.issubdtype(x.dtype, np.number) or x.dtype == np.bool_) or np.issubdtype(x.dtype, np.complexfloating):
        raise DataError(f"training data has dtype {x.dtype}; expected numbers 0/1")
    x = np.ascontiguousarray(x, dtype=model.dtype)
    # Blocked so the temporaries stay in cache; the binary test also catches NaN and inf.
    step = max(1, (1 << 18) // nv)
    for i in range(0, x.shape[0], step):
        blk = x[i:i + step]
        if not np.all((blk == 0) | (blk == 1)):
            if not np.all(np.isfinite(blk)):
                bad = int(blk.size - np.count_nonzero(np.isfinite(blk)))
                raise DataError(f"training data has non-finite values (NaN or inf), first in rows {i}..{i + len(blk) - 1} "
                                f"({bad} there)")
            r, c = np.argwhere((blk != 0) & (blk != 1))[0]
            raise DataError(f"training data must be binary (0/1): row {i + r}, column {c} is {blk[r, c]!r}; "
                            f"binarise it first (e.g. x > 0.5)")
    return x


def _uniform(rng, out):
    """Fill ``out`` with U(0, 1) float32 draws (the stream :func:`sampling.bernoulli` uses)."""
    if out.dtype == np.float32:
        rng.random(out=out, dtype=np.float32)
    else:
        out[...] = rng.random(out.shape, dtype=np.float32)
    return out


# ---------------------------------------------------------------------------- VPF M-step kernel
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
    from .objective import gradient
    from .sampling import bottom_up

    x = check_data(model, x)
    if not (learning_rate > 0 and math.isfinite(learning_rate)):
        raise ConfigError(f"learning_rate must be a positive number, got {learning_rate}")
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


# ---------------------------------------------------------------------------- base trainer
class _Trainer:
    """Epoch loop, progress bar, metrics, checkpoints and resume; subclasses supply the epoch."""

    method = "base"

    def __init__(self, epochs, batch_size=100, learning_rate=1e-3, optimizer="adam", weight_decay=1e-4,
                 e_step_sweeps=1, seed=0, checkpoint=None, progress=True, momentum=0.0):
        def whole(v, what, minimum):
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < minimum:
                raise ConfigError(f"{what} must be an integer >= {minimum}, got {v!r}")
            return int(v)

        self.epochs = whole(epochs, "epochs", 1)
        self.batch_size = whole(batch_size, "batch_size", 1)
        self.e_step_sweeps = whole(e_step_sweeps, "e_step_sweeps", 1)
        self.seed = whole(seed, "seed", 0)
        self.learning_rate = learning_rate
        self.optimizer = str(optimizer).lower()
        self.weight_decay = weight_decay
        self.momentum = momentum
        make_optimizer(self.optimizer, learning_rate, weight_decay, momentum)  # validates the settings
        self.checkpoint = None if checkpoint is None else Path(checkpoint)
        self.progress = bool(progress)
        self.optimizer_ = None
        self.history_ = []

    # -- what must agree between a checkpoint and the trainer resuming from it
    def config(self) -> dict:
        return {"method": self.method, "batch_size": self.batch_size, "learning_rate": float(self.learning_rate),
                "optimizer": self.optimizer, "weight_decay": float(self.weight_decay),
                "momentum": float(self.momentum), "seed": self.seed}

    def _new_optimizer(self):
        return make_optimizer(self.optimizer, self.learning_rate, self.weight_decay, self.momentum)

    def _ensure_optimizer(self):
        if self.optimizer_ is None:
            self.optimizer_ = self._new_optimizer()
        return self.optimizer_

    def check_model(self, model) -> None:
        pass

    # -- subclass hooks
    def _reset_state(self):
        pass

    def _extra_state(self) -> dict:
        return {}

    def _load_extra_state(self, extra: dict) -> None:
        pass

    def _run_epoch(self, model, x, rng, bar) -> float:  # pragma: no cover - abstract
        raise NotImplementedError

    # -- the loop
    def fit(self, model, x, resume: bool = False, callback=None):
        """Train ``model`` in place on binary ``x`` (examples x visible units).

        Parameters
        ----------
        model : BoltzmannMachine
        x : array (n, n_visible) of 0/1
        resume : bool
            Continue from ``self.checkpoint`` (written by an earlier run with the same settings
            and data); the result is bit-identical to an uninterrupted run.
        callback : callable(epoch, model, metrics) or None
            Called after each epoch (1-based); it may add entries to ``metrics``, which are
            stored in the history and the checkpoint.  It must not use the trainer's RNG.

        Returns
        -------
        pandas.DataFrame
            One row per completed epoch (earlier epochs from the checkpoint included):
            ``epoch``, ``objective``, ``seconds``, ``recon_error``, ``hidden_mean`` and whatever
            the callback added.
        """
        import pandas as pd

        self.check_model(model)
        x = check_data(model, x)
        if resume and self.checkpoint is None:
            raise ConfigError("resume=True needs the trainer's checkpoint path (checkpoint=...)")
        rng = np.random.default_rng(self.seed)
        self.optimizer_ = self._new_optimizer()
        self._reset_state()
        self.history_ = []
        fingerprint = data_fingerprint(x)
        start = 0
        if resume:
            if not self.checkpoint.exists():
                print(f"no checkpoint at {self.checkpoint} yet; starting from epoch 1", file=sys.stderr)
            else:
                ck = self._load_for_resume(model, fingerprint)
                model.set_parameters({k: v for k, v in ck.model.parameters().items()})
                self.optimizer_.load_state_arrays(ck.optimizer)
                self._load_extra_state(ck.extra)
                rng = ck.make_rng()
                self.history_ = list(ck.history)
                start = ck.epoch
        probe = x[:PROBE_EXAMPLES]
        self._current_epoch = start + 1
        try:
            with blas_threads_guard():
                self._epochs(model, x, rng, start, callback, probe, fingerprint)
        except KeyboardInterrupt:
            done = len(self.history_)
            epoch = self._current_epoch
            if self.checkpoint is not None and done:
                hint = (f"the checkpoint {self.checkpoint} (epoch {self.history_[-1]['epoch']}) is intact; "
                        f"continue with fit(..., resume=True) (vpf: add --resume)")
            elif self.checkpoint is not None:
                hint = "no epoch finished, so there is nothing to resume from yet"
            else:
                hint = "no checkpoint was set (checkpoint=...), so this run cannot be resumed"
            print(f"\ninterrupted during epoch {epoch}; {hint}", file=sys.stderr)
            raise
        return pd.DataFrame(self.history_)

    def _epochs(self, model, x, rng, start, callback, probe, fingerprint):
        self._current_epoch = start + 1
        for epoch in range(start + 1, self.epochs + 1):
            self._current_epoch = epoch
            bar = self._bar(epoch, x.shape[0])
            t0 = time.perf_counter()
            try:
                objective = self._run_epoch(model, x, rng, bar, epoch)
            finally:
                if bar is not None:
                    bar.close()
            seconds = time.perf_counter() - t0
            self._check_parameters(model, epoch)
            metrics = {"epoch": epoch, "objective": objective, "seconds": seconds}
            metrics.update(probe_metrics(model, probe))
            if callback is not None:
                callback(epoch, model, metrics)
            self.history_.append(metrics)
            if self.checkpoint is not None:
                save_checkpoint(self.checkpoint, epoch=epoch, model=model,
                                optimizer=self.optimizer_.state_arrays(), rng=rng, trainer=self.config(),
                                data=fingerprint, history=self.history_, extra=self._extra_state())

    def _load_for_resume(self, model, fingerprint):
        ck = load_checkpoint(self.checkpoint)
        if tuple(ck.model.sizes) != tuple(model.sizes) or list(ck.model.intra) != list(model.intra):
            raise ConfigError(f"{self.checkpoint}: written for a model with sizes {ck.model.sizes} and intra "
                              f"{ck.model.intra}, not {model.sizes} / {model.intra}")
        mine = self.config()
        diff = [f"{k}={ck.trainer.get(k)!r} (now {v!r})" for k, v in mine.items() if ck.trainer.get(k) != v]
        if diff:
            raise ConfigError(f"{self.checkpoint}: written with different settings: {', '.join(diff)}; "
                              f"resume with the same settings or use a new checkpoint path")
        if not same_fingerprint(ck.data, fingerprint):
            raise ConfigError(f"{self.checkpoint}: written for other training data (shape {ck.data.get('shape')}, "
                              f"now {fingerprint['shape']}); resume on the same data")
        return ck

    def _bar(self, epoch, n):
        if not self.progress:
            return None
        from .progress import progress_bar as tqdm

        return tqdm(total=math.ceil(n / self.batch_size), desc=f"{self.method} epoch {epoch}/{self.epochs}",
                    unit="batch", leave=True, mininterval=0.5, file=sys.stderr)

    def _check_parameters(self, model, epoch):
        for name, p in model.parameters().items():
            if not np.all(np.isfinite(p)):
                raise TrainingDiverged(self._diverged_message(epoch, f"parameter {name} became non-finite"))

    def _diverged_message(self, epoch, what):
        where = (f"; the last good state is in {self.checkpoint}" if self.checkpoint is not None and self.history_
                 else "")
        return (f"training diverged in epoch {epoch}: {what}; lower the learning rate "
                f"(now {self.learning_rate}) or add weight decay{where}")

    def _batches(self, n, rng):
        perm = rng.permutation(n)
        B = self.batch_size
        return [perm[i:i + B] for i in range(0, n, B)]


def probe_metrics(model, probe) -> dict:
    """Cheap per-epoch monitors on a fixed set of training examples (deterministic, no RNG).

    ``recon_error``: mean squared error per pixel between v and p(v | h1 = p(h1 | v)) (one mean-field
    up-down pass through the first hidden layer, ignoring layers above); ``hidden_mean``: mean
    bottom-up probability of the first hidden layer.  Fully observed models report neither.
    """
    if model.n_layers < 2:
        return {}
    T = model.temperature
    ph = expit((probe @ model.W[1] + model.b[1]) / T)
    pv = expit((ph @ model.W[1].T + model.b[0]) / T)
    return {"recon_error": float(np.mean((probe - pv) ** 2)), "hidden_mean": float(np.mean(ph))}


# ---------------------------------------------------------------------------- VPF
class VPFTrainer(_Trainer):
    """Variational probability flow: E-step once per epoch, M-step = minibatch descent on K.

    Parameters
    ----------
    epochs : int
    batch_size : int
    learning_rate : float
    optimizer : "adam" or "sgd"
    weight_decay : float
        lambda of the lambda * w term (weights only, not biases).
    e_step_sweeps : int
        Asynchronous Gibbs sweeps of the E-step in hidden layers with intra-layer weights.
    seed : int
        Seed of the trainer's RNG (E-step samples and minibatch order).
    checkpoint : path or None
        Written atomically after every epoch.
    progress : bool
        Show a tqdm bar per epoch with the running mean of K.
    momentum : float
        Momentum of ``optimizer="sgd"``.
    """

    method = "vpf"

    def __init__(self, epochs, batch_size=100, learning_rate=1e-3, optimizer="adam", weight_decay=1e-4,
                 e_step_sweeps=1, seed=0, checkpoint=None, progress=True, momentum=0.0):
        super().__init__(epochs, batch_size, learning_rate, optimizer, weight_decay, e_step_sweeps, seed,
                         checkpoint, progress, momentum)
        self._ws = {}

    def config(self) -> dict:
        return {**super().config(), "e_step_sweeps": self.e_step_sweeps}

    def _workspace(self, model, batch) -> FlowWorkspace:
        ws = self._ws.get(batch)
        if ws is None or not ws.fits(model, batch):
            if len(self._ws) > 4:
                self._ws.clear()
            ws = self._ws[batch] = FlowWorkspace(model, batch)
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
            W, c, T = model.W[1], model.b[1], model.temperature
            H = np.empty((n, model.sizes[1]), dtype=model.dtype)
            m = min(_E_CHUNK, n)
            z = np.empty((m, model.sizes[1]), dtype=model.dtype)
            u = np.empty_like(z)
            for i in range(0, n, m):
                k = min(m, n - i)
                zk, uk = z[:k], u[:k]
                np.matmul(x[i:i + k], W, out=zk)
                np.add(c, zk, out=zk)  # same rounding as sampling.external_field: b + x W
                if T != 1.0:
                    np.divide(zk, model.dtype.type(T), out=zk)
                expit(zk, out=zk)
                _uniform(rng, uk)
                np.less(uk, zk, out=H[i:i + k])
            return [x, H]
        from .sampling import bottom_up

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

    def _run_epoch(self, model, x, rng, bar, epoch) -> float:
        states = self.e_step(model, x, rng)
        total, count = 0.0, 0
        batches = self._batches(x.shape[0], rng)
        every = max(1, len(batches) // 100)
        for i, idx in enumerate(batches):
            ws = self._workspace(model, len(idx))
            for dst, src in zip(ws.y, states):
                np.take(src, idx, axis=0, out=dst)
            K = self._apply(model, ws)
            if not math.isfinite(K):
                raise TrainingDiverged(self._diverged_message(epoch, f"the objective K became {K} at minibatch {i + 1}"))
            total += K * len(idx)
            count += len(idx)
            if bar is not None and ((i + 1) % every == 0 or i + 1 == len(batches)):
                bar.update(i + 1 - bar.n)
                bar.set_postfix_str(f"K={total / count:.5g}", refresh=False)
        return total / count


# ---------------------------------------------------------------------------- CD / PCD
class CDTrainer(_Trainer):
    """Contrastive divergence CD-k (or persistent PCD-k) for RBMs, descending the negative log-likelihood.

    Positive phase: the hidden probabilities p(h | v) of the data.  Negative phase: k steps of
    block Gibbs sampling h -> v -> h starting from a sample of p(h | v) (CD) or from the
    persistent chains (PCD: ``batch_size`` fantasy particles, started from the first minibatch's
    hidden sample, advanced by k steps per update); the negative statistics use the binary
    visible sample and the hidden probabilities of the last step.  The epoch's objective is the
    mean squared reconstruction error per pixel, v versus p(v | h) with h ~ p(h | v).
    """

    def __init__(self, k=1, persistent=False, epochs=None, batch_size=100, learning_rate=1e-3, optimizer="adam",
                 weight_decay=1e-4, e_step_sweeps=1, seed=0, checkpoint=None, progress=True, momentum=0.0):
        if epochs is None:
            raise ConfigError("epochs is required (CDTrainer(k=1, epochs=10, ...))")
        super().__init__(epochs, batch_size, learning_rate, optimizer, weight_decay, e_step_sweeps, seed,
                         checkpoint, progress, momentum)
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
            raise ConfigError(f"k (Gibbs steps) must be an integer >= 1, got {k!r}")
        if self.e_step_sweeps != 1:
            raise ConfigError("e_step_sweeps applies to VPF training, not CD/PCD")
        self.k = int(k)
        self.persistent = bool(persistent)
        self.method = "pcd" if self.persistent else "cd"
        self.chains_ = None
        self._buffers = {}

    def config(self) -> dict:
        return {**super().config(), "k": self.k}

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
        W, bv, bh, T = model.W[1], model.b[0], model.b[1], model.temperature
        dt = model.dtype
        V, H = b["V"], b["H"]
        v, hp = V[:bp], H[:bp]
        vn, hn = V[bp:], H[bp:]
        bn = vn.shape[0]

        def up(vis, out):
            np.matmul(vis, W, out=out)
            out += bh
            if T != 1.0:
                out /= dt.type(T)
            return expit(out, out=out)

        def down(hid, out):
            np.matmul(hid, W.T, out=out)
            out += bv
            if T != 1.0:
                out /= dt.type(T)
            return expit(out, out=out)

        up(v, hp)  # positive phase: p(h | v)
        h0 = b["uh"][:bp]
        _uniform(rng, h0)
        np.less(h0, hp, out=h0)  # h0 ~ p(h | v)
        if self.persistent:
            if self.chains_ is None or self.chains_.shape != (bn, H.shape[1]) or self.chains_.dtype != dt:
                # fantasy particles start at the first minibatch's hidden sample (cycled to fill)
                self.chains_ = np.ascontiguousarray(np.resize(h0, (bn, H.shape[1])), dtype=dt)
            h = self.chains_
            recon = down(h0, b["rv"])
        else:
            h = b["h"]
            h[...] = h0
            recon = None
        pv = b["zv"]
        for step in range(self.k):
            down(h, pv)
            if recon is None:
                recon = b["rv"]
                recon[...] = pv
            _uniform(rng, b["uv"])
            np.less(b["uv"], pv, out=vn)  # v' ~ p(v | h)
            up(vn, hn)  # p(h | v')
            if step + 1 < self.k or self.persistent:
                u = b["uh"][:bn]
                _uniform(rng, u)
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
        total, count = 0.0, 0
        batches = self._batches(x.shape[0], rng)
        every = max(1, len(batches) // 100)
        for i, idx in enumerate(batches):
            b = self._bufs(model, len(idx))
            np.take(x, idx, axis=0, out=b["V"][:len(idx)])
            err = self._apply(model, b, len(idx), rng)
            if not math.isfinite(err):
                raise TrainingDiverged(self._diverged_message(epoch, f"the reconstruction error became {err}"))
            total += err * len(idx)
            count += len(idx)
            if bar is not None and ((i + 1) % every == 0 or i + 1 == len(batches)):
                bar.update(i + 1 - bar.n)
                bar.set_postfix_str(f"recon={total / count:.4g}", refresh=False)
        return total / count


def make_trainer(method: str, **kwargs):
    """``"vpf"`` -> :class:`VPFTrainer`, ``"cd"`` -> CD-k, ``"pcd"`` -> PCD-k (:class:`CDTrainer`)."""
    m = str(method).lower()
    if m == "vpf":
        if "k" in kwargs or "persistent" in kwargs:
            raise ConfigError("k / persistent (Gibbs steps) apply to methods cd and pcd, not vpf")
        return VPFTrainer(**kwargs)
    if m in ("cd", "pcd"):
        if "persistent" in kwargs:
            raise ConfigError("choose method 'cd' or 'pcd' instead of passing persistent=")
        return CDTrainer(persistent=(m == "pcd"), **kwargs)
    raise ConfigError(f"unknown training method {method!r} (choose vpf, cd or pcd)")
