"""Weight-mask metric: which module's weights a sub-task needs ("Extreme sparsity", Ramanujan et al. 2020).

The trained weights are frozen. Every module parameter entry gets a score; the forward pass keeps
only the entries whose scores are in the global top q (``MetricConfig.mask_fraction``, default
0.05) and zeroes the others. The scores are trained with edge-popup (straight-through gradient of
the binary mask) so that the masked network outputs digit k at step t: the cross-entropy of every
readout head against digit k, SGD with ``mask_lr`` (0.1), momentum 0.9 and weight decay 5e-4, for
``mask_epochs`` epochs, as in the "Extreme sparsity" code. Scores start like that code's: Kaiming
uniform U(−1/√fan_in, 1/√fan_in) for weights, N(0, 0.01²) for biases.

Module parameters, and who owns them: the existing connections inside module m (the dense
diagonal block without self-connections), the hidden biases of module m's neurons, and module m's
bottleneck and readout weights and biases (a shared readout's weights from module m's features).
Not masked, as in the reference: input weights, the interconnect (fixed or Deep-R), a shared
readout's bias and the LIF parameters.

M(m, k) = fraction of the kept entries that belong to module m; b = 0, the value of a module none
of whose weights the sub-task keeps (no link). Equal shares (1/M each) give F = 0. One mask is
trained per digit and per measured step (the loss is taken at that step). All of them train
together, on the same batches, as copies of the network in one
:class:`~spikemod.stack.NetworkStack` (one batched forward pass, for every kind of network). SGD
is elementwise, so each mask trains as it would alone.
"""

from __future__ import annotations

import math
from typing import Dict

import numpy as np
import torch
import torch.nn.functional as F
from torch.func import functional_call

from ..config import RunConfig
from ..connectivity import intra_module_mask
from ..stack import NetworkStack
from ..task import network_input
from .scores import MetricScores

__all__ = ["parameter_owners", "weight_mask_metric", "MASK_MOMENTUM", "MASK_WEIGHT_DECAY"]

MASK_MOMENTUM = 0.9
MASK_WEIGHT_DECAY = 5e-4
#: Parameters that are never masked (see the module docstring).
UNMASKED = ("w_in", "interconnect.theta", "lif.beta", "lif.threshold")


def parameter_owners(model: torch.nn.Module) -> Dict[str, torch.Tensor]:
    """For each masked parameter, a LongTensor of its shape: the owning module, or −1 (not masked).

    Raises on a parameter this metric does not know, so a change to the network cannot silently
    leave weights out of (or put them into) the metric.
    """
    m, n = model.n_modules, model.n_neurons
    neuron_module = torch.arange(m).repeat_interleave(n)
    owners: Dict[str, torch.Tensor] = {}
    for name, param in model.named_parameters():
        if name in UNMASKED:
            continue
        if name == "w_rec":
            owner = neuron_module[:, None].expand(m * n, m * n)
            owners[name] = torch.where(intra_module_mask(m, n), owner, -1)
        elif name == "b":
            owners[name] = neuron_module.clone()
        elif name in ("bottleneck.weight", "bottleneck.bias") or (
            name in ("readout.weight", "readout.bias") and model.config.readout_scheme in ("separate", "concat")
        ):  # one layer per module: [M, out, in] and [M, out]
            owners[name] = torch.arange(m).view((m,) + (1,) * (param.ndim - 1)).expand(param.shape).clone()
        elif name == "readout.weight":  # shared readout [outputs, M·features]
            features = param.shape[1] // m
            owners[name] = torch.arange(m).repeat_interleave(features).expand(param.shape).clone()
        elif name == "readout.bias":
            owners[name] = torch.full(param.shape, -1)
        else:
            raise ValueError(f"the weight-mask metric does not know parameter {name!r} of {type(model).__name__}")
    return owners


def _initial_scores(
    owners: Dict[str, torch.Tensor], model: torch.nn.Module, n_masks: int, generator: torch.Generator
) -> Dict[str, torch.Tensor]:
    """Scores [n_masks, *shape] of every masked parameter (drawn on the CPU, kept on the model's device)."""
    params = dict(model.named_parameters())
    scores = {}
    for name in owners:
        shape = (n_masks,) + tuple(params[name].shape)
        if name.endswith("bias") or name == "b":
            scores[name] = torch.randn(shape, generator=generator) * 1e-2
        else:
            fan_in = model.n_neurons if name == "w_rec" else shape[-1]
            bound = 1.0 / math.sqrt(fan_in)
            scores[name] = (torch.rand(shape, generator=generator) * 2 - 1) * bound
        scores[name] = scores[name].to(params[name].device).requires_grad_(True)
    return scores


def _masks(scores: Dict[str, torch.Tensor], owners: Dict[str, torch.Tensor], fraction: float):
    """Straight-through binary masks [n_masks, *shape] (1 for kept and for unmasked entries), each
    keeping its own global top ``fraction``, and the owner of every kept entry [n_masks, kept]."""
    names = list(scores)
    n_masks = len(scores[names[0]])
    candidate = torch.cat([(owners[n] >= 0).flatten() for n in names])
    flat = torch.cat([scores[n].flatten(1) for n in names], dim=1)  # [n_masks, entries]
    n_keep = max(1, int(round(fraction * int(candidate.sum()))))
    ranked = torch.where(candidate, flat.detach(), torch.tensor(-math.inf))
    keep = torch.zeros_like(flat, dtype=torch.bool).scatter_(1, ranked.topk(n_keep, dim=1).indices, True)
    binary = keep.to(flat.dtype) + flat - flat.detach()  # straight-through: d mask / d score = 1
    binary = torch.where(candidate, binary, torch.ones_like(binary))
    parts = binary.split([scores[n][0].numel() for n in names], dim=1)
    masks = {n: part.view_as(scores[n]) for n, part in zip(names, parts)}
    owner = torch.cat([owners[n].flatten() for n in names])
    return masks, owner.expand(n_masks, -1)[keep].view(n_masks, n_keep)


def _masked_logits(stack: NetworkStack, frozen, masks, images, config: RunConfig, generator) -> torch.Tensor:
    """Logits [T, n_masks, B, H, C] of the network under each mask (its module parameters masked):
    the masks' networks are the copies of ``stack``, reading one input."""
    x, static = network_input(images, config, generator)
    params = {f"stacked.{name.replace('.', '__')}": frozen[name] * mask for name, mask in masks.items()}
    return functional_call(stack, params, (x[:, None].to(stack.device),), {"static": static}).logits


def _at_own_step(logits: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
    """Each mask's logits at its own step: [T, n_masks, B, H, C], step rows [n_masks] -> [n_masks, B, H, C]."""
    return logits[rows, torch.arange(len(rows))]


def _train_masks(model, stack, frozen, owners, train_data, config: RunConfig, generator, rows, digits):
    """Edge-popup scores [n_masks, ...] trained so that mask j's network outputs ``digits[j]`` at
    step row ``rows[j]`` (the cross-entropy of every head; the masks' losses are summed)."""
    cfg = config.metrics
    scores = _initial_scores(owners, model, len(rows), generator)
    optimizer = torch.optim.SGD(
        list(scores.values()), lr=cfg.mask_lr, momentum=MASK_MOMENTUM, weight_decay=MASK_WEIGHT_DECAY
    )
    for _ in range(cfg.mask_epochs):
        for batch in train_data.batches(config.train.batch_size, shuffle=True, generator=generator):
            masks, _ = _masks(scores, owners, cfg.mask_fraction)
            logits = _at_own_step(_masked_logits(stack, frozen, masks, batch.images, config, generator), rows)
            n_masks, size, heads, classes = logits.shape
            target = batch.digits[:, digits].T[..., None].expand(n_masks, size, heads).to(logits.device)  # every head
            loss = F.cross_entropy(logits.reshape(-1, classes), target.reshape(-1), reduction="none")
            optimizer.zero_grad(set_to_none=True)
            loss.view(n_masks, -1).mean(dim=1).sum().backward()
            optimizer.step()
    return scores


def weight_mask_metric(
    model: torch.nn.Module, train_data, test_data, config: RunConfig, generator: torch.Generator, steps: np.ndarray
) -> MetricScores:
    """M(m, k) at each of ``steps`` (1-based): module m's share of a supermask trained to output digit k there.

    ``details``: ``mask_accuracy`` [T, K] (held-out accuracy of the masked network, mean over heads).
    """
    owners = {name: owner.to(model.device) for name, owner in parameter_owners(model).items()}
    frozen = {name: p.detach() for name, p in model.named_parameters()}
    n_digits = train_data.digits.shape[1]
    # one mask per (measured step, digit), step-major
    rows = torch.as_tensor(steps - 1).repeat_interleave(n_digits)
    digits = torch.arange(n_digits).repeat(len(steps))
    stack = NetworkStack([model] * len(rows)).eval()
    was_training = model.training
    model.eval()
    try:
        scores = _train_masks(model, stack, frozen, owners, train_data, config, generator, rows, digits)
        with torch.no_grad():
            masks, kept_owner = _masks(scores, owners, config.metrics.mask_fraction)
            correct = torch.zeros(len(rows))
            for batch in test_data.batches(config.train.batch_size):
                logits = _masked_logits(stack, frozen, masks, batch.images, config, generator)
                decided = _at_own_step(logits, rows).argmax(-1).cpu()  # [n_masks, B, H]
                correct += (decided == batch.digits[:, digits].T[..., None]).float().mean(2).sum(1)
            kept_owner = kept_owner.cpu()
    finally:
        model.train(was_training)
    accuracy = (correct / len(test_data)).view(len(steps), n_digits).numpy()
    counts = torch.stack([torch.bincount(kept, minlength=model.n_modules) for kept in kept_owner])  # [n_masks, M]
    shares = (counts / kept_owner.shape[1]).view(len(steps), n_digits, model.n_modules).transpose(1, 2)
    return MetricScores("weight_mask", shares.numpy(), 0.0, steps, {"mask_accuracy": accuracy})
