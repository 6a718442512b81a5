"""Connection masks of a modular network with an exact number of inter-module synapses.

Neurons form one population of N = M·n; module m owns neurons [m·n, (m+1)·n). Matrices are
[target, source]: block (i, j) holds the weights from module j to module i. Inside a module the
connections are dense without self-connections; between two modules, each direction has exactly
``n_synapses`` connections, drawn without replacement, so the count is exact (as in the reference
code: int(p·n²) per direction, or an exact integer such as one synapse).
"""

from __future__ import annotations

from typing import List, Optional

import torch

__all__ = [
    "module_slices",
    "intra_module_mask",
    "inter_module_mask",
    "recurrent_mask",
    "input_mask",
    "blocks",
    "from_blocks",
    "synapse_counts",
    "off_diagonal_pairs",
    "eligible_sources",
]


def module_slices(n_modules: int, n_neurons: int) -> List[slice]:
    """The neuron index range of each module."""
    return [slice(m * n_neurons, (m + 1) * n_neurons) for m in range(n_modules)]


def off_diagonal_pairs(n_modules: int) -> torch.Tensor:
    """All directions (target i, source j) with i != j, as a LongTensor [M·(M-1), 2], row-major."""
    i, j = torch.meshgrid(torch.arange(n_modules), torch.arange(n_modules), indexing="ij")
    keep = i != j
    return torch.stack([i[keep], j[keep]], dim=1)


def blocks(matrix: torch.Tensor, n_modules: int) -> torch.Tensor:
    """View an [N, N] matrix as blocks [M (target), M (source), n, n]."""
    n = matrix.shape[-1] // n_modules
    return matrix.reshape(n_modules, n, n_modules, n).transpose(1, 2)


def from_blocks(block_tensor: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`blocks`: [M, M, n, n] -> [N, N]."""
    m, _, n, _ = block_tensor.shape
    return block_tensor.transpose(1, 2).reshape(m * n, m * n)


def intra_module_mask(n_modules: int, n_neurons: int) -> torch.Tensor:
    """Bool [N, N]: dense diagonal blocks without self-connections."""
    same_module = torch.block_diag(*[torch.ones(n_neurons, n_neurons, dtype=torch.bool)] * n_modules)
    return same_module & ~torch.eye(n_modules * n_neurons, dtype=torch.bool)


def inter_module_mask(
    n_modules: int, n_neurons: int, n_synapses: int, generator: Optional[torch.Generator] = None
) -> torch.Tensor:
    """Bool [N, N]: exactly ``n_synapses`` random connections in every off-diagonal block."""
    if not 0 <= n_synapses <= n_neurons**2:
        raise ValueError(
            f"n_synapses = {n_synapses} is impossible between modules of {n_neurons} neurons: "
            f"use 0 to {n_neurons**2}"
        )
    pairs = off_diagonal_pairs(n_modules)
    # One independent draw without replacement per direction: the top-k of random scores.
    scores = torch.rand(len(pairs), n_neurons * n_neurons, generator=generator)
    chosen = torch.zeros_like(scores, dtype=torch.bool)
    chosen.scatter_(1, scores.topk(n_synapses, dim=1).indices, True)
    block_mask = torch.zeros(n_modules, n_modules, n_neurons, n_neurons, dtype=torch.bool)
    block_mask[pairs[:, 0], pairs[:, 1]] = chosen.view(-1, n_neurons, n_neurons)
    return from_blocks(block_mask)


def recurrent_mask(
    n_modules: int, n_neurons: int, n_synapses: int, generator: Optional[torch.Generator] = None
) -> torch.Tensor:
    """Bool [N, N]: dense modules without self-connections plus the exact sparse interconnect."""
    return intra_module_mask(n_modules, n_neurons) | inter_module_mask(
        n_modules, n_neurons, n_synapses, generator
    )


def input_mask(scheme: str, n_modules: int, n_neurons: int, n_slots: int, n_inputs: int) -> torch.Tensor:
    """Bool [N, S·D] input mask for the flattened slots.

    ``separate``: module m sees only slot m mod S (for two modules: module m sees digit m).
    ``shared`` and ``fused``: every module sees every input (``fused`` ties the slots' weights,
    which the network handles; see :class:`spikemod.network.ModularNetwork`).
    """
    if scheme == "separate":
        slot_of_module = torch.arange(n_modules) % n_slots
        module_sees_slot = slot_of_module[:, None] == torch.arange(n_slots)[None, :]
        return module_sees_slot.repeat_interleave(n_neurons, 0).repeat_interleave(n_inputs, 1)
    if scheme in ("shared", "fused"):
        return torch.ones(n_modules * n_neurons, n_slots * n_inputs, dtype=torch.bool)
    raise ValueError(f"unknown input scheme {scheme!r}: use 'separate', 'shared' or 'fused'")


def synapse_counts(mask: torch.Tensor, n_modules: int) -> torch.Tensor:
    """LongTensor [M, M]: connections in each block (i, j) = from module j to module i."""
    return blocks(mask, n_modules).sum(dim=(-1, -2))


def eligible_sources(mask: torch.Tensor, n_modules: int) -> torch.Tensor:
    """Bool [..., M, M, n] of masks [..., N, N]: [i, j, c] = neuron c of module j has a synapse into
    module i ≠ j (the spikes that cross the interconnect and count against a bandwidth cap)."""
    n = mask.shape[-1] // n_modules
    per_block = mask.unflatten(-1, (n_modules, n)).unflatten(-3, (n_modules, n))  # [..., i, a, j, c]
    reach = per_block.any(dim=-3)  # [..., i, j, c]
    return reach & ~torch.eye(n_modules, dtype=torch.bool, device=mask.device)[..., None]

