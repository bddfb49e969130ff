"""Protocol kind ``parzen``: Parzen-window log-likelihood of one saved model's confabulations.

::

    kind = "parzen"
    [model]
    path = "runs/train-rbm-mnist/model.npz"
    [data]
    dataset = "mnist"
    validation = 1000        # images on which sigma is chosen
    [parzen]
    n_samples = 10000
    steps = 100              # Gibbs steps per confabulation
    prior = "p"              # or "r"

Writes ``parzen.csv``/``.md`` and ``parzen_validation.csv``/``.md`` (log-likelihood per sigma).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from .config import TOP_KEYS, check_keys, get_value, table
from .inputs import data_settings, load_data, model_path

PARZEN_KEYS = frozenset({"n_samples", "steps", "prior", "sigmas", "models"})


def settings(config) -> dict:
    """The ``[parzen]`` table: number of samples, Gibbs steps, prior, candidate sigmas, models."""
    from ..evaluation.parzen import DEFAULT_SIGMAS

    src = config.source
    t = table(config, "parzen", PARZEN_KEYS, source=src)
    sig = t.get("sigmas", list(DEFAULT_SIGMAS))
    return {"n_samples": get_value(t, "n_samples", int, "parzen", src, default=10000, minimum=2),
            "steps": get_value(t, "steps", int, "parzen", src, default=100, minimum=1),
            "prior": get_value(t, "prior", str, "parzen", src, default="p", choices=("r", "p")),
            "sigmas": np.asarray(sig, dtype=float), "models": t.get("models")}


def run_parzen(model, train, valid_grey, test_grey, s, seed=0):
    """Confabulate ``s["n_samples"]`` images and score them; return (result dict, samples)."""
    from ..evaluation.parzen import parzen_evaluate
    from ..generation import confabulate

    t0 = time.perf_counter()
    samples = confabulate(model, s["n_samples"], prior=s["prior"], steps=s["steps"], rng=seed, data=train)
    t1 = time.perf_counter()
    res = parzen_evaluate(test_grey, valid_grey, samples, s["sigmas"])
    res.update({"sampling_s": t1 - t0, "parzen_s": time.perf_counter() - t1, "gibbs_steps": s["steps"],
                "prior": s["prior"]})
    return res, samples


def run(config, out_dir: Path):
    """Parzen log-likelihood of the model of ``[model] path`` on the greyscale test images."""
    import pandas as pd

    from ..evaluation.diagnostics import write_table
    from ..model import BoltzmannMachine

    check_keys(config, TOP_KEYS | {"model", "data", "parzen"}, "the top level", config.source)
    model = BoltzmannMachine.load(model_path(config))
    data = load_data(data_settings(config), greyscale=True)
    res, _ = run_parzen(model, data["train"], data["valid_grey"], data["test_grey"], settings(config))
    write_table(res.pop("validation"), Path(out_dir) / "parzen_validation")
    write_table(pd.DataFrame([res]), Path(out_dir) / "parzen")
    print(json.dumps(res, indent=1))
    return res
