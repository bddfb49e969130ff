"""Time the whole STDP pairing protocol (41 values of dt, 1,000 synapses each, 60 pairings at 1 Hz).

Prints ``name: value`` lines:

    protocol_wall_s: ...          cpp_standalone, everything: build, compile, run, read back
    protocol_compile_s: ...       of which generating + compiling the C++ project
    protocol_run_s: ...           of which running the binary
    protocol_steps: ...           time steps simulated (0.1 ms each)
    protocol_neurons: ...         neurons simulated (13 per block of 41 synapses)
    max_abs_z_closed_form: ...    max over dt of |simulated mean - closed form| / SE
    runtime_protocol_wall_s: ...  the same protocol on Brian2's runtime device (Cython)

Usage: ``python benchmarks/stdp_protocol.py [--skip-runtime] [--rule R] [--device D] [--out FILE.csv]``
(``--device cuda_standalone`` on a GPU prints the same lines prefixed ``cuda_``).
Wall-clock seconds on a shared machine are noisy.  The 60 s of biological time are simulated as
60 windows of max|dt| + 10 tau_max (436 ms) each; see vpf_spiking/spiking/stdp/protocol.py for why that is exact
to well below the standard error.
"""

import argparse
import time

import numpy as np

from vpf_spiking.spiking.stdp import PairingProtocol, simulate, write_csv


def run(device, rule, out=None):
    t0 = time.perf_counter()
    r = simulate(PairingProtocol(rule=rule, device=device), progress=False)
    wall = time.perf_counter() - t0
    if out:
        write_csv(r, out)
    t = r.table
    z = np.abs((t.dw_mean - t.dw_closed_form) / t.dw_sem)
    return wall, r, float(np.max(z))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rule", default="asymmetric")
    ap.add_argument("--skip-runtime", action="store_true", help="only the standalone run")
    ap.add_argument("--device", default="cpp_standalone",
                    help="the standalone device timed (cpp_standalone, or cuda_standalone on a GPU; its lines are "
                         "prefixed cuda_)")
    ap.add_argument("--out", help="write the standalone table to this CSV")
    args = ap.parse_args(argv)
    wall, r, z = run(args.device, args.rule, args.out)
    pre = "cuda_" if args.device == "cuda_standalone" else ""
    print(f"{pre}protocol_wall_s: {wall:.1f}")
    print(f"{pre}protocol_compile_s: {r.timings['compile_s']:.1f}")
    print(f"{pre}protocol_run_s: {r.timings['run_s']:.1f}")
    print(f"{pre}protocol_steps: {r.timings['steps']}")
    print(f"{pre}protocol_neurons: {r.timings['neurons']}")
    print(f"{pre}max_abs_z_closed_form: {z:.2f}")
    if not args.skip_runtime:
        wall, r, z = run("runtime", args.rule)
        print(f"runtime_protocol_wall_s: {wall:.1f}")
        print(f"runtime_max_abs_z_closed_form: {z:.2f}")


if __name__ == "__main__":
    main()
