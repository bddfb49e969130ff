"""Protocol kinds of the evaluation suite: ``reconstruction``, ``parzen``, ``ais``, ``rbm-experiment``.

The first three evaluate one saved model (``[model] path = "runs/.../model.npz"``); the last
trains several RBMs on the same data (VPF, CD-k, PCD-k, any sizes), records training
diagnostics, and evaluates every model.  Every step writes its table as CSV and Markdown into
the output folder and is skipped when that table already exists, so an interrupted experiment
continues where it stopped (training itself resumes from its checkpoint).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import ConfigError
from ..model import BoltzmannMachine
from ..protocols import check_keys, default_data_dir, get_value, register_protocol, table
from .ais import evaluate_ais
from .diagnostics import DiagnosticsCallback, write_table
from .parzen import DEFAULT_SIGMAS, parzen_evaluate
from .reconstruction import DEFAULT_PATTERNS, evaluate_reconstruction, parse_patterns

_TOP = {"kind", "name", "description"}
_DATA_KEYS = {"dataset", "data_dir", "validation", "n_train", "n_test"}
_RECON_KEYS = {"patterns", "steps", "seeds", "fill", "models"}
_PARZEN_KEYS = {"n_samples", "steps", "prior", "sigmas", "models"}
_AIS_KEYS = {"n_betas", "n_runs", "schedule", "seed", "models"}


# ---------------------------------------------------------------------------- settings
def data_settings(config) -> dict:
    src = config.source
    d = table(config, "data", _DATA_KEYS, required=("dataset",), source=src)
    return {"dataset": get_value(d, "dataset", str, "data", src),
            "data_dir": get_value(d, "data_dir", str, "data", src),
            "validation": get_value(d, "validation", int, "data", src, default=1000, minimum=1),
            "n_train": get_value(d, "n_train", int, "data", src, minimum=1),
            "n_test": get_value(d, "n_test", int, "data", src, minimum=1)}


def load_data(ds: dict, greyscale=False) -> dict:
    """Binary train (validation held out), binary test; greyscale validation and test if asked."""
    from .. import data as data_mod

    dd = default_data_dir(ds["data_dir"])
    out = {}
    x = data_mod.resolve_data(ds["dataset"], "train", data_dir=dd)
    out["train"], out["valid"] = data_mod.split_validation(x, ds["validation"])
    if ds["n_train"]:
        out["train"] = out["train"][:ds["n_train"]]
    out["test"] = data_mod.resolve_data(ds["dataset"], "test", data_dir=dd)[:ds["n_test"]]
    if greyscale:
        g = data_mod.resolve_data(ds["dataset"], "train", data_dir=dd, binarize=False)
        out["valid_grey"] = data_mod.split_validation(g, ds["validation"])[1]
        out["test_grey"] = data_mod.resolve_data(ds["dataset"], "test", data_dir=dd, binarize=False)[:ds["n_test"]]
    return out


def recon_settings(config) -> dict:
    src = config.source
    t = table(config, "reconstruction", _RECON_KEYS, source=src)
    pats = t.get("patterns", [f"{p}:{k}" for p, k in DEFAULT_PATTERNS])
    seeds = t.get("seeds", [0, 1, 2])
    if not isinstance(seeds, list) or not seeds or not all(isinstance(s, int) and s >= 0 for s in seeds):
        raise ConfigError(f"{src}: reconstruction.seeds must be a list of non-negative integers, got {seeds!r}")
    if not isinstance(pats, list):
        raise ConfigError(f"{src}: reconstruction.patterns must be a list like [\"rows:4\", \"columns:8\"]")
    return {"corruptions": parse_patterns(pats), "seeds": tuple(seeds),
            "steps": get_value(t, "steps", int, "reconstruction", src, default=25, minimum=1),
            "fill": get_value(t, "fill", str, "reconstruction", src, default="noise", choices=("noise", "zero")),
            "models": t.get("models")}


def parzen_settings(config) -> dict:
    src = config.source
    t = table(config, "parzen", _PARZEN_KEYS, source=src)
    sig = t.get("sigmas", list(DEFAULT_SIGMAS))
    return {"n_samples": get_value(t, "n_samples", int, "parzen", src, default=10000, minimum=2),
            "steps": get_value(t, "steps", int, "parzen", src, default=100, minimum=1),
            "prior": get_value(t, "prior", str, "parzen", src, default="p", choices=("r", "p")),
            "sigmas": np.asarray(sig, dtype=float), "models": t.get("models")}


def ais_settings(config) -> dict:
    src = config.source
    t = table(config, "ais", _AIS_KEYS, source=src)
    return {"n_betas": get_value(t, "n_betas", int, "ais", src, default=14500, minimum=2),
            "n_runs": get_value(t, "n_runs", int, "ais", src, default=100, minimum=2),
            "schedule": get_value(t, "schedule", str, "ais", src, default="sm", choices=("sm", "linear", "geometric")),
            "seed": get_value(t, "seed", int, "ais", src, default=0, minimum=0), "models": t.get("models")}


def model_path(config) -> Path:
    src = config.source
    t = table(config, "model", {"path"}, required=("path",), source=src)
    p = Path(get_value(t, "path", str, "model", src))
    if not p.is_absolute() and not p.exists() and Path(src).is_file():
        p = Path(src).parent / p
    return p


# ---------------------------------------------------------------------------- one step each
def run_reconstruction(model, test, s, progress=True, image_shape=(28, 28)) -> pd.DataFrame:
    tab, wall = evaluate_reconstruction(model, test, s["corruptions"], s["steps"], s["seeds"], fill=s["fill"],
                                        progress=progress, image_shape=image_shape)
    tab["gibbs_steps"] = s["steps"]
    tab["wall_s"] = wall
    return tab


def run_parzen(model, train, valid_grey, test_grey, s, seed=0) -> dict:
    from ..generation import confabulate

    t0 = time.perf_counter()
    samples = confabulate(model, s["n_samples"], prior=s["prior"], steps=s["steps"], rng=seed, data=train)
    t1 = time.perf_counter()
    res = parzen_evaluate(test_grey, valid_grey, samples, s["sigmas"])
    res.update({"sampling_s": t1 - t0, "parzen_s": time.perf_counter() - t1, "gibbs_steps": s["steps"],
                "prior": s["prior"]})
    return res, samples


def run_ais(model, train, test, s, progress=True) -> dict:
    return evaluate_ais(model, test, base_data=train, n_betas=s["n_betas"], n_runs=s["n_runs"],
                        schedule=s["schedule"], seed=s["seed"], progress=progress)


def _load_model(path) -> BoltzmannMachine:
    return BoltzmannMachine.load(path)


# ---------------------------------------------------------------------------- single-model kinds
@register_protocol("reconstruction")
def reconstruction_protocol(config, out_dir: Path):
    check_keys(config, _TOP | {"model", "data", "reconstruction"}, "the top level", config.source)
    model = _load_model(model_path(config))
    data = load_data(data_settings(config))
    s = recon_settings(config)
    tab = run_reconstruction(model, data["test"], s, image_shape=square_shape(model.sizes[0], config.source))
    write_table(tab, Path(out_dir) / "reconstruction")
    print(tab.to_string(index=False))
    return tab


@register_protocol("parzen")
def parzen_protocol(config, out_dir: Path):
    check_keys(config, _TOP | {"model", "data", "parzen"}, "the top level", config.source)
    model = _load_model(model_path(config))
    data = load_data(data_settings(config), greyscale=True)
    res, _ = run_parzen(model, data["train"], data["valid_grey"], data["test_grey"], parzen_settings(config))
    write_table(res.pop("validation"), Path(out_dir) / "parzen_validation")
    write_table(pd.DataFrame([res]), Path(out_dir) / "parzen")
    print(json.dumps(res, indent=1))
    return res


@register_protocol("ais")
def ais_protocol(config, out_dir: Path):
    check_keys(config, _TOP | {"model", "data", "ais"}, "the top level", config.source)
    model = _load_model(model_path(config))
    data = load_data(data_settings(config))
    res = run_ais(model, data["train"], data["test"], ais_settings(config))
    write_table(pd.DataFrame([res]), Path(out_dir) / "ais")
    print(json.dumps(res, indent=1))
    return res


# ---------------------------------------------------------------------------- rbm-experiment
_TRAIN_KEYS = {"epochs", "batch_size", "learning_rate", "optimizer", "weight_decay", "seed", "network_seed"}
_MODEL_KEYS = {"label", "method", "hidden", "k", "epochs", "learning_rate"}


def parse_models(config, defaults, keys, required, kind, entry):
    """The ``[[models]]`` entries of an experiment protocol, checked; shared by the rbm and dbm kinds.

    Every entry has a unique ``label``, the ``required`` keys and optional ``epochs`` and
    ``learning_rate`` that override ``defaults`` in its ``trainer`` settings; ``entry(m, where,
    trainer)`` reads the kind's own keys and returns them as a dict.
    """
    src = config.source
    models = config.get("models")
    if not isinstance(models, list) or not models:
        raise ConfigError(f"{src}: {kind} needs [[models]] entries ({', '.join(required)})")
    out = []
    for i, m in enumerate(models):
        where = f"models[{i}]"
        if not isinstance(m, dict):
            raise ConfigError(f"{src}: {where} must be a table ([[models]]), got {m!r}")
        check_keys(m, keys, where, src)
        missing = [k for k in required if not m.get(k)]
        if missing:
            raise ConfigError(f"{src}: {where} needs {', '.join(required)} (missing {', '.join(missing)})")
        kw = dict(defaults)
        kw["epochs"] = get_value(m, "epochs", int, where, src, default=kw["epochs"], minimum=1)
        kw["learning_rate"] = get_value(m, "learning_rate", float, where, src, default=kw["learning_rate"])
        out.append({"label": get_value(m, "label", str, where, src), **entry(m, where, kw), "trainer": kw})
    labels = [m["label"] for m in out]
    if len(set(labels)) != len(labels):
        raise ConfigError(f"{src}: model labels must be unique, got {labels}")
    return out


def _models(config, defaults):
    src = config.source

    def entry(m, where, kw):
        method = get_value(m, "method", str, where, src, choices=("vpf", "cd", "pcd"))
        if method != "vpf":
            kw["k"] = get_value(m, "k", int, where, src, default=1, minimum=1)
        elif "k" in m:
            raise ConfigError(f"{src}: {where}.k applies to cd/pcd, not vpf")
        return {"method": method, "hidden": get_value(m, "hidden", int, where, src, minimum=1)}

    return parse_models(config, defaults, _MODEL_KEYS, ("label", "method", "hidden"), "an rbm-experiment", entry)


def _selected(models, names, src, what):
    if names is None:
        return models
    unknown = set(names) - {m["label"] for m in models}
    if unknown:
        raise ConfigError(f"{src}: {what}.models names unknown model(s) {sorted(unknown)}")
    return [m for m in models if m["label"] in names]


def _slug(label):
    return "".join(c if c.isalnum() or c in "-_." else "-" for c in label).lower()


@register_protocol("rbm-experiment")
def rbm_experiment(config, out_dir: Path, resume=True):
    """Train every ``[[models]]`` entry, then evaluate (diagnostics, reconstruction, AIS, Parzen)."""
    from .. import plotting
    from ..trainers import make_trainer

    src = config.source
    check_keys(config, _TOP | {"data", "training", "models", "reconstruction", "parzen", "ais", "figures"},
               "the top level", src)
    out_dir = Path(out_dir)
    ds = data_settings(config)
    tr = table(config, "training", _TRAIN_KEYS, source=src)
    defaults = {"epochs": get_value(tr, "epochs", int, "training", src, default=5, minimum=1),
                "batch_size": get_value(tr, "batch_size", int, "training", src, default=100, minimum=1),
                "learning_rate": get_value(tr, "learning_rate", float, "training", src, default=1e-3),
                "optimizer": get_value(tr, "optimizer", str, "training", src, default="adam"),
                "weight_decay": get_value(tr, "weight_decay", float, "training", src, default=1e-4, minimum=0.0),
                "seed": get_value(tr, "seed", int, "training", src, default=0, minimum=0)}
    net_seed = get_value(tr, "network_seed", int, "training", src, default=0, minimum=0)
    models = _models(config, defaults)
    steps = [k for k in ("reconstruction", "parzen", "ais") if k in config]
    rs = recon_settings(config) if "reconstruction" in config else None
    ps = parzen_settings(config) if "parzen" in config else None
    as_ = ais_settings(config) if "ais" in config else None
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
        folder = out_dir / _slug(m["label"])
        folder.mkdir(parents=True, exist_ok=True)
        mpath = folder / "model.npz"
        if mpath.exists() and (folder / "metrics.csv").exists():
            model = BoltzmannMachine.load(mpath)
            metrics = pd.read_csv(folder / "metrics.csv")
            print(f"[{m['label']}] already trained ({mpath})", flush=True)
        else:
            model = BoltzmannMachine([x.shape[1], m["hidden"]], seed=net_seed, name=m["label"])
            trainer = make_trainer(m["method"], checkpoint=folder / "checkpoint.npz", **m["trainer"])
            cb = DiagnosticsCallback(x[:1000])
            print(f"[{m['label']}] training {m['method']} {m['trainer']}", flush=True)
            hist = trainer.fit(model, x, resume=resume and (folder / "checkpoint.npz").exists(), callback=cb)
            # the callback's columns are in the history (also after a resume); keep the last activations
            metrics = hist
            np.save(folder / "hidden_activation.npy", hidden_activation_of(model, x[:1000]))
            model.save(mpath)
            write_table(metrics, folder / "metrics")
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
        for m in _selected(models, rs["models"], src, "reconstruction"):
            f = out_dir / _slug(m["label"]) / "reconstruction.csv"
            if f.exists():
                tab = pd.read_csv(f)
            else:
                print(f"[{m['label']}] reconstruction", flush=True)
                tab = run_reconstruction(trained[m["label"]], test, rs, image_shape=image_shape)
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
        for m in _selected(models, as_["models"], src, "ais"):
            f = out_dir / _slug(m["label"]) / "ais.csv"
            if f.exists():
                row = pd.read_csv(f).iloc[0].to_dict()
            else:
                print(f"[{m['label']}] AIS", flush=True)
                row = run_ais(trained[m["label"]], x, test, as_)
                write_table(pd.DataFrame([row]), f.with_suffix(""))
            rows.append({"model": m["label"], **row})
        write_table(pd.DataFrame(rows), out_dir / "ais")
    if ps is not None:
        rows = []
        for m in _selected(models, ps["models"], src, "parzen"):
            folder = out_dir / _slug(m["label"])
            f = folder / "parzen.csv"
            if f.exists():
                row = pd.read_csv(f).iloc[0].to_dict()
            else:
                print(f"[{m['label']}] Parzen", flush=True)
                res, samples = run_parzen(trained[m["label"]], x, data["valid_grey"], data["test_grey"], ps)
                write_table(res.pop("validation"), folder / "parzen_validation")
                plotting.save_image_grid(samples[:n_show], folder / "samples.png", image_shape,
                                         title=f"{m['label']}: samples ({ps['steps']} Gibbs steps)")
                row = res
                write_table(pd.DataFrame([row]), f.with_suffix(""))
            rows.append({"model": m["label"], **row})
        write_table(pd.DataFrame(rows), out_dir / "parzen")
    print(f"done: results in {out_dir}", flush=True)
    return training


def square_shape(n, src):
    side = int(round(np.sqrt(n)))
    if side * side != n:
        raise ConfigError(f"{src}: images of {n} pixels are not square; rows/columns and image grids need square images")
    return side, side


def hidden_activation_of(model, x):
    from .diagnostics import hidden_activation

    return hidden_activation(model, x)


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


def _training_figures(out_dir, models, plotting):
    frames = []
    for m in models:
        f = out_dir / _slug(m["label"]) / "metrics.csv"
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
        f = out_dir / _slug(m["label"]) / "hidden_activation.npy"
        if f.exists():
            acts.append(np.load(f))
            labels.append(m["label"])
    if acts:
        plotting.plot_histogram(acts, out_dir / "hidden_activation.png", labels=labels,
                                title="mean hidden activation per unit (1,000 training images)")


def _reconstruction_figure(out_dir, models, trained, test, rs, plotting, shape):
    """Original / corrupted / reconstruction of 10 test images, for each model and the first pattern."""
    from .reconstruction import PATTERNS, reconstruct

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
