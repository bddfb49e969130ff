"""STDP pairing protocols on the spiking engine: closed form, simulation, fit to Bi & Poo (1998).

* :mod:`.theory` -- expected weight changes (spec section 6 and its exact generalisations), the
  Bi & Poo curve and fits; numpy and scipy only;
* :mod:`.protocol` -- :class:`PairingProtocol`, its checks and the layout of the simulation;
* :mod:`.simulation` -- :func:`simulate` on any back-end of :mod:`vpf_spiking.spiking.devices`,
  the table (CSV), the comparison with the run's exact reference, the fit of a run, the figure.
"""

from .protocol import QUIET_TAUS, PairingProtocol
from .simulation import StdpResult, comparison, figure, fit_of_run, interacting, plot, simulate, write_csv
from .theory import (
    BI_POO, BI_POO_PAIRINGS, RULES, StdpFit, bi_poo_curve, closed_form, expected_change, expected_change_discrete,
    fit_bi_poo, fit_closed_form, neuron_tau_ms, spontaneous_rate_hz, step_probability,
)

__all__ = [
    "BI_POO", "BI_POO_PAIRINGS", "PairingProtocol", "QUIET_TAUS", "RULES", "StdpFit", "StdpResult",
    "bi_poo_curve", "closed_form", "comparison", "figure", "expected_change", "expected_change_discrete", "fit_bi_poo",
    "fit_closed_form", "fit_of_run", "interacting", "neuron_tau_ms", "plot", "simulate",
    "spontaneous_rate_hz", "step_probability", "write_csv",
]
