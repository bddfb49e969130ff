"""Evaluation of trained Boltzmann machines (spec section 7).

- :mod:`.reconstruction`: corrupted-image reconstruction by clamped Gibbs sampling.
- :mod:`.parzen`: Parzen-window log-likelihood of model samples (Goodfellow et al. 2014).
- :mod:`.ais`: annealed importance sampling of log Z and the test log-likelihood.
- :mod:`.diagnostics`: weight statistics and hidden activations during training.
- :mod:`.sample_quality`: blank share, classifier confidence, class coverage and Fréchet distance of samples.

A library: the protocol kinds that run these (``reconstruction``, ``parzen``, ``ais``, the rbm and
dbm experiments) live in :mod:`vpf_spiking.protocols`, ``vpf evaluate`` in :mod:`vpf_spiking.cli`.
"""

from .ais import (AISResult, IntermediateDistribution, RBMAnnealing, ais, annealing_schedule,
                  evaluate_ais, exact_log_z, rbm_log_likelihood, rbm_log_unnormalized)
from .diagnostics import (DiagnosticsCallback, activation_summary, hidden_activation, mean_squared_weight,
                          weight_sparsity, write_table)
from .parzen import DEFAULT_SIGMAS, parzen_evaluate, parzen_log_density
from .reconstruction import (DEFAULT_PATTERNS, Corruption, evaluate_reconstruction, parse_patterns,
                             reconstruct, reconstruction_errors, reconstruction_wide, summarize_errors)
from .sample_quality import (SampleClassifier, blank_fraction, class_coverage, class_entropy,
                             confident_share, frechet_distance, sample_quality, stroke_components)

__all__ = [
    "AISResult", "IntermediateDistribution", "RBMAnnealing", "ais", "annealing_schedule",
    "evaluate_ais", "exact_log_z", "rbm_log_likelihood", "rbm_log_unnormalized",
    "DiagnosticsCallback", "activation_summary", "hidden_activation", "mean_squared_weight", "weight_sparsity",
    "write_table",
    "DEFAULT_SIGMAS", "parzen_evaluate", "parzen_log_density",
    "DEFAULT_PATTERNS", "Corruption", "evaluate_reconstruction", "parse_patterns", "reconstruct",
    "reconstruction_errors", "reconstruction_wide", "summarize_errors",
    "SampleClassifier", "blank_fraction", "class_coverage", "class_entropy", "confident_share",
    "frechet_distance", "sample_quality", "stroke_components",
]
