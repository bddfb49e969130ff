"""Protocol kind ``dbm-experiment``: train DBMs by VPF (Algorithm 2), confabulate, evaluate.

For every ``[[models]]`` entry (a label and a network definition, e.g. ``dbm-500-1000`` and
``dbm-500-1000-intra``) the experiment

1. trains the DBM jointly by VPF from scratch (no greedy pre-training), with checkpoints;
2. draws confabulations (Algorithm 3) for every prior in ``[confabulation] priors`` and saves
   a grid of the first 100;
3. optionally scores them with the Parzen window (``[parzen]``; sigma on the validation
   images, greyscale test images);
4. records the bottom-up hidden activations of the test images (sparsity: histograms and
   summary numbers) and the number of connected strokes per sample (broken strokes show up as
   extra components);
5. optionally (``[ais]``) estimates the mean-field lower bound on the test log-likelihood
   with AIS for models without intra-layer weights.

Each step writes its table and is skipped when that table exists, so an interrupted
experiment continues where it stopped (training resumes from its checkpoint).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from ..errors import ConfigError
from .config import TOP_KEYS, check_keys, get_value, table
from .experiments import parse_models, slug, train_or_reuse, training_defaults
from .inputs import data_settings, load_data, square_shape
from .sample_quality import score_samples
from .train import record_settings

#: The keys of a ``[[models]]`` entry besides the VPF trainer options (any of them overrides ``[training]``).
MODEL_KEYS = frozenset({"label", "network"})
CONFABULATION_KEYS = frozenset({"priors", "n_samples", "steps", "sweeps", "seed", "top_down"})
PARZEN_KEYS = frozenset({"sigmas"})
AIS_KEYS = frozenset({"n_betas", "n_runs", "schedule", "seed", "models", "mf_iterations", "explicit"})


def parse_dbm_models(config, defaults):
    """The ``[[models]]`` entries: label, network definition, trainer settings."""
    src = config.source
    return parse_models(config, defaults, MODEL_KEYS, ("label", "network"), "a dbm-experiment",
                        lambda m, where: {"network": get_value(m, "network", str, where, src)}, methods=("vpf",))


def run(config, out_dir: Path, resume=True):
    """Train every ``[[models]]`` DBM by VPF, then confabulate and evaluate it."""
    import pandas as pd

    from .. import plotting
    from ..evaluation.ais_dbm import evaluate_dbm_ais
    from ..evaluation.diagnostics import activation_summary, write_table
    from ..evaluation.parzen import DEFAULT_SIGMAS, parzen_evaluate
    from ..evaluation.sample_quality import stroke_components
    from ..generation import PRIORS, confabulate, top_prior
    from ..model import BoltzmannMachine
    from ..trainers import VPFTrainer

    src = config.source
    check_keys(config, TOP_KEYS | {"data", "training", "models", "confabulation", "parzen", "ais"}, "the top level", src)
    out_dir = Path(out_dir)
    ds = data_settings(config)
    defaults, net_seed = training_defaults(config, epochs=10, methods=("vpf",))
    models = parse_dbm_models(config, defaults)
    record_settings(config, out_dir, training={**defaults, "network_seed": net_seed})
    cf = table(config, "confabulation", CONFABULATION_KEYS, source=src)
    priors = cf.get("priors", ["r", "p"])
    if not isinstance(priors, list) or not priors or any(str(p).lower() not in PRIORS for p in priors):
        raise ConfigError(f"{src}: confabulation.priors must be a list drawn from {list(PRIORS)}, got {priors!r}")
    priors = [str(p).lower() for p in priors]
    n_samples = get_value(cf, "n_samples", int, "confabulation", src, default=10000, minimum=2)
    steps = get_value(cf, "steps", int, "confabulation", src, default=50, minimum=1)
    sweeps = get_value(cf, "sweeps", int, "confabulation", src, default=1, minimum=1)
    cseed = get_value(cf, "seed", int, "confabulation", src, default=0, minimum=0)
    top_down = get_value(cf, "top_down", str, "confabulation", src, default="pair", choices=("pair", "held"))
    do_parzen = "parzen" in config
    sigmas = np.asarray(table(config, "parzen", PARZEN_KEYS, source=src).get("sigmas", list(DEFAULT_SIGMAS)), float)
    at = table(config, "ais", AIS_KEYS, source=src) if "ais" in config else None
    data = load_data(ds, greyscale=do_parzen)
    x, test = data["train"], data["test"]
    shape = square_shape(x.shape[1], src)
    print(f"{ds['dataset']}: {len(x)} training images, {len(data['valid'])} validation, {len(test)} test", flush=True)

    # ---- training
    trained, train_rows = {}, []
    for m in models:
        folder = out_dir / slug(m["label"])

        def new_model(m=m):
            model = BoltzmannMachine.from_network(m["network"], seed=net_seed)
            model.name = m["label"]
            return model

        def fit(model, checkpoint, resume_it, m=m):
            print(f"[{m['label']}] training VPF {m['network']} {m['trainer']}", flush=True)
            return VPFTrainer(checkpoint=checkpoint, **m["trainer"]).fit(model, x, resume=resume_it)

        model, metrics = train_or_reuse(folder, m["label"], new_model, fit, resume)
        trained[m["label"]] = model
        plotting.save_filters(model.W[1], folder / "filters.png", n=100, shape=shape,
                              title=f"{m['label']}: first 100 filters of W1")
        train_rows.append({"model": m["label"], "network": m["network"], "sizes": "-".join(map(str, model.sizes)),
                           "intra": ",".join(str(int(u)) for u in model.intra), "epochs": int(metrics["epoch"].max()),
                           "train_s": float(metrics["seconds"].sum()),
                           "final_objective": float(metrics["objective"].iloc[-1])})
    write_table(pd.DataFrame(train_rows), out_dir / "training")

    # ---- hidden activations (sparsity)
    act_rows, hist_vals, hist_labels = [], [], []
    for m in models:
        folder = out_dir / slug(m["label"])
        f = folder / "activations.csv"
        model = trained[m["label"]]
        if f.exists() and (folder / "h1_unit_mean.npy").exists():
            row = pd.read_csv(f).iloc[0].to_dict()
            per_unit = [None] + [np.load(folder / f"h{l}_unit_mean.npy") for l in range(1, model.n_layers)]
        else:
            row, per_unit = activation_summary(model, test, sweeps=m["trainer"]["e_step_sweeps"])
            write_table(pd.DataFrame([row]), f.with_suffix(""))
            for l in range(1, model.n_layers):
                np.save(folder / f"h{l}_unit_mean.npy", per_unit[l])
        act_rows.append({"model": m["label"], **row})
        for l in range(1, model.n_layers):
            hist_vals.append(per_unit[l])
            hist_labels.append(f"{m['label']} h{l}")
    write_table(pd.DataFrame(act_rows), out_dir / "activations")
    plotting.plot_histogram(hist_vals, out_dir / "hidden_activation.png", labels=hist_labels,
                            title="mean bottom-up activation per hidden unit (test images)")

    # ---- confabulations, strokes, Parzen
    test_components = stroke_components(test[:1000], shape)
    conf_rows = []
    for m in models:
        folder = out_dir / slug(m["label"])
        model = trained[m["label"]]
        for prior in priors:
            f = folder / f"confabulation_{prior}.csv"
            if f.exists():
                conf_rows.append(pd.read_csv(f).iloc[0].to_dict())
                continue
            print(f"[{m['label']}] confabulating {n_samples} samples, prior {prior.upper()}, K={steps}", flush=True)
            t0 = time.perf_counter()
            probs = top_prior(model, prior, data=x, sweeps=m["trainer"]["e_step_sweeps"], rng=cseed)
            samples = confabulate(model, n_samples, prior=prior, prior_probs=probs, steps=steps, sweeps=sweeps,
                                  rng=cseed, chunk=5000, progress=True, top_down=top_down)
            t1 = time.perf_counter()
            plotting.save_image_grid(samples[:100], folder / f"samples_{prior}.png", shape, ncols=10,
                                     title=f"{m['label']}, prior {prior.upper()}, K={steps}")
            comp = stroke_components(samples[:1000], shape)
            row = {"model": m["label"], "prior": prior.upper(), "n_samples": n_samples, "steps": steps,
                   "top_down": top_down,
                   "sampling_s": t1 - t0, "components_mean": float(comp.mean()),
                   "frac_multi_component": float((comp > 1).mean()),
                   "test_components_mean": float(test_components.mean()),
                   "test_frac_multi_component": float((test_components > 1).mean()),
                   **score_samples(samples, ds, test)}
            if do_parzen:
                res = parzen_evaluate(data["test_grey"], data["valid_grey"], samples, sigmas)
                write_table(res.pop("validation"), folder / f"parzen_validation_{prior}")
                row.update({"parzen_sigma": res["sigma"], "parzen_mean": res["mean"], "parzen_se": res["se"],
                            "n_test": res["n_test"], "parzen_s": time.perf_counter() - t1})
            write_table(pd.DataFrame([row]), f.with_suffix(""))
            print(json.dumps(row), flush=True)
            conf_rows.append(row)
    write_table(pd.DataFrame(conf_rows), out_dir / "confabulation")

    # ---- AIS lower bound
    if at is not None:
        names = at.get("models")
        explicit = get_value(at, "explicit", str, "ais", src, default="odd", choices=("odd", "even"))
        stem = "ais_dbm" if explicit == "odd" else "ais_dbm_even"
        rows = []
        for m in models:
            if names is None and any(trained[m["label"]].intra):
                print(f"[{m['label']}] AIS skipped: the DBM bound is for models without intra-layer weights",
                      flush=True)
                continue
            if names is not None and m["label"] not in names:
                continue
            f = out_dir / slug(m["label"]) / f"{stem}.csv"
            if f.exists():
                row = pd.read_csv(f).iloc[0].to_dict()
            else:
                print(f"[{m['label']}] AIS", flush=True)
                row = evaluate_dbm_ais(trained[m["label"]], test, base_data=x,
                                       n_betas=get_value(at, "n_betas", int, "ais", src, default=14500, minimum=2),
                                       n_runs=get_value(at, "n_runs", int, "ais", src, default=100, minimum=2),
                                       schedule=get_value(at, "schedule", str, "ais", src, default="sm"),
                                       seed=get_value(at, "seed", int, "ais", src, default=0, minimum=0),
                                       mf_iterations=get_value(at, "mf_iterations", int, "ais", src, default=50,
                                                               minimum=0),
                                       progress=True, explicit=explicit)
                write_table(pd.DataFrame([row]), f.with_suffix(""))
                print(json.dumps(row), flush=True)
            rows.append({"model": m["label"], **row})
        write_table(pd.DataFrame(rows), out_dir / stem)
    print(f"done: results in {out_dir}", flush=True)
    return pd.DataFrame(conf_rows)
