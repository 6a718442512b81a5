"""What the host computes around the neuromorphic core, from a :class:`NetworkDescription`.

As with a real chip, the host feeds the input current W_in·x_t, and reads the decision off the
spike trains with the exported readout weights. Every function here repeats the torch model's own
operations (``ModularNetwork.input_current``, ``_run_spiking`` and ``_read_out``) in float32, so
on the same spikes they give the model's numbers exactly:

- :func:`input_current`: W_in·x_t [T, B, N] (fused input: the slots summed, then one W);
- :func:`snntorch_run`: the snnTorch simulation of the exported network (``snn.Leaky`` with reset
  to zero and the recurrence W_rec·s_{t-1}), the "torch" side of every comparison;
- :func:`read_out`: logits from spikes: spikes (membrane readout: non-spiking leaky output units
  V_t = beta·V_{t-1} + W_out·s_t + b_out) or running spike counts (count readout), through the
  optional bottleneck, with the competitive max over modules for separate readouts;
- :func:`lava_network`: the description in Lava's LIF parameters, floating or fixed point.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Tuple

import numpy as np
import snntorch as snn
import torch

from spikemod.network import competitive_max

from .export import NetworkDescription
from .mapping import LavaNetwork, fixed_point_network, float_network

__all__ = ["HostReadout", "input_current", "snntorch_run", "read_out", "lava_network"]


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
    w_in = _tensor(description.input_weight)
    if description.config.model.input_scheme == "fused":
        current = x.sum(dim=2) @ w_in[:, : description.n_inputs].t()
    else:
        current = x.flatten(2) @ w_in.t()
    return current.expand(steps, *current.shape[1:])


@torch.no_grad()
def snntorch_run(description: NetworkDescription, current: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    """Spikes and membrane [T, B, N] of the exported network in snnTorch for the current [T, B, N]."""
    lif = snn.Leaky(
        beta=_tensor(description.neuron_beta()),
        threshold=_tensor(description.neuron_threshold()),
        reset_mechanism="zero",
    )
    snn.SpikingNeuron.instances.remove(lif)  # a local neuron: keep it out of snnTorch's registry
    drive = current + _tensor(description.bias)
    w_t = _tensor(description.recurrent_weight).t()
    spikes = drive.new_zeros(drive.shape[1:])
    mem = drive.new_zeros(drive.shape[1:])
    all_spikes, all_mem = [], []
    for t in range(len(drive)):
        spikes, mem = lif(torch.addmm(drive[t], spikes, w_t), mem)
        all_spikes.append(spikes)
        all_mem.append(mem)
    return torch.stack(all_spikes), torch.stack(all_mem)


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


def _leaky_output(description: NetworkDescription, readout_current: torch.Tensor) -> torch.Tensor:
    """V_t = beta·V_{t-1} + r_t, V_0 = 0, as one lower-triangular product over time."""
    steps = torch.arange(len(readout_current))
    lag = steps[:, None] - steps[None, :]
    powers = description.config.model.beta ** lag.clamp(min=0).to(readout_current.dtype)
    decay = torch.where(lag >= 0, powers, 0.0)
    return torch.tensordot(decay, readout_current, dims=([1], [0]))


@torch.no_grad()
def read_out(description: NetworkDescription, spikes: torch.Tensor) -> HostReadout:
    """The readout of spike trains [T, B, N] (0/1, any dtype) with the exported readout weights."""
    cfg = description.config.model
    spikes = torch.as_tensor(spikes).float()
    membrane_readout = cfg.spike_readout == "membrane"
    features = spikes if membrane_readout else spikes.cumsum(dim=0)
    z = features.unflatten(-1, (description.n_modules, description.module_size))
    bottleneck = None
    if description.bottleneck_weight is not None:
        weight, bias = _tensor(description.bottleneck_weight), _tensor(description.bottleneck_bias)
        bottleneck = torch.einsum("...mi,moi->...mo", z, weight) + bias
        z = bottleneck
    heads = (description.n_heads, description.n_classes)
    weight, bias = _tensor(description.readout_weight), _tensor(description.readout_bias)
    if cfg.readout_scheme == "separate":
        current = (torch.einsum("...mi,moi->...mo", z, weight) + bias).unflatten(-1, heads).transpose(2, 3)
        module_logits = _leaky_output(description, current) if membrane_readout else current
        logits, _ = competitive_max(module_logits)
        return HostReadout(logits, module_logits, bottleneck)
    current = torch.nn.functional.linear(z.flatten(-2), weight, bias).unflatten(-1, heads)
    logits = _leaky_output(description, current) if membrane_readout else current
    return HostReadout(logits, None, bottleneck)


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
