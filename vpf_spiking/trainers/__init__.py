"""Batch trainers: VPF (Algorithms 1-2 of the spec) for any Boltzmann machine, CD-k / PCD-k for RBMs.

All trainers share one interface::

    trainer = make_trainer("vpf", epochs=10, batch_size=100, learning_rate=1e-3)
    metrics = trainer.fit(model, x)            # pandas DataFrame, one row per epoch

and update ``model`` in place.  The work is vectorised float32 numpy (see ``docs/training.md``
and ``benchmarks/rbm_epoch.py``).

Modules: :mod:`~.base` (the epoch loop, checkpoints, history), :mod:`~.vpf` (the VPF trainer and
its M-step kernel), :mod:`~.contrastive` (CD / PCD), :mod:`~.params` (every option, declared
once), :mod:`~.optim` (Adam, SGD) and :mod:`~.threads` (the threading policy).
"""

from __future__ import annotations

from ..errors import ConfigError
from . import params
from .base import PROBE_EXAMPLES, Trainer, check_training_data, probe_metrics
from .contrastive import CDTrainer
from .vpf import _E_CHUNK, FlowWorkspace, VPFTrainer, flow_gradient, online_vpf


def make_trainer(method: str, **kwargs):
    """``"vpf"`` -> :class:`VPFTrainer`, ``"cd"`` -> CD-k, ``"pcd"`` -> PCD-k (:class:`CDTrainer`).

    ``kwargs``: ``epochs``, ``checkpoint`` and the options of :mod:`vpf_spiking.trainers.params`.
    """
    m = params.METHOD.check(method, "training method")
    if "persistent" in kwargs:
        raise ConfigError("choose method 'cd' or 'pcd' instead of passing persistent=")
    if m == "vpf":
        return VPFTrainer(**kwargs)
    return CDTrainer(persistent=(m == "pcd"), **kwargs)


__all__ = ["CDTrainer", "FlowWorkspace", "PROBE_EXAMPLES", "Trainer", "VPFTrainer", "check_training_data",
           "flow_gradient", "make_trainer", "online_vpf", "params", "probe_metrics", "_E_CHUNK"]
