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
of whose weights the sub-task keeps (no link). Equal shares (1/M each) give F = 0. One mask is trained per digit and
per measured step (the loss is taken at that step), sequentially: each is a full training run.
"""

from __future__ import annotations

import math
from typing import Dict

import numpy as np
import torch
from torch.func import functional_call

from ..config import RunConfig
from ..connectivity import intra_module_mask
from ..training import network_input, task_loss
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
            name in ("readout.weight", "readout.bias") and model.config.readout_scheme == "separate"
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


def _initial_scores(owners: Dict[str, torch.Tensor], model: torch.nn.Module, generator: torch.Generator):
    params = dict(model.named_parameters())
    scores = {}
    for name, owner in owners.items():
        shape = params[name].shape
        if name.endswith("bias") or name == "b":
            scores[name] = torch.randn(shape, generator=generator) * 1e-2
        else:
            fan_in = model.n_neurons if name == "w_rec" else shape[-1]
            bound = 1.0 / math.sqrt(fan_in)
            scores[name] = (torch.rand(shape, generator=generator) * 2 - 1) * bound
        scores[name].requires_grad_(True)
    return scores


def _masks(scores: Dict[str, torch.Tensor], owners: Dict[str, torch.Tensor], fraction: float):
    """Straight-through binary masks (1 for kept and for unmasked entries) and the owner of every kept entry."""
    names = list(scores)
    candidate = torch.cat([(owners[n] >= 0).flatten() for n in names])
    flat = torch.cat([scores[n].flatten() for n in names])
    n_keep = max(1, int(round(fraction * int(candidate.sum()))))
    ranked = torch.where(candidate, flat.detach(), torch.tensor(-math.inf))
    keep = torch.zeros_like(candidate)
    keep[ranked.topk(n_keep).indices] = True
    binary = keep.to(flat.dtype) + flat - flat.detach()  # straight-through: d mask / d score = 1
    binary = torch.where(candidate, binary, torch.ones_like(binary))
    parts = binary.split([scores[n].numel() for n in names])
    masks = {n: part.view_as(scores[n]) for n, part in zip(names, parts)}
    owner = torch.cat([owners[n].flatten() for n in names])
    return masks, owner[keep]


def _masked_logits(model, frozen, masks, images, config: RunConfig, generator, step: int) -> torch.Tensor:
    """Logits [step, B, H, C] of the network with its module parameters masked."""
    params = {**frozen, **{name: frozen[name] * mask for name, mask in masks.items()}}
    x, static = network_input(images, config, generator)
    return functional_call(model, params, (x,), {"static": static}).logits[:step]


def _train_mask(model, owners, train_data, config: RunConfig, generator, step: int, digit: int):
    """Edge-popup scores trained so that the masked network outputs ``digit`` at ``step``."""
    cfg = config.metrics
    frozen = {name: p.detach() for name, p in model.named_parameters()}
    scores = _initial_scores(owners, model, generator)
    optimizer = torch.optim.SGD(
        list(scores.values()), lr=cfg.mask_lr, momentum=MASK_MOMENTUM, weight_decay=MASK_WEIGHT_DECAY
    )
    for _ in range(cfg.mask_epochs):
        for batch in train_data.batches(config.train.batch_size, shuffle=True, generator=generator):
            masks, _ = _masks(scores, owners, cfg.mask_fraction)
            logits = _masked_logits(model, frozen, masks, batch.images, config, generator, step)
            target = batch.digits[:, digit : digit + 1].expand(-1, logits.shape[2])  # every head
            optimizer.zero_grad(set_to_none=True)
            task_loss(logits, target).backward()
            optimizer.step()
    return scores


def weight_mask_metric(
    model: torch.nn.Module, train_data, test_data, config: RunConfig, generator: torch.Generator, steps: np.ndarray
) -> MetricScores:
    """M(m, k) at each of ``steps`` (1-based): module m's share of a supermask trained to output digit k there.

    ``details``: ``mask_accuracy`` [T, K] (held-out accuracy of the masked network, mean over heads).
    """
    owners = parameter_owners(model)
    frozen = {name: p.detach() for name, p in model.named_parameters()}
    n_digits = train_data.digits.shape[1]
    shares = np.zeros((len(steps), model.n_modules, n_digits))
    accuracy = np.zeros((len(steps), n_digits))
    was_training = model.training
    model.eval()
    try:
        for row, step in enumerate(steps.tolist()):
            for k in range(n_digits):
                scores = _train_mask(model, owners, train_data, config, generator, step, k)
                with torch.no_grad():
                    masks, kept_owner = _masks(scores, owners, config.metrics.mask_fraction)
                    correct = 0.0
                    for batch in test_data.batches(config.train.batch_size):
                        logits = _masked_logits(model, frozen, masks, batch.images, config, generator, step)
                        correct += (logits[-1].argmax(-1) == batch.digits[:, k : k + 1]).float().mean(1).sum().item()
                accuracy[row, k] = correct / len(test_data)
                shares[row, :, k] = np.bincount(kept_owner.numpy(), minlength=model.n_modules) / len(kept_owner)
    finally:
        model.train(was_training)
    return MetricScores("weight_mask", shares, 0.0, steps, {"mask_accuracy": accuracy})
