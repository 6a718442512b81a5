"""Modular recurrent networks: rate-based tanh modules and LIF modules on snnTorch.

All M modules of n neurons form one population of N = M·n neurons driven by one masked recurrent
matrix (row = target, column = source; block (i, j) = from module j to module i): dense diagonal
blocks without self-connections and sparse off-diagonal blocks with exactly ``n_synapses``
connections per direction, fixed or rewired by Deep-R. With x_t the flattened digit slots:

- rate:    h_t = tanh(W_in·x_t + W_rec·h_{t-1} + b), h_0 = 0 (the papers' model);
- spiking: I_t = W_in·x_t + W_rec·s_{t-1} + b and ``snn.Leaky(reset_mechanism="zero")``:
  U_t = beta·(1 - S_{t-1})·U_{t-1} + I_t, S_t = (U_t > threshold), U_0 = S_0 = 0. This is Lava's
  LIF with du = 1, dv = 1 - beta, vth = threshold, bias_mant = b and the recurrence in Dense/Sparse.
  Only spikes cross between modules.

Interconnect onset (``interconnect_onset`` = k, 1-based): steps t < k use only the diagonal blocks
of W_rec (the recurrence inside each module), steps t >= k the whole matrix, so the spikes (or
states) of step t - 1 reach the other modules from step k on. k = 1 is the plain model above and,
since the states start at zero, k = 2 gives the same numbers.

Input schemes: ``separate`` (module m sees only digit slot m mod S), ``shared`` (every module sees
every slot, each through its own weights) and ``fused``: the slots are superimposed, x_0 + x_1,
into one image that every module sees through one weight matrix W [N, D], so
:meth:`ModularNetwork.input_weight` is [W, W]. The superposition loses which digit came in which
slot, so on the parity task (T' depends on the order of D0 and D1) "fused" caps accuracy near the
no-communication ceiling. (The papers' "fused pathway" architecture is separate input with a
shared readout: ``input_scheme="separate", readout_scheme="shared"``.)

Readouts, one head of C classes per target:

- ``separate``: each module has its own readout per head; per sample and head, the module whose
  largest logit is highest decides (:func:`competitive_max`), so no information is pooled at the
  readout;
- ``shared``: one linear layer over the concatenated states of all modules, a genuinely dense layer.
- optional bottleneck: a narrow linear layer (k units) per module between the module and its readout.

The spiking readout (``spike_readout``) sees spikes only: ``membrane`` = non-spiking leaky output
units, V_t = beta·V_{t-1} + W_out·s_t + b_out, V_0 = 0 (a LIF that never fires, with the same
beta); ``count`` = W_out·(Σ_{τ≤t} s_τ) + b_out, a readout of the spike counts so far.

Initialisation (``init``): ``pytorch`` ("Dynamics", the rate default) is PyTorch's RNN default
for the recurrent population, U(-1/√N, 1/√N) with N the total hidden size, for W_in, W_rec and b,
and ``nn.Linear``'s default U(-1/√fan_in, 1/√fan_in) for bottleneck and readout weights and
biases; ``uniform`` ("Extreme sparsity", bound 0.1) draws every weight and bias from
U(-init_scale, init_scale). The spiking default is ``uniform`` with bound 0.01: the input currents
then stay below threshold and integrate over several steps, which trains far better than the
PyTorch init, under which most neurons fire at every step (see ``config.DEFAULT_INIT`` and
experiments/check_accuracy.py).
Masked entries are zero from the start and every effective weight is masked in the forward pass,
so they stay exactly zero under any optimiser.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import List, Optional, Tuple

import snntorch as snn
import torch
from snntorch import surrogate
from torch import nn

from .config import ModelConfig
from .connectivity import (
    blocks,
    input_mask,
    intra_module_mask,
    module_slices,
    recurrent_mask,
)
from .deepr import DeepRInterconnect

__all__ = ["ModularNetwork", "NetworkOutput", "ModuleLinear", "competitive_max", "spike_gradient"]


@dataclass
class NetworkOutput:
    """What a forward pass returns; every tensor is time-major.

    ``logits`` [T, B, H, C]; ``module_logits`` [T, B, H, M, C] (separate readout only);
    ``states`` [T, B, N] tanh activations or 0/1 spikes; ``membrane`` [T, B, N] (spiking);
    ``bottleneck`` [T, B, M, k]; ``cross_spikes`` [T, B, M, M] (spiking): entry [t, b, i, j] is the
    number of spikes of module j at step t that reach module i (from neurons with at least one
    synapse into i; after the bandwidth cap when there is one); the diagonal is zero. Spikes of
    step t are delivered at step t + 1, so with an interconnect onset k (1-based) the entries of
    steps t < k - 1 are zero: those spikes arrive while the interconnect is still off.
    """

    logits: torch.Tensor
    module_logits: Optional[torch.Tensor]
    states: torch.Tensor
    membrane: Optional[torch.Tensor]
    bottleneck: Optional[torch.Tensor]
    cross_spikes: Optional[torch.Tensor]

    def predictions(self) -> torch.Tensor:
        """The decision [B, H]: the class with the largest logit at the last step."""
        return self.logits[-1].argmax(dim=-1)


def competitive_max(module_logits: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    """Competitive max decision over modules.

    ``module_logits`` [..., M, C] -> (logits [..., C] of the deciding module, its index [...]).
    The deciding module is the one whose largest logit is highest (first one on ties).
    """
    deciding = module_logits.amax(dim=-1).argmax(dim=-1)
    index = deciding[..., None, None].expand(*deciding.shape, 1, module_logits.shape[-1])
    return module_logits.gather(-2, index).squeeze(-2), deciding


def spike_gradient(name: str, slope: Optional[float] = None):
    """snnTorch surrogate for dS/dU: ``atan`` (alpha, default 2) or ``fast_sigmoid`` (slope, default 25)."""
    if name == "atan":
        return surrogate.atan(alpha=2.0 if slope is None else slope)
    if name == "fast_sigmoid":
        return surrogate.fast_sigmoid(slope=25.0 if slope is None else slope)
    raise ValueError(f"unknown surrogate {name!r}: use 'atan' or 'fast_sigmoid'")


def _uniform(shape: Tuple[int, ...], bound: float) -> torch.Tensor:
    return torch.empty(shape).uniform_(-bound, bound)


class ModuleLinear(nn.Module):
    """One independent linear layer per module: [..., M, in] -> [..., M, out] in one einsum."""

    def __init__(self, n_modules: int, in_features: int, out_features: int, bound: float) -> None:
        super().__init__()
        self.weight = nn.Parameter(_uniform((n_modules, out_features, in_features), bound))
        self.bias = nn.Parameter(_uniform((n_modules, out_features), bound))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.einsum("...mi,moi->...mo", x, self.weight) + self.bias


class ModularNetwork(nn.Module):
    """M recurrent modules of n rate or LIF neurons with a sparse interconnect (see module docs).

    ``forward(x [T, B, S, D], static)`` -> :class:`NetworkOutput`. With ``static=True`` every step
    has the same input (e.g. an expanded view) and W_in·x is computed once.
    """

    def __init__(
        self,
        model_cfg: ModelConfig,
        n_inputs: int = 784,
        n_slots: int = 2,
        n_heads: int = 2,
        n_classes: int = 10,
    ) -> None:
        super().__init__()
        cfg = model_cfg
        m, n = cfg.n_modules, cfg.n_neurons
        self.config = cfg
        self.n_inputs, self.n_slots, self.n_heads, self.n_classes = n_inputs, n_slots, n_heads, n_classes
        self.n_modules, self.n_neurons, self.n_total = m, n, m * n
        self.module_slices: List[slice] = module_slices(m, n)
        self.spiking = cfg.variant == "spiking"

        uniform = cfg.init_scheme == "uniform"
        hidden_bound = cfg.uniform_bound if uniform else 1.0 / math.sqrt(self.n_total)

        def linear_bound(fan_in: int) -> float:
            return cfg.uniform_bound if uniform else 1.0 / math.sqrt(fan_in)

        # Input weights.
        if cfg.input_scheme == "fused":
            self.w_in = nn.Parameter(_uniform((self.n_total, n_inputs), hidden_bound))
        else:
            mask = input_mask(cfg.input_scheme, m, n, n_slots, n_inputs)
            self.register_buffer("input_mask", mask)
            self.w_in = nn.Parameter(_uniform((self.n_total, n_slots * n_inputs), hidden_bound) * mask)

        # Recurrent weights: dense modules plus the fixed or Deep-R interconnect.
        initial = _uniform((self.n_total, self.n_total), hidden_bound)
        if cfg.deep_r:
            intra = intra_module_mask(m, n)
            self.register_buffer("intra_mask", intra)
            self.w_rec = nn.Parameter(initial * intra)
            self.interconnect: Optional[DeepRInterconnect] = DeepRInterconnect(m, n, cfg.n_synapses, initial)
        else:
            mask = recurrent_mask(m, n, cfg.n_synapses)
            self.register_buffer("fixed_recurrent_mask", mask)
            self.w_rec = nn.Parameter(initial * mask)
            self.interconnect = None
        self.b = nn.Parameter(_uniform((self.n_total,), hidden_bound))

        # LIF population (one snn.Leaky over all N neurons).
        self.lif: Optional[snn.Leaky] = None
        if self.spiking:
            # Learnable beta and threshold are per-neuron tensors; fixed ones are scalars.
            n_total = self.n_total
            beta = torch.full((n_total,), float(cfg.beta)) if cfg.learn_beta else cfg.beta
            threshold = torch.full((n_total,), float(cfg.threshold)) if cfg.learn_threshold else cfg.threshold
            self.lif = snn.Leaky(
                beta=beta,
                threshold=threshold,
                spike_grad=spike_gradient(cfg.surrogate, cfg.surrogate_slope),
                learn_beta=cfg.learn_beta,
                learn_threshold=cfg.learn_threshold,
                reset_mechanism="zero",
            )
            # This model never uses snnTorch's global neuron registry (init_hidden=False);
            # leaving the neuron in it would keep every model ever built alive (snntorch#328).
            snn.SpikingNeuron.instances.remove(self.lif)

        # Bottleneck and readout.
        features = n
        self.bottleneck: Optional[ModuleLinear] = None
        if cfg.bottleneck is not None:
            self.bottleneck = ModuleLinear(m, n, cfg.bottleneck, linear_bound(n))
            features = cfg.bottleneck
        outputs = n_heads * n_classes
        if cfg.readout_scheme == "separate":
            self.readout: nn.Module = ModuleLinear(m, features, outputs, linear_bound(features))
        else:
            self.readout = nn.Linear(m * features, outputs)
            bound = linear_bound(m * features)
            with torch.no_grad():
                self.readout.weight.uniform_(-bound, bound)
                self.readout.bias.uniform_(-bound, bound)

    # ----- effective parameters -----

    def input_weight(self) -> torch.Tensor:
        """Effective input weights [N, S·D] for the flattened slots (fused: the tied [W, ..., W])."""
        if self.config.input_scheme == "fused":
            return self.w_in.repeat(1, self.n_slots)
        return self.w_in * self.input_mask

    def input_current(self, x: torch.Tensor) -> torch.Tensor:
        """W_in·x_t without bias: [T, B, S, D] -> [T, B, N]."""
        self._check_input(x)
        if self.config.input_scheme == "fused":
            return x.sum(dim=2) @ self.w_in.t()
        return x.flatten(2) @ self.input_weight().t()

    def recurrent_weight(self) -> torch.Tensor:
        """Effective recurrent weights [N, N] (row = target, column = source), masks applied."""
        if self.interconnect is not None:
            return self.w_rec * self.intra_mask + self.interconnect.weight()
        return self.w_rec * self.fixed_recurrent_mask

    def recurrent_mask(self) -> torch.Tensor:
        """Bool [N, N]: the existing recurrent connections (Deep-R: the currently active ones)."""
        if self.interconnect is not None:
            return self.intra_mask | self.interconnect.mask()
        return self.fixed_recurrent_mask

    def bias(self) -> torch.Tensor:
        """Bias [N] of the hidden neurons."""
        return self.b

    def beta(self) -> torch.Tensor:
        """Membrane decay per neuron [N], clipped to [0, 1] as snnTorch does (spiking only)."""
        return self._lif().beta.clamp(0, 1).expand(self.n_total)

    def threshold(self) -> torch.Tensor:
        """Firing threshold per neuron [N] (spiking only)."""
        return self._lif().threshold.expand(self.n_total)

    def eligible_sources(self) -> torch.Tensor:
        """Bool [M, M, n]: [i, j, c] = neuron c of module j has a synapse into module i (i != j)."""
        reach = blocks(self.recurrent_mask(), self.n_modules).any(dim=-2)
        return reach & ~torch.eye(self.n_modules, dtype=torch.bool, device=reach.device)[..., None]

    def deep_r_parameters(self) -> List[nn.Parameter]:
        """Parameters trained by Deep-R (empty with a fixed interconnect)."""
        return [] if self.interconnect is None else [self.interconnect.theta]

    def module_parameters(self) -> List[nn.Parameter]:
        """Every trainable parameter except Deep-R's."""
        rewired = {id(p) for p in self.deep_r_parameters()}
        return [p for p in self.parameters() if id(p) not in rewired]

    # ----- forward -----

    def forward(self, x: torch.Tensor, static: bool = False) -> NetworkOutput:
        n_steps = x.shape[0]
        current = self.input_current(x[:1] if static else x)
        drive = (current + self.b).expand(n_steps, *current.shape[1:])
        if self.spiking:
            states, membrane, cross = self._run_spiking(drive)
            features = states if self.config.spike_readout == "membrane" else states.cumsum(dim=0)
        else:
            states, membrane, cross = self._run_rate(drive), None, None
            features = states
        logits, module_logits, bottleneck = self._read_out(features)
        return NetworkOutput(logits, module_logits, states, membrane, bottleneck, cross)

    def _intra_only(self, w_rec: torch.Tensor) -> torch.Tensor:
        """``w_rec`` with the off-diagonal blocks (the interconnect) zeroed."""
        return w_rec * intra_module_mask(self.n_modules, self.n_neurons).to(w_rec.device)

    def _crosses(self, t: int) -> bool:
        """Whether step t (0-based here, 1-based t + 1 in the config) receives the interconnect."""
        return t + 1 >= self.config.interconnect_onset

    def _run_rate(self, drive: torch.Tensor) -> torch.Tensor:
        w_rec = self.recurrent_weight()
        w_t = w_rec.t()
        w_intra_t = self._intra_only(w_rec).t() if self.config.interconnect_onset > 1 else w_t
        h = drive.new_zeros(drive.shape[1:])
        states = []
        for t in range(len(drive)):
            h = torch.tanh(torch.addmm(drive[t], h, w_t if self._crosses(t) else w_intra_t))
            states.append(h)
        return torch.stack(states)

    def _run_spiking(self, drive: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        lif = self._lif()
        w_rec = self.recurrent_weight()
        w_t = w_rec.t()
        w_blocks = blocks(w_rec, self.n_modules)
        eligible = self.eligible_sources()
        cap = self.config.bandwidth_cap
        onset = self.config.interconnect_onset
        w_intra_t = self._intra_only(w_rec).t() if onset > 1 else w_t
        no_crossing = torch.zeros_like(eligible)
        spikes = drive.new_zeros(drive.shape[1:])
        mem = drive.new_zeros(drive.shape[1:])
        all_spikes, all_mem = [], []
        for t in range(len(drive)):
            if cap is None:
                current = torch.addmm(drive[t], spikes, w_t if self._crosses(t) else w_intra_t)
            else:
                reach = eligible if self._crosses(t) else no_crossing
                current = drive[t] + self._capped_recurrent_current(spikes, w_blocks, reach, cap)
            spikes, mem = lif(current, mem)
            all_spikes.append(spikes)
            all_mem.append(mem)
        lif.reset_mem()  # drop snnTorch's reference to this pass's graph
        spikes_t, mem_t = torch.stack(all_spikes), torch.stack(all_mem)
        per_module = spikes_t.detach().unflatten(-1, (self.n_modules, self.n_neurons))
        cross = torch.einsum("tbjc,ijc->tbij", per_module, eligible.to(per_module.dtype))
        if cap is not None:
            cross = cross.clamp(max=cap)
        if onset > 2:  # spikes of steps before onset - 1 arrive while the interconnect is off
            cross[: onset - 2] = 0
        return spikes_t, mem_t, cross

    def _capped_recurrent_current(
        self, spikes: torch.Tensor, w_blocks: torch.Tensor, eligible: torch.Tensor, cap: int
    ) -> torch.Tensor:
        """W_rec·s with at most ``cap`` spikes per step and direction crossing between modules.

        A router serves spikes in address order: of the spiking neurons of module j with a synapse
        into module i, the ``cap`` with the lowest index pass; the others are dropped for i only.
        Spikes inside a module are never capped. Before the interconnect onset ``eligible`` is all
        False, so no spike crosses.
        """
        s = spikes.unflatten(-1, (self.n_modules, self.n_neurons))  # [B, M, n]
        candidates = s[:, None] * eligible  # [B, i, j, n]
        passed = candidates * (candidates.cumsum(dim=-1) <= cap)
        own = torch.eye(self.n_modules, dtype=s.dtype, device=s.device)[..., None]
        routed = passed + s[:, None] * own
        return torch.einsum("ijac,bijc->bia", w_blocks, routed).flatten(1)

    def _read_out(
        self, features: torch.Tensor
    ) -> Tuple[torch.Tensor, Optional[torch.Tensor], Optional[torch.Tensor]]:
        per_module = features.unflatten(-1, (self.n_modules, self.n_neurons))  # [T, B, M, n]
        bottleneck = self.bottleneck(per_module) if self.bottleneck is not None else None
        z = per_module if bottleneck is None else bottleneck
        heads = (self.n_heads, self.n_classes)
        if self.config.readout_scheme == "separate":
            module_logits = self._integrate(self.readout(z).unflatten(-1, heads).transpose(2, 3))
            logits, _ = competitive_max(module_logits)
            return logits, module_logits, bottleneck
        logits = self._integrate(self.readout(z.flatten(-2)).unflatten(-1, heads))
        return logits, None, bottleneck

    def _integrate(self, readout_current: torch.Tensor) -> torch.Tensor:
        """Leaky output units for the spiking membrane readout: V_t = beta·V_{t-1} + r_t."""
        if not (self.spiking and self.config.spike_readout == "membrane"):
            return readout_current
        steps = torch.arange(len(readout_current), device=readout_current.device)
        lag = steps[:, None] - steps[None, :]
        decay = torch.where(lag >= 0, self.config.beta ** lag.clamp(min=0).to(readout_current.dtype), 0.0)
        return torch.tensordot(decay, readout_current, dims=([1], [0]))

    # ----- helpers -----

    def _lif(self) -> snn.Leaky:
        if self.lif is None:
            raise ValueError("the rate variant has no LIF neurons (beta, threshold); use variant='spiking'")
        return self.lif

    def _check_input(self, x: torch.Tensor) -> None:
        expected = (self.n_slots, self.n_inputs)
        if not isinstance(x, torch.Tensor) or x.dim() != 4 or tuple(x.shape[2:]) != expected:
            shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
            raise ValueError(
                f"network input must be [T, B, {self.n_slots}, {self.n_inputs}] "
                f"(time, batch, digit slot, pixels), got {shape}"
            )
        if not x.is_floating_point():
            raise ValueError(f"network input must be a float tensor, got {x.dtype}")
