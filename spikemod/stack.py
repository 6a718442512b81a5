"""K networks of one shape as one module with stacked parameters: what the trainer trains.

The networks of a sweep are tiny (two modules of 25 neurons), so one network at a time leaves the
CPU idle in Python overhead. :class:`NetworkStack` stacks the parameters of K
:class:`~spikemod.network.ModularNetwork` s along a leading network axis and runs
:mod:`spikemod.dynamics` on all of them at once; K = 1 is a single network. The networks may differ
in everything that leaves the tensor shapes alone: their initial weights, masks (p or synapse
count), Deep-R connections and signs, interconnect onset, bandwidth cap, and learned β and θ.
Adam(W), Adadelta and Deep-R's updates are elementwise, so one optimiser over the stacked
parameters updates each network as its own would.

With separate input, ``w_in`` holds only each module's own block, [M, K, n, D] (module m reads slot
m mod S): the masked rest of W_in is zero, gets zero gradients and stays zero, so leaving it out
changes no number and halves the work.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence

import torch
from torch import nn

from . import dynamics
from .connectivity import eligible_sources
from .deepr import interconnect_mask, interconnect_weight
from .network import ModularNetwork

__all__ = ["NetworkStack", "StackOutput"]

#: The parameter Deep-R trains (not the module optimiser).
DEEP_R_PARAMETER = "interconnect.theta"


@dataclass
class StackOutput:
    """Logits [T, K, B, H, C] (``last_only``: [1, K, B, H, C]), module logits [T, K, B, H, M, C]
    (separate readout) or None, the states [T, K, B, N] (rate activations or spikes; ``last_only``
    rate: [1, K, B, N]) and the membrane [T, K, B, N] (spiking) or None."""

    logits: torch.Tensor
    module_logits: Optional[torch.Tensor]
    states: torch.Tensor
    membrane: Optional[torch.Tensor]


class NetworkStack(nn.Module):
    """K same-shape networks with stacked parameters [K, ...] (see the module docs).

    Parameters are named like the networks' own with ``.`` -> ``__`` in :attr:`stacked`.
    ``forward(x [T, G, B, S, D], static, last_only)`` -> :class:`StackOutput`; G divides K: each
    input is read by K/G adjacent networks.
    """

    def __init__(self, models: Sequence[ModularNetwork]) -> None:
        super().__init__()
        first = models[0]
        self.config = first.config  # of the first network: the shared shape and neuron model
        self.n_networks = len(models)
        self.n_modules, self.n_neurons, self.n_total = first.n_modules, first.n_neurons, first.n_total
        self.n_slots, self.n_inputs = first.n_slots, first.n_inputs
        self.spiking, self.spike_fn = first.spiking, first.spike_fn
        base = first.readout_parameters()
        self.readout_form = dict(
            n_heads=base.n_heads, n_classes=base.n_classes, scheme=base.scheme, leak=base.leak, counts=base.counts
        )
        self.names = [name for name, _ in first.named_parameters()]
        self.separate_input = first.config.input_scheme == "separate"
        self.register_buffer("slot_of_module", first.slot_of_module(), persistent=False)
        params = [dict(m.named_parameters()) for m in models]
        stacked = {}
        for name in self.names:
            if name == "w_in" and self.separate_input:
                value = torch.stack([m.input_blocks().detach()[:, 0] for m in models], dim=1)
            else:
                value = torch.stack([p[name].detach() for p in params])
            stacked[name.replace(".", "__")] = nn.Parameter(value)
        self.stacked = nn.ParameterDict(stacked)
        if first.config.input_scheme == "shared":
            self.register_buffer("input_mask", first.input_mask)
        if first.interconnect is not None:
            self.register_buffer("intra_mask", first.intra_mask)
            self.register_buffer("sign", torch.stack([m.interconnect.sign for m in models]))
            self.register_buffer("pairs", first.interconnect.pairs)
        else:
            self.register_buffer("fixed_masks", torch.stack([m.fixed_recurrent_mask for m in models]))
        if "b" not in self.names:  # no hidden bias: a constant zero
            self.register_buffer("zero_bias", torch.zeros(self.n_networks, self.n_total))
        if first.spiking:
            for name in ("beta", "threshold"):
                if f"lif.{name}" not in self.names:  # fixed: one value per network
                    values = torch.stack([getattr(m.lif, name).expand(m.n_total) for m in models])
                    self.register_buffer(name, values)
        configs = [m.config for m in models]
        onsets = [c.interconnect_onset for c in configs]
        self.register_buffer("onset", None if set(onsets) == {1} else torch.tensor(onsets), persistent=False)
        caps = [c.bandwidth_cap for c in configs]
        # no cap is a cap of n: no direction has more than n eligible spikes
        cap = None if set(caps) == {None} else torch.tensor([first.n_neurons if c is None else c for c in caps])
        self.register_buffer("cap", cap, persistent=False)
        self.router_seeds = [m.router_seed for m in models] if first.config.router == "random" else None
        self.to(first.device)  # the networks' device (the index buffers above start on the CPU)

    @property
    def device(self) -> torch.device:
        """Where the stacked parameters are."""
        return self.slot_of_module.device

    def param(self, name: str) -> torch.Tensor:
        return self.stacked[name.replace(".", "__")]

    def module_parameters(self) -> List[nn.Parameter]:
        """The stacked parameters the module optimiser trains (all but Deep-R's θ)."""
        return [p for key, p in self.stacked.items() if key != DEEP_R_PARAMETER.replace(".", "__")]

    def deep_r_parameter(self) -> Optional[nn.Parameter]:
        """The stacked Deep-R θ [K, P, n, n], or None with fixed interconnects."""
        return self.param(DEEP_R_PARAMETER) if DEEP_R_PARAMETER in self.names else None

    def network_state(self, k: int) -> Dict[str, torch.Tensor]:
        """Copies of network ``k``'s parameters on the CPU, by the network's parameter names."""
        state = {name: self.param(name)[k].detach().to("cpu", copy=True) for name in self.names if name != "w_in"}
        if self.separate_input:
            w_in = torch.zeros(self.n_modules, self.n_neurons, self.n_slots, self.n_inputs)
            own = self.param("w_in").detach().cpu()  # [M, K, n, D]
            for m, slot in enumerate(self.slot_of_module.tolist()):
                w_in[m, :, slot] = own[m, k]
            state["w_in"] = w_in.view(self.n_total, self.n_slots * self.n_inputs)
        else:
            state["w_in"] = self.param("w_in")[k].detach().to("cpu", copy=True)
        return state

    # ----- effective parameters -----

    def recurrent_masks(self) -> torch.Tensor:
        """Bool [K, N, N]: each network's existing recurrent connections."""
        if DEEP_R_PARAMETER in self.names:
            return self.intra_mask | interconnect_mask(self.param(DEEP_R_PARAMETER), self.pairs, self.n_modules)
        return self.fixed_masks

    def eligible_sources(self) -> torch.Tensor:
        """Bool [K, M, M, n]: [k, i, j, c] = neuron c of module j of network k has a synapse into module i ≠ j."""
        return eligible_sources(self.recurrent_masks(), self.n_modules)

    def population(self) -> dynamics.Population:
        """The K recurrent populations as a :class:`~spikemod.dynamics.Population`."""
        if DEEP_R_PARAMETER in self.names:
            theta = self.param(DEEP_R_PARAMETER)
            w_rec = self.param("w_rec") * self.intra_mask + interconnect_weight(theta, self.sign, self.pairs, self.n_modules)
        else:
            w_rec = self.param("w_rec") * self.fixed_masks
        spiking = {}
        if self.spiking:
            spiking = dict(
                beta=self.param("lif.beta") if "lif.beta" in self.names else self.beta,
                threshold=self.param("lif.threshold") if "lif.threshold" in self.names else self.threshold,
                spike_fn=self.spike_fn,
                eligible=None if self.cap is None else self.eligible_sources(),
                cap=self.cap,
                router_seeds=self.router_seeds,
            )
        return dynamics.Population(w_rec, self.hidden_bias(), self.n_modules, onset=self.onset, **spiking)

    def hidden_bias(self) -> torch.Tensor:
        """The recurrent bias b [K, N] (zero without a hidden bias)."""
        return self.param("b") if "b" in self.names else self.zero_bias

    def readout_parameters(self) -> dynamics.Readout:
        """The K readouts as a :class:`~spikemod.dynamics.Readout`."""
        bottleneck = "bottleneck.weight" in self.names
        return dynamics.Readout(
            self.param("readout.weight"),
            self.param("readout.bias"),
            bottleneck_weight=self.param("bottleneck.weight") if bottleneck else None,
            bottleneck_bias=self.param("bottleneck.bias") if bottleneck else None,
            **self.readout_form,
        )

    def input_weight(self) -> torch.Tensor:
        """The input weights in the layout of :func:`spikemod.dynamics.input_current`."""
        w_in = self.param("w_in")
        return w_in * self.input_mask if self.config.input_scheme == "shared" else w_in

    # ----- forward -----

    def forward(self, x: torch.Tensor, static: bool = False, last_only: bool = False) -> StackOutput:
        n_steps = x.shape[0]
        current = dynamics.input_current(
            self.input_weight(), x[:1] if static else x, self.config.input_scheme, self.slot_of_module
        )
        drive = current + self.hidden_bias()[:, None]
        drives = [drive[0]] * n_steps if static else list(drive)
        ran = dynamics.run(self.population(), drives, last_only=last_only and not self.spiking)
        logits, module_logits, _ = dynamics.read_out(self.readout_parameters(), ran.states, self.n_modules, last_only)
        return StackOutput(logits, module_logits, ran.states, ran.membrane)

    def cross_spikes(self, states: torch.Tensor) -> torch.Tensor:
        """Spikes that reach another module [T, K, B, M, M] ([i, j]: from module j into module i)."""
        return dynamics.cross_spikes(self.population(), states, self.eligible_sources())
