"""Weight and activation statistics recorded while a model trains (spec section 7).

- weight sparsity ||W||_1^2 / (n_v n_h ||W||_2^2) (Frobenius norm): 1 when every weight has
  the same magnitude, 2/pi ~ 0.64 for Gaussian weights, towards 0 as a few weights dominate;
- mean squared weight;
- mean hidden activation p(h_j = 1 | v) of every hidden unit over a data sample (its histogram
  shows dead or saturated units).

:class:`DiagnosticsCallback` records these after every epoch through
``trainer.fit(model, x, callback=cb)``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import ModelError
from ..sampling import sigmoid


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
