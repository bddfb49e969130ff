"""Confabulations: images generated top-down from a deep Boltzmann machine (Algorithm 3).

The top hidden layer h_L is drawn from a prior, then the sample is carried down one pair of
layers at a time.  Stage l (l = L, ..., 1) runs ``steps`` Gibbs steps that alternate between
layer l-1 and layer l, starting from the state the previous stage left; a step resamples
layer l-1 first (it has no state yet when the stage starts), then layer l.  Layers with
intra-layer weights are resampled by asynchronous sweeps (:func:`vpf_spiking.sampling.sample_layer`).
The output is the visible probabilities p(v | h1) given the final h1 (greyscale), or a binary
sample of them.

Priors of the top layer (spec section 4):

- ``"r"``: every unit Bernoulli(1/2);
- ``"p"``: unit j Bernoulli(m_j), where m_j is the mean bottom-up activation of unit j over
  the training set (the E-step's probabilities, top-down input zeroed).

Choices the spec leaves open, made here:

- ``top_down="pair"`` (default, the literal reading of "Gibbs sampling alternating between
  layers l-1 and l"): stage l samples layer l-1 from p(h_{l-1} | h_l) and layer l from
  p(h_l | h_{l-1}) with the input of every other layer zeroed - the same conditionals as the
  E-step's bottom-up pass, plus the top-down one.  The layers above l keep their values but
  no longer act on the chain;
- ``top_down="held"``: the layers above l are held at their final values *and* send their
  top-down input to layer l (the full DBM conditional given the layers around it).  On the
  VPF-trained MNIST DBMs of docs/results/dbm-mnist.md this variant locks the chain into a
  spurious all-dark mode (v = 0 with a dense h1) that VPF, which has no negative phase, never
  pushes down, so it is not the default;
- in both, layers below l-1 have not been generated yet. ``below="mean"`` (default) holds them
  at their mean activation (their mean bottom-up probabilities over ``data`` when it is given,
  else a mean-field bottom-up pass from p(v) = sigmoid(b_0/T)), so that stage l sees the input
  a data-like layer below would send; ``below="zero"`` holds them at 0, which for a DBM's
  stage 2 means h1 is sampled as if the image were blank (measured: most K = 1 samples of a
  VPF DBM are then blank). The intra-layer sweeps of a layer with U start from that layer's
  current state.
"""

from __future__ import annotations

import numpy as np

from .errors import ConfigError, DataError, ModelError
from .sampling import bernoulli, bottom_up, external_field, sample_layer, sigmoid

PRIORS = ("r", "p")

#: Gibbs steps per stage when none are asked for
DEFAULT_STEPS = 100
#: Models whose measured best number of steps differs from DEFAULT_STEPS, by ``trained_by``,
#: with the measurement.  Plain VPF, CD and PCD RBMs do as well or better at 100 steps
#: (docs/results/sample-quality.md); Rao-Blackwellised VPF's chains drift to blank images.
RECOMMENDED_STEPS = {
    "vpf:rao-blackwell": (2, "docs/results/variants.md: at K = 2, 0.5 % blank, 0.504 confident on 8 classes; "
                             "at K = 100, 58 % blank"),
}


def recommended_steps(model) -> tuple[int, str]:
    """(Gibbs steps per stage, why) for sampling ``model``: by how it was trained, else DEFAULT_STEPS."""
    steps, why = RECOMMENDED_STEPS.get(getattr(model, "trained_by", None), (DEFAULT_STEPS, ""))
    return steps, (f"recommended for a {model.trained_by} model ({why})" if why else "the default")


def _check_prior(model, kind, data) -> str:
    kind = str(kind).lower()
    if kind not in PRIORS:
        raise ConfigError(f"prior must be 'r' (Bernoulli 1/2) or 'p' (mean bottom-up activation), got {kind!r}")
    if data is None:
        if kind == "p":
            raise ConfigError("the 'p' prior needs the training data (the mean bottom-up activation of the top layer)")
        return kind
    data = np.asarray(data)
    if data.ndim != 2 or data.shape[1] != model.sizes[0] or len(data) == 0:
        raise DataError(f"training data has shape {data.shape}, the model has {model.sizes[0]} visible units")
    return kind


def top_prior(model, kind="r", data=None, sweeps=1, rng=None, chunk=5000) -> np.ndarray:
    """Per-unit probabilities of the top layer's prior: ``"r"`` (1/2) or ``"p"`` (data means).

    ``data`` (binary training images, (n, n_visible)) is needed for ``"p"``: the prior is the
    mean over the images of the bottom-up probabilities of the top layer (E-step with
    ``sweeps`` intra-layer sweeps).
    """
    kind = _check_prior(model, kind, data)
    n_top = model.sizes[-1]
    if kind == "r":
        return np.full(n_top, 0.5)
    data = np.asarray(data)
    rng = np.random.default_rng(rng)
    total = np.zeros(n_top)
    for a in range(0, len(data), chunk):
        _, probs = bottom_up(model, data[a:a + chunk], rng, sweeps=sweeps)
        total += probs[-1].sum(axis=0, dtype=np.float64)
    return total / len(data)


def lower_layer_means(model, data=None, sweeps=1, rng=None, chunk=5000) -> list:
    """Mean activation of every layer, the values ``below="mean"`` holds ungenerated layers at.

    With ``data``: the mean bottom-up probabilities over it (layer 0: the pixel means). Without:
    a mean-field bottom-up pass from sigmoid(b_0 / T) (intra-layer weights ignored).
    """
    T = model.temperature
    if data is None:
        means = [sigmoid(np.asarray(model.b[0], dtype=np.float64) / T)]
        for l in range(1, model.n_layers):
            means.append(sigmoid((model.b[l] + means[-1] @ model.W[l]) / T))
        return means
    data = np.asarray(data)
    rng = np.random.default_rng(rng)
    totals = [np.zeros(k) for k in model.sizes]
    for a in range(0, len(data), chunk):
        _, probs = bottom_up(model, data[a:a + chunk], rng, sweeps=sweeps)
        totals[0] += data[a:a + chunk].sum(axis=0, dtype=np.float64)
        for l in range(1, model.n_layers):
            totals[l] += probs[l].sum(axis=0, dtype=np.float64)
    return [t / len(data) for t in totals]


def confabulate(model, n, prior="r", steps=100, rng=None, prior_probs=None, data=None, sweeps=1,
                binary=False, chunk=2000, progress=False, return_hidden=False, top_down="pair",
                below="mean"):
    """Generate ``n`` confabulations (Algorithm 3).

    Parameters
    ----------
    model : BoltzmannMachine
        At least one hidden layer.
    n : int
        Number of samples (independent chains).
    prior : {"r", "p"}
        Prior of the top layer; ``"p"`` needs ``prior_probs`` (from :func:`top_prior`) or ``data``.
    steps : int
        Gibbs steps K per stage.
    sweeps : int
        Asynchronous sweeps per update of a layer with intra-layer weights.
    binary : bool
        Return a binary sample of the visible layer instead of p(v | h1).
    chunk : int
        Chains run together (bounds memory).
    return_hidden : bool
        Also return the final state of every layer (list of (n, n_l) arrays).
    top_down : {"pair", "held"}
        Whether layer l also receives the input of the (held) layers above it during stage l
        (see the module docstring).
    below : {"mean", "zero"}
        What the layers not generated yet are held at during the stages above them.

    Returns
    -------
    (n, n_visible) array in the model's dtype (and the final states if asked).
    """
    if model.n_layers < 2:
        raise ModelError("confabulation needs at least one hidden layer (Algorithm 3 generates top-down)")
    n, steps, chunk = int(n), int(steps), int(chunk)
    if n < 1:
        raise ConfigError(f"number of samples must be at least 1, got {n}")
    if steps < 1:
        raise ConfigError(f"Gibbs steps per stage must be at least 1, got {steps}")
    if chunk < 1:
        raise ConfigError(f"chunk must be at least 1, got {chunk}")
    rng = np.random.default_rng(rng)
    if below not in ("mean", "zero"):
        raise ConfigError(f"below must be 'mean' or 'zero', got {below!r}")
    L = model.n_layers - 1
    means = None
    if below == "mean" and L > 1:
        if prior_probs is None:
            _check_prior(model, prior, data)
        means = lower_layer_means(model, data, sweeps=sweeps, rng=rng)
        if prior_probs is None and str(prior).lower() == "p":
            prior_probs = means[-1]  # the same mean bottom-up activation, from the same pass
    if prior_probs is None:
        prior_probs = top_prior(model, prior, data=data, sweeps=sweeps, rng=rng)
    prior_probs = np.asarray(prior_probs, dtype=np.float64)
    if prior_probs.shape != (model.sizes[-1],) or np.any((prior_probs < 0) | (prior_probs > 1)):
        raise ConfigError(f"prior probabilities must be {model.sizes[-1]} values in [0, 1], "
                          f"got shape {prior_probs.shape}")
    if top_down not in ("pair", "held"):
        raise ConfigError(f"top_down must be 'pair' or 'held', got {top_down!r}")
    held_above = top_down == "held"
    out = np.empty((n, model.sizes[0]), dtype=model.dtype)
    hidden = [np.empty((n, k), dtype=model.dtype) for k in model.sizes] if return_hidden else None
    bar = None
    if progress:
        from .progress import progress_bar as tqdm
        bar = tqdm(total=n * L * steps, desc="confabulating", unit="chain-step", mininterval=1.0)
    p_top = prior_probs.astype(model.dtype)
    for a in range(0, n, chunk):
        m = min(chunk, n - a)
        if means is None:
            state = [np.zeros((m, k), dtype=model.dtype) for k in model.sizes]
        else:
            state = [np.repeat(mu[None, :].astype(model.dtype), m, axis=0) for mu in means]
        state[L] = bernoulli(np.broadcast_to(p_top, (m, model.sizes[L])), rng)
        for l in range(L, 0, -1):
            for _ in range(steps):
                sample_layer(model, state, l - 1, rng, sweeps=sweeps)
                sample_layer(model, state, l, rng, sweeps=sweeps, above=held_above)
                if bar is not None:
                    bar.update(m)
        pv = visible_probabilities(model, state)
        out[a:a + m] = bernoulli(pv, rng) if binary else pv
        if return_hidden:
            for l in range(model.n_layers):
                hidden[l][a:a + m] = state[l]
    if bar is not None:
        bar.close()
    return (out, hidden) if return_hidden else out


def visible_probabilities(model, state) -> np.ndarray:
    """p(v | h1) for a visible layer without intra-layer weights (greyscale output)."""
    if model.U[0] is not None:
        # with visible-visible weights the units are not independent given h1: report the
        # probabilities of one asynchronous sweep instead
        return sample_layer(model, [s.copy() for s in state], 0, np.random.default_rng(0), above=True)
    return sigmoid(external_field(model, state, 0) / model.temperature).astype(model.dtype, copy=False)
