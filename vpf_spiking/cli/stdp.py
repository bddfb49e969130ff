"""``vpf stdp``: one STDP pairing protocol on the spiking engine, as a CSV (and a figure, and a fit)."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..errors import ConfigError
from ..spiking.devices import DEVICES
from ..spiking.stdp import PairingProtocol
from .common import DEVICE_HELP, times_ms

DESCRIPTION = """\
Simulate a spike-timing pairing protocol (Bi & Poo 1998 style) on the spiking engine: pre and
post spikes forced dt ms apart, PAIRINGS times at FREQUENCY Hz, many independent synapses per
dt.  Times are in ms, or Brian2 times (20ms, '0.1 ms').  Writes a CSV (dt_ms, dw_mean, dw_sem,
dw_closed_form, dw_expected, ...: relative weight change in % after the protocol; dw_bi_poo is
the Bi & Poo curve scaled to PAIRINGS) and optionally a figure.  The excited-state time
constants and the learning rate default to the fit to Bi & Poo.  --fit also fits the closed
form to this run's data (FILE-fit-of-run.json).

examples:
  vpf stdp --out runs/stdp.csv --figure runs/stdp.png
  vpf stdp --rule symmetric --synapses 200 --out runs/sym.csv
  vpf stdp --device cpp_standalone --fit --out runs/stdp.csv
"""


def add_parser(subparsers):
    # argparse's own raw formatter (not .common.formatter): keeps this help's layout as it was
    p = subparsers.add_parser("stdp", help="STDP pairing protocol on the spiking engine (curve vs closed form)",
                              description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    d = PairingProtocol()
    p.add_argument("--rule", default=d.rule, help="asymmetric (default) or symmetric")
    p.add_argument("--synapses", type=int, default=d.synapses, metavar="N",
                   help=f"independent synapses per value of dt (default: {d.synapses})")
    p.add_argument("--pairings", type=int, default=d.pairings, help=f"pairings per protocol (default: {d.pairings})")
    p.add_argument("--frequency", type=float, default=d.frequency, metavar="HZ",
                   help=f"pairing frequency in Hz (default: {d.frequency:g})")
    p.add_argument("--dt-min", default=d.dt_min, metavar="TIME", help=f"default: {d.dt_min:g} (ms)")
    p.add_argument("--dt-max", default=d.dt_max, metavar="TIME", help=f"default: {d.dt_max:g} (ms)")
    p.add_argument("--dt-step", default=d.dt_step, metavar="TIME", help=f"default: {d.dt_step:g} (ms)")
    p.add_argument("--tau-pre", metavar="TIME", help="excited-state time constant of the pre neuron (default: fitted)")
    p.add_argument("--tau-post", metavar="TIME", help="excited-state time constant of the post neuron (default: fitted)")
    p.add_argument("--eta-rel", type=float, metavar="X", help="learning rate / initial weight (default: fitted)")
    p.add_argument("--bias", type=float, default=d.bias, help=f"neuron bias; sets the spontaneous rate (default: {d.bias:g})")
    p.add_argument("--sim-dt", default=d.sim_dt, metavar="TIME", help=f"simulation time step (default: {d.sim_dt:g} ms)")
    p.add_argument("--device", choices=DEVICES, default=None, help=DEVICE_HELP)
    p.add_argument("--seed", type=int, default=d.seed, help=f"default: {d.seed}")
    p.add_argument("--out", required=True, metavar="FILE.csv", help="CSV to write")
    p.add_argument("--figure", metavar="FILE.png", help="also write this figure")
    p.add_argument("--fit", action="store_true",
                   help="also fit the closed form to this run's dw (writes FILE-fit-of-run.json beside the CSV)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run)
    return p


def run(args):
    from ..protocols.stdp import FIT_FILE, write_json
    from ..spiking.stdp import comparison, fit_of_run, plot, simulate, write_csv

    out = Path(args.out)
    if out.suffix.lower() != ".csv":
        raise ConfigError(f"--out {out}: expected a .csv file name")
    if args.figure and Path(args.figure).suffix.lower() != ".png":
        raise ConfigError(f"--figure {args.figure}: expected a .png file name")
    times = times_ms(args, ("dt_min", "dt_max", "dt_step", "tau_pre", "tau_post", "sim_dt"),
                     signed=("dt_min", "dt_max"))
    proto = PairingProtocol(rule=args.rule, synapses=args.synapses, pairings=args.pairings, frequency=args.frequency,
                            eta_rel=args.eta_rel, bias=args.bias, device=args.device, seed=args.seed, **times)
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
    if args.fit:
        fit = fit_of_run(result)
        path = write_json(out.with_name(f"{out.stem}-{FIT_FILE}"), fit)
        f = fit["fit"]
        if f is None:
            print(f"{fit['note']}; wrote {path}")
        else:
            print(f"fit of this run: tau_pre {f['tau_pre']:.2f} +- {f['tau_pre_se']:.2f} ms, tau_post "
                  f"{f['tau_post']:.2f} +- {f['tau_post_se']:.2f} ms, eta/w0 {f['eta_rel']:.4g} "
                  f"(chi2/dof {fit['chi2_per_dof']:.2f}); wrote {path}")
    return 0
