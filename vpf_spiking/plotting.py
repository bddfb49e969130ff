"""Figures: image grids (filters, samples, reconstructions), training curves, histograms.

Each figure is a standalone ``matplotlib.figure.Figure`` written to a PNG (atomically; a file
name not ending in ``.png`` is refused): no display is needed, and pyplot's global backend is
left alone (so notebooks keep their inline figures).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from .errors import DataError
from .io import check_output_file, save_figure


def image_grid(images, shape=(28, 28), ncols=10, pad=1, normalize="each") -> np.ndarray:
    """Tile (n, h*w) images into one 2-D array.

    ``normalize="each"`` rescales every tile to [0, 1] (for weight filters, whose scale differs
    per unit); ``None`` keeps values as they are (images already in [0, 1]).
    """
    x = np.asarray(images, dtype=np.float64)
    h, w = shape
    if x.ndim != 2 or x.shape[1] != h * w:
        raise DataError(f"images have shape {x.shape}, expected (n, {h * w}) for {h}x{w} tiles")
    if normalize == "each":
        lo = x.min(axis=1, keepdims=True)
        span = x.max(axis=1, keepdims=True) - lo
        x = (x - lo) / np.where(span > 0, span, 1.0)
    n = len(x)
    ncols = max(1, min(ncols, n))
    nrows = -(-n // ncols)
    grid = np.ones((nrows * (h + pad) + pad, ncols * (w + pad) + pad))
    for i, img in enumerate(x):
        r, c = divmod(i, ncols)
        grid[pad + r * (h + pad): pad + r * (h + pad) + h, pad + c * (w + pad): pad + c * (w + pad) + w] = img.reshape(h, w)
    return grid


def save_image_grid(images, path, shape=(28, 28), ncols=10, normalize=None, title=None) -> Path:
    grid = image_grid(images, shape, ncols, normalize=normalize)
    fig = Figure(figsize=(grid.shape[1] / 30 + 0.5, grid.shape[0] / 30 + (0.8 if title else 0.3)))
    ax = fig.subplots()
    ax.imshow(grid, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
    ax.set_axis_off()
    if title:
        ax.set_title(title, fontsize=9)
    return _save(fig, path)


def save_filters(W, path, n=100, shape=(28, 28), ncols=10, title=None) -> Path:
    """The first ``n`` receptive fields (columns of ``W``), each rescaled to its own range."""
    W = np.asarray(W)
    return save_image_grid(W[:, :n].T, path, shape, ncols, normalize="each", title=title)


def plot_curves(df, x, columns, path, ylabel=None, logy=False, title=None, groupby=None) -> Path:
    """Line plot of ``columns`` against ``x`` (one line per column, or per group and column)."""
    fig = Figure(figsize=(4 * len(columns), 3.2))
    axes = fig.subplots(1, len(columns), squeeze=False)
    groups = [(None, df)] if groupby is None else list(df.groupby(groupby, sort=False))
    for ax, col in zip(axes[0], columns):
        for name, g in groups:
            ax.plot(g[x], g[col], marker="o", ms=3, label=name)
        ax.set_xlabel(x)
        ax.set_ylabel(col if ylabel is None else ylabel)
        if logy:
            ax.set_yscale("log")
        ax.grid(alpha=0.3)
        if groupby is not None:
            ax.legend(fontsize=7)
    if title:
        fig.suptitle(title, fontsize=10)
    return _save(fig, path)


def plot_histogram(values, path, bins=50, xlabel="mean hidden activation", title=None, labels=None) -> Path:
    """Histogram of one array, or overlaid histograms of a list of arrays (``labels``)."""
    fig = Figure(figsize=(4.5, 3.2))
    ax = fig.subplots()
    series = values if labels is not None else [values]
    for i, v in enumerate(series):
        ax.hist(np.asarray(v).ravel(), bins=bins, range=(0, 1) if xlabel.startswith("mean hidden") else None,
                alpha=0.6 if labels is not None else 1.0, label=None if labels is None else labels[i])
    ax.set_xlabel(xlabel)
    ax.set_ylabel("units")
    if labels is not None:
        ax.legend(fontsize=7)
    if title:
        ax.set_title(title, fontsize=10)
    return _save(fig, path)


def _save(fig, path) -> Path:
    """Write ``fig`` as a PNG atomically (:func:`vpf_spiking.io.save_figure`; other suffixes are refused)."""
    check_output_file(path)
    fig.tight_layout()
    return save_figure(fig, path, dpi=110)
