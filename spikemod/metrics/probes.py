"""What each module knows of the other digit's parity: the parity probe.

The retraining readouts (:mod:`.retraining`) trained on the parity of digit k (2 classes) instead
of its identity: M(m, k) is the held-out accuracy of module m's readout for the parity of digit k,
b = 1/2. With the retraining metric (the identity of digit k) it tells apart a module that knows
only the one bit the task needs from the other module (its digit's parity) from one that knows
the other digit itself.
"""

from __future__ import annotations

import dataclasses
from typing import Sequence, Union

import numpy as np
import torch

from ..config import MetricConfig
from .features import FeatureSet, feature_epochs
from .retraining import retraining_metric
from .scores import MetricScores

__all__ = ["parity_features", "parity_metric"]


def parity_features(features: FeatureSet) -> FeatureSet:
    """The same features with each digit replaced by its parity (0 even, 1 odd; 2 classes)."""
    return FeatureSet(features.features, features.digits % 2, n_classes=2, kind=features.kind)


def parity_metric(
    train: Union[FeatureSet, Sequence[FeatureSet]], test: FeatureSet, config: MetricConfig, generator: torch.Generator, steps: np.ndarray
) -> MetricScores:
    """M(m, k) = held-out accuracy of module m's readout for the parity of digit k (b = 1/2).

    ``details``: ``all_modules_accuracy`` [T, K]."""
    epochs = [parity_features(t) for t in feature_epochs(train)]
    scores, _ = retraining_metric(epochs, parity_features(test), config, generator, steps)
    return dataclasses.replace(scores, name="parity")
