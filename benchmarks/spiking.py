"""Speed of the spiking engine: a 784-500 RBM of Markov neurons with symmetric VPF synapses.

Free-running network, plasticity on (every event runs the z-propagation and the learning
pathways: the engine's most expensive regime; ``--rule none`` measures sampling alone),
dt = 0.1 ms, tau = 10 ms.  Measured on
``runtime`` (Cython), ``cpp_standalone`` (compile time reported apart) and a plain numpy
single-network simulation of the same dynamics with incremental fields, all in this run.

Prints ``name: value`` lines:

    realtime_factor_cpp       simulated seconds per wall second, cpp_standalone
    realtime_factor_runtime   the same on the runtime device
    realtime_factor_numpy     the same for the numpy reference
    speedup_over_numpy        cpp_standalone / numpy
    synaptic_updates_per_s    synapse visits per wall second on cpp_standalone

Usage: ``python benchmarks/spiking.py [--seconds 2] [--devices runtime,cpp_standalone,numpy]``
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from vpf_spiking import BoltzmannMachine
from vpf_spiking.spiking import SpikingNetwork

ETA = 1e-4


def model(seed=0):
    return BoltzmannMachine([784, 500], weight_std=0.01, seed=seed, dtype=np.float64)


def numpy_reference(m, seconds, dt_ms=0.1, seed=0, plastic=True):
    """Event-driven single-network simulation: the same rule in numpy, one step at a time.

    Returns (wall seconds, events, flips, synaptic updates)."""
    rng = np.random.default_rng(seed)
    W, b = m.dense()
    N = len(b)
    y = np.zeros(N)
    z = b + W @ y
    tau, T = m.tau_ms, m.temperature
    steps = int(round(seconds * 1e3 / dt_ms))
    nbr = W != 0
    events = flips = updates = 0
    t0 = time.perf_counter()
    for _ in range(steps):
        p = dt_ms / tau * np.exp((0.5 - y) * z / T)   # the engine's event probability rate*dt
        ev = np.flatnonzero(rng.random(N) < p)
        if ev.size == 0:
            continue
        dy = 1 - 2 * y[ev]
        y[ev] += dy
        z += W[:, ev] @ dy
        events += ev.size
        flips += ev.size
        updates += int(nbr[:, ev].sum())
        if not plastic:
            continue
        # symmetric rule from the post end of every event: dw_ij = eta y_i (y_j+ - 1/2), both ends' z
        h = ETA * (y[ev] - 0.5)
        dW = np.outer(y, h) * nbr[:, ev]           # column j: changes of w_ij
        W[:, ev] += dW
        W[ev, :] += dW.T   # w_ij of two simultaneous events gets both ends' terms, as in Brian2
        z[ev] += dW.sum(axis=0)
        z += dW @ y[ev]
        b[ev] += h
        z[ev] += h
        updates += int(nbr[:, ev].sum())
    return time.perf_counter() - t0, events, flips, updates


def run_device(device, seconds, rule="symmetric"):
    m = model()
    t = time.perf_counter()
    eta = ETA if rule else 0.0
    net = SpikingNetwork(m, device=device, duration_ms=seconds * 1e3, rule=rule, eta=eta, eta_b=eta, seed=1)
    build = time.perf_counter() - t
    first = net.run()                 # cpp: includes the compile; runtime: the Cython build
    res = net.run()                   # the timed run
    upd = net.synaptic_updates(res)
    net.close()
    return build + first.wall_s, res, upd


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=2.0, help="simulated seconds per timed run")
    ap.add_argument("--devices", default="runtime,cpp_standalone,numpy")
    ap.add_argument("--rule", default="symmetric", choices=("symmetric", "none"),
                    help="none: sampling only (z-propagation without plasticity)")
    args = ap.parse_args(argv)
    rule = None if args.rule == "none" else args.rule
    devices = args.devices.split(",")
    rf = {}
    print(f"network: 784-500 RBM, 392000 symmetric synapses, dt 0.1 ms, tau 10 ms, {args.seconds} s simulated, "
          f"plasticity: {args.rule}")
    for device in devices:
        if device == "numpy":
            wall, ev, fl, upd = numpy_reference(model(), args.seconds, plastic=rule is not None)
            rf["numpy"] = args.seconds / wall
            print(f"numpy_wall_s: {wall:.3f}")
            print(f"numpy_events: {ev}")
            continue
        setup, res, upd = run_device(device, args.seconds, rule)
        rf[device] = res.duration_s / res.wall_s
        short = "cpp" if device == "cpp_standalone" else device.replace("_standalone", "")
        print(f"{short}_setup_s: {setup:.1f}")
        print(f"{short}_wall_s: {res.wall_s:.3f}")
        print(f"{short}_events: {res.n_events}")
        print(f"{short}_synaptic_updates_per_s: {upd / res.wall_s:.4g}")
        if device == "cpp_standalone":
            print(f"synaptic_updates_per_s: {upd / res.wall_s:.4g}")
    for key, name in (("cpp_standalone", "realtime_factor_cpp"), ("runtime", "realtime_factor_runtime"),
                      ("cuda_standalone", "realtime_factor_cuda"), ("numpy", "realtime_factor_numpy")):
        if key in rf:
            print(f"{name}: {rf[key]:.3f}")
    if "numpy" in rf:
        for key, name in (("cpp_standalone", "speedup_over_numpy"), ("cuda_standalone", "speedup_over_numpy_cuda")):
            if key in rf:
                print(f"{name}: {rf[key] / rf['numpy']:.2f}")


if __name__ == "__main__":
    main()
