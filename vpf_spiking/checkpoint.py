"""Training checkpoints: everything needed to continue a run bit for bit, in one pickle-free ``.npz``.

One format for both engines: the batch trainers checkpoint after an epoch, the spiking trainer
after a chunk of examples (``position`` examples into epoch ``epoch + 1``, the network's state
in ``extra.state.<layer>``, no optimizer and no random state: its streams are seeded per chunk).

Entries (all plain arrays; ``np.load(path, allow_pickle=False)`` reads them):

* ``format`` = ``"vpf-spiking-checkpoint"``; ``meta``: a JSON string with ``version``, ``epoch``
  (epochs completed), ``position`` (examples of the next epoch already learned from; 0 for the
  batch trainers), ``model`` (sizes, intra, temperature, tau_ms, name), ``trainer`` (every
  setting, ``trainer.config()``; those of :func:`vpf_spiking.trainers.params.resume_keys` must match
  on resume), ``data`` (shape and sum of the training set, a cheap
  fingerprint), ``rng`` (``numpy.random.Generator.bit_generator.state``, or null) and ``history`` (one dict
  of metrics per completed epoch);
* ``model.<name>``: the parameters (``W1``, ``U1``, ``b0``, ...);
* ``optim.<key>``: the optimizer state (:meth:`vpf_spiking.trainers.optim.Optimizer.state_arrays`);
* ``extra.<key>``: trainer state such as the persistent chains of PCD.

Files are written through :func:`vpf_spiking.io.atomic_savez`, so a run killed while saving
leaves the previous checkpoint intact.  :func:`load_checkpoint` refuses a checkpoint whose
parameters, optimizer state or trainer state hold NaN or inf, or whose last objective is not
finite: such a state is not one to continue from (the trainers never write one).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .errors import ConfigError
from .io import atomic_savez, read_tagged_npz
from .model import BoltzmannMachine

FORMAT_NAME = "vpf-spiking-checkpoint"
FORMAT_VERSION = 1


@dataclass
class Checkpoint:
    """The contents of a checkpoint file (see the module docstring)."""

    epoch: int
    model: BoltzmannMachine
    optimizer: dict
    rng_state: dict
    trainer: dict
    data: dict
    history: list = field(default_factory=list)
    extra: dict = field(default_factory=dict)
    position: int = 0

    def make_rng(self) -> np.random.Generator:
        """A Generator in exactly the saved state."""
        if self.rng_state is None:
            raise ConfigError("checkpoint: holds no random state")
        return restore_rng(self.rng_state)


def restore_rng(state: dict) -> np.random.Generator:
    name = state.get("bit_generator")
    bitgen_cls = getattr(np.random, str(name), None)
    if bitgen_cls is None or not isinstance(bitgen_cls, type) or not issubclass(bitgen_cls, np.random.BitGenerator):
        raise ConfigError(f"checkpoint: unknown random bit generator {name!r}")
    bitgen = bitgen_cls()
    bitgen.state = state
    return np.random.Generator(bitgen)


def _plain(value):
    """JSON-safe copy of a metrics value (numpy scalars become Python numbers)."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def save_checkpoint(path, *, epoch: int, model: BoltzmannMachine, optimizer: dict, rng: np.random.Generator | None,
                    trainer: dict, data: dict, history: list, extra: dict | None = None, position: int = 0) -> Path:
    """Write a checkpoint atomically; returns the path written (``.npz`` appended if missing)."""
    meta = {
        "version": FORMAT_VERSION,
        "epoch": int(epoch),
        "position": int(position),
        "model": model._meta(),
        "trainer": _plain(trainer),
        "data": _plain(data),
        # Python's json writes floats with repr, which round-trips exactly (NaN as NaN)
        "rng": None if rng is None else _plain(rng.bit_generator.state),
        "history": _plain(list(history)),
    }
    arrays = {"format": np.array(FORMAT_NAME), "meta": np.array(json.dumps(meta))}
    for name, a in model.parameters().items():
        arrays[f"model.{name}"] = a
    for name, a in optimizer.items():
        arrays[f"optim.{name}"] = np.asarray(a)
    for name, a in (extra or {}).items():
        arrays[f"extra.{name}"] = np.asarray(a)
    return atomic_savez(path, arrays)


def load_checkpoint(path) -> Checkpoint:
    """Read a checkpoint written by :func:`save_checkpoint`; errors name the file and the problem."""
    path = Path(path)
    data = read_tagged_npz(path, FORMAT_NAME, "checkpoint", ConfigError)
    try:
        meta = json.loads(str(data["meta"]))
        mm = meta["model"]
        epoch = int(meta["epoch"])
    except Exception:
        raise ConfigError(f"{path}: damaged 'meta' entry") from None
    if meta.get("version", 0) > FORMAT_VERSION:
        raise ConfigError(f"{path}: written by a newer checkpoint format (version {meta['version']})")
    L = len(mm["sizes"])
    try:
        W = [None] + [data[f"model.W{l}"] for l in range(1, L)]
        b = [data[f"model.b{l}"] for l in range(L)]
        U = [data[f"model.U{l}"] if mm["intra"][l] else None for l in range(L)]
        model = BoltzmannMachine(mm["sizes"], intra=mm["intra"], temperature=mm["temperature"],
                                 tau_ms=mm.get("tau_ms", 10.0), name=mm.get("name", "checkpoint"),
                                 dtype=b[0].dtype, W=W, U=U, b=b)
    except KeyError as exc:
        raise ConfigError(f"{path}: missing array {exc}") from None
    except ValueError as exc:  # ModelError: shapes or non-finite values
        raise ConfigError(f"{path}: {exc}") from None
    optimizer = {k[len("optim."):]: v for k, v in data.items() if k.startswith("optim.")}
    extra = {k[len("extra."):]: v for k, v in data.items() if k.startswith("extra.")}
    for prefix, arrays in (("optim", optimizer), ("extra", extra)):
        for k, a in arrays.items():
            bad = non_finite(a)
            if bad:
                raise ConfigError(f"{path}: {prefix}.{k} holds {bad} non-finite value(s) (NaN or inf): the run it "
                                  f"comes from diverged, so it cannot be resumed; train again without --resume, "
                                  f"with a lower learning rate")
    history = [{k: (float("nan") if v is None else v) for k, v in row.items()} for row in meta.get("history", [])]
    last = history[-1].get("objective") if history else None
    if isinstance(last, (int, float)) and not math.isfinite(last):
        raise ConfigError(f"{path}: the objective of epoch {history[-1].get('epoch', epoch)} is {last}: the run it "
                          f"comes from diverged, so it cannot be resumed; train again without --resume")
    return Checkpoint(epoch=epoch, model=model, optimizer=optimizer, rng_state=meta.get("rng"),
                      trainer=meta.get("trainer", {}), data=meta.get("data", {}), history=history, extra=extra,
                      position=int(meta.get("position", 0)))


def non_finite(a) -> int:
    """The number of NaN or inf entries of a float array (0 for integer and other arrays)."""
    a = np.asarray(a)
    if not np.issubdtype(a.dtype, np.floating) and not np.issubdtype(a.dtype, np.complexfloating):
        return 0
    return int(a.size - np.count_nonzero(np.isfinite(a)))


def data_fingerprint(x: np.ndarray) -> dict:
    """Shape and sum of the training set: enough to notice resuming on different data."""
    return {"shape": list(x.shape), "sum": float(np.sum(x, dtype=np.float64))}


def same_fingerprint(a: dict, b: dict) -> bool:
    return list(a.get("shape", [])) == list(b.get("shape", [])) and math.isclose(
        a.get("sum", 0.0), b.get("sum", 0.0), rel_tol=1e-9, abs_tol=1e-6)
