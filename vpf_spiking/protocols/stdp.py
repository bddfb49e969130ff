"""Protocol kind ``stdp``: spike-timing pairing protocols on the spiking engine.

::

    kind = "stdp"
    [stdp]
    rule = ["asymmetric", "symmetric"]   # a rule or a list of rules
    frequency = [1.0, 20.0]              # Hz; a number or a list
    synapses = 200
    pairings = 60
    device = "cpp_standalone"          # default: the one device policy (devices.default_device)
    fit = false                          # also fit the closed form to the run's data

Every rule at every frequency is one :class:`~vpf_spiking.spiking.stdp.PairingProtocol`.
Writes ``stdp.csv`` (all of them), ``stdp.png``, ``run.json`` (effective protocols, timings)
and, with ``fit = true``, ``fit-of-run.json``.
"""

from __future__ import annotations

from pathlib import Path

from ..errors import ConfigError
from ..io import write_json
from ..spiking.stdp import PairingProtocol
from .config import TOP_KEYS, check_keys, get_value, table

#: the file a fit of the run's own data goes to (only when asked for: ``fit = true``, ``vpf stdp --fit``)
FIT_FILE = "fit-of-run.json"

STDP_KEYS = frozenset({"rule", "synapses", "pairings", "frequency", "dt_min", "dt_max", "dt_step", "tau_pre",
                       "tau_post", "eta_rel", "bias", "temperature", "w0", "sim_dt", "window", "device", "seed",
                       "progress", "fit"})
_TYPES = (("synapses", int), ("pairings", int), ("seed", int), ("dt_min", float), ("dt_max", float),
          ("dt_step", float), ("tau_pre", float), ("tau_post", float), ("eta_rel", float), ("bias", float),
          ("temperature", float), ("w0", float), ("sim_dt", float), ("window", float), ("device", str))


def _stdp_table(config):
    src = getattr(config, "source", "<protocol>")
    check_keys(config, TOP_KEYS | {"stdp"}, "the top level", src)
    return table(config, "stdp", STDP_KEYS, source=src), src


def protocol_from_config(config) -> tuple[list[PairingProtocol], bool]:
    """Read the ``[stdp]`` table of a ``kind = "stdp"`` protocol (``rule`` and ``frequency`` may be lists).

    Returns the validated protocols (every rule at every frequency) and the ``progress`` flag.
    """
    t, src = _stdp_table(config)
    kw = {}
    for key, kind in _TYPES:
        v = get_value(t, key, kind, "stdp", src)
        if v is not None:
            kw[key] = v
    progress = get_value(t, "progress", bool, "stdp", src, default=True)
    rules = t.get("rule", "asymmetric")
    rules = rules if isinstance(rules, list) else [rules]
    freqs = t.get("frequency", 1.0)
    freqs = freqs if isinstance(freqs, list) else [freqs]
    out = []
    for r in rules:
        if not isinstance(r, str):
            raise ConfigError(f"{src}: stdp.rule must be a string or a list of strings, got {r!r}")
        for f in freqs:
            if isinstance(f, bool) or not isinstance(f, (int, float)):
                raise ConfigError(f"{src}: stdp.frequency must be a number or a list of numbers, got {f!r}")
            try:
                out.append(PairingProtocol(rule=r, frequency=float(f), **kw).validated())
            except ConfigError as exc:
                raise ConfigError(f"{src}: {exc}") from None
    return out, progress


def fit_requested(config) -> bool:
    """The ``fit`` key of the ``[stdp]`` table: fit the closed form to the run's data (default false)."""
    t, src = _stdp_table(config)
    return bool(get_value(t, "fit", bool, "stdp", src, default=False))


def run(config, out_dir: Path):
    """Simulate every protocol; write ``stdp.csv``, ``stdp.png``, ``run.json`` (and the fit); return the results."""
    import pandas as pd

    from ..spiking.stdp import comparison, fit_of_run, plot, simulate, write_csv

    protocols, progress = protocol_from_config(config)
    fit = fit_requested(config)
    out_dir = Path(out_dir)
    results = []
    for p in protocols:
        r = simulate(p, progress=progress)
        results.append(r)
        print(f"stdp {p.rule} at {p.frequency:g} Hz: {r.timings['total_s']:.1f} s; {comparison(r)}")
    tables = []
    for r in results:
        t = r.table.copy()
        t.insert(0, "frequency_hz", r.protocol.frequency)
        t.insert(0, "rule", r.protocol.rule)
        tables.append(t)
    write_csv(pd.concat(tables, ignore_index=True), out_dir / "stdp.csv")
    plot(results, out_dir / "stdp.png")
    write_json(out_dir / "run.json", {"protocols": [r.protocol.describe() for r in results],
                                      "timings": [r.timings for r in results]})
    if fit:
        write_json(out_dir / FIT_FILE, {"fits": [fit_of_run(r) for r in results]})
    return results
