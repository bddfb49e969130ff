"""``vpf info MODEL.npz``: a saved model's layers and statistics of every parameter."""

from __future__ import annotations

import json

from .common import formatter


def add_parser(subparsers):
    p = subparsers.add_parser("info", help="describe a saved model (sizes, parameter statistics)",
                              description="Print a saved model's layers and statistics of every parameter "
                                          "(shape, mean, std, min, max; for weights also the spec's sparsity "
                                          "||W||_1^2 / (n_in n_out ||W||_2^2) and mean squared weight).",
                              formatter_class=formatter)
    p.add_argument("model", metavar="MODEL.npz", help="a model written by vpf train / BoltzmannMachine.save")
    p.add_argument("--json", action="store_true", help="print the same as JSON")
    p.set_defaults(func=run)
    return p


def model_info(model) -> dict:
    """Sizes, flags and per-parameter statistics of a model, as plain Python values."""
    import numpy as np

    params = {}
    for name, a in model.parameters().items():
        a64 = np.asarray(a, dtype=np.float64)
        entry = {"shape": list(a.shape), "mean": float(a64.mean()), "std": float(a64.std()),
                 "min": float(a64.min()), "max": float(a64.max())}
        if name[0] in "WU":
            l2 = float(np.sum(a64 ** 2))
            entry["mean_sq"] = float(np.mean(a64 ** 2))
            entry["sparsity"] = float(np.sum(np.abs(a64)) ** 2 / (a64.size * l2)) if l2 > 0 else float("nan")
        params[name] = entry
    return {"name": model.name, "sizes": list(model.sizes), "intra": list(model.intra),
            "temperature": float(model.temperature), "tau_ms": float(model.tau_ms), "dtype": str(model.dtype),
            "n_parameters": int(sum(a.size for a in model.parameters().values())), "parameters": params}


def run(args):
    from ..model import BoltzmannMachine

    info = model_info(BoltzmannMachine.load(args.model))
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    kind = "RBM" if len(info["sizes"]) == 2 and not any(info["intra"]) else "Boltzmann machine"
    print(f"{args.model}: {kind} '{info['name']}'")
    print(f"  layers      {' - '.join(str(n) for n in info['sizes'])}"
          f"   (intra-layer weights: {', '.join('yes' if x else 'no' for x in info['intra'])})")
    print(f"  temperature {info['temperature']:g}   tau {info['tau_ms']:g} ms   dtype {info['dtype']}")
    print(f"  parameters  {info['n_parameters']:,}")
    print(f"  {'name':<5} {'shape':<12} {'mean':>10} {'std':>10} {'min':>10} {'max':>10} {'mean sq':>10} {'sparsity':>9}")
    for name, e in info["parameters"].items():
        shape = "x".join(str(s) for s in e["shape"])
        extra = f" {e['mean_sq']:>10.4g} {e['sparsity']:>9.4f}" if "sparsity" in e else ""
        print(f"  {name:<5} {shape:<12} {e['mean']:>10.4g} {e['std']:>10.4g} {e['min']:>10.4g} {e['max']:>10.4g}{extra}")
    return 0
