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

from typing import Optional

import torch
from torch import nn

from .connectivity import blocks, from_blocks, inter_module_mask, off_diagonal_pairs

__all__ = ["DeepRInterconnect", "DeepR", "REACTIVATION_THETA"]

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
        m, n = self.n_modules, self.n_neurons
        full = self.theta.new_zeros(m, m, n, n)
        full = full.index_put((self.pairs[:, 0], self.pairs[:, 1]), self.sign * torch.relu(self.theta))
        return from_blocks(full)

    def mask(self) -> torch.Tensor:
        """Bool [N, N]: the active inter-module connections."""
        m, n = self.n_modules, self.n_neurons
        full = torch.zeros(m, m, n, n, dtype=torch.bool, device=self.theta.device)
        full[self.pairs[:, 0], self.pairs[:, 1]] = self.active()
        return from_blocks(full)


class DeepR:
    """The Deep-R update of a :class:`DeepRInterconnect`; call :meth:`step` after ``backward``.

    ``noise`` is the random-walk temperature; the training loop anneals it with the connection
    density p as noise·(1 - p), as in the reference sweeps.
    """

    def __init__(
        self,
        interconnect: DeepRInterconnect,
        lr: float,
        l1: float,
        noise: float,
        generator: Optional[torch.Generator] = None,
    ) -> None:
        self.interconnect = interconnect
        self.lr = lr
        self.l1 = l1
        self.noise = noise
        self.generator = generator
        self.adam = torch.optim.Adam([interconnect.theta], lr=lr)

    def zero_grad(self) -> None:
        self.adam.zero_grad(set_to_none=True)

    @torch.no_grad()
    def step(self) -> None:
        """Adam + L1 + random walk on active connections, then exact reactivation."""
        theta = self.interconnect.theta
        active = theta > 0
        before = theta.clone()
        self.adam.step()
        walk = torch.randn(theta.shape, generator=self.generator).to(theta.device) * (self.lr * self.noise)
        theta.copy_(torch.where(active, theta - self.lr * self.l1 + walk, before))
        self._reactivate()

    def _reactivate(self) -> None:
        """Turn random dormant connections on until every direction has exactly n_synapses."""
        theta = self.interconnect.theta
        flat = theta.view(len(theta), -1)
        active = flat > 0
        deficit = self.interconnect.n_synapses - active.sum(dim=1, keepdim=True)
        # Dormant entries get random scores in [0, 1), active ones -1: the `deficit` best-ranked
        # entries of each direction are a uniform draw among its dormant connections.
        scores = torch.rand(flat.shape, generator=self.generator).to(flat.device).masked_fill(active, -1.0)
        rank = scores.argsort(dim=1, descending=True).argsort(dim=1)
        revived = rank < deficit
        if not revived.any():
            return
        flat[revived] = REACTIVATION_THETA
        state = self.adam.state.get(theta)
        if state:  # a revived connection starts with fresh Adam moments
            for key in ("exp_avg", "exp_avg_sq"):
                state[key].view(len(theta), -1)[revived] = 0.0
