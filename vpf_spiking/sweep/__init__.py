"""Parameter sweeps on Dask: one protocol, run once per point of a grid (``vpf sweep``).

::

    from vpf_spiking.sweep import sweep
    df = sweep("protocols/train-rbm-mnist.toml",
               {"training.learning_rate": [1e-3, 1e-2], "training.method": ["vpf", "cd"]},
               out="runs/lr-method")

Each point runs exactly as ``vpf run PROTOCOL --set KEY=VALUE ... --out OUT/<point>`` would, in
a process of its own on a Dask worker (by default a :class:`distributed.LocalCluster` of one
single-threaded process per core; or an existing cluster: ``scheduler="tcp://HOST:8786"`` or
``$VPF_DASK_SCHEDULER``).  ``OUT/results.csv`` and ``OUT/results.md`` hold one row per point.
Points already complete in ``OUT`` are skipped, so running a sweep again continues it.

Modules
-------
- :mod:`.grid`: ``--grid KEY=V1,V2`` and ``[sweep]`` tables, product or zip, point names;
- :mod:`.engine`: :func:`sweep` (cluster, start-up check, submission, progress, results);
- :mod:`.worker`: what runs on a worker (:func:`~.worker.run_point`, the start-up check);
- :mod:`.point`: the child process of one point (``python -m vpf_spiking.sweep.point``);
- :mod:`.results`: per-point state files, summary figures, ``results.csv``/``results.md``;
- the ``vpf sweep`` subcommand is :mod:`vpf_spiking.cli.sweep`.

Importing this package does not import Dask; :func:`sweep` does (``pip install
'vpf-spiking[sweep]'``).  See ``docs/sweep.md``.
"""

import sys
import types

from .engine import SCHEDULER_ENV, plan, sweep
from .grid import Point, make_points, parse_grid, point_name


class _CallablePackage(types.ModuleType):
    """This package, callable: ``vpf_spiking.sweep(...)`` is :func:`vpf_spiking.sweep.sweep`."""

    def __call__(self, protocol, grid=None, client=None, **kwargs):
        return sweep(protocol, grid, client=client, **kwargs)


sys.modules[__name__].__class__ = _CallablePackage

__all__ = ["sweep", "plan", "parse_grid", "make_points", "point_name", "Point", "SCHEDULER_ENV"]
