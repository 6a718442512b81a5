"""Modular recurrent networks: rate-based tanh modules and LIF modules on snnTorch.

All M modules of n neurons form one population of N = M·n neurons driven by one masked recurrent
matrix (row = target, column = source; block (i, j) = from module j to module i): dense diagonal
blocks without self-connections and sparse off-diagonal blocks with exactly ``n_synapses``
connections per direction, fixed or rewired by Deep-R. With x_t the flattened digit slots:

- rate:    h_t = tanh(W_in·x_t + W_rec·h_{t-1} + b), h_0 = 0 (the papers' model);
- spiking: I_t = W_in·x_t + W_rec·s_{t-1} + b and ``snn.Leaky(reset_mechanism="zero")``:
  U_t = beta·(1 - S_{t-1})·U_{t-1} + I_t, S_t = (U_t > threshold), U_0 = S_0 = 0 (the equations
  are in :mod:`spikemod.dynamics`, once, for this model and every other user). This is Lava's
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

import dataclasses
import math
from dataclasses import dataclass
from typing import List, Optional, Tuple

import torch
from snntorch import surrogate
from torch import nn

from . import dynamics
from .config import ModelConfig
from .connectivity import eligible_sources, input_mask, intra_module_mask, module_slices, recurrent_mask
from .deepr import DeepRInterconnect
from .dynamics import competitive_max

__all__ = [
    "ModularNetwork",
    "NetworkOutput",
    "ModuleLinear",
    "LIFParameters",
    "competitive_max",
    "input_blocks",
    "spike_gradient",
]


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

    def to(self, device: "torch.device | str") -> "NetworkOutput":
        """The same output with every tensor on ``device``."""
        return NetworkOutput(*(None if t is None else t.to(device) for t in dataclasses.astuple(self)))


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


class LIFParameters(nn.Module):
    """β and θ of the LIF population: per-neuron parameters [N] when learnable, else fixed scalars.

    The names (``lif.beta``, ``lif.threshold``) are those of ``snn.Leaky``, so checkpoints keep their
    layout; the step itself is :func:`spikemod.dynamics.lif_step`.
    """

    def __init__(self, cfg: ModelConfig, n_total: int) -> None:
        super().__init__()
        for name, value, learn in (("beta", cfg.beta, cfg.learn_beta), ("threshold", cfg.threshold, cfg.learn_threshold)):
            if learn:
                setattr(self, name, nn.Parameter(torch.full((n_total,), float(value))))
            else:
                self.register_buffer(name, torch.tensor(float(value)))


def input_blocks(input_weight: torch.Tensor, scheme: str, n_modules: int, n_slots: int) -> torch.Tensor:
    """Effective input weights [N, S·D] in the layout of :func:`spikemod.dynamics.input_current`
    for one network: separate input [M, 1, n, D] (module m's block from slot m mod S), shared
    [1, N, S·D], fused [1, N, D] (one of the tied copies)."""
    if scheme == "fused":
        return input_weight[:, : input_weight.shape[1] // n_slots][None]
    if scheme == "shared":
        return input_weight[None]
    n_total = input_weight.shape[0]
    per_module = input_weight.view(n_modules, n_total // n_modules, n_slots, -1)
    slots = torch.arange(n_modules) % n_slots
    return per_module[torch.arange(n_modules), :, slots][:, None]


class ModularNetwork(nn.Module):
    """M recurrent modules of n rate or LIF neurons with a sparse interconnect (see module docs).

    ``forward(x [T, B, S, D], static)`` -> :class:`NetworkOutput`. With ``static=True`` every step
    has the same input (e.g. an expanded view) and W_in·x is computed once. The forward pass is
    :mod:`spikemod.dynamics` on this network's effective parameters (:meth:`population`,
    :meth:`readout_parameters`) as a stack of one.
    """

    def __init__(
        self,
        model_cfg: ModelConfig,
        n_inputs: int = 784,
        n_slots: int = 2,
        n_heads: int = 2,
        n_classes: int = 10,
        router_seed: int = 0,
    ) -> None:
        super().__init__()
        cfg = model_cfg
        #: Seed of the random-policy router's draws (``ModelConfig.router``), fresh every forward pass.
        self.router_seed = router_seed
        m, n = cfg.n_modules, cfg.n_neurons
        self.config = cfg
        self.n_inputs, self.n_slots, self.n_heads, self.n_classes = n_inputs, n_slots, n_heads, n_classes
        self.n_modules, self.n_neurons, self.n_total = m, n, m * n
        self.module_slices: List[slice] = module_slices(m, n)
        self.spiking = cfg.variant == "spiking"
        self.spike_fn = spike_gradient(cfg.surrogate, cfg.surrogate_slope) if self.spiking else None

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
        if cfg.hidden_bias:
            self.b = nn.Parameter(_uniform((self.n_total,), hidden_bound))
        else:  # a constant zero, not trained
            self.register_buffer("b", torch.zeros(self.n_total))
        self.lif: Optional[LIFParameters] = LIFParameters(cfg, self.n_total) if self.spiking else None

        # Bottleneck and readout.
        features = n
        self.bottleneck: Optional[ModuleLinear] = None
        if cfg.bottleneck is not None:
            self.bottleneck = ModuleLinear(m, n, cfg.bottleneck, linear_bound(n))
            features = cfg.bottleneck
        outputs = n_heads * n_classes
        if cfg.readout_scheme in ("separate", "concat"):  # concat: the block-diagonal Linear, by blocks
            fan_in = features if cfg.readout_fan_in == "module" else m * features
            self.readout: nn.Module = ModuleLinear(m, features, outputs, linear_bound(fan_in))
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

    @property
    def device(self) -> torch.device:
        """Where the parameters are."""
        return self.b.device

    def slot_of_module(self) -> torch.Tensor:
        """The digit slot each module reads with separate input [M]: module m reads slot m mod S."""
        return torch.arange(self.n_modules, device=self.device) % self.n_slots

    def input_blocks(self) -> torch.Tensor:
        """The input weights in the layout of :func:`spikemod.dynamics.input_current` (K = 1)."""
        return input_blocks(self.input_weight(), self.config.input_scheme, self.n_modules, self.n_slots)

    def input_current(self, x: torch.Tensor) -> torch.Tensor:
        """W_in·x_t without bias: [T, B, S, D] -> [T, B, N]."""
        self._check_input(x)
        scheme = self.config.input_scheme
        return dynamics.input_current(self.input_blocks(), x[:, None], scheme, self.slot_of_module())[:, 0]

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
        return eligible_sources(self.recurrent_mask(), self.n_modules)

    def deep_r_parameters(self) -> List[nn.Parameter]:
        """Parameters trained by Deep-R (empty with a fixed interconnect)."""
        return [] if self.interconnect is None else [self.interconnect.theta]

    def module_parameters(self) -> List[nn.Parameter]:
        """Every trainable parameter except Deep-R's."""
        rewired = {id(p) for p in self.deep_r_parameters()}
        return [p for p in self.parameters() if id(p) not in rewired]

    def population(self) -> dynamics.Population:
        """This network's recurrent population as a :class:`~spikemod.dynamics.Population` of K = 1."""
        cfg = self.config
        spiking = {}
        if self.spiking:
            lif = self._lif()
            spiking = dict(
                beta=lif.beta.expand(self.n_total)[None],
                threshold=lif.threshold.expand(self.n_total)[None],
                spike_fn=self.spike_fn,
                eligible=None if cfg.bandwidth_cap is None else self.eligible_sources()[None],
                cap=None if cfg.bandwidth_cap is None else torch.tensor([cfg.bandwidth_cap], device=self.device),
                router_seeds=[self.router_seed] if cfg.router == "random" else None,
            )
        onset = None if cfg.interconnect_onset == 1 else torch.tensor([cfg.interconnect_onset], device=self.device)
        return dynamics.Population(
            self.recurrent_weight()[None], self.b[None], self.n_modules, onset=onset, **spiking
        )

    def readout_parameters(self) -> dynamics.Readout:
        """This network's readout as a :class:`~spikemod.dynamics.Readout` of K = 1."""
        cfg = self.config
        bottleneck = self.bottleneck
        return dynamics.Readout(
            self.readout.weight[None],
            self.readout.bias[None],
            self.n_heads,
            self.n_classes,
            scheme=cfg.readout_scheme,
            bottleneck_weight=None if bottleneck is None else bottleneck.weight[None],
            bottleneck_bias=None if bottleneck is None else bottleneck.bias[None],
            leak=cfg.beta if self.spiking and cfg.spike_readout == "membrane" else None,
            counts=self.spiking and cfg.spike_readout == "count",
        )

    # ----- forward -----

    def forward(self, x: torch.Tensor, static: bool = False) -> NetworkOutput:
        n_steps = x.shape[0]
        current = self.input_current(x[:1] if static else x)
        drive = current + self.b
        drives = [drive[0, None]] * n_steps if static else list(drive[:, None])
        population = self.population()
        ran = dynamics.run(population, drives)
        cross = None
        if self.spiking:
            cross = dynamics.cross_spikes(population, ran.states, self.eligible_sources()[None])[:, 0]
        logits, module_logits, bottleneck = dynamics.read_out(self.readout_parameters(), ran.states, self.n_modules)
        return NetworkOutput(
            logits[:, 0],
            None if module_logits is None else module_logits[:, 0],
            ran.states[:, 0],
            None if ran.membrane is None else ran.membrane[:, 0],
            None if bottleneck is None else bottleneck[:, 0],
            cross,
        )

    # ----- helpers -----

    def _lif(self) -> LIFParameters:
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
