"""Reconstruction of corrupted images by clamped Gibbs sampling (spec section 7).

A test image has k random rows (or k random columns) corrupted.  Gibbs chains start from the
corrupted image with every intact pixel clamped; after ``steps`` Gibbs steps the
reconstruction is the intact pixels plus, at the corrupted pixels, the *visible probabilities*
p(v_i = 1 | h) of the last step.  We use probabilities rather than a binary sample because
they are the model's best estimate of each pixel (a sample adds Bernoulli noise that has
nothing to do with the quality of the model) and because the original images are binary, so
the L2 error of a probability is well defined.  The error of one image is
``||original - reconstruction||_2`` over all its pixels (only corrupted pixels contribute).

The corruption masks depend only on the seed and the pattern, never on the model, so every
model in a comparison is scored on exactly the same corrupted images.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..errors import ConfigError, DataError
from ..sampling import bernoulli, bottom_up, gibbs

PATTERNS = ("rows", "columns")
DEFAULT_PATTERNS = (("rows", 4), ("rows", 8), ("rows", 12), ("columns", 4), ("columns", 8), ("columns", 12))


@dataclass(frozen=True)
class Corruption:
    """k random rows or k random columns of a ``height x width`` image, drawn per image."""

    pattern: str
    k: int

    def __post_init__(self):
        if self.pattern not in PATTERNS:
            raise ConfigError(f"corruption pattern must be one of {PATTERNS}, got {self.pattern!r}")
        if int(self.k) != self.k or self.k < 1:
            raise ConfigError(f"corruption size k must be a positive integer, got {self.k!r}")

    @property
    def label(self) -> str:
        return f"{self.k} {self.pattern}"

    def mask(self, n_images: int, rng, shape=(28, 28)) -> np.ndarray:
        """Boolean (n_images, height*width) mask, True at corrupted pixels."""
        h, w = shape
        lines = h if self.pattern == "rows" else w
        if self.k > lines:
            raise ConfigError(f"cannot corrupt {self.k} {self.pattern} of a {h}x{w} image")
        # k distinct lines per image: the k smallest of independent uniforms (vectorised permutation)
        chosen = np.argsort(rng.random((n_images, lines)), axis=1)[:, : self.k]
        line_mask = np.zeros((n_images, lines), dtype=bool)
        np.put_along_axis(line_mask, chosen, True, axis=1)
        if self.pattern == "rows":
            m = np.repeat(line_mask[:, :, None], w, axis=2)
        else:
            m = np.repeat(line_mask[:, None, :], h, axis=1)
        return m.reshape(n_images, h * w)


def parse_patterns(spec) -> list[Corruption]:
    """``[("rows", 4), ...]`` or ``["rows:4", ...]`` -> list of :class:`Corruption`."""
    out = []
    for item in spec:
        if isinstance(item, str):
            try:
                pattern, k = item.split(":")
                item = (pattern.strip(), int(k))
            except ValueError:
                raise ConfigError(f"corruption {item!r}: expected 'rows:K' or 'columns:K'") from None
        elif isinstance(item, dict):
            item = (item.get("pattern"), item.get("k"))
        out.append(item if isinstance(item, Corruption) else Corruption(str(item[0]), int(item[1])))
    return out


def corrupt(x, mask, rng, fill="noise") -> np.ndarray:
    """Copy of ``x`` with the masked pixels replaced by ``fill`` ("noise": Bernoulli(1/2), "zero")."""
    out = np.array(x, copy=True)
    if fill == "noise":
        out[mask] = bernoulli(np.full(int(mask.sum()), 0.5, dtype=out.dtype), rng)
    elif fill == "zero":
        out[mask] = 0
    else:
        raise ConfigError(f"fill must be 'noise' or 'zero', got {fill!r}")
    return out


def reconstruct(model, x, mask, steps, rng, fill="noise", chunk=2000) -> np.ndarray:
    """Reconstruct the masked pixels of ``x`` by ``steps`` Gibbs steps with the rest clamped.

    Works for any layered model (the hidden layers start from a bottom-up pass of the corrupted
    image).  Returns the reconstructions, (n, n_visible) in [0, 1].
    """
    x = np.asarray(x, dtype=model.dtype)
    if x.ndim != 2 or x.shape[1] != model.sizes[0]:
        raise DataError(f"images have shape {x.shape}, the model has {model.sizes[0]} visible units")
    if mask.shape != x.shape:
        raise DataError(f"corruption mask has shape {mask.shape}, images have {x.shape}")
    if steps < 1:
        raise ConfigError(f"reconstruction needs at least one Gibbs step, got {steps}")
    out = np.empty_like(x)
    for s in range(0, x.shape[0], chunk):
        xs, ms = x[s:s + chunk], mask[s:s + chunk]
        v0 = corrupt(xs, ms, rng, fill)
        state, _ = bottom_up(model, v0, rng)
        state, probs = gibbs(model, state, steps, rng, clamp={0: ~ms})
        out[s:s + chunk] = np.where(ms, probs[0], xs)
    return out


def l2_errors(x, reconstruction) -> np.ndarray:
    """Per-image ||x - reconstruction||_2, accumulated in float64."""
    d = np.asarray(x, dtype=np.float64) - np.asarray(reconstruction, dtype=np.float64)
    return np.sqrt(np.einsum("ij,ij->i", d, d))


def _mask_and_rng(c, seed, n, image_shape):
    # the mask stream depends only on (seed, pattern, k): identical corruptions for every model
    mask_rng = np.random.default_rng([int(seed), PATTERNS.index(c.pattern), c.k])
    gibbs_rng = np.random.default_rng([int(seed), PATTERNS.index(c.pattern), c.k, 1])
    return c.mask(n, mask_rng, image_shape), gibbs_rng


def reconstruction_errors(model, x, corruptions=DEFAULT_PATTERNS, steps=25, seeds=(0, 1, 2),
                          fill="noise", chunk=2000, image_shape=(28, 28), progress=False,
                          baseline=None) -> pd.DataFrame:
    """Per-image L2 errors for every corruption pattern and seed (long format).

    With ``model=None`` the corrupted pixels are filled with ``baseline`` (e.g. the training
    pixel means): the reference a model must beat, on exactly the same corruptions.
    Returns a DataFrame with columns ``pattern, k, corruption, seed, image, error``.
    """
    corruptions = parse_patterns(corruptions)
    if model is None and baseline is None:
        raise ConfigError("reconstruction needs a model or a baseline image")
    x = np.asarray(x, dtype=np.float32 if model is None else model.dtype)
    frames = []
    todo = [(c, s) for c in corruptions for s in seeds]
    bar = None
    if progress:
        from ..progress import progress_bar as tqdm
        bar = tqdm(todo, desc="reconstruction", unit="run")
    for c, seed in todo:
        mask, gibbs_rng = _mask_and_rng(c, seed, x.shape[0], image_shape)
        if model is None:
            rec = np.where(mask, np.asarray(baseline, dtype=x.dtype)[None, :], x)
        else:
            rec = reconstruct(model, x, mask, steps, gibbs_rng, fill=fill, chunk=chunk)
        err = l2_errors(x, rec)
        frames.append(pd.DataFrame({"pattern": c.pattern, "k": c.k, "corruption": c.label,
                                    "seed": int(seed), "image": np.arange(len(err)), "error": err}))
        if bar is not None:
            bar.update()
    if bar is not None:
        bar.close()
    return pd.concat(frames, ignore_index=True)


def summarize_errors(errors: pd.DataFrame) -> pd.DataFrame:
    """Mean error per corruption with two standard errors.

    ``se_images``: spread over test images (std / sqrt(n_images), averaged over seeds);
    ``se_seeds``: spread of the per-seed means (std / sqrt(n_seeds); NaN with one seed).
    """
    rows = []
    for (pattern, k), g in errors.groupby(["pattern", "k"], sort=False):
        per_seed = g.groupby("seed")["error"]
        means = per_seed.mean()
        se_img = (per_seed.std(ddof=1) / np.sqrt(per_seed.size())).mean()
        rows.append({"corruption": f"{k} {pattern}", "pattern": pattern, "k": int(k),
                     "mean_error": float(means.mean()), "se_images": float(se_img),
                     "se_seeds": float(means.std(ddof=1) / np.sqrt(len(means))) if len(means) > 1 else float("nan"),
                     "n_images": int(per_seed.size().iloc[0]), "n_seeds": int(len(means))})
    return pd.DataFrame(rows)


def evaluate_reconstruction(model, x, corruptions=DEFAULT_PATTERNS, steps=25, seeds=(0, 1, 2), **kw):
    """Summary table (see :func:`summarize_errors`) plus the wall time in seconds."""
    t0 = time.perf_counter()
    errors = reconstruction_errors(model, x, corruptions, steps, seeds, **kw)
    table = summarize_errors(errors)
    return table, time.perf_counter() - t0


def reconstruction_wide(recon: pd.DataFrame) -> pd.DataFrame:
    """Corruption x model table of ``mean +- se_seeds (se_images)`` strings, best model starred."""
    piv = recon.pivot(index="corruption", columns="model", values="mean_error")
    order = list(dict.fromkeys(recon["corruption"]))
    piv = piv.loc[order, list(dict.fromkeys(recon["model"]))]
    out = pd.DataFrame(index=piv.index)
    for model in piv.columns:
        cells = []
        for corr in piv.index:
            r = recon[(recon.model == model) & (recon.corruption == corr)].iloc[0]
            star = " *" if r.mean_error == piv.loc[corr].min() else ""
            cells.append(f"{r.mean_error:.3f} ± {r.se_seeds:.3f} ({r.se_images:.3f}){star}")
        out[model] = cells
    return out.reset_index()
