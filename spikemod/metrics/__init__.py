"""Functional specialization metrics: retraining, ablation, correlation and weight masks.

Entry points: :func:`measure` (a trained network) and :func:`measure_features` (features recorded
anywhere, e.g. Lava spike counts, via :func:`module_features`). Formulas: :mod:`.scores`.
"""

from .features import FeatureSet, extract_features, module_features
from .scores import (
    MetricScores,
    extreme_sparsity_specialization,
    module_specialization,
    network_specialization,
    normalise,
)
from .suite import SpecializationResult, measure, measure_checkpoint, measure_features, measure_onset_pairs

__all__ = [
    "FeatureSet",
    "MetricScores",
    "SpecializationResult",
    "extract_features",
    "extreme_sparsity_specialization",
    "measure",
    "measure_checkpoint",
    "measure_features",
    "measure_onset_pairs",
    "module_features",
    "module_specialization",
    "network_specialization",
    "normalise",
]
