"""``vpf simulate MODEL``: run a trained model's spiking network and record every transition.

The recording is :func:`vpf_spiking.spiking.recording.simulate`; this module only reads the
command line and writes the files.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from ..errors import ConfigError
from ..spiking.devices import DEVICES, resolve_device
from .common import DEVICE_HELP, add_overwrite_option, command_line, formatter

#: what a simulation writes into OUT (an OUT holding any of them is refused without --overwrite)
OUTPUTS = ("transitions.csv", "transitions.npz", "raster.png", "rates.csv", "rates.png", "simulation.json")

DESCRIPTION = """\
Run the spiking network of a trained model (no plasticity) freely, or with the visible layer
clamped to one image, and record every transition (neuron, layer, time, new state).  Writes
into OUT:
  transitions.csv   time_ms, layer (0 = visible), neuron, state (the new state); or
                    transitions.npz with --format npz (also the start and end states)
  raster.png        one panel per layer: neuron against time, a dot per transition
  rates.csv         per time bin and layer: transitions, rate (per neuron and second), and
                    the time-averaged fraction of excited neurons
  rates.png         the same as curves
  simulation.json   the settings, counts and timings of the run

Times (--duration, --dt, --bin) are Brian2 quantities: 500ms, '0.5 s', 2*second; a plain
number is in ms.

examples:
  vpf simulate runs/spiking-dbm/model.npz --duration 500ms --out runs/simulate-free
  vpf simulate runs/spiking-dbm/model.npz --clamp 7 --data mnist --duration '0.5 s' --out runs/simulate-7
  vpf simulate runs/rbm/model.npz --clamp 0 --data mnist --split train --format npz --device cpp_standalone
"""


def add_parser(subparsers):
    p = subparsers.add_parser("simulate", help="run a trained model's spiking network; raster and rates of its transitions",
                              description=DESCRIPTION, formatter_class=formatter)
    p.add_argument("model", metavar="MODEL", help="a model .npz written by 'vpf train'")
    p.add_argument("--clamp", type=int, metavar="IMAGE-INDEX",
                   help="clamp the visible layer to this image of --data (default: run freely)")
    p.add_argument("--data", metavar="mnist|fashion-mnist|FILE", help="where the clamped image comes from")
    p.add_argument("--split", choices=("train", "test"), default="test", help="which split of --data (default: test)")
    p.add_argument("--data-dir", metavar="DIR", help="folder holding mnist/ and fashion-mnist/")
    p.add_argument("--duration", default="500ms", metavar="TIME", help="simulated time (default: 500ms)")
    p.add_argument("--dt", default="0.1ms", metavar="TIME", help="time step (default: 0.1ms)")
    p.add_argument("--bin", default="10ms", metavar="TIME", help="time bin of the population rates (default: 10ms)")
    p.add_argument("--record", default="transitions", choices=("transitions",),
                   help="what to record (default and only choice: transitions)")
    p.add_argument("--format", default="csv", choices=("csv", "npz"), help="file of the transitions (default: csv)")
    p.add_argument("--start", default="rest", choices=("rest", "random"),
                   help="start state of the free neurons: all at rest, or on with probability 1/2 (default: rest)")
    p.add_argument("--device", choices=DEVICES, default=None, help=DEVICE_HELP)
    p.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    p.add_argument("--out", metavar="DIR", help="output folder (default: runs/simulate-<model>, <model> being "
                   "the model file's name, or its folder's for a model.npz)")
    add_overwrite_option(p)
    p.set_defaults(func=run)
    return p


def run(args):
    from ..data import resolve_data
    from ..model import BoltzmannMachine
    from ..protocols.inputs import default_data_dir
    from ..spiking.recording import parse_duration, plot_raster, plot_rates, save_rates, simulate

    duration = parse_duration(args.duration, "--duration")
    dt = parse_duration(args.dt, "--dt")
    bin_ms = parse_duration(args.bin, "--bin")
    if args.seed < 0:
        raise ConfigError(f"--seed must be >= 0, got {args.seed}")
    if (args.clamp is None) != (args.data is None):
        raise ConfigError("--clamp IMAGE-INDEX and --data go together (the image to clamp and where it comes from)")
    model = BoltzmannMachine.load(args.model)
    clamp, label = None, "free"
    if args.clamp is not None:
        x = resolve_data(args.data, args.split, data_dir=default_data_dir(args.data_dir))
        if not 0 <= args.clamp < len(x):
            raise ConfigError(f"--clamp {args.clamp}: {args.data} ({args.split}) has images 0..{len(x) - 1}")
        if x.shape[1] != model.sizes[0]:
            raise ConfigError(f"{args.data}: images have {x.shape[1]} pixels, the model {model.sizes[0]} visible units")
        clamp, label = x[args.clamp], f"clamped to {args.data} {args.split} image {args.clamp}"
    stem = Path(args.model).stem
    if stem == "model" and Path(args.model).resolve().parent.name:
        stem = Path(args.model).resolve().parent.name
    out = Path(args.out) if args.out else Path("runs") / f"simulate-{stem}"
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out}: exists and is not a folder")
    earlier = [name for name in OUTPUTS if (out / name).exists()]
    if earlier and not args.overwrite:
        raise ConfigError(f"--out {out}: holds an earlier simulation ({', '.join(earlier)}); "
                          "pass --overwrite to replace it, or choose another --out")
    device = resolve_device(args.device)
    t0 = time.perf_counter()
    tr = simulate(model, duration, clamp=clamp, start=args.start, device=device, dt_ms=dt, seed=args.seed)
    seconds = time.perf_counter() - t0
    out.mkdir(parents=True, exist_ok=True)
    for name in earlier:   # --overwrite: no file of the earlier run is left beside the new ones
        (out / name).unlink()
    written = [tr.save(out / f"transitions.{args.format}", args.format)]
    title = f"{Path(args.model).name}: {label}, {duration:g} ms, {device}, seed {args.seed}"
    written.append(plot_raster(tr, out / "raster.png", title=title))
    rates = tr.rates(min(bin_ms, duration))
    written.append(save_rates(rates, out / "rates.csv"))
    written.append(plot_rates(tr, rates, out / "rates.png", title=title))
    counts = {name: int(c.sum()) for name, c in zip(tr.names, tr.counts())}
    summary = {"model": str(args.model), "sizes": list(tr.sizes), "clamp": args.clamp, "data": args.data,
               "split": args.split if args.clamp is not None else None, "duration_ms": duration, "dt_ms": dt,
               "bin_ms": bin_ms, "start": args.start, "device": device, "seed": args.seed,
               "transitions": counts,
               "rate_hz": {name: counts[name] / (n * duration / 1e3) for name, n in zip(tr.names, tr.sizes)},
               "simulation_wall_s": round(tr.wall_s, 3), "total_s": round(seconds, 3),
               "command": command_line(args)}
    (out / "simulation.json").write_text(json.dumps(summary, indent=1) + "\n")
    written.append(out / "simulation.json")
    shown = ", ".join(f"{k} {v}" for k, v in counts.items())
    print(f"{len(tr)} transitions in {duration:g} ms ({shown}); simulated in {seconds:.1f} s")
    print("wrote " + ", ".join(str(p) for p in written))
    return 0
