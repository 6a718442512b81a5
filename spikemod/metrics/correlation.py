"""Correlation metric: how much a module's state is fixed by one digit ("Dynamics" M_cr).

Each sample i gets, for digit k, a partner j ≠ i whose digit k has the same class while its other
digit is drawn independently of i's (class drawn from the other digit's marginal, as far as the
data holds such a pair; the reference code shuffles the other digit instead, which requires
re-running the network). M(m, k) is the mean, over samples, of the similarity between module m's
feature vectors of i and j; b(m) is the same mean over random pairs (j ≠ i uniform). Then
M̄ = clip((M − b) / (1 − b), 0, 1).

The reference code's procedure (``MetricConfig.correlation_procedure`` ``reshuffled``,
:func:`reshuffled_correlation_metric`) re-runs the network instead: for digit k, the other digit's
slot of a test batch is replaced by a random permutation of the batch's, the samples are grouped by
digit k's class, and each sample is paired with a derangement of its group; a group's mean
correlation counts once, whatever its size. b is the mean correlation of a derangement of the
unmodified batch. At c > 0 this breaks the digits' covariance; the matched pairs stay in the data's
distribution.

Similarities: ``pearson``, the Pearson correlation of the two vectors over their F entries
(pairs where either vector is constant are left out of the mean), or ``cka``, linear CKA
(Kornblith et al. 2019) between the [B, F] matrices of samples and of their partners, a similarity
in [0, 1] (the "Extreme sparsity" appendix plots 1 − CKA as a distance).
"""

from __future__ import annotations

from typing import Tuple

import numpy as np
import torch

from ..config import RunConfig
from ..task import network_input, noise_fits
from .features import FeatureSet, output_features
from .scores import MetricScores

__all__ = [
    "matched_partners",
    "random_partners",
    "derangement",
    "class_group_similarity",
    "pearson_similarity",
    "cka_similarity",
    "correlation_metric",
    "reshuffled_correlation_metric",
]


def matched_partners(digits: torch.Tensor, k: int, n_classes: int, generator: torch.Generator) -> torch.Tensor:
    """For each sample, a partner index [B] sharing digit k's class; −1 where there is none.

    The partner's other digit class is drawn from that digit's marginal distribution among the
    classes that occur together with the sample's digit-k class, so that the other digit varies
    independently of the sample even when the data's digits covary.
    """
    if digits.shape[1] != 2:
        raise ValueError(f"the correlation metric pairs two digits; got digits of shape {tuple(digits.shape)}")
    own, other = digits[:, k], digits[:, 1 - k]
    cell = own * n_classes + other
    counts = torch.bincount(cell, minlength=n_classes**2)
    order = torch.argsort(cell, stable=True)
    starts = torch.cumsum(counts, 0) - counts
    rank = torch.empty_like(order)
    rank[order] = torch.arange(len(order))
    position = rank - starts[cell]  # position of each sample within its own cell

    classes = torch.arange(n_classes)
    cells = own[:, None] * n_classes + classes[None, :]  # [B, C] candidate cells
    available = counts[cells] - (classes[None, :] == other[:, None]).long()  # excluding the sample itself
    marginal = torch.bincount(other, minlength=n_classes).double()
    weights = marginal[None, :] * (available > 0)
    valid = weights.sum(1) > 0
    weights[~valid] = 1.0
    chosen = torch.multinomial(weights, 1, generator=generator)[:, 0]
    target = cells[torch.arange(len(cells)), chosen]
    n_available = available[torch.arange(len(cells)), chosen].clamp(min=1)
    offset = (torch.rand(len(cells), generator=generator, dtype=torch.float64) * n_available).long()
    offset = offset.clamp(max=n_available - 1)
    offset = offset + ((target == cell) & (offset >= position)).long()  # skip the sample itself
    partner = order[starts[target] + offset]
    return torch.where(valid, partner, torch.full_like(partner, -1))


def random_partners(n_samples: int, generator: torch.Generator) -> torch.Tensor:
    """For each sample i, a partner j ≠ i drawn uniformly."""
    if n_samples < 2:
        raise ValueError("the correlation metric needs at least 2 samples")
    shift = torch.randint(1, n_samples, (n_samples,), generator=generator)
    return (torch.arange(n_samples) + shift) % n_samples


def pearson_similarity(features: torch.Tensor, partner: torch.Tensor) -> torch.Tensor:
    """Mean Pearson correlation [T, M] between features [T, B, M, F] of samples and partners.

    Samples with partner −1, and pairs where either vector has zero variance, are left out.
    """
    centred = features.double() - features.double().mean(-1, keepdim=True)
    norm = centred.norm(dim=-1, keepdim=True)
    unit = torch.where(norm > 0, centred / norm, torch.full_like(centred, float("nan")))
    valid = partner >= 0
    corr = (unit[:, valid] * unit[:, partner[valid]]).sum(-1)  # [T, B', M]
    return corr.nanmean(1)


def cka_similarity(features: torch.Tensor, partner: torch.Tensor) -> torch.Tensor:
    """Linear CKA [T, M] between the [B, F] features of samples and of their partners."""
    valid = partner >= 0
    x = features[:, valid].double()
    y = features[:, partner[valid]].double()
    x = x - x.mean(1, keepdim=True)
    y = y - y.mean(1, keepdim=True)
    cross = torch.einsum("tbmf,tbmg->tmfg", x, y).pow(2).sum((-1, -2))
    self_x = torch.einsum("tbmf,tbmg->tmfg", x, x).pow(2).sum((-1, -2)).sqrt()
    self_y = torch.einsum("tbmf,tbmg->tmfg", y, y).pow(2).sum((-1, -2)).sqrt()
    return cross / (self_x * self_y)


SIMILARITIES = {"pearson": pearson_similarity, "cka": cka_similarity}


def correlation_metric(
    features: FeatureSet, kind: str, generator: torch.Generator, steps: np.ndarray
) -> MetricScores:
    """M(m, k) = mean similarity of module m's features across pairs sharing digit k's class; b = random pairs.

    ``details``: ``base`` b [T, M].
    """
    if kind not in SIMILARITIES:
        raise ValueError(f"unknown correlation kind {kind!r}: use one of {', '.join(SIMILARITIES)}")
    similarity = SIMILARITIES[kind]
    raw = torch.stack(
        [similarity(features.features, matched_partners(features.digits, k, features.n_classes, generator))
         for k in range(features.n_digits)],
        -1,
    )  # [T, M, K]
    base = similarity(features.features, random_partners(features.n_samples, generator))  # [T, M]
    base = base.numpy()
    return MetricScores("correlation", raw.numpy(), base[..., None], steps, {"base": base})


def derangement(n: int, generator: torch.Generator) -> torch.Tensor:
    """A uniformly random permutation of range(n) without fixed points (n >= 2), by rejection
    (about e draws on average)."""
    if n < 2:
        raise ValueError(f"a derangement needs at least 2 elements, got {n}")
    identity = torch.arange(n)
    while True:
        permutation = torch.randperm(n, generator=generator)
        if not bool((permutation == identity).any()):
            return permutation


def class_group_similarity(features: torch.Tensor, classes: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Mean over the class groups (each group once) of the mean Pearson correlation [T, M] between
    each member and a derangement of its group; groups of one sample are left out."""
    groups = []
    for c in classes.unique().tolist():
        members = (classes == c).nonzero()[:, 0]
        if len(members) < 2:
            continue
        partner = torch.full((len(classes),), -1)
        partner[members] = members[derangement(len(members), generator)]
        groups.append(pearson_similarity(features, partner))
    return torch.stack(groups).mean(0)


@torch.no_grad()
def reshuffled_correlation_metric(
    model: torch.nn.Module,
    dataset,
    config: RunConfig,
    inputs: torch.Generator,
    pairs: torch.Generator,
    steps: np.ndarray,
) -> Tuple[MetricScores, str]:
    """The reference code's correlation (see the module docs) on the first
    ``config.metrics.correlation_batches`` test batches of ``config.train.batch_size`` pairs of
    ``dataset`` (a :class:`~spikemod.task.PairDataset`): per batch, M(m, k) and b(m) as described,
    then their means over batches. ``inputs`` draws the input noise, ``pairs`` the permutations.
    Returns the scores (``details``: ``base`` b [T, M]) and the kind of features correlated.
    """
    rows = torch.as_tensor(steps - 1)
    source = config.metrics.feature_source
    n_batches = config.metrics.correlation_batches
    was_training = model.training
    model.eval()

    kind = "unspecified"

    def features(x: torch.Tensor, static: bool) -> torch.Tensor:
        nonlocal kind
        output = model(x.to(model.device), static=static).to("cpu")
        values, kind = output_features(output, config, source)
        return values[rows]

    raw, base = [], []
    try:
        for batch in dataset.batches(config.train.batch_size):
            if n_batches is not None and len(raw) == n_batches:
                break
            size = len(batch.digits)
            if size < 2 or not noise_fits(size, config):
                continue
            x, static = network_input(batch.images, config, inputs)
            base.append(pearson_similarity(features(x, static), derangement(size, pairs)))
            per_digit = []
            for k in range(batch.digits.shape[1]):
                other = 1 - k
                mixed = x.clone()
                mixed[:, :, other] = x[:, torch.randperm(size, generator=pairs), other]
                per_digit.append(class_group_similarity(features(mixed, static), batch.digits[:, k], pairs))
            raw.append(torch.stack(per_digit, -1))  # [T, M, K]
    finally:
        model.train(was_training)
    if not raw:
        raise ValueError("the reshuffled correlation needs at least one test batch of 2 or more pairs")
    mean_base = torch.stack(base).mean(0).numpy()  # [T, M]
    scores = MetricScores("correlation", torch.stack(raw).mean(0).numpy(), mean_base[..., None], steps, {"base": mean_base})
    return scores, kind
