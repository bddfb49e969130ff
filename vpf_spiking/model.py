"""The binary Boltzmann machine shared by every engine.

A model is a stack of layers ``0..L`` (layer 0 is visible).  Adjacent layers are joined by
weights ``W[l]`` of shape ``(n[l-1], n[l])`` for ``l = 1..L``; any layer may carry symmetric,
zero-diagonal intra-layer ("lateral") weights ``U[l]``; every layer has biases ``b[l]``.

States are passed around as a list of per-layer arrays of shape ``(batch, n[l])`` with values in
{0, 1}.  The model knows nothing about how it is trained or simulated: the batch engine
(:mod:`vpf_spiking.trainers`) and the spiking engine (:mod:`vpf_spiking.spiking`) both read and
write these arrays.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
from scipy.special import expit

from .errors import ModelError
from .io import atomic_savez, read_tagged_npz  # noqa: F401  (re-exported: their old home)
from .networks import NetworkSpec, load_network
from .resources import require_memory

FORMAT_NAME = "vpf-spiking-model"
FORMAT_VERSION = 1


def _as_layer_list(value, n_layers, name):
    if isinstance(value, (bool, np.bool_)):
        return [bool(value)] * n_layers
    value = list(value)
    if len(value) != n_layers:
        raise ModelError(f"{name} has {len(value)} entries but the model has {n_layers} layers")
    return [bool(v) for v in value]


@dataclass
class BoltzmannMachine:
    """A layered binary Boltzmann machine, p(y) ~ exp(-E(y)/T).

    Parameters
    ----------
    sizes : sequence of int
        Units per layer, visible first.  ``[784, 500]`` is an RBM, ``[10]`` with
        ``intra=[True]`` a fully observed Boltzmann machine.
    intra : bool or sequence of bool
        Which layers carry intra-layer weights ``U``.
    temperature : float
        T in exp(-E/T) and in the flip rates exp(a z / T).
    weight_std : float
        Standard deviation of the Gaussian initial weights (biases start at zero).
    seed : int or None
        Seed of the initialisation.
    dtype : numpy dtype
        float32 for training speed, float64 for exact checks.
    trained_by : str or None
        How the parameters were fitted (``"vpf"``, ``"vpf:rao-blackwell"``, ``"pcd"``, ...; set by
        the trainers, saved with the model); :func:`vpf_spiking.generation.recommended_steps`
        reads it.
    """

    sizes: Sequence[int]
    intra: object = False
    temperature: float = 1.0
    weight_std: float = 0.01
    seed: int | None = 0
    dtype: object = np.float32
    name: str = "boltzmann-machine"
    tau_ms: float = 10.0
    trained_by: str | None = None
    W: list = field(default=None, repr=False)
    U: list = field(default=None, repr=False)
    b: list = field(default=None, repr=False)

    def __post_init__(self):
        try:
            self.sizes = tuple(int(n) for n in self.sizes)
        except (TypeError, ValueError):
            raise ModelError(f"layer sizes must be integers, got {self.sizes!r}") from None
        if len(self.sizes) == 0 or any(n < 1 for n in self.sizes):
            raise ModelError(f"every layer needs at least one unit, got sizes {self.sizes}")
        if not (np.isfinite(self.temperature) and self.temperature > 0):
            raise ModelError(f"temperature must be a positive number, got {self.temperature}")
        if not (np.isfinite(self.tau_ms) and self.tau_ms > 0):
            raise ModelError(f"tau_ms must be a positive number, got {self.tau_ms}")
        try:
            ok_std = bool(np.isfinite(float(self.weight_std)) and float(self.weight_std) >= 0)
        except (TypeError, ValueError):
            ok_std = False
        if not ok_std:
            raise ModelError(f"weight_std must be a non-negative number, got {self.weight_std!r}")
        self.dtype = np.dtype(self.dtype)
        self.intra = _as_layer_list(self.intra, len(self.sizes), "intra")
        if len(self.sizes) == 1 and not self.intra[0]:
            raise ModelError("a single-layer model needs intra=True (otherwise it has no weights)")
        if self.W is None or self.U is None or self.b is None:
            self._check_memory()
        rng = np.random.default_rng(self.seed)
        n = self.sizes
        if self.W is None:
            self.W = [None] + [
                (self.weight_std * rng.standard_normal((n[l - 1], n[l]))).astype(self.dtype)
                for l in range(1, len(n))
            ]
        if self.U is None:
            self.U = []
            for l, has in enumerate(self.intra):
                if has:
                    u = np.triu(self.weight_std * rng.standard_normal((n[l], n[l])), 1)
                    self.U.append((u + u.T).astype(self.dtype))
                else:
                    self.U.append(None)
        if self.b is None:
            self.b = [np.zeros(k, dtype=self.dtype) for k in n]
        self.validate()

    def _check_memory(self):
        """Refuse (ModelError naming the size) a model whose new parameters do not fit in memory."""
        require_memory(parameter_bytes(self.sizes, self.intra, self.dtype),
                       f"a model with layers {' - '.join(str(n) for n in self.sizes)} ({self.dtype.name} parameters)",
                       ModelError)

    # ------------------------------------------------------------------ structure
    @property
    def n_layers(self) -> int:
        return len(self.sizes)

    @property
    def n_units(self) -> int:
        return int(sum(self.sizes))

    @property
    def is_rbm(self) -> bool:
        return self.n_layers == 2 and not any(self.intra)

    def parameters(self) -> dict:
        """Name -> array of every trainable parameter (views, not copies)."""
        params = {}
        for l in range(1, self.n_layers):
            params[f"W{l}"] = self.W[l]
        for l in range(self.n_layers):
            if self.U[l] is not None:
                params[f"U{l}"] = self.U[l]
        for l in range(self.n_layers):
            params[f"b{l}"] = self.b[l]
        return params

    def set_parameters(self, params: dict) -> None:
        for key, value in params.items():
            kind, l = key[0], int(key[1:])
            getattr(self, kind)[l] = np.asarray(value, dtype=self.dtype)
        self.validate()

    def copy(self, dtype=None) -> "BoltzmannMachine":
        dtype = self.dtype if dtype is None else np.dtype(dtype)
        return BoltzmannMachine(
            self.sizes, intra=list(self.intra), temperature=self.temperature,
            dtype=dtype, name=self.name, tau_ms=self.tau_ms, trained_by=self.trained_by,
            W=[None if w is None else w.astype(dtype, copy=True) for w in self.W],
            U=[None if u is None else u.astype(dtype, copy=True) for u in self.U],
            b=[x.astype(dtype, copy=True) for x in self.b],
        )

    def validate(self) -> None:
        """Check shapes, symmetry and finiteness; raise :class:`ModelError` naming the problem."""
        n = self.sizes
        if len(self.W) != self.n_layers or len(self.U) != self.n_layers or len(self.b) != self.n_layers:
            raise ModelError("W, U and b need one entry per layer (W[0] is unused and None)")
        for l in range(1, self.n_layers):
            _check_array(self.W[l], (n[l - 1], n[l]), f"W{l}")
        for l in range(self.n_layers):
            _check_array(self.b[l], (n[l],), f"b{l}")
            u = self.U[l]
            if (u is not None) != self.intra[l]:
                raise ModelError(f"layer {l}: intra={self.intra[l]} but U{l} is "
                                 f"{'missing' if u is None else 'present'}")
            if u is not None:
                _check_array(u, (n[l], n[l]), f"U{l}")
                if np.any(np.diag(u) != 0):
                    raise ModelError(f"U{l} must have a zero diagonal (no self-connections)")
                if not np.allclose(u, u.T, rtol=1e-5, atol=1e-6):
                    raise ModelError(f"U{l} must be symmetric")

    # ------------------------------------------------------------------ physics
    def check_state(self, state) -> list:
        """Return ``state`` as a list of 2-D arrays, or raise naming the bad layer."""
        if isinstance(state, np.ndarray):
            state = self.split(state)
        if len(state) != self.n_layers:
            raise ModelError(f"state has {len(state)} layers, model has {self.n_layers}")
        out = []
        batch = None
        for l, y in enumerate(state):
            y = np.asarray(y)
            if y.ndim == 1:
                y = y[None, :]
            if y.ndim != 2 or y.shape[1] != self.sizes[l]:
                raise ModelError(f"layer {l} state has shape {y.shape}, expected (batch, {self.sizes[l]})")
            if batch is None:
                batch = y.shape[0]
            elif y.shape[0] != batch:
                raise ModelError(f"layer {l} has batch {y.shape[0]}, layer 0 has {batch}")
            out.append(y)
        return out

    def local_fields(self, state) -> list:
        """z_j = b_j + sum_i w_ij y_i over every neighbour (below, above, same layer)."""
        y = self.check_state(state)
        z = []
        for l in range(self.n_layers):
            f = np.broadcast_to(self.b[l], y[l].shape).astype(np.result_type(self.dtype, y[l].dtype))
            if l > 0:
                f = f + y[l - 1] @ self.W[l]
            if l + 1 < self.n_layers:
                f = f + y[l + 1] @ self.W[l + 1].T
            if self.U[l] is not None:
                f = f + y[l] @ self.U[l]
            z.append(f)
        return z

    def energy(self, state) -> np.ndarray:
        """E(y) = -sum_{i<j} w_ij y_i y_j - sum_j b_j y_j, one value per example."""
        y = self.check_state(state)
        e = 0.0
        for l in range(self.n_layers):
            e = e - y[l] @ self.b[l]
            if l > 0:
                e = e - np.einsum("bi,ij,bj->b", y[l - 1], self.W[l], y[l])
            if self.U[l] is not None:
                e = e - 0.5 * np.einsum("bi,ij,bj->b", y[l], self.U[l], y[l])
        return e

    def flip_rates(self, state) -> list:
        """d_j = exp((1/2 - y_j) z_j / T): the rate at which unit j leaves its state (units of 1/tau)."""
        y = self.check_state(state)
        return [np.exp((0.5 - yl) * zl / self.temperature) for yl, zl in zip(y, self.local_fields(y))]

    # ------------------------------------------------------------------ conditionals
    def firing_probability(self, z, out=None):
        """sigmoid(z / T): the probability that a unit with local field ``z`` is on (``out`` may be ``z``)."""
        if self.temperature == 1.0:
            return expit(z, out=out)
        z = np.divide(z, self.temperature, out=out)
        return expit(z, out=z)

    def external_field(self, state, l, below=True, above=True):
        """b_l plus the input from layer l-1 (``below``) and layer l+1 (``above``); no intra-layer term."""
        f = np.broadcast_to(self.b[l], (state[0].shape[0], self.sizes[l])).astype(self.dtype)
        if below and l > 0:
            f = f + state[l - 1] @ self.W[l]
        if above and l + 1 < self.n_layers:
            f = f + state[l + 1] @ self.W[l + 1].T
        return f

    def layer_probabilities(self, state, l, below=True, above=True):
        """p(y_l = 1 | neighbouring layers) = sigmoid(external field / T), in the model's dtype.

        Exact for a layer without intra-layer weights; for one with ``U`` it leaves the intra-layer
        input out (see :func:`vpf_spiking.sampling.sample_layer` for the sweeps).
        """
        return self.firing_probability(self.external_field(state, l, below, above)).astype(self.dtype, copy=False)

    def hidden_probabilities(self, v, out=None):
        """p(h1 = 1 | v) = sigmoid((v W1 + b1) / T), with no input from layers above h1.

        Exact for an RBM; for deeper models it is the bottom-up (E-step) probability.  With
        ``out`` (a (batch, n1) array) it is computed in place, without temporaries.
        """
        self._need_hidden()
        z = np.matmul(v, self.W[1], out=out)
        z += self.b[1]
        return self.firing_probability(z, out=z)

    def visible_probabilities(self, h, out=None):
        """p(v = 1 | h1) = sigmoid((h1 W1^T + b0) / T): exact when layer 0 has no intra-layer weights."""
        self._need_hidden()
        z = np.matmul(h, self.W[1].T, out=out)
        z += self.b[0]
        return self.firing_probability(z, out=z)

    def free_energy(self, v, chunk=5000) -> np.ndarray:
        """RBM free energy F(v) = -b.v - T sum_j softplus((c_j + v.W_j) / T), with p(v) ~ exp(-F(v) / T).

        The product v W runs in the dtype of ``v`` and the model (float32 for speed, float64 when
        either is float64); the rest in float64.  Returns float64 of shape (batch,).
        """
        if not self.is_rbm:
            raise ModelError(f"the free energy here is for RBMs (2 layers, no intra-layer weights), got sizes "
                             f"{list(self.sizes)}; use the DBM bound for deeper models")
        v = np.asarray(v)
        if v.ndim != 2 or v.shape[1] != self.sizes[0]:
            raise ModelError(f"visible states have shape {v.shape}, expected (batch, {self.sizes[0]})")
        if not np.issubdtype(v.dtype, np.floating):
            v = v.astype(self.dtype)
        T = self.temperature
        b = self.b[0].astype(np.float64)
        out = np.empty(v.shape[0])
        for a in range(0, v.shape[0], chunk):
            vc = v[a:a + chunk]
            pre = (vc @ self.W[1]).astype(np.float64) + self.b[1]
            if T != 1.0:
                pre /= T
            out[a:a + chunk] = -(vc.astype(np.float64) @ b) - T * softplus(pre).sum(axis=1)
        return out

    def _need_hidden(self):
        if self.n_layers < 2:
            raise ModelError("this model has no hidden layer (a fully observed Boltzmann machine)")

    # ------------------------------------------------------------------ flat views
    @property
    def offsets(self) -> np.ndarray:
        return np.concatenate([[0], np.cumsum(self.sizes)])

    def split(self, flat: np.ndarray) -> list:
        """Split a (batch, N) array of all units into per-layer arrays."""
        flat = np.asarray(flat)
        if flat.ndim == 1:
            flat = flat[None, :]
        if flat.ndim != 2 or flat.shape[1] != self.n_units:
            raise ModelError(f"flat state has shape {flat.shape}, expected (batch, {self.n_units})")
        o = self.offsets
        return [flat[:, o[l]:o[l + 1]] for l in range(self.n_layers)]

    def join(self, state) -> np.ndarray:
        return np.concatenate(self.check_state(state), axis=1)

    def dense(self) -> tuple[np.ndarray, np.ndarray]:
        """The full symmetric (N, N) weight matrix and the (N,) bias vector."""
        o = self.offsets
        w = np.zeros((self.n_units, self.n_units), dtype=np.float64)
        for l in range(1, self.n_layers):
            w[o[l - 1]:o[l], o[l]:o[l + 1]] = self.W[l]
            w[o[l]:o[l + 1], o[l - 1]:o[l]] = self.W[l].T
        for l in range(self.n_layers):
            if self.U[l] is not None:
                w[o[l]:o[l + 1], o[l]:o[l + 1]] = self.U[l]
        return w, np.concatenate([x.astype(np.float64) for x in self.b])

    # ------------------------------------------------------------------ persistence
    def save(self, path) -> Path:
        """Write the model as a pickle-free ``.npz`` (atomically: a crash never leaves half a file).

        Keys: ``format``, ``meta`` (JSON: sizes, intra, temperature, tau_ms, name, version),
        ``W1..WL``, ``b0..bL`` and ``U<l>`` for layers with intra-layer weights.
        """
        self.validate()
        arrays = {"format": np.array(FORMAT_NAME), "meta": np.array(json.dumps(self._meta()))}
        arrays.update(self.parameters())
        return atomic_savez(path, arrays)

    def _meta(self) -> dict:
        return {"version": FORMAT_VERSION, "sizes": list(self.sizes), "intra": list(self.intra),
                "temperature": float(self.temperature), "tau_ms": float(self.tau_ms), "name": self.name,
                "trained_by": self.trained_by}

    @classmethod
    def load(cls, path) -> "BoltzmannMachine":
        """Read a model written by :meth:`save`; shapes and finiteness are checked."""
        path = Path(path)
        data = read_tagged_npz(path, FORMAT_NAME, "model", ModelError)
        try:
            meta = json.loads(str(data["meta"]))
            sizes = meta["sizes"]
            intra = meta["intra"]
        except Exception:
            raise ModelError(f"{path}: damaged 'meta' entry") from None
        if meta.get("version", 0) > FORMAT_VERSION:
            raise ModelError(f"{path}: written by a newer format version {meta['version']}")
        L = len(sizes)
        try:
            W = [None] + [data[f"W{l}"] for l in range(1, L)]
            b = [data[f"b{l}"] for l in range(L)]
            U = [data[f"U{l}"] if intra[l] else None for l in range(L)]
        except KeyError as exc:
            raise ModelError(f"{path}: missing array {exc}") from None
        dtype = np.result_type(*[x.dtype for x in b])
        try:
            return cls(sizes, intra=intra, temperature=meta["temperature"], tau_ms=meta.get("tau_ms", 10.0),
                       name=meta.get("name", path.stem), dtype=dtype, W=W, U=U, b=b,
                       trained_by=meta.get("trained_by"))
        except ModelError as exc:
            raise ModelError(f"{path}: {exc}") from None

    @classmethod
    def from_network(cls, network, seed=None, dtype=np.float32) -> "BoltzmannMachine":
        """Build a freshly initialised model from a network definition.

        ``network`` is a :class:`~vpf_spiking.networks.NetworkSpec`, a ``networks/*.toml`` file or
        the name of a shipped one; ``seed`` (default: the definition's ``init.seed``) seeds the weights.
        """
        spec = network if isinstance(network, NetworkSpec) else load_network(network)
        try:
            return cls(spec.sizes, intra=list(spec.intra), temperature=spec.temperature, tau_ms=spec.tau_ms,
                       weight_std=spec.weight_std, seed=spec.seed if seed is None else seed, dtype=dtype,
                       name=spec.name)
        except ModelError as exc:
            raise ModelError(f"{spec.source or spec.name}: {exc}") from None


def parameter_bytes(sizes, intra=False, dtype=np.float32) -> int:
    """Bytes needed to create a model's parameters (weights, intra-layer weights, biases).

    Counts the float64 draw of the largest weight matrix too (the initialisation makes one
    before casting), so it is the peak of :class:`BoltzmannMachine` construction.
    """
    sizes = [int(n) for n in sizes]
    intra = _as_layer_list(intra, len(sizes), "intra")
    mats = [sizes[l - 1] * sizes[l] for l in range(1, len(sizes))] + [n * n for n, u in zip(sizes, intra) if u]
    n = sum(mats) + sum(sizes)
    return int(n * np.dtype(dtype).itemsize + 8 * max(mats, default=0))


def _check_array(a, shape, name):
    if a is None:
        raise ModelError(f"{name} is missing")
    a = np.asarray(a)
    if a.shape != tuple(shape):
        raise ModelError(f"{name} has shape {a.shape}, expected {tuple(shape)}")
    if not np.issubdtype(a.dtype, np.floating):
        raise ModelError(f"{name} has dtype {a.dtype}, expected a float type")
    if not np.all(np.isfinite(a)):
        bad = int(np.size(a) - np.count_nonzero(np.isfinite(a)))
        raise ModelError(f"{name} has {bad} non-finite value(s) (NaN or inf)")


def softplus(x):
    """log(1 + e^x), stable for both signs (2-3x faster than np.logaddexp(0, x))."""
    return np.maximum(x, 0.0) + np.log1p(np.exp(-np.abs(x)))


def pixel_log_odds(data, temperature=1.0, smoothing=1.0) -> np.ndarray:
    """T logit(p_i) of the Laplace-smoothed marginals p_i = (sum_n x_ni + s) / (N + 2 s), float64.

    The visible biases of the independent (weightless) model with the data's marginals: units
    fire with sigmoid(z / T), so b_i = T logit(p_i).  The trainers start visible biases here
    (``visible_bias_init="marginals"``) and AIS uses it, at T = 1, for its base-rate model.
    """
    data = np.asarray(data)
    if data.ndim != 2 or data.shape[0] == 0:
        raise ModelError(f"pixel marginals need a non-empty 2-D array (examples x pixels), got shape {data.shape}")
    if not smoothing > 0:
        raise ModelError(f"smoothing must be positive (it keeps the log-odds finite), got {smoothing!r}")
    p = (data.sum(axis=0, dtype=np.float64) + smoothing) / (data.shape[0] + 2.0 * smoothing)
    return temperature * (np.log(p) - np.log1p(-p))
