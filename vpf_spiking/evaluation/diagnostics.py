"""Weight and activation statistics recorded while a model trains (spec section 7).

- weight sparsity ||W||_1^2 / (n_v n_h ||W||_2^2) (Frobenius norm): 1 when every weight has
  the same magnitude, 2/pi ~ 0.64 for Gaussian weights, towards 0 as a few weights dominate;
- mean squared weight;
- mean hidden activation p(h_j = 1 | v) of every hidden unit over a data sample (its histogram
  shows dead or saturated units); :func:`activation_summary` does the same for every hidden
  layer of a deep machine, with summary numbers of its sparsity.

:class:`DiagnosticsCallback` records these after every epoch through
``trainer.fit(model, x, callback=cb)``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import ModelError
from ..sampling import bottom_up, sigmoid


def weight_sparsity(W) -> float:
    """||W||_1^2 / (n ||W||_2^2) over all n entries of ``W`` (1 = dense and uniform)."""
    w = np.asarray(W, dtype=np.float64)
    sq = float(np.sum(w * w))
    if sq == 0:
        return float("nan")
    return float(np.abs(w).sum() ** 2 / (w.size * sq))


def mean_squared_weight(W) -> float:
    w = np.asarray(W, dtype=np.float64)
    return float(np.mean(w * w))


def hidden_activation(model, x, layer=1) -> np.ndarray:
    """Mean over ``x`` of each unit's bottom-up probability in ``layer`` (top-down input zeroed)."""
    if not 1 <= layer < model.n_layers:
        raise ModelError(f"layer {layer} is not a hidden layer of a model with sizes {model.sizes}")
    h = np.asarray(x, dtype=model.dtype)
    T = model.temperature
    for l in range(1, layer + 1):
        h = sigmoid((h @ model.W[l] + model.b[l]) / T)
    return np.asarray(h, dtype=np.float64).mean(axis=0)


def activation_summary(model, x, sweeps=1, rng=0) -> tuple[dict, list]:
    """Bottom-up (E-step) probabilities of each hidden layer on ``x``; summary numbers per layer.

    Returns ``(row, per_unit)``: ``row`` has, per hidden layer l, the mean activation, the
    fraction of (image, unit) probabilities below 0.05, and the mean number of units per image
    with probability above 0.5; ``per_unit[l]`` is the mean activation of each unit of layer l.
    """
    rng = np.random.default_rng(rng)
    sums = [np.zeros(n) for n in model.sizes]
    low = [0.0] * model.n_layers
    on = [0.0] * model.n_layers
    for a in range(0, len(x), 2000):
        _, probs = bottom_up(model, x[a:a + 2000], rng, sweeps=sweeps)
        for l in range(1, model.n_layers):
            p = probs[l]
            sums[l] += p.sum(axis=0, dtype=np.float64)
            low[l] += float((p < 0.05).sum())
            on[l] += float((p > 0.5).sum())
    row, per_unit = {}, [None]
    for l in range(1, model.n_layers):
        n = len(x)
        per_unit.append(sums[l] / n)
        row[f"h{l}_mean"] = float(sums[l].sum() / (n * model.sizes[l]))
        row[f"h{l}_frac_below_0.05"] = low[l] / (n * model.sizes[l])
        row[f"h{l}_units_on_per_image"] = on[l] / n
    return row, per_unit


class DiagnosticsCallback:
    """``callback(epoch, model, metrics)`` that records weight statistics after every epoch.

    Parameters
    ----------
    x : array
        Data sample (e.g. 1,000 training images) for the hidden activations.
    """

    def __init__(self, x, layer=1):
        self.x = np.asarray(x)
        self.layer = layer
        self.rows = []
        self.activations = {}

    def record(self, epoch, model, metrics=None):
        row = {"epoch": int(epoch)}
        for key, value in (metrics or {}).items():
            if np.isscalar(value) and key != "epoch":
                row[key] = value
        for l in range(1, model.n_layers):
            row[f"sparsity_W{l}"] = weight_sparsity(model.W[l])
            row[f"mean_sq_W{l}"] = mean_squared_weight(model.W[l])
        act = hidden_activation(model, self.x, self.layer)
        self.activations[int(epoch)] = act
        row["mean_hidden_activation"] = float(act.mean())
        row["dead_units"] = int(np.sum(act < 0.01))
        row["saturated_units"] = int(np.sum(act > 0.99))
        self.rows.append(row)
        if isinstance(metrics, dict):
            # the trainer keeps what the callback adds in its history and checkpoint
            metrics.update({k: v for k, v in row.items() if k not in metrics})

    __call__ = record

    def frame(self) -> pd.DataFrame:
        return pd.DataFrame(self.rows)


def write_table(df: pd.DataFrame, stem, floatfmt=".4g") -> tuple[Path, Path]:
    """Write ``df`` as ``stem.csv`` and ``stem.md`` (a GitHub Markdown table); return both paths."""
    stem = Path(stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    csv, md = stem.with_suffix(".csv"), stem.with_suffix(".md")
    df.to_csv(csv, index=False)
    md.write_text(df.to_markdown(index=False, floatfmt=floatfmt) + "\n")
    return csv, md
