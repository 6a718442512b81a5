"""Retraining metric: how well fresh readouts decode each digit from each module ("Dynamics" M_bn).

The network is frozen. For every subset of modules (each module alone, then all modules together),
every digit k and every time step t, a fresh Linear -> ReLU -> Linear readout is trained to
classify digit k from the subset's features at step t. M(m, k) is the held-out accuracy of module
m's readout; b is chance, 1 / number of classes. With ``MetricConfig.readout_time`` ``shared`` (the
reference code's), one readout per (subset, digit) serves every step: it trains on the sum of the
per-step losses and is scored at each step.

All (subset × digit × step) readouts are trained at once as one batched model: their weights are
stacked along leading axes and applied with one broadcast matrix product. A readout for a single
module sees all features but its first-layer weights are masked to that module's, and each
readout is initialised like ``nn.Linear`` with its own fan-in. The loss is the sum of the
readouts' batch-mean cross-entropies and AdamW acts elementwise, so every readout follows exactly
the updates it would get if trained alone on the same batches. A readout whose held-out accuracy
reaches the stop accuracy at the end of an epoch is frozen there (its parameters are kept from
that epoch), as the reference code's early stop does for a single readout.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence, Union

import numpy as np
import torch
import torch.nn.functional as F

from ..config import MetricConfig
from .features import FeatureSet, feature_epochs
from .scores import MetricScores

__all__ = ["Readouts", "readout_loss", "train_readouts", "retraining_metric", "EVAL_CHUNK"]

#: Samples per chunk when evaluating readouts, to bound memory on large test sets.
EVAL_CHUNK = 4096


@dataclass
class Readouts:
    """Stacked readouts for S subsets × K digits × T steps (T = 1: one readout for every step).

    ``w1`` [S, K, T, D, H], ``b1`` [S, K, T, 1, H], ``w2`` [S, K, T, H, C], ``b2`` [S, K, T, 1, C]
    and the subset input masks ``masks`` [S, D] (D = M·F, module-major). Subset s < M is module s
    alone; the last subset is all modules.
    """

    w1: torch.Tensor
    b1: torch.Tensor
    w2: torch.Tensor
    b2: torch.Tensor
    masks: torch.Tensor

    @classmethod
    def initialise(
        cls, n_modules: int, n_features: int, n_digits: int, n_steps: int, hidden: int, n_classes: int,
        generator: torch.Generator, fan_in: str = "subset",
    ) -> "Readouts":
        """Fresh readouts, each initialised like ``nn.Linear``: U(−1/√fan_in, 1/√fan_in), with the
        first layer's fan-in that of the subset's features (``subset``) or of all (``network``)."""
        eye = torch.eye(n_modules).repeat_interleave(n_features, dim=1)  # [M, D]
        masks = torch.cat([eye, torch.ones(1, n_modules * n_features)])  # [S, D]
        n_subsets, dim = masks.shape
        lead = (n_subsets, n_digits, n_steps)
        fan_ins = masks.sum(1) if fan_in == "subset" else torch.full((n_subsets,), float(dim))
        bound1 = (1.0 / fan_ins.sqrt()).view(-1, 1, 1, 1, 1)
        bound2 = 1.0 / math.sqrt(hidden)

        def uniform(shape, bound):
            return (torch.rand(shape, generator=generator) * 2 - 1) * bound

        w1 = uniform(lead + (dim, hidden), bound1) * masks.view(n_subsets, 1, 1, dim, 1)
        b1 = uniform(lead + (1, hidden), bound1)
        w2 = uniform(lead + (hidden, n_classes), bound2)
        b2 = uniform(lead + (1, n_classes), bound2)
        return cls(w1, b1, w2, b2, masks)

    def parameters(self) -> list[torch.Tensor]:
        return [self.w1, self.b1, self.w2, self.b2]

    def logits(self, x: torch.Tensor, subsets: slice = slice(None)) -> torch.Tensor:
        """Logits [S, K, T, B, C] of flattened features ``x`` [T, B, D] (or [..., T, B, D])."""
        w1 = self.w1[subsets] * self.masks[subsets].view(-1, 1, 1, self.masks.shape[1], 1)
        hidden = torch.relu(x.unsqueeze(-4).unsqueeze(-5) @ w1 + self.b1[subsets])
        return hidden @ self.w2[subsets] + self.b2[subsets]

    @torch.no_grad()
    def accuracy(self, x: torch.Tensor, digits: torch.Tensor, subsets: slice = slice(None)) -> torch.Tensor:
        """Accuracy [..., S, K, T] on features ``x`` [..., T, B, D] with digits [B, K]."""
        correct = 0
        for start in range(0, x.shape[-2], EVAL_CHUNK):
            chunk = slice(start, start + EVAL_CHUNK)
            predicted = self.logits(x[..., chunk, :], subsets).argmax(-1)  # [..., S, K, T, B]
            target = digits[chunk].T.unsqueeze(-2)  # [K, 1, B]
            correct = correct + (predicted == target).sum(-1)
        return correct.double() / x.shape[-2]


def _flat(features: FeatureSet) -> torch.Tensor:
    return features.features.flatten(2)  # [T, B, M·F], module-major


def readout_loss(readouts: Readouts, x: torch.Tensor, digits: torch.Tensor) -> torch.Tensor:
    """Σ over readouts (subset, digit, step) of the batch-mean cross-entropy of digit k, for
    features x [T, B, D] and digits [B, K]. A time-shared readout (T = 1 in ``readouts``) is applied
    at every step, so its term is the sum of its per-step losses."""
    logits = readouts.logits(x)  # [S, K, T, B, C]
    target = digits.T.view(1, -1, 1, len(digits)).expand(logits.shape[:-1])
    loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), target.reshape(-1), reduction="sum")
    return loss / len(digits)


def train_readouts(
    train: Union[FeatureSet, Sequence[FeatureSet]], test: FeatureSet, config: MetricConfig, generator: torch.Generator
) -> tuple[Readouts, torch.Tensor]:
    """Train all readouts on ``train`` (or in epoch e on ``train[e mod len(train)]``: the same pairs
    with fresh input noise); return them and their held-out accuracy [S, K, T] on ``test``."""
    epochs = feature_epochs(train)
    for features in epochs:
        _check_pair(features, test)
    train = epochs[0]
    x_test = _flat(test)
    time_shared = config.readout_time == "shared"
    readouts = Readouts.initialise(
        train.n_modules, train.features.shape[3], train.n_digits, 1 if time_shared else train.n_steps,
        config.readout_hidden, train.n_classes, generator, config.readout_fan_in,
    )
    params = readouts.parameters()
    for p in params:
        p.requires_grad_(True)
    optimizer = torch.optim.AdamW(params, lr=config.readout_lr, weight_decay=config.readout_weight_decay)
    kept = [p.detach().clone() for p in params]
    stopped = torch.zeros(readouts.w1.shape[:3], dtype=torch.bool)  # [S, K, T or 1]
    accuracy = torch.zeros(stopped.shape[:2] + (train.n_steps,), dtype=torch.float64)
    for epoch in range(config.readout_epochs):
        x_train = _flat(epochs[epoch % len(epochs)])
        order = torch.randperm(train.n_samples, generator=generator)
        for start in range(0, train.n_samples, config.readout_batch_size):
            rows = order[start : start + config.readout_batch_size]
            loss = readout_loss(readouts, x_train[:, rows], train.digits[rows])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        accuracy = torch.where(stopped, accuracy, readouts.accuracy(x_test, test.digits))
        reached = accuracy >= config.readout_stop_accuracy
        newly = (reached.all(dim=2, keepdim=True) if time_shared else reached) & ~stopped
        for p, k in zip(params, kept):
            k[newly] = p.detach()[newly]
        stopped |= newly
        if stopped.all():
            break
    with torch.no_grad():
        for p, k in zip(params, kept):
            p.copy_(torch.where(stopped.view(stopped.shape + (1, 1)), k, p))
            p.requires_grad_(False)
    return readouts, accuracy


def retraining_metric(
    train: Union[FeatureSet, Sequence[FeatureSet]], test: FeatureSet, config: MetricConfig, generator: torch.Generator, steps: np.ndarray
) -> tuple[MetricScores, Readouts]:
    """M(m, k) = held-out accuracy of a readout trained on module m alone for digit k, per step.

    Returns the scores (``details``: ``all_modules_accuracy`` [T, K]) and the readouts, whose
    all-modules readouts the ablation metric reuses.
    """
    readouts, accuracy = train_readouts(train, test, config, generator)
    per_module = accuracy[:-1].permute(2, 0, 1).numpy()  # [T, M, K]
    details = {"all_modules_accuracy": accuracy[-1].T.numpy()}
    scores = MetricScores("retraining", per_module, 1.0 / test.n_classes, steps, details)
    return scores, readouts


def _check_pair(train: FeatureSet, test: FeatureSet) -> None:
    if train.features.shape[0] != test.features.shape[0] or train.features.shape[2:] != test.features.shape[2:]:
        raise ValueError(
            f"train features {tuple(train.features.shape)} and test features {tuple(test.features.shape)} "
            "must agree in steps, modules and features ([T, B, M, F])"
        )
    if train.n_digits != test.n_digits or train.n_classes != test.n_classes:
        raise ValueError("train and test features must have the same digits and classes")
