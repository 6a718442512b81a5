"""Ablation metric: how much decoding each digit suffers when one module is silenced ("Dynamics" M_ab).

The readouts retrained on all modules (see :mod:`.retraining`) are reused without training. Module
m's features are set to zero (its tanh state or its spikes silenced) and the held-out accuracy
A(m, k) of digit k's readout is measured at every step.

A module that carries digit k drives A(m, k) down to chance, so the raw value is the accuracy
lost, mapped onto the same [b, 1] scale as the other metrics: M(m, k) = 1 + b − A(m, k), b =
chance. Then M̄(m, k) = 1 − clip((A(m, k) − b) / (1 − b), 0, 1): 1 when the ablation leaves
chance accuracy, 0 when it costs nothing. The reference code scores A(m, k) itself; since
F = |F^0 − F^1| / 2 is symmetric, F is the same, while F^m here has the sign of the other metrics.
"""

from __future__ import annotations

import numpy as np
import torch

from .features import FeatureSet
from .retraining import Readouts
from .scores import MetricScores

__all__ = ["ablation_metric"]


def ablation_metric(readouts: Readouts, test: FeatureSet, steps: np.ndarray, score: str = "lost") -> MetricScores:
    """M(m, k) = 1 + b − A(m, k) (``score`` ``lost``) or A(m, k) itself (``remaining``, the
    reference's), with A the all-modules readout's accuracy when module m is zeroed.

    ``details``: ``ablated_accuracy`` A [T, M, K] and ``all_modules_accuracy`` [T, K].
    """
    if score not in ("lost", "remaining"):
        raise ValueError(f"unknown ablation score {score!r}: use 'lost' or 'remaining'")
    n_modules = test.n_modules
    keep = 1.0 - torch.eye(n_modules).repeat_interleave(test.features.shape[3], dim=1)  # [M, D]
    x = test.features.flatten(2)  # [T, B, D]
    all_modules = slice(n_modules, n_modules + 1)
    ablated = readouts.accuracy(x * keep[:, None, None, :], test.digits, all_modules)  # [M, 1, K, T]
    full = readouts.accuracy(x, test.digits, all_modules)[0]  # [K, T]
    ablated = ablated[:, 0].permute(2, 0, 1).numpy()  # [T, M, K]
    chance = 1.0 / test.n_classes
    details = {"ablated_accuracy": ablated, "all_modules_accuracy": full.T.numpy()}
    raw = 1.0 + chance - ablated if score == "lost" else ablated
    return MetricScores("ablation", raw, chance, steps, details)
