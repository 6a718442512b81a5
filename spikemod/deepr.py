"""Deep-R rewiring of the inter-module connections (Bellec et al. 2018, as in "Extreme sparsity").

Every possible inter-module connection k has a fixed random sign s_k and a parameter θ_k. The
connection is active when θ_k > 0, with weight s_k·θ_k, and dormant (weight 0) otherwise. Each
training step, on active connections only: an Adam step on θ, L1 shrinkage lr·l1 and a Gaussian
random walk lr·noise·N(0, 1). Dormant connections do not change. Connections whose θ fell to 0 or
below are replaced by dormant ones of the same direction chosen uniformly at random and set to
θ = :data:`REACTIVATION_THETA`, so every direction holds exactly ``n_synapses`` active connections
after every step. :class:`DeepRInterconnect` holds θ and the signs; :class:`DeepR` updates them.
"""

from __future__ import annotations

from typing import Optional, Sequence, Tuple

import torch
from torch import nn

from .connectivity import blocks, inter_module_mask, off_diagonal_pairs

__all__ = ["DeepRInterconnect", "DeepR", "interconnect_weight", "interconnect_mask", "REACTIVATION_THETA"]

#: θ of a freshly reactivated connection: active, with a weight of practically zero.
REACTIVATION_THETA = 1e-10


class DeepRInterconnect(nn.Module):
    """Rewirable inter-module connections with exactly ``n_synapses`` active ones per direction.

    ``theta`` [P, n, n] holds one [target, source] block per direction (i, j) in
    :func:`~spikemod.connectivity.off_diagonal_pairs` order. The initially active connections are
    drawn like the fixed mask; their θ is |w| of ``initial_weight`` [N, N] and their random sign
    gives them the same symmetric distribution as ``initial_weight``.
    """

    def __init__(
        self,
        n_modules: int,
        n_neurons: int,
        n_synapses: int,
        initial_weight: torch.Tensor,
        generator: Optional[torch.Generator] = None,
    ) -> None:
        super().__init__()
        self.n_modules = n_modules
        self.n_neurons = n_neurons
        self.n_synapses = n_synapses
        pairs = off_diagonal_pairs(n_modules)
        active = blocks(inter_module_mask(n_modules, n_neurons, n_synapses, generator), n_modules)
        magnitude = blocks(initial_weight.abs(), n_modules).clamp_min(REACTIVATION_THETA)
        theta = torch.where(active, magnitude, torch.zeros(()))[pairs[:, 0], pairs[:, 1]]
        sign = torch.randint(0, 2, theta.shape, generator=generator) * 2.0 - 1.0
        self.theta = nn.Parameter(theta)
        self.register_buffer("sign", sign)
        self.register_buffer("pairs", pairs)

    def active(self) -> torch.Tensor:
        """Bool [P, n, n]: the active connections of each direction."""
        return self.theta > 0

    def weight(self) -> torch.Tensor:
        """Effective inter-module weights [N, N] (zero inside modules and for dormant connections)."""
        return interconnect_weight(self.theta, self.sign, self.pairs, self.n_modules)

    def mask(self) -> torch.Tensor:
        """Bool [N, N]: the active inter-module connections."""
        return interconnect_mask(self.theta, self.pairs, self.n_modules)


def interconnect_weight(theta: torch.Tensor, sign: torch.Tensor, pairs: torch.Tensor, n_modules: int) -> torch.Tensor:
    """Weights [..., N, N] of θ and signs [..., P, n, n]: s·relu(θ) in block (i, j) of each direction."""
    lead, n = theta.shape[:-3], theta.shape[-1]
    full = theta.new_zeros(*lead, n_modules, n_modules, n, n)
    full[..., pairs[:, 0], pairs[:, 1], :, :] = sign * torch.relu(theta)
    return full.transpose(-3, -2).reshape(*lead, n_modules * n, n_modules * n)


def interconnect_mask(theta: torch.Tensor, pairs: torch.Tensor, n_modules: int) -> torch.Tensor:
    """Bool [..., N, N]: the active inter-module connections (θ > 0) of θ [..., P, n, n]."""
    lead, n = theta.shape[:-3], theta.shape[-1]
    full = torch.zeros(*lead, n_modules, n_modules, n, n, dtype=torch.bool, device=theta.device)
    full[..., pairs[:, 0], pairs[:, 1], :, :] = theta > 0
    return full.transpose(-3, -2).reshape(*lead, n_modules * n, n_modules * n)


class DeepR:
    """The Deep-R update of θ [K, P, n, n] (K networks' interconnects, or [P, n, n] for one); call
    :meth:`step` after ``backward``.

    Network k keeps ``n_synapses[k]`` active connections per direction, steps with learning rate
    ``lr[k]`` (a number: the same for all) and walks with temperature ``noise[k]`` (the trainer
    anneals it with the connection density p as noise·(1 − p), as in the reference sweeps) drawn
    from ``generators[k]``. Adam is elementwise and its step is proportional to its learning rate,
    so one Adam at learning rate 1 over the stacked θ, its step scaled by each network's lr,
    updates each network as its own would; the random walk and the reactivation draw from each
    network's own generator, so K networks rewire exactly as they would alone.
    """

    def __init__(
        self,
        theta: torch.nn.Parameter,
        n_synapses: Sequence[int],
        lr: "float | Sequence[float]",
        l1: float,
        noise: Sequence[float],
        generators: Sequence[Optional[torch.Generator]],
        betas: Tuple[float, float] = (0.9, 0.999),
    ) -> None:
        self.theta = theta
        self.n_networks = 1 if theta.dim() == 3 else theta.shape[0]
        if not len(n_synapses) == len(noise) == len(generators) == self.n_networks:
            raise ValueError(f"Deep-R of {self.n_networks} networks needs that many synapse counts, noises and generators")
        self.n_synapses = torch.tensor(list(n_synapses))
        rates = [float(lr)] * self.n_networks if isinstance(lr, (int, float)) else [float(v) for v in lr]
        if len(rates) != self.n_networks:
            raise ValueError(f"Deep-R of {self.n_networks} networks needs that many learning rates, got {len(rates)}")
        self.lr = torch.tensor(rates, dtype=theta.dtype, device=theta.device).view(-1, 1, 1, 1)
        self.l1 = l1
        self.noise = list(noise)
        self.generators = list(generators)
        self.adam = torch.optim.Adam([theta], lr=1.0, betas=betas)

    def zero_grad(self) -> None:
        self.adam.zero_grad(set_to_none=True)

    def _per_network(self, tensor: torch.Tensor) -> torch.Tensor:
        return tensor.view(self.n_networks, *self.theta.shape[-3:])

    @torch.no_grad()
    def step(self) -> None:
        """Adam + L1 + random walk on active connections, then exact reactivation."""
        theta = self._per_network(self.theta)
        active = theta > 0
        before = theta.clone()
        self.adam.step()  # at learning rate 1: θ − m̂/(√v̂ + ε)
        stepped = before + self.lr * (theta - before)
        walk = torch.stack(
            [torch.randn(theta.shape[1:], generator=g) * noise for g, noise in zip(self.generators, self.noise)]
        ).to(theta.device)
        theta.copy_(torch.where(active, stepped - self.lr * (self.l1 - walk), before))
        self._reactivate()

    def _reactivate(self) -> None:
        """Turn random dormant connections on until every direction has exactly its n_synapses."""
        flat = self.theta.view(self.n_networks, self.theta.shape[-3], -1)  # [K, P, n·n]
        active = flat > 0
        deficit = self.n_synapses.to(flat.device).view(-1, 1, 1) - active.sum(dim=2, keepdim=True)
        # Dormant entries get random scores in [0, 1), active ones -1: the `deficit` best-ranked
        # entries of each direction are a uniform draw among its dormant connections.
        scores = torch.stack([torch.rand(flat.shape[1:], generator=g) for g in self.generators]).to(flat.device)
        scores = scores.masked_fill(active, -1.0)
        rank = scores.argsort(dim=2, descending=True).argsort(dim=2)
        revived = rank < deficit
        if not revived.any():
            return
        flat[revived] = REACTIVATION_THETA
        state = self.adam.state.get(self.theta)
        if state:  # a revived connection starts with fresh Adam moments
            for key in ("exp_avg", "exp_avg_sq"):
                state[key].view_as(flat)[revived] = 0.0
