"""What the ``rbm-experiment`` and ``dbm-experiment`` kinds share.

Both train several models on the same data, one folder per ``[[models]]`` entry, and skip every
step whose table already exists, so an interrupted experiment continues where it stopped.
"""

from __future__ import annotations

from ..errors import ConfigError
from .config import check_keys, get_value, table

TRAINING_KEYS = frozenset({"epochs", "batch_size", "learning_rate", "optimizer", "weight_decay", "seed",
                           "network_seed"})


def training_defaults(config, epochs, e_step_sweeps=False) -> tuple[dict, int]:
    """The ``[training]`` table: (trainer settings every model starts from, network seed).

    ``epochs`` is the kind's default; ``e_step_sweeps=True`` also accepts and reads that key.
    """
    src = config.source
    tr = table(config, "training", TRAINING_KEYS | ({"e_step_sweeps"} if e_step_sweeps else set()), source=src)
    defaults = {"epochs": get_value(tr, "epochs", int, "training", src, default=epochs, minimum=1),
                "batch_size": get_value(tr, "batch_size", int, "training", src, default=100, minimum=1),
                "learning_rate": get_value(tr, "learning_rate", float, "training", src, default=1e-3),
                "optimizer": get_value(tr, "optimizer", str, "training", src, default="adam"),
                "weight_decay": get_value(tr, "weight_decay", float, "training", src, default=1e-4, minimum=0.0)}
    if e_step_sweeps:
        defaults["e_step_sweeps"] = get_value(tr, "e_step_sweeps", int, "training", src, default=1, minimum=1)
    defaults["seed"] = get_value(tr, "seed", int, "training", src, default=0, minimum=0)
    return defaults, get_value(tr, "network_seed", int, "training", src, default=0, minimum=0)


def parse_models(config, defaults, keys, required, kind, entry):
    """The ``[[models]]`` entries of an experiment protocol, checked.

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


def selected(models, names, src, what):
    """The models named by ``[what] models`` (all when None); ConfigError for unknown labels."""
    if names is None:
        return models
    unknown = set(names) - {m["label"] for m in models}
    if unknown:
        raise ConfigError(f"{src}: {what}.models names unknown model(s) {sorted(unknown)}")
    return [m for m in models if m["label"] in names]


def slug(label):
    """A model's folder name: its label with anything but letters, digits and ``-_.`` as ``-``, lower case."""
    return "".join(c if c.isalnum() or c in "-_." else "-" for c in label).lower()
