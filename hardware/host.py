"""What the host computes around the neuromorphic core, from a :class:`NetworkDescription`.

As with a real chip, the host feeds the input current W_in·x_t, and reads the decision off the
spike trains with the exported readout weights. The torch side of every comparison is
:mod:`spikemod.dynamics`, the code that trained the network, on the description's arrays:

- :func:`input_current`: W_in·x_t [T, B, N] (fused input: the slots summed, then one W);
- :func:`torch_run`: the exported network's spikes and membrane in torch (``lif_step`` with the
  recurrence W_rec·s_{t-1}), the "torch" side of every comparison;
- :func:`read_out`: logits from spikes: spikes (membrane readout: non-spiking leaky output units
  V_t = beta·V_{t-1} + W_out·s_t + b_out) or running spike counts (count readout), through the
  optional bottleneck, with the competitive max over modules for separate readouts;
- :func:`lava_network`: the description in Lava's LIF parameters, floating or fixed point.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Tuple

import numpy as np
import torch

from spikemod import dynamics
from spikemod.network import input_blocks, spike_gradient

from .export import NetworkDescription
from .mapping import LavaNetwork, fixed_point_network, float_network

__all__ = ["HostReadout", "input_current", "torch_run", "read_out", "lava_network"]


def _tensor(array: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(array))


def input_current(description: NetworkDescription, x: torch.Tensor, static: bool = False) -> torch.Tensor:
    """W_in·x_t [T, B, N] for the input x [T, B, S, D]; ``static``: computed once from x[0]."""
    expected = (description.n_slots, description.n_inputs)
    if x.dim() != 4 or tuple(x.shape[2:]) != expected:
        raise ValueError(
            f"input must be [T, B, {expected[0]}, {expected[1]}] (time, batch, slot, pixels), got {tuple(x.shape)}"
        )
    steps = x.shape[0]
    x = x[:1] if static else x
    model = description.config.model
    blocks = input_blocks(_tensor(description.input_weight), model.input_scheme, model.n_modules, description.n_slots)
    slots = torch.arange(model.n_modules) % description.n_slots
    current = dynamics.input_current(blocks, x[:, None], model.input_scheme, slots)[:, 0]
    return current.expand(steps, *current.shape[1:])


@torch.no_grad()
def torch_run(description: NetworkDescription, current: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    """Spikes and membrane [T, B, N] of the exported network in torch for the current [T, B, N]."""
    model = description.config.model
    population = dynamics.Population(
        _tensor(description.recurrent_weight)[None],
        _tensor(description.bias)[None],
        model.n_modules,
        beta=_tensor(description.neuron_beta())[None],
        threshold=_tensor(description.neuron_threshold())[None],
        spike_fn=spike_gradient(model.surrogate, model.surrogate_slope),
    )
    drive = current + population.bias[0]
    ran = dynamics.run(population, list(drive[:, None]))
    return ran.states[:, 0], ran.membrane[:, 0]


@dataclass(frozen=True)
class HostReadout:
    """The readout of spike trains: ``logits`` [T, B, H, C], ``module_logits`` [T, B, H, M, C]
    (separate readout) and ``bottleneck`` [T, B, M, k] (with a bottleneck)."""

    logits: torch.Tensor
    module_logits: Optional[torch.Tensor]
    bottleneck: Optional[torch.Tensor]

    def predictions(self) -> torch.Tensor:
        """The decision [B, H]: the class with the largest logit at the last step."""
        return self.logits[-1].argmax(dim=-1)


@torch.no_grad()
def read_out(description: NetworkDescription, spikes: torch.Tensor) -> HostReadout:
    """The readout of spike trains [T, B, N] (0/1, any dtype) with the exported readout weights."""
    cfg = description.config.model
    spikes = torch.as_tensor(spikes).float()
    with_bottleneck = description.bottleneck_weight is not None
    readout = dynamics.Readout(
        _tensor(description.readout_weight)[None],
        _tensor(description.readout_bias)[None],
        description.n_heads,
        description.n_classes,
        scheme=cfg.readout_scheme,
        bottleneck_weight=_tensor(description.bottleneck_weight)[None] if with_bottleneck else None,
        bottleneck_bias=_tensor(description.bottleneck_bias)[None] if with_bottleneck else None,
        leak=cfg.beta if cfg.spike_readout == "membrane" else None,
        counts=cfg.spike_readout == "count",
    )
    logits, module_logits, bottleneck = dynamics.read_out(readout, spikes[:, None], description.n_modules)
    return HostReadout(
        logits[:, 0],
        None if module_logits is None else module_logits[:, 0],
        None if bottleneck is None else bottleneck[:, 0],
    )


def lava_network(description: NetworkDescription, fixed_point: bool = False, scale: Optional[float] = None) -> LavaNetwork:
    """The description in Lava's LIF parameters (see :mod:`~spikemod.hardware.mapping`)."""
    arrays = (
        description.recurrent_weight,
        description.bias,
        description.neuron_beta(),
        description.neuron_threshold(),
    )
    if fixed_point:
        return fixed_point_network(*arrays, scale=scale)
    if scale is not None:
        raise ValueError("a scale applies to fixed point only; pass fixed_point=True")
    return float_network(*arrays)
