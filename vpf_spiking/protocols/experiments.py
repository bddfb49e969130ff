"""What the ``rbm-experiment`` and ``dbm-experiment`` kinds share.

Both train several models on the same data, one folder per ``[[models]]`` entry, and skip every
step whose table already exists, so an interrupted experiment continues where it stopped.
"""

from __future__ import annotations

from ..errors import ConfigError
from ..trainers import params
from .config import check_keys, get_value

#: ``[training] network_seed``: the seed of every model's initial weights (not a trainer option).
NETWORK_SEED = params.Option("network_seed", int, 0, "seed of the initial weights of every model", low=0,
                             resume=False)


def training_defaults(config, epochs, methods=params.METHODS) -> tuple[dict, int]:
    """The ``[training]`` table: (trainer settings every model starts from, network seed).

    Any trainer option of any of ``methods`` (:mod:`vpf_spiking.trainers.params`) may be given
    and is checked there; the result holds every one of them, defaults filled in (``epochs``,
    the kind's default, replaces the declared one).  No ``method`` key: each ``[[models]]``
    entry names its own (or the kind has one).
    """
    settings = params.validate(config.get("training", {}), config.source, methods=methods, method_key=False,
                               defaults={"epochs": epochs}, extra=[NETWORK_SEED])
    net_seed = settings.pop("network_seed")
    return settings, net_seed


def parse_models(config, defaults, keys, required, kind, entry, methods=params.METHODS):
    """The ``[[models]]`` entries of an experiment protocol, checked.

    Every entry has a unique ``label``, the ``required`` keys and the kind's own ``keys`` (with
    ``method`` among them when an entry chooses its method; else every model uses the first of
    ``methods``); any other key is a trainer option of the entry's method that overrides
    ``defaults`` (the ``[training]`` settings) for that model.  The method and the options are
    checked by :func:`vpf_spiking.trainers.params.validate`; ``entry(m, where)`` reads the kind's
    other keys and returns them as a dict.  Each result holds the label, ``method``, those keys,
    ``trainer`` (the keywords of ``make_trainer``) and ``training`` (the method and every setting).
    """
    src = config.source
    models = config.get("models")
    if not isinstance(models, list) or not models:
        raise ConfigError(f"{src}: {kind} needs [[models]] entries ({', '.join(required)})")
    options = {o.name for o in params.OPTIONS.values() if set(o.methods) & set(methods)}
    out = []
    for i, m in enumerate(models):
        where = f"models[{i}]"
        if not isinstance(m, dict):
            raise ConfigError(f"{src}: {where} must be a table ([[models]]), got {m!r}")
        check_keys(m, set(keys) | options, where, src)
        missing = [k for k in required if not m.get(k)]
        if missing:
            raise ConfigError(f"{src}: {where} needs {', '.join(required)} (missing {', '.join(missing)})")
        method = m.get("method", methods[0]) if "method" in keys else methods[0]
        given = {k: v for k, v in m.items() if k in options}
        # the [training] values were checked already; only this entry's keys can fail here
        training = params.validate({"method": method, **given}, src, where=where, methods=methods,
                                   defaults={k: v for k, v in defaults.items() if k in params.OPTIONS})
        out.append({"label": get_value(m, "label", str, where, src), "method": training["method"],
                    **entry(m, where), "trainer": params.trainer_kwargs(training, training["method"]),
                    "training": training})
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


def trained_before(folder, label):
    """``(model, metrics)`` of the model an earlier run of the experiment finished in ``folder``, else None.

    An experiment folder is continued: a model whose ``model.npz`` and ``metrics.csv`` are both
    there is not trained again.
    """
    import pandas as pd

    from ..model import BoltzmannMachine

    folder.mkdir(parents=True, exist_ok=True)
    mpath = folder / "model.npz"
    if not (mpath.exists() and (folder / "metrics.csv").exists()):
        return None
    print(f"[{label}] already trained ({mpath})", flush=True)
    return BoltzmannMachine.load(mpath), pd.read_csv(folder / "metrics.csv")


def train_or_reuse(folder, label, new_model, fit, resume):
    """``(model, metrics)`` of one model of an experiment: reused from an earlier run, or trained.

    ``new_model()`` builds the untrained model; ``fit(model, checkpoint, resume)`` trains it in
    place and returns its metrics.  A trained model is saved as ``model.npz`` and ``metrics.csv``
    in ``folder`` (see :func:`trained_before`).
    """
    from ..evaluation.diagnostics import write_table

    done = trained_before(folder, label)
    if done:
        return done
    model = new_model()
    checkpoint = folder / "checkpoint.npz"
    metrics = fit(model, checkpoint, resume and checkpoint.exists())
    model.save(folder / "model.npz")
    write_table(metrics, folder / "metrics")
    return model, metrics
