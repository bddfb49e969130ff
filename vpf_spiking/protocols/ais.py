"""Protocol kind ``ais``: annealed importance sampling of log Z and the test log-likelihood (RBMs).

::

    kind = "ais"
    [model]
    path = "runs/train-rbm-mnist/model.npz"
    [data]
    dataset = "mnist"
    [ais]
    n_betas = 14500
    n_runs = 100
    schedule = "sm"          # "sm", "linear" or "geometric"
    seed = 0

Writes ``ais.csv`` and ``ais.md``.
"""

from __future__ import annotations

import json
from pathlib import Path

from .config import TOP_KEYS, check_keys, get_value, table
from .inputs import data_settings, load_data, model_path

AIS_KEYS = frozenset({"n_betas", "n_runs", "schedule", "seed", "models"})


def settings(config) -> dict:
    """The ``[ais]`` table: inverse temperatures, runs, schedule, seed, models."""
    src = config.source
    t = table(config, "ais", AIS_KEYS, source=src)
    return {"n_betas": get_value(t, "n_betas", int, "ais", src, default=14500, minimum=2),
            "n_runs": get_value(t, "n_runs", int, "ais", src, default=100, minimum=2),
            "schedule": get_value(t, "schedule", str, "ais", src, default="sm", choices=("sm", "linear", "geometric")),
            "seed": get_value(t, "seed", int, "ais", src, default=0, minimum=0), "models": t.get("models")}


def run_ais(model, train, test, s, progress=True) -> dict:
    """AIS estimate of log Z and the mean test log-likelihood for settings ``s``."""
    from ..evaluation.ais import evaluate_ais

    return evaluate_ais(model, test, base_data=train, n_betas=s["n_betas"], n_runs=s["n_runs"],
                        schedule=s["schedule"], seed=s["seed"], progress=progress)


def run(config, out_dir: Path):
    """AIS of the model of ``[model] path`` (an RBM)."""
    import pandas as pd

    from ..evaluation.diagnostics import write_table
    from ..model import BoltzmannMachine

    check_keys(config, TOP_KEYS | {"model", "data", "ais"}, "the top level", config.source)
    model = BoltzmannMachine.load(model_path(config))
    data = load_data(data_settings(config))
    res = run_ais(model, data["train"], data["test"], settings(config))
    write_table(pd.DataFrame([res]), Path(out_dir) / "ais")
    print(json.dumps(res, indent=1))
    return res
