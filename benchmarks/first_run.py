"""A first spiking command on empty caches, then the same command again: how long the compile takes.

Usage::

    .venv/bin/python benchmarks/first_run.py [--device cpp_standalone|runtime] [--python PY] [--keep DIR] [-- extra vpf stdp args]

Creates an empty spiking-engine cache folder (``$VPF_SPIKING_CACHE``, where
:func:`vpf_spiking.spiking.devices.cache_dir` keeps the runtime device's Cython modules, the
standalone projects and ``compile_times.json``) and an empty Python bytecode cache
(``$PYTHONPYCACHEPREFIX``, so the package's and Brian2's modules are byte-compiled again as on a
fresh install), then runs ``vpf stdp`` with small settings twice, each in its own subprocess
with that cache.  Prints ``name: value`` lines:

* ``first_run_s``: wall time of the first command (interpreter start to exit);
* ``first_run_compile_s``: of which Brian2 compiling, as the engine measured it (the
  ``compile_times.json`` it wrote: at runtime the sum over the Cython modules it had to build, on
  a standalone device the project's generate + compile time); missing if nothing was compiled;
* ``first_run_announced_s``: the estimate the first run printed ("compiling Brian2 code once
  (about N s)"), -1 if it printed none;
* ``second_run_s``: wall time of the same command with the caches now filled;
* ``second_run_announced``: 1 if the second run printed the compile notice (it should not).

"A fresh virtual environment": the bytecode cache is emptied here, but the installed packages
are those of ``--python`` (default: this interpreter).  To start from a new environment as
well, make one and pass its interpreter::

    python -m venv /tmp/fresh && /tmp/fresh/bin/pip install -e . && \\
        .venv/bin/python benchmarks/first_run.py --python /tmp/fresh/bin/python

Wall-clock seconds on a shared machine are noisy; run it on a quiet one.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
#: small settings: 9 values of dt, 20 synapses each, 5 pairings (the code compiled is the full protocol's)
SMALL = ["--synapses", "20", "--pairings", "5", "--frequency", "4", "--dt-min", "-40", "--dt-max", "40",
         "--dt-step", "10", "--no-progress"]
NOTICE = re.compile(r"compiling Brian2 code once \(about (\d+(?:\.\d+)?) s\)")


def run_once(python, device, cache, pycache, out, extra):
    env = dict(os.environ, VPF_SPIKING_CACHE=str(cache), PYTHONPYCACHEPREFIX=str(pycache))
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    cmd = [python, "-m", "vpf_spiking.cli", "stdp", "--device", device, "--out", str(out), *SMALL, *extra]
    t0 = time.perf_counter()
    res = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if res.returncode != 0:
        sys.stderr.write(res.stdout + res.stderr)
        raise SystemExit(f"`{' '.join(cmd)}` failed with exit code {res.returncode}")
    m = NOTICE.search(res.stderr)
    return wall, (float(m.group(1)) if m else None), res


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--device", default=None,
                    help="runtime or cpp_standalone (default: the default of every command, devices.default_device())")
    ap.add_argument("--python", default=sys.executable, help="interpreter to run vpf with (default: this one)")
    ap.add_argument("--keep", metavar="DIR", help="make the caches under DIR (must not exist) and keep them")
    ap.add_argument("extra", nargs="*", help="more vpf stdp arguments (after --)")
    args = ap.parse_args(argv)
    if args.device is None:
        from vpf_spiking.spiking.devices import default_device

        args.device = default_device()

    if args.keep:
        root = Path(args.keep)
        root.mkdir(parents=True)
        tmp = None
    else:
        tmp = tempfile.TemporaryDirectory(prefix="vpf-first-run-")
        root = Path(tmp.name)
    try:
        cache, pycache = root / "cache", root / "pycache"
        cache.mkdir()
        pycache.mkdir()
        print(f"device: {args.device}; python: {args.python}; caches: {root} (empty)")
        print(f"command: vpf stdp --device {args.device} {' '.join(SMALL + args.extra)}")
        first, announced, res = run_once(args.python, args.device, cache, pycache, root / "first.csv", args.extra)
        times = {}
        try:
            times = json.loads((cache / "compile_times.json").read_text())
        except (OSError, ValueError):
            pass
        second, announced2, _ = run_once(args.python, args.device, cache, pycache, root / "second.csv", args.extra)
        print(f"first_run_s: {first:.1f}")
        if args.device in times:
            print(f"first_run_compile_s: {times[args.device]['seconds']:.1f}")
        print(f"first_run_announced_s: {announced if announced is not None else -1:.0f}")
        print(f"second_run_s: {second:.1f}")
        print(f"second_run_announced: {int(announced2 is not None)}")
        print("first run's output:\n  " + "\n  ".join((res.stderr + res.stdout).strip().splitlines()[-6:]))
    finally:
        if tmp is not None:
            tmp.cleanup()


if __name__ == "__main__":
    main()
