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
reuses its compiled binary); ``epochs`` passes over the data give ``epochs x examples``
presentations.  After each chunk the weights are checked, the learning signal is measured on
a fixed probe of images (K, the VPF objective at the bottom-up E-step state, and the
reconstruction error, as the batch engine records them), the metrics file is rewritten
atomically and, every ``checkpoint_every`` chunks, the parameters, the network's state and the
position in the data go to an atomic checkpoint from which :meth:`SpikingTrainer.fit` resumes
bit-identically.

A chunk is all or nothing: a run Brian2 stopped early (Ctrl-C, "Simulation stop requested")
raises :class:`~vpf_spiking.spiking.network.SimulationInterrupted`; the model is put back to the
last complete chunk, which is what the checkpoint then holds, and the ``KeyboardInterrupt``
goes on to the caller (``vpf`` exits 130).
"""

from __future__ import annotations

import json
import math
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from ..checkpoint import data_fingerprint, load_checkpoint, same_fingerprint, save_checkpoint
from ..errors import ConfigError, DataError, ModelError, TrainingDiverged
from ..io import write_csv
from ..model import BoltzmannMachine, pixel_log_odds
from .equations import CLAMP0, FREE, HOLD
from .network import SpikingNetwork

#: the spiking trainer's checkpoints before both engines shared vpf_spiking.checkpoint (still read)
LEGACY_CHECKPOINT_FORMAT = "vpf-spiking-spiking-checkpoint"
PROBE_EXAMPLES = 1000  # images of the per-chunk learning signal (as the batch engine's probe)
VISIBLE_BIAS_INITS = ("marginals", "zero")


@dataclass
class SpikingTrainer:
    """Online VPF training of a :class:`BoltzmannMachine` by its spiking network.

    Parameters
    ----------
    epochs : int
        Passes over the training data (``epochs x examples`` presentations, one at a time).
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
    device : "runtime", "cpp_standalone", "cuda_standalone" or None
        None: :func:`~vpf_spiking.spiking.devices.default_device`.
    seed : int
    checkpoint : path or None
    checkpoint_every : int
        Chunks between checkpoints.
    progress : bool
    visible_bias_init : "marginals" or "zero"
        At the start of a fresh fit, "marginals" sets all-zero visible biases to the pixel
        log-odds of the data (:func:`vpf_spiking.model.pixel_log_odds`), as the batch trainers do.
    metrics_file : path or None
        CSV of the per-chunk metrics, rewritten atomically after every chunk.
    """

    epochs: int = 1
    eta: float = 0.01
    eta_b: float | None = None
    rule: str = "symmetric"
    settle_ms: float = 30.0
    learn_ms: float = 10.0
    dt_ms: float = 0.1
    chunk: int = 100
    device: str | None = None
    seed: int = 0
    checkpoint: object = None
    checkpoint_every: int = 10
    progress: bool = True
    codegen: str | None = None
    visible_bias_init: str = "marginals"
    metrics_file: object = None

    def __post_init__(self):
        if self.epochs < 1:
            raise ConfigError(f"epochs must be >= 1, got {self.epochs}")
        if not (self.eta > 0 and math.isfinite(self.eta)):
            raise ConfigError(f"eta must be a positive number, got {self.eta}")
        if self.eta_b is None:
            self.eta_b = self.eta
        if self.eta_b < 0:
            raise ConfigError(f"eta_b must be >= 0, got {self.eta_b}")
        if self.visible_bias_init not in VISIBLE_BIAS_INITS:
            raise ConfigError(f"unknown visible_bias_init {self.visible_bias_init!r}; use 'marginals' or 'zero'")
        if self.rule not in ("symmetric", "asymmetric"):
            raise ConfigError(f"unknown rule {self.rule!r}; use 'symmetric' or 'asymmetric'")
        from .devices import resolve_device

        self.device = resolve_device(self.device)
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
    def describe(self, model, n) -> str:
        """What a fit on ``n`` examples will do: epochs, presentations, chunks, simulated time."""
        slot_ms, _, _, per = self.geometry(model)
        chunks = math.ceil(n / self.chunk)
        sim_s = self.epochs * chunks * self.chunk * per * slot_ms / 1e3
        return (f"spiking training: {self.epochs * n} presentations = {self.epochs} epoch(s) x {n} examples, "
                f"one online update each ({chunks} chunk(s) of {self.chunk} per epoch, {per * slot_ms:g} ms "
                f"simulated per example, {sim_s:g} s in all)")

    def fit(self, model: BoltzmannMachine, x, resume=False, callback=None, probe=None):
        """Train ``model`` in place on binary examples ``x`` (n, n_visible); return per-chunk metrics.

        ``probe``: held-out binary images for the per-chunk learning signal (columns ``val_flow``,
        ``val_recon_error``, ``val_hidden_mean``); without it the first 1,000 training examples
        are the probe (``flow``, ``recon_error``, ``hidden_mean``).  ``flow`` is K, the VPF
        objective at a bottom-up E-step sample of the probe (its own seeded stream).
        ``callback(epoch, pos, model, row)`` runs after each chunk and may add to ``row``.
        """
        import pandas as pd
        from ..progress import progress_bar as tqdm

        x = self._check_data(model, x, "training data")
        prefix = "" if probe is None else "val_"
        probe = x[:PROBE_EXAMPLES] if probe is None else self._check_data(model, probe, "probe data")
        model.trained_by = "vpf:spiking"
        self._fingerprint = data_fingerprint(x)
        epoch, pos, history, state = 0, 0, [], None
        resumed = bool(resume and self.checkpoint and Path(self.checkpoint).exists())
        if resumed:
            epoch, pos, history, state = self._load_checkpoint(model, x)
        elif resume:
            print(f"no checkpoint at {self.checkpoint} yet; starting from the first example", file=sys.stderr)
        if not resumed and self.visible_bias_init == "marginals" and not np.any(model.b[0]):
            model.b[0][...] = pixel_log_odds(x, model.temperature)
        n = len(x)
        print(self.describe(model, n) + (f"; resuming after {epoch * n + pos} of them" if resumed else ""),
              file=sys.stderr)
        slot_ms, _, _, per = self.geometry(model)
        net = SpikingNetwork(model, device=self.device, dt_ms=self.dt_ms, slot_ms=slot_ms,
                             n_slots=self.chunk * per, rule=self.rule, eta=self.eta, eta_b=self.eta_b,
                             seed=self.seed, codegen=self.codegen)
        net.state = state
        n_chunks = math.ceil(n / self.chunk)
        bar = tqdm(total=self.epochs * n_chunks, initial=epoch * n_chunks + pos // self.chunk,
                   disable=not self.progress, desc="spiking", unit="chunk")
        chunks_done = 0
        done = self._snapshot(model, net, epoch, pos, history)   # the last complete chunk
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
                    row = {"epoch": epoch + 1, "examples": epoch * n + pos + len(idx),
                           "events_per_neuron_s": res.n_events / (model.n_units * res.duration_s),
                           "flips": res.n_flips, "max_rate_dt_start": net.last_max_rate_dt, "sim_s": res.duration_s,
                           "wall_s": res.wall_s, "mean_sq_weight": float(np.mean(model.W[1].astype(np.float64) ** 2))}
                    row.update(self._probe_metrics(model, probe, prefix, epoch, pos))
                    if callback is not None:
                        callback(epoch, pos + len(idx), model, row)
                    pos += len(idx)
                    history.append(row)
                    done = self._snapshot(model, net, epoch, pos, history)
                    bar.update(1)
                    bar.set_postfix(epoch=epoch + 1, rt=f"{res.duration_s / max(res.wall_s, 1e-9):.2f}x")
                    chunks_done += 1
                    self._write_metrics(history)
                    if self.checkpoint and chunks_done % self.checkpoint_every == 0:
                        self._save_checkpoint(done)
                epoch, pos = epoch + 1, 0
                done = self._snapshot(model, net, epoch, pos, history)
                if self.checkpoint:
                    self._save_checkpoint(done)
        except KeyboardInterrupt:
            # back to the last complete chunk: a truncated run never reaches the model or the checkpoint
            model.set_parameters(done["params"])
            net.state = done["state"]
            if self.checkpoint:
                self._save_checkpoint(done)
            where = (f"; {self.checkpoint} holds the last complete chunk ({done['epoch'] * n + done['pos']} "
                     f"presentations): continue with --resume" if self.checkpoint else "")
            print(f"\nspiking training interrupted; the unfinished chunk was discarded{where}", file=sys.stderr)
            raise
        finally:
            bar.close()
            net.close()
        return pd.DataFrame(history)

    @staticmethod
    def _check_data(model, x, what):
        x = np.asarray(x, dtype=np.float64)
        if x.ndim != 2 or x.shape[1] != model.sizes[0]:
            raise DataError(f"{what} has shape {x.shape}, the network needs (n, {model.sizes[0]})")
        if len(x) == 0:
            raise DataError(f"{what} is empty")
        if not np.all((x == 0) | (x == 1)):
            raise DataError(f"{what} must be binary (0/1) for the spiking engine")
        return x

    def _probe_metrics(self, model, probe, prefix, epoch, pos) -> dict:
        """K at a bottom-up E-step sample of the probe, and the batch engine's probe metrics."""
        from ..objective import objective
        from ..sampling import bottom_up
        from ..trainers.base import probe_metrics

        m = model.copy(np.float64)
        state, _ = bottom_up(m, probe, np.random.default_rng([self.seed, epoch, pos, 1]))
        flow = objective(m, state)
        if not math.isfinite(flow):
            raise TrainingDiverged(f"K on the probe became {flow} after {epoch} epoch(s) + {pos} examples; "
                                   f"lower eta (now {self.eta})")
        return {f"{prefix}flow": flow, **{f"{prefix}{k}": v for k, v in probe_metrics(m, probe).items()}}

    def _write_metrics(self, history):
        if self.metrics_file is None:
            return
        import pandas as pd

        write_csv(pd.DataFrame(history), self.metrics_file)

    @staticmethod
    def _snapshot(model, net, epoch, pos, history) -> dict:
        return {"params": {k: v.copy() for k, v in model.parameters().items()},
                "state": None if net.state is None else [np.array(y) for y in net.state],
                "epoch": epoch, "pos": pos, "history": list(history), "model": model}

    # ------------------------------------------------------------------ checkpoints
    def _settings(self):
        d = asdict(self)
        return {k: d[k] for k in ("eta", "eta_b", "rule", "settle_ms", "learn_ms", "dt_ms", "chunk")}

    def _save_checkpoint(self, snap):
        model = snap["model"].copy()
        model.set_parameters(snap["params"])
        save_checkpoint(self.checkpoint, epoch=snap["epoch"], position=snap["pos"], model=model, optimizer={},
                        rng=None, trainer=self._settings(), data=self._fingerprint, history=snap["history"],
                        extra={f"state.{l}": y for l, y in enumerate(snap["state"] or [])})

    def _load_checkpoint(self, model, x):
        """(epoch, position, history, network state) of the checkpoint, its parameters put into ``model``."""
        path = Path(self.checkpoint)
        if _format_of(path) == LEGACY_CHECKPOINT_FORMAT:
            return self._load_legacy_checkpoint(model, path)
        ck = load_checkpoint(path)
        self._check_resumable(path, ck.trainer, ck.data, ck.model.sizes, model)
        model.set_parameters(ck.model.parameters())
        # the network's state where the checkpointed chunk ended
        layers = sorted(int(k.split(".")[1]) for k in ck.extra if k.startswith("state."))
        state = [ck.extra[f"state.{l}"] for l in layers] or None
        return ck.epoch, ck.position, ck.history, state

    def _check_resumable(self, path, trainer, data, sizes, model):
        if trainer != self._settings():
            raise ConfigError(f"{path}: written with other trainer settings {trainer}")
        if not same_fingerprint(data, self._fingerprint):
            raise DataError(f"{path}: written for other training data")
        if list(sizes) != list(model.sizes):
            raise ModelError(f"{path}: written for a network with sizes {list(sizes)}")

    def _load_legacy_checkpoint(self, model, path):
        """A checkpoint of the spiking trainer's own earlier format (``vpf-spiking-spiking-checkpoint``)."""
        try:
            with np.load(path, allow_pickle=False) as f:
                data = {k: f[k] for k in f.files}
            meta = json.loads(str(data["meta"]))
        except Exception as exc:
            raise ModelError(f"{path}: not a readable spiking checkpoint ({exc})") from None
        shape, total = meta["data"]
        self._check_resumable(path, meta["trainer"], {"shape": shape, "sum": total}, meta["model"]["sizes"], model)
        model.set_parameters({k[len("model."):]: v for k, v in data.items() if k.startswith("model.")})
        state = [data[f"state.{l}"] for l in range(int(meta.get("state_layers", 0)))] or None
        return int(meta["epoch"]), int(meta["pos"]), list(meta["history"]), state


def _format_of(path) -> str | None:
    """The ``format`` entry of an ``.npz`` (None when unreadable: the loader then says why)."""
    try:
        with np.load(path, allow_pickle=False) as f:
            return str(f["format"]) if "format" in f.files else None
    except Exception:
        return None
