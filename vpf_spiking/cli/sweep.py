"""``vpf sweep``: run a protocol once per point of a grid, on a local or a remote Dask cluster.

``add_parser(subparsers)`` adds the subcommand and ``run(args)`` runs it (exit status 0 when
every point is done, 1 when some failed, 130 when interrupted; usage and protocol errors are
:class:`~vpf_spiking.errors.ConfigError`, printed by ``vpf`` as one line).
"""

from __future__ import annotations

import sys

from .common import command_line, formatter

DESCRIPTION = """\
Run a protocol once per point of a grid, each point exactly as
'vpf run PROTOCOL --set KEY=VALUE ... --out DIR/<point>' would, on Dask: by default a local
cluster of one single-threaded worker process per core, or an existing cluster (--scheduler or
$VPF_DASK_SCHEDULER).  DIR/results.csv and DIR/results.md get one row per point (grid values,
status, wall time, the run's summary figures).  Points complete in DIR are skipped, so the same
command continues an interrupted sweep; a failing point is recorded and the others go on.

The grid is the product of the --grid options (or their values paired in order with --zip);
without --grid the protocol's [sweep] table is used:

  [sweep]
  training.learning_rate = [1e-3, 1e-2]
  training.method = ["vpf", "cd"]
  zip = false

examples:
  vpf sweep protocols/train-rbm-mnist.toml --grid training.learning_rate=1e-3,1e-2 \\
      --grid training.method=vpf,cd --set training.epochs=2 --out runs/lr-method
  vpf sweep protocols/sweep-rbm-toy.toml --out runs/toy-sweep --workers 2
  dask scheduler &  dask worker tcp://HOST:8786 &
  vpf sweep PROTOCOL.toml --grid training.seed=0,1,2,3 --scheduler tcp://HOST:8786 --out DIR
"""


def add_parser(subparsers):
    p = subparsers.add_parser("sweep", help="run a protocol over a grid of settings on Dask (local or a cluster)",
                              description=DESCRIPTION, formatter_class=formatter)
    p.add_argument("protocol", metavar="PROTOCOL.toml", help="protocol file (may hold a [sweep] table)")
    p.add_argument("--grid", action="append", default=[], metavar="KEY=V1,V2,...",
                   help="a swept protocol key and its values, typed as for --set (repeatable)")
    p.add_argument("--zip", action="store_true", help="pair the grids' values in order instead of their product")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a protocol value in every point (repeatable)")
    p.add_argument("--out", metavar="DIR", help="sweep folder (default: runs/<protocol name>-sweep)")
    g = p.add_argument_group("cluster")
    g.add_argument("--workers", type=int, metavar="N",
                   help="worker processes of the local cluster (default: one per core, at most one per point)")
    g.add_argument("--scheduler", metavar="ADDR",
                   help="use the Dask cluster at ADDR (e.g. tcp://10.0.0.5:8786; default: $VPF_DASK_SCHEDULER)")
    g.add_argument("--retries", type=int, default=2, metavar="R",
                   help="runs again of a point whose process was killed (default: 2)")
    g.add_argument("--blas-threads", type=int, metavar="T",
                   help="BLAS threads per point (default: a machine's cores / its workers)")
    g.add_argument("--no-check", action="store_true",
                   help="skip the start-up check of the workers (imports, protocol, folder, data)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run)
    return p


def run(args) -> int:
    from ..errors import ConfigError
    from ..sweep import sweep

    if args.retries is not None and args.retries < 0:
        raise ConfigError(f"--retries must be 0 or more, got {args.retries}")
    if args.blas_threads is not None and args.blas_threads < 1:
        raise ConfigError(f"--blas-threads must be 1 or more, got {args.blas_threads}")
    command = command_line(args)
    try:
        df = sweep(args.protocol, args.grid or None, out=args.out, zip=args.zip, overrides=args.overrides,
                   n_workers=args.workers, scheduler=args.scheduler, retries=args.retries,
                   progress=not args.no_progress, check=not args.no_check, blas_threads=args.blas_threads,
                   command=command)
    except KeyboardInterrupt:
        return 130
    failed = df[df["status"] != "done"]
    for _, row in failed.iterrows():
        print(f"vpf sweep: point {row['point']} {row['status']}: {row['error']}", file=sys.stderr)
    return 1 if len(failed) else 0
