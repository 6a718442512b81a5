"""Structural modularity Q of a modular network.

Newman's modularity adapted to directed graphs ("Dynamics" eq. 5):

    Q = (1/E) · Σ_ij (A_ij − k_i^out · k_j^in / E) · δ(g_i, g_j)

with E the number of edges and g_i the module of neuron i. Three values are reported:

- ``paper``: the papers' closed form Q = (1 − p) / (2(1 + p)), derived for dense blocks *with*
  self-connections; the axis readers of the papers know.
- ``exact``: the closed form for our networks, whose dense blocks have no self-connections. With M
  modules of n neurons and c synapses per direction between every pair of modules,
  Q = n(n − 1) / (n(n − 1) + (M − 1)c) − 1/M; for M = 2 this is
  Q = (n(n − 1) − c) / (2(n(n − 1) + c)), the papers' formula at p' = c / (n(n − 1)).
- ``graph``: Newman's Q computed from the network's actual recurrent mask. It equals ``exact`` to
  float precision whenever the connectivity follows the construction above.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

__all__ = ["Modularity", "q_paper", "q_exact", "newman_q", "module_labels", "network_modularity"]


def q_paper(p: float, n_modules: int = 2) -> float:
    """The papers' Q for a fraction ``p`` of inter-module synapses: (1 − p) / (2(1 + p)) for two modules.

    For M modules the same derivation gives 1 / (1 + (M − 1)p) − 1/M.
    """
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"p = {p} is not a fraction in [0, 1]")
    _check_modules(n_modules)
    return 1.0 / (1.0 + (n_modules - 1) * p) - 1.0 / n_modules


def q_exact(n_neurons: int, n_synapses: int, n_modules: int = 2) -> float:
    """Exact Q for dense modules without self-connections and ``n_synapses`` c per direction.

    Q = n(n − 1) / (n(n − 1) + (M − 1)c) − 1/M, i.e. (n(n − 1) − c) / (2(n(n − 1) + c)) for M = 2.
    """
    _check_modules(n_modules)
    if n_neurons < 2:
        raise ValueError(f"n_neurons = {n_neurons}: a module needs at least 2 neurons to have internal edges")
    if not 0 <= n_synapses <= n_neurons**2:
        raise ValueError(f"n_synapses = {n_synapses} is outside [0, n^2 = {n_neurons**2}]")
    internal = n_neurons * (n_neurons - 1)
    return internal / (internal + (n_modules - 1) * n_synapses) - 1.0 / n_modules


def module_labels(n_modules: int, n_neurons: int) -> torch.Tensor:
    """Module index of every neuron [M·n]: module m owns neurons [m·n, (m+1)·n)."""
    _check_modules(n_modules)
    return torch.arange(n_modules).repeat_interleave(n_neurons)


def newman_q(adjacency: torch.Tensor | np.ndarray, labels: torch.Tensor | np.ndarray) -> float:
    """Newman's directed modularity of a graph, in float64.

    ``adjacency`` [N, N] holds edge weights (a boolean mask counts edges); either orientation
    (row = target or row = source) gives the same Q. ``labels`` [N] are group indices 0..G−1.
    """
    a = torch.as_tensor(adjacency).to(torch.float64)
    g = torch.as_tensor(labels).long()
    if a.ndim != 2 or a.shape[0] != a.shape[1]:
        raise ValueError(f"adjacency must be a square [N, N] matrix, got shape {tuple(a.shape)}")
    if g.shape != (a.shape[0],):
        raise ValueError(f"labels must have shape [{a.shape[0]}] (one group per node), got {tuple(g.shape)}")
    if (a < 0).any():
        raise ValueError("adjacency has negative entries; pass the connectivity mask or |weights|")
    edges = a.sum()
    if edges == 0:
        raise ValueError("the graph has no edges; Q is undefined")
    groups = torch.nn.functional.one_hot(g, int(g.max()) + 1).to(torch.float64)  # [N, G]
    block = groups.T @ a @ groups / edges  # [G, G] fraction of edges between groups
    return float(torch.trace(block) - (block.sum(1) * block.sum(0)).sum())


@dataclass(frozen=True)
class Modularity:
    """Q of one network: the papers' closed form, the exact closed form and the graph's own value."""

    paper: float
    exact: float
    graph: float
    p: float
    n_synapses: int


def network_modularity(model: torch.nn.Module) -> Modularity:
    """All three Q values of a :class:`spikemod.network.ModularNetwork`.

    ``exact`` uses the configured synapse count; ``graph`` the model's actual recurrent mask
    (Deep-R rewiring keeps the count, so the two still agree).
    """
    cfg = model.config
    mask = model.recurrent_mask().detach().cpu()  # the network may live on a GPU
    labels = module_labels(cfg.n_modules, cfg.n_neurons)
    return Modularity(
        paper=q_paper(cfg.p_effective, cfg.n_modules),
        exact=q_exact(cfg.n_neurons, cfg.n_synapses, cfg.n_modules),
        graph=newman_q(mask, labels),
        p=cfg.p_effective,
        n_synapses=cfg.n_synapses,
    )


def _check_modules(n_modules: int) -> None:
    if n_modules < 2:
        raise ValueError(f"n_modules = {n_modules}: modularity needs at least 2 modules")
