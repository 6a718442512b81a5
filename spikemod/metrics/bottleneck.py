"""Bottleneck metric ("Extreme sparsity" 3.1): how well module m's bottleneck names digit k.

The trained network is frozen except module m's bottleneck-to-readout weights W_br^(m) and biases
β_br^(m) (of one head), which are re-initialised like ``nn.Linear`` (U(±1/√k), k bottleneck units)
and retrained so that module m's logits r^(m) = W_br^(m)·b^(m) + β_br^(m) name digit k:
cross-entropy, Adadelta (``MetricConfig.bottleneck_lr``, 0.5 in the paper) for
``bottleneck_epochs`` (5) epochs in batches of ``readout_batch_size``. M(m, k) is the held-out
accuracy of r^(m); b is chance.

Everything before the readout is frozen, so this is a linear classifier on module m's bottleneck
units b^(m) [k] as its readout sees them (:func:`readout_units`), computed once per split: all (module × digit × step) classifiers train at once as
one batched model, each on its own units, and each follows the updates it would get alone
(Adadelta is elementwise and the summed losses do not mix).
"""

from __future__ import annotations

import math
from typing import Tuple

import numpy as np
import torch
import torch.nn.functional as F

from ..config import MetricConfig, RunConfig
from ..dynamics import leaky_integral
from .features import FeatureSet
from .scores import MetricScores

__all__ = ["readout_units", "train_bottleneck_readouts", "bottleneck_metric"]


def readout_units(units: FeatureSet, config: RunConfig) -> FeatureSet:
    """The bottleneck units [T, B, M, k] as the readout sees them: a spiking network's leaky
    (membrane) readout integrates W_br·b_t + β_br over steps, so W_br reads Σ_s λ^(t−s)·b_s (the
    bias absorbs the rest); a rate network's or a count readout's reads b_t itself."""
    model = config.model
    if model.variant != "spiking" or model.spike_readout != "membrane":
        return units
    return FeatureSet(leaky_integral(units.features, model.beta), units.digits, units.n_classes, units.kind)


def train_bottleneck_readouts(
    train: FeatureSet, config: MetricConfig, generator: torch.Generator
) -> Tuple[torch.Tensor, torch.Tensor]:
    """Weights [M, K, T, k, C] and biases [M, K, T, 1, C] of linear readouts, one per (module m,
    digit k, step t), trained on module m's bottleneck units ``train.features`` [T, B, M, k]."""
    n_steps, n_samples, n_modules, units = train.features.shape
    n_digits, n_classes = train.n_digits, train.n_classes
    bound = 1.0 / math.sqrt(units)
    lead = (n_modules, n_digits, n_steps)
    weight = ((torch.rand(lead + (units, n_classes), generator=generator) * 2 - 1) * bound).requires_grad_(True)
    bias = ((torch.rand(lead + (1, n_classes), generator=generator) * 2 - 1) * bound).requires_grad_(True)
    optimizer = torch.optim.Adadelta([weight, bias], lr=config.bottleneck_lr)
    x = train.features.permute(2, 0, 1, 3)  # [M, T, B, k]
    for _ in range(config.bottleneck_epochs):
        order = torch.randperm(n_samples, generator=generator)
        for start in range(0, n_samples, config.readout_batch_size):
            rows = order[start : start + config.readout_batch_size]
            logits = x[:, None, :, rows] @ weight + bias  # [M, K, T, B, C]
            target = train.digits[rows].T.view(1, n_digits, 1, len(rows)).expand(logits.shape[:-1])
            loss = F.cross_entropy(logits.reshape(-1, n_classes), target.reshape(-1), reduction="sum")
            optimizer.zero_grad(set_to_none=True)
            (loss / len(rows)).backward()
            optimizer.step()
    return weight.detach(), bias.detach()


@torch.no_grad()
def bottleneck_metric(
    train: FeatureSet, test: FeatureSet, config: MetricConfig, generator: torch.Generator, steps: np.ndarray
) -> MetricScores:
    """M(m, k) = held-out accuracy of module m's retrained bottleneck-to-readout layer for digit k.

    ``train`` and ``test`` hold bottleneck units [T, B, M, k] at the measured ``steps``.
    """
    if train.kind != "bottleneck" or test.kind != "bottleneck":
        raise ValueError(
            "the bottleneck metric reads the bottleneck units: train the network with model.bottleneck "
            "(the paper uses 5) and measure it with spikemod.metrics.measure"
        )
    with torch.enable_grad():
        weight, bias = train_bottleneck_readouts(train, config, generator)
    x = test.features.permute(2, 0, 1, 3)  # [M, T, B, k]
    predicted = (x[:, None] @ weight + bias).argmax(-1)  # [M, K, T, B]
    correct = predicted == test.digits.T.view(1, test.n_digits, 1, -1)
    accuracy = correct.double().mean(-1).permute(2, 0, 1).numpy()  # [T, M, K]
    return MetricScores("bottleneck", accuracy, 1.0 / test.n_classes, steps)
