"""Protocol kind ``sample-quality``: how good one saved model's confabulations are.

::

    kind = "sample-quality"
    [model]
    path = "runs/rbm/model.npz"
    [data]
    dataset = "mnist"        # or "fashion-mnist": the classifier is trained on its training set
    [samples]
    n = 1000
    steps = 100              # Gibbs steps per stage (Algorithm 3)
    prior = "p"              # or "r"
    below = "mean"           # or "zero": what ungenerated DBM layers are held at
    seed = 0

Writes ``sample_quality.csv``/``.md`` (blank fraction, confident share, class coverage, class
entropy, Frechet distance to the test images; :mod:`vpf_spiking.evaluation.sample_quality`) and
``samples.png`` (the first 100). A ``[sweep]`` table over ``samples.prior`` and
``samples.steps`` gives the prior x K table of ``docs/results/sample-quality.md``.
"""

from __future__ import annotations

import json
import time
from functools import lru_cache
from pathlib import Path

from ..errors import ConfigError
from .config import TOP_KEYS, check_keys, get_value, table
from .inputs import data_settings, load_data, model_path

SAMPLE_KEYS = frozenset({"n", "steps", "prior", "below", "seed"})
DATASETS = ("mnist", "fashion-mnist")


def settings(config) -> dict:
    """The ``[samples]`` table, validated, with its defaults."""
    src = config.source
    t = table(config, "samples", SAMPLE_KEYS, source=src)
    return {"n": get_value(t, "n", int, "samples", src, default=1000, minimum=2),
            "steps": get_value(t, "steps", int, "samples", src, default=100, minimum=1),
            "prior": get_value(t, "prior", str, "samples", src, default="p", choices=("r", "p")),
            "below": get_value(t, "below", str, "samples", src, default="mean", choices=("mean", "zero")),
            "seed": get_value(t, "seed", int, "samples", src, default=0, minimum=0)}


def run(config, out_dir: Path):
    """Confabulate ``[samples] n`` images from ``[model] path`` and score them."""
    import numpy as np
    import pandas as pd

    from ..evaluation.diagnostics import write_table
    from ..evaluation.sample_quality import SampleClassifier, sample_quality
    from ..generation import confabulate
    from ..model import BoltzmannMachine
    from ..plotting import save_image_grid
    from .inputs import default_data_dir

    check_keys(config, TOP_KEYS | {"model", "data", "samples"}, "the top level", config.source)
    ds, s = data_settings(config), settings(config)
    if ds["dataset"] not in DATASETS:
        raise ConfigError(f"{config.source}: sample quality needs a classifier of mnist or fashion-mnist, "
                          f"not data.dataset = {ds['dataset']!r}")
    model = BoltzmannMachine.load(model_path(config))
    data = load_data(ds)
    clf = SampleClassifier.from_dataset(ds["dataset"], data_dir=default_data_dir(ds["data_dir"]))
    t0 = time.perf_counter()
    samples = confabulate(model, s["n"], prior=s["prior"], steps=s["steps"], rng=s["seed"],
                          data=data["train"] if s["prior"] == "p" else None, below=s["below"])
    t1 = time.perf_counter()
    res = {**{k: s[k] for k in ("prior", "steps", "below", "n")},
           **sample_quality(samples, clf, reference=data["test"]),
           "sampling_s": t1 - t0, "scoring_s": time.perf_counter() - t1}
    out_dir = Path(out_dir)
    write_table(pd.DataFrame([res]), out_dir / "sample_quality")
    side = int(round(np.sqrt(model.sizes[0])))
    shape = (side, side) if side * side == model.sizes[0] else (1, model.sizes[0])
    save_image_grid(samples[:100], out_dir / "samples.png", shape=shape, ncols=10,
                    title=f"prior {s['prior'].upper()}, K={s['steps']}, below={s['below']}")
    print(json.dumps(res, indent=1))
    return res


def score_samples(samples, ds: dict, test) -> dict:
    """Sample-quality scores of an experiment's confabulations, keyed ``samples_<score>``.

    Empty for data other than MNIST and Fashion-MNIST (no classifier); the classifier is trained
    once per data set and cached (:meth:`SampleClassifier.from_dataset`).
    """
    from ..evaluation.sample_quality import sample_quality

    if ds["dataset"] not in DATASETS:
        return {}
    clf = _classifier(ds["dataset"], ds["data_dir"])
    return {f"samples_{k}": v for k, v in sample_quality(samples, clf, reference=test).items()}


@lru_cache(maxsize=2)
def _classifier(dataset, data_dir):
    """The data set's classifier, built (or read from its disk cache) once per process: an
    experiment scores every model's confabulations with it."""
    from ..evaluation.sample_quality import SampleClassifier
    from .inputs import default_data_dir

    return SampleClassifier.from_dataset(dataset, data_dir=default_data_dir(data_dir))
