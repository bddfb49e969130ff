"""Spiking training: examples presented one after another to a network that learns by itself.

Per example the schedule has ``L`` settle windows (one per hidden layer) and one learning window:

1. settle layer l (l = 1..L, ``settle_ms`` each): visible neurons clamped to the example; hidden
   layer l free with the field from the layer above switched off (``topdown = 0``), the other
   hidden layers holding their state; no plasticity.  A free neuron relaxes to its conditional
   at rate >= 2/tau, so after ``settle_ms`` = 3 tau layer l is a sample of
   p(h_l | h_{l-1}, h_l's own intra-layer links) to within exp(-6) in total variation: the
   bottom-up E-step of Algorithms 1-2 (spec section 3; exact for an RBM).
2. learn (``learn_ms``): every neuron holds its state (all events vetoed) and plasticity is on.
   Each neuron's events arrive at rate d_j/tau, so the expected change over the window is
   ``-(eta * T * learn_ms / tau) * dK/dtheta`` at the settled joint state: one stochastic
   gradient step of the batch M-step per example, with per-example learning rate
   ``eta * T * learn_ms / tau`` (spec section 5).

Examples are given to the network ``chunk`` at a time (one Brian2 run each, so cpp_standalone
reuses its compiled binary); after each chunk the weights are checked and, every
``checkpoint_every`` chunks, written with the position in the data to an atomic checkpoint from
which :meth:`SpikingTrainer.fit` resumes.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from ..errors import ConfigError, DataError, ModelError
from ..model import BoltzmannMachine, atomic_savez
from .equations import CLAMP0, FREE, HOLD
from .network import SpikingNetwork

CHECKPOINT_FORMAT = "vpf-spiking-spiking-checkpoint"


@dataclass
class SpikingTrainer:
    """Online VPF training of a :class:`BoltzmannMachine` by its spiking network.

    Parameters
    ----------
    epochs : int
    eta : float
        Weight change per event (``dw = eta * y_i * (y_j+ - 1/2)``).
    eta_b : float or None
        Bias change per event (default: ``eta``).
    rule : "symmetric" or "asymmetric"
    settle_ms, learn_ms : float
        Length of each settle window and of the learning window.
    dt_ms : float
    chunk : int
        Examples per Brian2 run.
    device : "runtime", "cpp_standalone" or "cuda_standalone"
    seed : int
    checkpoint : path or None
    checkpoint_every : int
        Chunks between checkpoints.
    progress : bool
    """

    epochs: int = 1
    eta: float = 0.01
    eta_b: float | None = None
    rule: str = "symmetric"
    settle_ms: float = 30.0
    learn_ms: float = 10.0
    dt_ms: float = 0.1
    chunk: int = 100
    device: str = "cpp_standalone"
    seed: int = 0
    checkpoint: object = None
    checkpoint_every: int = 10
    progress: bool = True
    codegen: str | None = None

    def __post_init__(self):
        if self.epochs < 1:
            raise ConfigError(f"epochs must be >= 1, got {self.epochs}")
        if not (self.eta > 0 and math.isfinite(self.eta)):
            raise ConfigError(f"eta must be a positive number, got {self.eta}")
        if self.eta_b is None:
            self.eta_b = self.eta
        if self.eta_b < 0:
            raise ConfigError(f"eta_b must be >= 0, got {self.eta_b}")
        if self.rule not in ("symmetric", "asymmetric"):
            raise ConfigError(f"unknown rule {self.rule!r}; use 'symmetric' or 'asymmetric'")
        from .devices import check_device

        check_device(self.device)
        if self.chunk < 1 or self.checkpoint_every < 1:
            raise ConfigError("chunk and checkpoint_every must be >= 1")
        for name in ("settle_ms", "learn_ms", "dt_ms"):
            if not getattr(self, name) > 0:
                raise ConfigError(f"{name} must be positive, got {getattr(self, name)}")

    # ------------------------------------------------------------------ schedule
    def geometry(self, model):
        """(slot_ms, settle slots, learn slots, slots per example)."""
        s = round(self.settle_ms / self.dt_ms)
        q = round(self.learn_ms / self.dt_ms)
        if abs(s * self.dt_ms - self.settle_ms) > 1e-9 or abs(q * self.dt_ms - self.learn_ms) > 1e-9:
            raise ConfigError(f"settle_ms and learn_ms must be multiples of dt_ms = {self.dt_ms}")
        g = math.gcd(s, q)
        n_settle, n_learn = s // g, q // g
        per = (model.n_layers - 1) * n_settle + n_learn
        return g * self.dt_ms, n_settle, n_learn, per

    def schedule(self, model, x):
        """Control arrays for examples ``x`` (rows; a row of NaN = padding, nothing learned)."""
        slot_ms, ns, nl, per = self.geometry(model)
        L = model.n_layers
        B = len(x)
        S = self.chunk * per
        pad = np.isnan(x[:, 0])
        xv = np.where(np.isnan(x), 0, x)
        vis = np.full((S, model.sizes[0]), float(HOLD))
        hid = [np.full(S, float(HOLD)) for _ in range(L)]
        topdown = {l: np.ones(S) for l in range(L - 1)}
        learn = np.zeros(S)
        for k in range(B):
            if pad[k]:
                continue
            base = k * per
            vis[base: base + (L - 1) * ns] = CLAMP0 + xv[k]
            for l in range(1, L):
                a = base + (l - 1) * ns
                hid[l][a: a + ns] = FREE
                for m in range(1, L - 1):
                    topdown[m][a: a + ns] = 0.0
            learn[base + (L - 1) * ns: base + per] = 1.0
        mode = {0: vis}
        for l in range(1, L):
            mode[l] = hid[l]
        return mode, learn, topdown

    # ------------------------------------------------------------------ training
    def fit(self, model: BoltzmannMachine, x, resume=False, callback=None):
        """Train ``model`` in place on binary examples ``x`` (n, n_visible); return per-chunk metrics."""
        import pandas as pd
        from ..progress import progress_bar as tqdm

        x = np.asarray(x, dtype=np.float64)
        if x.ndim != 2 or x.shape[1] != model.sizes[0]:
            raise DataError(f"training data has shape {x.shape}, the network needs (n, {model.sizes[0]})")
        if len(x) == 0:
            raise DataError("training data is empty")
        if not np.all((x == 0) | (x == 1)):
            raise DataError("training data must be binary (0/1) for the spiking engine")
        epoch, pos, history = 0, 0, []
        if resume and self.checkpoint and Path(self.checkpoint).exists():
            epoch, pos, history = self._load_checkpoint(model, x)
        slot_ms, _, _, per = self.geometry(model)
        net = SpikingNetwork(model, device=self.device, dt_ms=self.dt_ms, slot_ms=slot_ms,
                             n_slots=self.chunk * per, rule=self.rule, eta=self.eta, eta_b=self.eta_b,
                             seed=self.seed, codegen=self.codegen)
        n = len(x)
        n_chunks = math.ceil(n / self.chunk)
        bar = tqdm(total=self.epochs * n_chunks, initial=epoch * n_chunks + pos // self.chunk,
                   disable=not self.progress, desc="spiking", unit="chunk")
        chunks_done = 0
        try:
            while epoch < self.epochs:
                order = np.random.default_rng([self.seed, epoch]).permutation(n)
                while pos < n:
                    idx = order[pos: pos + self.chunk]
                    batch = np.full((self.chunk, x.shape[1]), np.nan)
                    batch[: len(idx)] = x[idx]
                    mode, learn, topdown = self.schedule(model, batch)
                    res = net.run(mode=mode, learn=learn, topdown=topdown,
                                  seed=(self.seed * 7919 + epoch * 104729 + pos) % (2**31), strict=False)
                    pos += len(idx)
                    row = {"epoch": epoch + 1, "examples": epoch * n + pos,
                           "events_per_neuron_s": res.n_events / (model.n_units * res.duration_s),
                           "flips": res.n_flips, "max_rate_dt_start": net.last_max_rate_dt, "sim_s": res.duration_s, "wall_s": res.wall_s,
                           "mean_sq_weight": float(np.mean(model.W[1].astype(np.float64) ** 2))}
                    history.append(row)
                    bar.update(1)
                    bar.set_postfix(epoch=epoch + 1, rt=f"{res.duration_s / max(res.wall_s, 1e-9):.2f}x")
                    chunks_done += 1
                    if callback is not None:
                        callback(epoch, pos, model, row)
                    if self.checkpoint and chunks_done % self.checkpoint_every == 0:
                        self._save_checkpoint(model, x, epoch, pos, history)
                epoch, pos = epoch + 1, 0
                if self.checkpoint:
                    self._save_checkpoint(model, x, epoch, pos, history)
        except KeyboardInterrupt:
            if self.checkpoint:
                self._save_checkpoint(model, x, epoch, pos, history)
            raise
        finally:
            bar.close()
            net.close()
        return pd.DataFrame(history)

    # ------------------------------------------------------------------ checkpoints
    def _settings(self):
        d = asdict(self)
        return {k: d[k] for k in ("eta", "eta_b", "rule", "settle_ms", "learn_ms", "dt_ms", "chunk")}

    def _save_checkpoint(self, model, x, epoch, pos, history):
        meta = {"epoch": epoch, "pos": pos, "history": history, "trainer": self._settings(),
                "data": [list(x.shape), float(x.sum())], "model": model._meta()}
        arrays = {"format": np.array(CHECKPOINT_FORMAT), "meta": np.array(json.dumps(meta))}
        arrays.update({f"model.{k}": v for k, v in model.parameters().items()})
        atomic_savez(self.checkpoint, arrays)

    def _load_checkpoint(self, model, x):
        path = Path(self.checkpoint)
        try:
            with np.load(path, allow_pickle=False) as f:
                data = {k: f[k] for k in f.files}
            meta = json.loads(str(data["meta"]))
            ok = str(data["format"]) == CHECKPOINT_FORMAT
        except Exception as exc:
            raise ModelError(f"{path}: not a readable spiking checkpoint ({exc})") from None
        if not ok:
            raise ModelError(f"{path}: not a spiking-training checkpoint")
        if meta["trainer"] != self._settings():
            raise ConfigError(f"{path}: written with other trainer settings {meta['trainer']}")
        if meta["data"] != [list(x.shape), float(x.sum())]:
            raise DataError(f"{path}: written for other training data")
        if list(meta["model"]["sizes"]) != list(model.sizes):
            raise ModelError(f"{path}: written for a network with sizes {meta['model']['sizes']}")
        model.set_parameters({k[len("model."):]: v for k, v in data.items() if k.startswith("model.")})
        return int(meta["epoch"]), int(meta["pos"]), list(meta["history"])
