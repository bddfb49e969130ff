"""Protocol kind ``rbm-experiment``: train several RBMs on the same data, then evaluate every one.

::

    kind = "rbm-experiment"
    [data]
    dataset = "mnist"
    [training]                 # defaults of every model: any trainer option, and network_seed
    epochs = 5
    [[models]]
    label = "VPF"
    method = "vpf"             # "vpf", "cd" or "pcd"
    hidden = 500               # any trainer option of the method overrides [training] (k = 5, ...)
    [reconstruction]           # optional steps, tables as in their own kinds
    [parzen]
    [ais]
    [figures]
    n_filters = 100

Per model (one folder each, named after its label): ``model.npz``, ``metrics`` (with the
training diagnostics: weight sparsity, mean squared weight, reconstruction error of a probe),
``filters.png`` and each step's table; across models: ``training``, ``reconstruction`` (with a
pixel-means baseline), ``reconstruction_wide``, ``ais``, ``parzen`` and figures.  Every step is
skipped when its table exists, so an interrupted experiment continues where it stopped
(training itself resumes from its checkpoint).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..io import atomic_open
from . import ais, parzen, reconstruction
from .config import TOP_KEYS, check_keys, get_value, table
from .experiments import parse_models, selected, slug, train_or_reuse, training_defaults
from .sample_quality import score_samples
from .train import record_settings
from .inputs import data_settings, load_data, square_shape

#: The keys of a ``[[models]]`` entry besides the trainer options (any of them overrides ``[training]``).
MODEL_KEYS = frozenset({"label", "method", "hidden"})


def parse_rbm_models(config, defaults):
    """The ``[[models]]`` entries: label, method, hidden units, trainer settings (e.g. ``k`` for cd/pcd)."""
    src = config.source

    def entry(m, where):
        return {"hidden": get_value(m, "hidden", int, where, src, minimum=1)}

    return parse_models(config, defaults, MODEL_KEYS, ("label", "method", "hidden"), "an rbm-experiment", entry)


def run(config, out_dir: Path, resume=True):
    """Train every ``[[models]]`` entry, then evaluate (diagnostics, reconstruction, AIS, Parzen)."""
    import pandas as pd

    from .. import plotting
    from ..evaluation.diagnostics import DiagnosticsCallback, hidden_activation, write_table
    from ..evaluation.reconstruction import evaluate_reconstruction, reconstruction_wide
    from ..model import BoltzmannMachine
    from ..trainers import make_trainer

    src = config.source
    check_keys(config, TOP_KEYS | {"data", "training", "models", "reconstruction", "parzen", "ais", "figures"},
               "the top level", src)
    out_dir = Path(out_dir)
    ds = data_settings(config)
    defaults, net_seed = training_defaults(config, epochs=5)
    models = parse_rbm_models(config, defaults)
    record_settings(config, out_dir, training={**defaults, "network_seed": net_seed})
    steps = [k for k in ("reconstruction", "parzen", "ais") if k in config]
    rs = reconstruction.settings(config) if "reconstruction" in config else None
    ps = parzen.settings(config) if "parzen" in config else None
    as_ = ais.settings(config) if "ais" in config else None
    fig = table(config, "figures", {"n_filters", "n_samples"}, source=src)
    n_filters = get_value(fig, "n_filters", int, "figures", src, default=100, minimum=1)
    n_show = get_value(fig, "n_samples", int, "figures", src, default=100, minimum=1)
    data = load_data(ds, greyscale=ps is not None)
    x, test = data["train"], data["test"]
    image_shape = square_shape(x.shape[1], src)
    print(f"{ds['dataset']}: {len(x)} training images, {len(data['valid'])} validation, {len(test)} test; "
          f"steps: training, {', '.join(steps)}", flush=True)

    # ---- training
    train_rows, trained = [], {}
    for m in models:
        folder = out_dir / slug(m["label"])

        def fit(model, checkpoint, resume_it, m=m, folder=folder):
            trainer = make_trainer(m["method"], checkpoint=checkpoint, **m["trainer"])
            print(f"[{m['label']}] training {m['method']} {m['trainer']}", flush=True)
            # the callback's columns are in the history (also after a resume); keep the last activations
            metrics = trainer.fit(model, x, resume=resume_it, callback=DiagnosticsCallback(x[:1000]))
            with atomic_open(folder / "hidden_activation.npy", "wb") as fh:
                np.save(fh, hidden_activation(model, x[:1000]))
            return metrics

        model, metrics = train_or_reuse(
            folder, m["label"], lambda m=m: BoltzmannMachine([x.shape[1], m["hidden"]], seed=net_seed, name=m["label"]),
            fit, resume)
        trained[m["label"]] = model
        plotting.save_filters(model.W[1], folder / "filters.png", n=n_filters, shape=image_shape,
                              title=f"{m['label']}: first {n_filters} filters")
        train_rows.append({"model": m["label"], "method": m["method"], "k": m["trainer"].get("k", ""),
                           "hidden": m["hidden"], "epochs": int(metrics["epoch"].max()),
                           "train_s": float(metrics["seconds"].sum()),
                           "final_objective": float(metrics["objective"].iloc[-1]),
                           "recon_mse": float(metrics["recon_error"].iloc[-1]),
                           "sparsity_W1": float(metrics["sparsity_W1"].iloc[-1]),
                           "mean_sq_W1": float(metrics["mean_sq_W1"].iloc[-1])})
    training = pd.DataFrame(train_rows)
    write_table(training, out_dir / "training")
    _training_figures(out_dir, models, plotting)

    # ---- evaluation
    if rs is not None:
        tabs = []
        for m in selected(models, rs["models"], src, "reconstruction"):
            f = out_dir / slug(m["label"]) / "reconstruction.csv"
            if f.exists():
                tab = pd.read_csv(f)
            else:
                print(f"[{m['label']}] reconstruction", flush=True)
                tab = reconstruction.run_reconstruction(trained[m["label"]], test, rs, image_shape=image_shape)
                write_table(tab, f.with_suffix(""))
            tab.insert(0, "model", m["label"])
            tabs.append(tab)
        # reference row: every corrupted pixel set to its training-set mean (no model)
        base, _ = evaluate_reconstruction(None, test, rs["corruptions"], rs["steps"], rs["seeds"],
                                          image_shape=image_shape, baseline=x.mean(axis=0))
        base.insert(0, "model", "pixel means")
        tabs.append(base)
        recon = pd.concat(tabs, ignore_index=True)
        write_table(recon, out_dir / "reconstruction")
        write_table(reconstruction_wide(recon), out_dir / "reconstruction_wide")
        _reconstruction_figure(out_dir, models, trained, test, rs, plotting, image_shape)
    if as_ is not None:
        rows = []
        for m in selected(models, as_["models"], src, "ais"):
            f = out_dir / slug(m["label"]) / "ais.csv"
            if f.exists():
                row = pd.read_csv(f).iloc[0].to_dict()
            else:
                print(f"[{m['label']}] AIS", flush=True)
                row = ais.run_ais(trained[m["label"]], x, test, as_)
                write_table(pd.DataFrame([row]), f.with_suffix(""))
            rows.append({"model": m["label"], **row})
        write_table(pd.DataFrame(rows), out_dir / "ais")
    if ps is not None:
        rows = []
        for m in selected(models, ps["models"], src, "parzen"):
            folder = out_dir / slug(m["label"])
            f = folder / "parzen.csv"
            if f.exists():
                row = pd.read_csv(f).iloc[0].to_dict()
            else:
                print(f"[{m['label']}] Parzen", flush=True)
                res, samples = parzen.run_parzen(trained[m["label"]], x, data["valid_grey"], data["test_grey"], ps)
                write_table(res.pop("validation"), folder / "parzen_validation")
                plotting.save_image_grid(samples[:n_show], folder / "samples.png", image_shape,
                                         title=f"{m['label']}: samples ({ps['steps']} Gibbs steps)")
                row = {**res, **score_samples(samples, ds, test)}
                write_table(pd.DataFrame([row]), f.with_suffix(""))
            rows.append({"model": m["label"], **row})
        write_table(pd.DataFrame(rows), out_dir / "parzen")
    print(f"done: results in {out_dir}", flush=True)
    return training


def _training_figures(out_dir, models, plotting):
    """Weight and objective curves of every model, and the histogram of hidden activations."""
    import pandas as pd

    frames = []
    for m in models:
        f = out_dir / slug(m["label"]) / "metrics.csv"
        if f.exists():
            d = pd.read_csv(f)
            d["model"] = m["label"]
            frames.append(d)
    if not frames:
        return
    d = pd.concat(frames, ignore_index=True)
    plotting.plot_curves(d, "epoch", ["sparsity_W1", "mean_sq_W1", "recon_error"], out_dir / "weight_curves.png",
                         groupby="model", title="weight sparsity, mean squared weight, reconstruction MSE (probe)")
    vpf = d[d.model.isin([m["label"] for m in models if m["method"] == "vpf"])]
    if len(vpf):
        plotting.plot_curves(vpf, "epoch", ["objective"], out_dir / "objective_vpf.png", groupby="model",
                             logy=True, ylabel="VPF objective K (mean flow)", title="VPF objective per epoch")
    acts, labels = [], []
    for m in models:
        f = out_dir / slug(m["label"]) / "hidden_activation.npy"
        if f.exists():
            acts.append(np.load(f))
            labels.append(m["label"])
    if acts:
        plotting.plot_histogram(acts, out_dir / "hidden_activation.png", labels=labels,
                                title="mean hidden activation per unit (1,000 training images)")


def _reconstruction_figure(out_dir, models, trained, test, rs, plotting, shape):
    """Original / corrupted / reconstruction of 10 test images, for each model and the first pattern."""
    from ..evaluation.reconstruction import PATTERNS, reconstruct

    c = rs["corruptions"][min(1, len(rs["corruptions"]) - 1)]
    x = test[:10]
    rng = np.random.default_rng(0)
    mask = c.mask(len(x), np.random.default_rng([0, PATTERNS.index(c.pattern), c.k]), shape)
    rows = [x, np.where(mask, 0.5, x)]
    for m in models:
        if m["label"] in trained and (rs["models"] is None or m["label"] in rs["models"]):
            rows.append(reconstruct(trained[m["label"]], x, mask, rs["steps"], rng))
    plotting.save_image_grid(np.concatenate(rows), out_dir / "reconstruction_examples.png", shape, ncols=10,
                             title=f"{c.label}: original, corrupted, then each model's reconstruction")
