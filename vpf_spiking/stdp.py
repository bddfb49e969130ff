"""The ``stdp`` protocol kind and the ``vpf stdp`` subcommand; the library is :mod:`vpf_spiking.spiking.stdp`.

Two self-contained pieces of glue, each meant to move as a whole: the protocol kind
(:func:`protocol_from_config`, :func:`run_stdp_protocol`) and the subcommand
(:func:`add_subcommand`, :func:`cmd_stdp`).  The library names are re-exported here so that
``from vpf_spiking.stdp import PairingProtocol`` keeps working.
"""

from __future__ import annotations

import json
from pathlib import Path

from .errors import ConfigError
from .spiking.stdp import (  # re-exported: see __all__
    BI_POO, BI_POO_PAIRINGS, QUIET_TAUS, RULES, PairingProtocol, StdpFit, StdpResult, bi_poo_curve, closed_form,
    comparison, expected_change, expected_change_discrete, fit_bi_poo, fit_closed_form, fit_of_run, interacting,
    neuron_tau_ms, plot, simulate, spontaneous_rate_hz, step_probability, write_csv,
)
from .spiking.devices import DEVICES

#: the file a fit of the run's own data goes to (only when asked for: ``fit = true``, ``--fit``)
FIT_FILE = "fit-of-run.json"


def _write_json(path, obj) -> Path:
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(obj, indent=2, default=float))
    tmp.replace(path)
    return path


# ============================================================================ protocol kind
_STDP_KEYS = {"rule", "synapses", "pairings", "frequency", "dt_min", "dt_max", "dt_step", "tau_pre", "tau_post",
              "eta_rel", "bias", "temperature", "w0", "sim_dt", "window", "device", "seed", "progress", "fit"}


def _stdp_table(config):
    from .protocols import check_keys, table

    src = getattr(config, "source", "<protocol>")
    check_keys(config, {"kind", "name", "description", "stdp"}, "the top level", src)
    return table(config, "stdp", _STDP_KEYS, source=src), src


def protocol_from_config(config) -> tuple[list[PairingProtocol], bool]:
    """Read the ``[stdp]`` table of a ``kind = "stdp"`` protocol (``rule`` and ``frequency`` may be lists).

    Returns the validated protocols (every rule at every frequency) and the ``progress`` flag.
    """
    from .protocols import get_value

    t, src = _stdp_table(config)
    kw = {}
    for key, kind in (("synapses", int), ("pairings", int), ("seed", int), ("dt_min", float), ("dt_max", float),
                      ("dt_step", float), ("tau_pre", float), ("tau_post", float), ("eta_rel", float),
                      ("bias", float), ("temperature", float), ("w0", float), ("sim_dt", float),
                      ("window", float), ("device", str)):
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
    from .protocols import get_value

    t, src = _stdp_table(config)
    return bool(get_value(t, "fit", bool, "stdp", src, default=False))


def _register():
    from .protocols import register_protocol

    @register_protocol("stdp")
    def run_stdp(config, out_dir):
        """``kind = "stdp"``: writes ``stdp.csv`` (all rules/frequencies), ``stdp.png`` (all of them),
        ``run.json`` (effective protocols, timings) and, with ``fit = true``, ``fit-of-run.json``."""
        import pandas as pd

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
        _write_json(out_dir / "run.json", {"protocols": [r.protocol.describe() for r in results],
                                           "timings": [r.timings for r in results]})
        if fit:
            _write_json(out_dir / FIT_FILE, {"fits": [fit_of_run(r) for r in results]})
        return results

    return run_stdp


run_stdp_protocol = _register()


# ============================================================================ CLI
STDP_DESCRIPTION = """\
Simulate a spike-timing pairing protocol (Bi & Poo 1998 style) on the spiking engine: pre and
post spikes forced dt ms apart, PAIRINGS times at FREQUENCY Hz, many independent synapses per
dt.  Writes a CSV (dt_ms, dw_mean, dw_sem, dw_closed_form, dw_expected, ...: relative weight
change in % after the protocol; dw_bi_poo is the Bi & Poo curve scaled to PAIRINGS) and
optionally a figure.  The excited-state time constants and the learning rate default to the
fit to Bi & Poo.  --fit also fits the closed form to this run's data (FILE-fit-of-run.json).

examples:
  vpf stdp --out runs/stdp.csv --figure runs/stdp.png
  vpf stdp --rule symmetric --synapses 200 --out runs/sym.csv
  vpf stdp --device cpp_standalone --fit --out runs/stdp.csv
"""


def add_subcommand(subparsers):
    import argparse

    p = subparsers.add_parser("stdp", help="STDP pairing protocol on the spiking engine",
                              description=STDP_DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    d = PairingProtocol()
    p.add_argument("--rule", default=d.rule, help="asymmetric (default) or symmetric")
    p.add_argument("--synapses", type=int, default=d.synapses, metavar="N",
                   help=f"independent synapses per value of dt (default: {d.synapses})")
    p.add_argument("--pairings", type=int, default=d.pairings, help=f"pairings per protocol (default: {d.pairings})")
    p.add_argument("--frequency", type=float, default=d.frequency, metavar="HZ",
                   help=f"pairing frequency in Hz (default: {d.frequency:g})")
    p.add_argument("--dt-min", type=float, default=d.dt_min, metavar="MS", help=f"default: {d.dt_min:g}")
    p.add_argument("--dt-max", type=float, default=d.dt_max, metavar="MS", help=f"default: {d.dt_max:g}")
    p.add_argument("--dt-step", type=float, default=d.dt_step, metavar="MS", help=f"default: {d.dt_step:g}")
    p.add_argument("--tau-pre", type=float, metavar="MS", help="excited-state time constant of the pre neuron (default: fitted)")
    p.add_argument("--tau-post", type=float, metavar="MS", help="excited-state time constant of the post neuron (default: fitted)")
    p.add_argument("--eta-rel", type=float, metavar="X", help="learning rate / initial weight (default: fitted)")
    p.add_argument("--bias", type=float, default=d.bias, help=f"neuron bias; sets the spontaneous rate (default: {d.bias:g})")
    p.add_argument("--sim-dt", type=float, default=d.sim_dt, metavar="MS", help=f"simulation time step (default: {d.sim_dt:g})")
    p.add_argument("--device", default=d.device, help=f"{', '.join(DEVICES)} (default: {d.device})")
    p.add_argument("--seed", type=int, default=d.seed, help=f"default: {d.seed}")
    p.add_argument("--out", required=True, metavar="FILE.csv", help="CSV to write")
    p.add_argument("--figure", metavar="FILE.png", help="also write this figure")
    p.add_argument("--fit", action="store_true",
                   help="also fit the closed form to this run's dw (writes FILE-fit-of-run.json beside the CSV)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_stdp)
    return p


def cmd_stdp(args):
    out = Path(args.out)
    if out.suffix.lower() != ".csv":
        raise ConfigError(f"--out {out}: expected a .csv file name")
    if args.figure and Path(args.figure).suffix.lower() != ".png":
        raise ConfigError(f"--figure {args.figure}: expected a .png file name")
    proto = PairingProtocol(rule=args.rule, synapses=args.synapses, pairings=args.pairings, frequency=args.frequency,
                            dt_min=args.dt_min, dt_max=args.dt_max, dt_step=args.dt_step, tau_pre=args.tau_pre,
                            tau_post=args.tau_post, eta_rel=args.eta_rel, bias=args.bias, sim_dt=args.sim_dt,
                            device=args.device, seed=args.seed)
    result = simulate(proto, progress=not args.no_progress)
    write_csv(result, out)
    p, t = result.protocol, result.table
    print(f"{p.rule} rule, {p.synapses} synapses x {len(t)} dt values, {p.pairings} pairings at {p.frequency:g} Hz; "
          f"tau_pre {p.tau_pre:.2f} ms, tau_post {p.tau_post:.2f} ms, eta/w0 {p.eta_rel:.4g}")
    if p.synapses > 1:
        print(comparison(result))
    timing = ", ".join(f"{k} {v:.1f} s" for k, v in result.timings.items() if k.endswith("_s"))
    print(f"{timing}; wrote {out}")
    if args.figure:
        plot(result, args.figure)
        print(f"wrote {args.figure}")
    if getattr(args, "fit", False):
        fit = fit_of_run(result)
        path = _write_json(out.with_name(f"{out.stem}-{FIT_FILE}"), fit)
        f = fit["fit"]
        if f is None:
            print(f"{fit['note']}; wrote {path}")
        else:
            print(f"fit of this run: tau_pre {f['tau_pre']:.2f} +- {f['tau_pre_se']:.2f} ms, tau_post "
                  f"{f['tau_post']:.2f} +- {f['tau_post_se']:.2f} ms, eta/w0 {f['eta_rel']:.4g} "
                  f"(chi2/dof {fit['chi2_per_dof']:.2f}); wrote {path}")
    return 0


__all__ = [
    # the protocol kind and the subcommand
    "FIT_FILE", "add_subcommand", "cmd_stdp", "fit_requested", "protocol_from_config", "run_stdp_protocol",
    # re-exported from vpf_spiking.spiking.stdp
    "BI_POO", "BI_POO_PAIRINGS", "QUIET_TAUS", "RULES", "PairingProtocol", "StdpFit", "StdpResult", "bi_poo_curve",
    "closed_form", "comparison", "expected_change", "expected_change_discrete", "fit_bi_poo", "fit_closed_form",
    "fit_of_run", "interacting", "neuron_tau_ms", "plot", "simulate", "spontaneous_rate_hz", "step_probability",
    "write_csv",
]
