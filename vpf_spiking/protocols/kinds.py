"""The table of protocol kinds: ``kind = "..."`` in a protocol file -> the function that runs it.

Adding a kind: write a module in this package with ``run(config, out_dir)`` (add a ``resume``
keyword if the kind can continue an interrupted run; ``vpf run --resume`` passes it) and add
one line here.  ``run`` reads its tables with :func:`~vpf_spiking.protocols.config.table` and
:func:`~vpf_spiking.protocols.config.get_value`, which refuse unknown keys naming the file.
"""

from __future__ import annotations

from . import (ais, dbm_experiment, parzen, rbm_experiment, reconstruction, sample_quality, spiking_train, stdp,
               train)

KINDS = {
    "train": train.run,
    "spiking-train": spiking_train.run,
    "reconstruction": reconstruction.run,
    "parzen": parzen.run,
    "sample-quality": sample_quality.run,
    "ais": ais.run,
    "rbm-experiment": rbm_experiment.run,
    "dbm-experiment": dbm_experiment.run,
    "stdp": stdp.run,
}
