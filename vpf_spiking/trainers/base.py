"""The epoch loop shared by every batch trainer: settings, progress, metrics, checkpoints, resume.

A subclass sets :attr:`Trainer.method` and supplies ``_run_epoch`` (and, if it keeps state
between epochs, ``_reset_state`` / ``_extra_state`` / ``_load_extra_state``).  Settings come
from :mod:`vpf_spiking.trainers.params`, which checks them and fills in the defaults.

After every epoch the loop checks the whole state before it is kept: the parameters, the
optimizer's state (Adam's moments) and the objective must be finite, and the objective may not
blow up (:func:`objective_limit`).  A failed check ends the run with
:class:`~vpf_spiking.errors.TrainingDiverged`, so the checkpoint on disk is the last state that
passed.  The checkpoint and the metrics CSV are then written together, with Ctrl-C held back
until both are on disk.
"""

from __future__ import annotations

import math
import sys
import time
from pathlib import Path

import numpy as np

from ..checkpoint import data_fingerprint, load_checkpoint, non_finite, same_fingerprint, save_checkpoint
from ..errors import ConfigError, DataError, TrainingDiverged
from ..io import interrupts_deferred, write_csv
from ..model import pixel_log_odds
from . import params
from .optim import make_optimizer
from .threads import blas_threads

PROBE_EXAMPLES = 1000  # training examples used for the cheap per-epoch reconstruction metric

#: The objective of an epoch may not exceed this factor times its first-epoch value ...
OBJECTIVE_GROWTH_LIMIT = 1e6
#: ... nor this value per unit of the model (for VPF, K is a sum of one flip rate per unit; a
#: healthy model has K of order one per unit, and K = 10^6 per unit means fields of ~28 T
#: pushing the units out of the data states).
OBJECTIVE_PER_UNIT_LIMIT = 1e6


def objective_limit(first: float, n_units: int) -> float:
    """The largest objective an epoch may report before training counts as diverged.

    ``OBJECTIVE_GROWTH_LIMIT * min(max(first, 1), n_units)`` with ``first`` the first epoch's
    objective: 10^6 times the first epoch (at least 10^6), and never more than 10^6 per unit
    (:data:`OBJECTIVE_PER_UNIT_LIMIT`), so a run whose very first epoch exploded is caught too.
    The reconstruction error that CD/PCD report lies in [0, 1] and never reaches it.
    """
    first = float(first) if math.isfinite(first) else float(n_units)
    return min(OBJECTIVE_GROWTH_LIMIT * max(first, 1.0), OBJECTIVE_PER_UNIT_LIMIT * n_units)


def check_training_data(model, x) -> np.ndarray:
    """Return ``x`` as a C-contiguous array of the model's dtype, or raise :class:`DataError`.

    ``x`` must be 2-D (examples x visible units of ``model``), non-empty, finite and binary (0/1).
    (Not to be confused with :func:`vpf_spiking.data.check_data`, which checks data *files*.)
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


def uniform(rng, out):
    """Fill ``out`` with U(0, 1) float32 draws (the stream :func:`sampling.bernoulli` uses)."""
    if out.dtype == np.float32:
        rng.random(out=out, dtype=np.float32)
    else:
        out[...] = rng.random(out.shape, dtype=np.float32)
    return out


def probe_metrics(model, probe) -> dict:
    """Cheap per-epoch monitors on a fixed set of training examples (deterministic, no RNG).

    ``recon_error``: mean squared error per pixel between v and p(v | h1 = p(h1 | v)) (one mean-field
    up-down pass through the first hidden layer, ignoring layers above); ``hidden_mean``: mean
    bottom-up probability of the first hidden layer.  Fully observed models report neither.
    """
    if model.n_layers < 2:
        return {}
    ph = model.hidden_probabilities(probe)
    pv = model.visible_probabilities(ph)
    return {"recon_error": float(np.mean((probe - pv) ** 2)), "hidden_mean": float(np.mean(ph))}


class Trainer:
    """Epoch loop, progress bar, metrics, checkpoints and resume; subclasses supply the epoch.

    ``Trainer(epochs=None, checkpoint=None, **options)``: ``options`` are those of
    :mod:`~vpf_spiking.trainers.params` for the subclass's method (None or absent: the
    declared default); each becomes an attribute.
    """

    method = "base"

    def __init__(self, epochs=None, *, checkpoint=None, metrics_csv=None, **options):
        settings = params.resolve(self.method, {"epochs": epochs, **options}, owner=type(self).__name__)
        for name, value in settings.items():
            setattr(self, name, value)
        self._new_optimizer()  # the optimizer's own checks, before any data is touched
        self.checkpoint = None if checkpoint is None else Path(checkpoint)
        #: CSV rewritten (atomically) after every epoch with the history so far (None: not written)
        self.metrics_csv = None if metrics_csv is None else Path(metrics_csv)
        self.optimizer_ = None
        self.history_ = []
        self._saved_epoch = 0

    def config(self) -> dict:
        """Every setting of this trainer, defaults included (recorded in checkpoints and protocols)."""
        return {"method": self.method, **{o.name: getattr(self, o.name) for o in params.options(self.method)}}

    def _new_optimizer(self):
        return make_optimizer(self.optimizer, self.learning_rate, self.weight_decay, self.momentum)

    def _ensure_optimizer(self):
        if self.optimizer_ is None:
            self.optimizer_ = self._new_optimizer()
        return self.optimizer_

    def check_model(self, model) -> None:
        pass

    # -- subclass hooks
    def training_label(self) -> str:
        """What the model records as ``trained_by`` (the method; VPF adds a flow other than the paper's)."""
        return self.method

    def _reset_state(self):
        pass

    def _extra_state(self) -> dict:
        return {}

    def _load_extra_state(self, extra: dict) -> None:
        pass

    def _run_epoch(self, model, x, rng, bar, epoch) -> float:  # pragma: no cover - abstract
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
        x = check_training_data(model, x)
        if resume and self.checkpoint is None:
            raise ConfigError("resume=True needs the trainer's checkpoint path (checkpoint=...)")
        rng = np.random.default_rng(self.seed)
        self.optimizer_ = self._new_optimizer()
        self._reset_state()
        self.history_ = []
        fingerprint = data_fingerprint(x)
        start = 0
        self._saved_epoch = 0
        if resume and not self.checkpoint.exists():
            print(f"no checkpoint at {self.checkpoint} yet; starting from epoch 1", file=sys.stderr)
        elif resume:
            ck = self._load_for_resume(model, fingerprint)
            if ck.epoch > self.epochs:
                raise ConfigError(f"{self.checkpoint}: holds {ck.epoch} epochs, more than the {self.epochs} asked for; "
                                  f"ask for {ck.epoch} or more epochs to continue it (vpf: --epochs), or start a "
                                  f"new run without --resume")
            model.set_parameters({k: v for k, v in ck.model.parameters().items()})
            self.optimizer_.load_state_arrays(ck.optimizer)
            self._load_extra_state(ck.extra)
            rng = ck.make_rng()
            self.history_ = list(ck.history)
            start = self._saved_epoch = ck.epoch
            if start == self.epochs:
                print(f"{self.checkpoint}: already at epoch {start} of {self.epochs}; nothing left to train "
                      f"(ask for more epochs to continue)", file=sys.stderr)
        if start == 0:
            self.init_visible_biases(model, x)
        model.trained_by = self.training_label()
        probe = x[:PROBE_EXAMPLES]
        self._current_epoch = start + 1
        try:
            with blas_threads("auto"):
                self._epochs(model, x, rng, start, callback, probe, fingerprint)
        except KeyboardInterrupt:
            epoch = self._current_epoch
            if self.checkpoint is not None and self._saved_epoch:
                hint = (f"the checkpoint {self.checkpoint} (epoch {self._saved_epoch}) is intact; "
                        f"continue with fit(..., resume=True) (vpf: add --resume)")
            elif self.checkpoint is not None:
                hint = "no epoch finished, so there is nothing to resume from yet"
            else:
                hint = "no checkpoint was set (checkpoint=...), so this run cannot be resumed"
            print(f"\ninterrupted during epoch {epoch}; {hint}", file=sys.stderr)
            raise
        return pd.DataFrame(self.history_)

    def init_visible_biases(self, model, x) -> bool:
        """Apply ``visible_bias_init`` at the start of a fresh fit; return whether b[0] changed.

        ``"marginals"`` sets b[0] = T logit(p) of the Laplace-smoothed pixel marginals of ``x``
        (:func:`vpf_spiking.model.pixel_log_odds`), unless b[0] is already non-zero (a model the
        user set up, or one trained before); ``"zero"`` leaves the model as it is.
        """
        if self.visible_bias_init != "marginals" or np.any(model.b[0]):
            return False
        model.b[0][...] = pixel_log_odds(x, model.temperature)
        return True

    def _epochs(self, model, x, rng, start, callback, probe, fingerprint):
        for epoch in range(start + 1, self.epochs + 1):
            self._current_epoch = epoch
            bar = self._bar(epoch, x.shape[0])
            t0 = time.perf_counter()
            try:
                # overflow is caught below (non-finite state, exploding objective), not warned about
                with np.errstate(over="ignore", invalid="ignore"):
                    objective = self._run_epoch(model, x, rng, bar, epoch)
            finally:
                if bar is not None:
                    bar.close()
            seconds = time.perf_counter() - t0
            self._check_state(model, epoch, objective)
            metrics = {"epoch": epoch, "objective": objective, "seconds": seconds}
            metrics.update(probe_metrics(model, probe))
            if callback is not None:
                callback(epoch, model, metrics)
            # the history, the checkpoint and the metrics CSV move on together; a Ctrl-C waits
            with interrupts_deferred():
                self.history_.append(metrics)
                if self.checkpoint is not None:
                    save_checkpoint(self.checkpoint, epoch=epoch, model=model,
                                    optimizer=self.optimizer_.state_arrays(), rng=rng, trainer=self.config(),
                                    data=fingerprint, history=self.history_, extra=self._extra_state())
                    self._saved_epoch = epoch
                if self.metrics_csv is not None:
                    self.write_metrics(self.metrics_csv)

    def write_metrics(self, path) -> Path:
        """The history so far (one row per completed epoch) as CSV, written atomically."""
        import pandas as pd

        return write_csv(pd.DataFrame(self.history_), path)

    def _load_for_resume(self, model, fingerprint):
        ck = load_checkpoint(self.checkpoint)
        if tuple(ck.model.sizes) != tuple(model.sizes) or list(ck.model.intra) != list(model.intra):
            raise ConfigError(f"{self.checkpoint}: written for a model with sizes {ck.model.sizes} and intra "
                              f"{ck.model.intra}, not {model.sizes} / {model.intra}")
        mine = self.config()
        # an option newer than the checkpoint counts as its default (older runs used that)
        theirs = {k: ck.trainer.get(k, getattr(params.OPTIONS.get(k), "default", None))
                  for k in params.resume_keys(self.method)}
        diff = [f"{k}={theirs[k]!r} (now {mine[k]!r})" for k in theirs if theirs[k] != mine[k]]
        if diff:
            raise ConfigError(f"{self.checkpoint}: written with different settings: {', '.join(diff)}; "
                              f"resume with the same settings or use a new checkpoint path")
        if not same_fingerprint(ck.data, fingerprint):
            raise ConfigError(f"{self.checkpoint}: written for other training data (shape {ck.data.get('shape')}, "
                              f"sum {ck.data.get('sum')}; now shape {fingerprint['shape']}, sum {fingerprint['sum']}); "
                              f"resume on the same data")
        objectives = [row.get("objective") for row in ck.history]
        if objectives and all(isinstance(k, (int, float)) for k in objectives):
            limit = objective_limit(objectives[0], model.n_units)
            if max(objectives) > limit:
                raise ConfigError(f"{self.checkpoint}: its objective reached {max(objectives):.4g} (limit {limit:.4g}): "
                                  f"the run it comes from diverged, so it cannot be resumed; train again without "
                                  f"--resume, with a lower learning rate")
        return ck

    def _bar(self, epoch, n):
        if not self.progress:
            return None
        from ..progress import progress_bar as tqdm

        return tqdm(total=math.ceil(n / self.batch_size), desc=f"{self.method} epoch {epoch}/{self.epochs}",
                    unit="batch", leave=True, mininterval=0.5, file=sys.stderr)

    def _check_parameters(self, model, epoch):
        for name, p in model.parameters().items():
            if not np.all(np.isfinite(p)):
                raise TrainingDiverged(self._diverged_message(epoch, f"parameter {name} became non-finite"))

    def _check_state(self, model, epoch, objective):
        """The end-of-epoch checks: parameters, optimizer state and objective (see the module docstring)."""
        self._check_parameters(model, epoch)
        for slot, arrays in getattr(self.optimizer_, "slots", {}).items():
            for name, a in arrays.items():
                bad = non_finite(a)
                if bad:
                    raise TrainingDiverged(self._diverged_message(
                        epoch, f"the optimizer state {slot}.{name} holds {bad} non-finite value(s)"))
        for name, a in self._extra_state().items():
            if non_finite(a):
                raise TrainingDiverged(self._diverged_message(epoch, f"the trainer state {name} became non-finite"))
        if not math.isfinite(objective):
            raise TrainingDiverged(self._diverged_message(epoch, f"the objective became {objective}"))
        first = self.history_[0]["objective"] if self.history_ else objective
        limit = objective_limit(first, model.n_units)
        if objective > limit:
            raise TrainingDiverged(self._diverged_message(
                epoch, f"the objective reached {objective:.4g}, above the limit {limit:.4g} (10^6 times the first "
                       f"epoch's, at most 10^6 per unit)"))

    def _diverged_message(self, epoch, what):
        if self.checkpoint is None:
            where = ""
        elif self._saved_epoch:
            where = f"; the last good state (epoch {self._saved_epoch}) is in {self.checkpoint}"
        else:
            where = "; no checkpoint was written (no epoch ended in a good state)"
        return (f"training diverged in epoch {epoch}: {what}; lower the learning rate "
                f"(now {self.learning_rate}) or add weight decay{where}")

    def _batches(self, n, rng):
        perm = rng.permutation(n)
        B = self.batch_size
        return [perm[i:i + B] for i in range(0, n, B)]

    def _minibatches(self, n, rng, bar, epoch, step, what, label, fmt) -> float:
        """Run ``step(idx) -> value`` over shuffled minibatches of ``n`` examples; the mean per example.

        A non-finite value stops training (:class:`TrainingDiverged` naming ``what``); the bar
        shows the running mean as ``label=value`` every 1 % of the epoch.
        """
        total, count = 0.0, 0
        batches = self._batches(n, rng)
        every = max(1, len(batches) // 100)
        for i, idx in enumerate(batches):
            value = step(idx)
            if not math.isfinite(value):
                raise TrainingDiverged(self._diverged_message(epoch, f"{what} became {value} at minibatch {i + 1}"))
            total += value * len(idx)
            count += len(idx)
            if bar is not None and ((i + 1) % every == 0 or i + 1 == len(batches)):
                bar.update(i + 1 - bar.n)
                bar.set_postfix_str(f"{label}={total / count:{fmt}}", refresh=False)
        return total / count


__all__ = ["Trainer", "check_training_data", "probe_metrics", "uniform", "objective_limit", "PROBE_EXAMPLES",
           "OBJECTIVE_GROWTH_LIMIT", "OBJECTIVE_PER_UNIT_LIMIT"]
