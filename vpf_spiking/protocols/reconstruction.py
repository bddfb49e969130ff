"""Protocol kind ``reconstruction``: corrupted-image reconstruction by one saved model.

::

    kind = "reconstruction"
    [model]
    path = "runs/train-rbm-mnist/model.npz"
    [data]
    dataset = "mnist"
    [reconstruction]
    patterns = ["rows:4", "columns:8"]    # default rows and columns, K = 4 8 12
    steps = 25
    seeds = [0, 1, 2]
    fill = "noise"                        # or "zero"

Writes ``reconstruction.csv`` and ``reconstruction.md``.  The ``[reconstruction]`` table is the
same in an ``rbm-experiment``, where ``models`` may name the models it applies to.
"""

from __future__ import annotations

from pathlib import Path

from ..errors import ConfigError
from .config import TOP_KEYS, check_keys, get_value, table
from .inputs import data_settings, load_data, model_path, square_shape

RECONSTRUCTION_KEYS = frozenset({"patterns", "steps", "seeds", "fill", "models"})


def settings(config) -> dict:
    """The ``[reconstruction]`` table: corruptions, seeds, Gibbs steps, fill, models."""
    from ..evaluation.reconstruction import DEFAULT_PATTERNS, parse_patterns

    src = config.source
    t = table(config, "reconstruction", RECONSTRUCTION_KEYS, source=src)
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


def run_reconstruction(model, test, s, progress=True, image_shape=(28, 28)):
    """The reconstruction table (a DataFrame) of ``model`` on ``test`` for settings ``s``, with steps and wall time."""
    from ..evaluation.reconstruction import evaluate_reconstruction

    tab, wall = evaluate_reconstruction(model, test, s["corruptions"], s["steps"], s["seeds"], fill=s["fill"],
                                        progress=progress, image_shape=image_shape)
    tab["gibbs_steps"] = s["steps"]
    tab["wall_s"] = wall
    return tab


def run(config, out_dir: Path):
    """Reconstruct the corrupted test images with the model of ``[model] path``."""
    from ..evaluation.diagnostics import write_table
    from ..model import BoltzmannMachine

    check_keys(config, TOP_KEYS | {"model", "data", "reconstruction"}, "the top level", config.source)
    model = BoltzmannMachine.load(model_path(config))
    data = load_data(data_settings(config))
    s = settings(config)
    tab = run_reconstruction(model, data["test"], s, image_shape=square_shape(model.sizes[0], config.source))
    write_table(tab, Path(out_dir) / "reconstruction")
    print(tab.to_string(index=False))
    return tab
