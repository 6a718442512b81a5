"""The network's equations, once: pure step and run functions over K networks at a time.

Every tensor carries a leading network axis K (K = 1 is a single network), the way Norse keeps its
``functional`` step functions apart from the modules that hold parameters. The model
(:class:`~spikemod.network.ModularNetwork`), the trainer's stack of K networks
(:class:`~spikemod.stack.NetworkStack`), the metrics, the resource counts and the host side of the
Lava comparison (``spikemod.hardware.host``) all call these functions, so the torch side of every
comparison runs the code that trained the network.

With x_t the flattened digit slots, N = M·n neurons in M modules, s_0 = U_0 = h_0 = 0:

- drive:   d_t = W_in·x_t + b                         (:func:`input_current` gives W_in·x_t)
- rate:    h_t = tanh(d_t + W_rec(t)·h_{t−1})
- spiking: I_t = d_t + W_rec(t)·s_{t−1};  U_t = β·(1 − S_{t−1})·U_{t−1} + I_t;  S_t = H(U_t − θ)
           (:func:`lif_step`, ``snn.Leaky(reset_mechanism="zero")``: β clamped to [0, 1], the
           reset detached from the graph, H's gradient the surrogate)

W_rec(t) is the whole recurrent matrix from the interconnect onset on (1-based step t ≥ onset of
that network) and its diagonal blocks before. With a bandwidth cap k, at most k of the spikes of
module j that have a synapse into module i reach i per step: the lowest-index ones (a router
serving addresses in order, ``router`` ``address``) or k drawn uniformly among them (``random``,
from seeded generators); spikes inside a module are never capped. The router's choice is a mask
computed from the spikes, without gradient, that multiplies them: the surrogate gradient reaches
the spikes that cross and the silent sources whose spike would have crossed (in address order,
those ahead of the k-th crossing spike), and never a dropped spike.

Readout (:func:`read_out`), per head of C classes: features z_t (rate states, spikes, or running
spike counts) → optional bottleneck per module → one readout per module (``separate``: per sample
the module whose largest logit is highest decides, :func:`competitive_max`), the same blocks
read as one block-diagonal layer whose M·C logits all compete (``concat``), or one over all
modules (``shared``); with a leaky readout the logits are V_t = λ·V_{t−1} + r_t.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional, Sequence, Tuple

import torch

from .connectivity import intra_module_mask

__all__ = [
    "Population",
    "Readout",
    "RunOutput",
    "lif_step",
    "input_current",
    "run",
    "cross_spikes",
    "router_pass",
    "read_out",
    "competitive_max",
    "leaky_integral",
]


@dataclass(frozen=True)
class Population:
    """Effective parameters of K recurrent populations of M modules of n neurons.

    ``w_rec`` [K, N, N] (row = target, column = source, masks applied); ``bias`` [K, N]. Spiking
    only: ``beta`` and ``threshold`` [K, N] (β unclamped: :func:`lif_step` clamps it as snnTorch
    does), ``spike_fn`` (H with its surrogate gradient). ``onset`` [K] (1-based step from which the
    interconnect acts; None: from step 1) and ``cap`` [K] (spikes per step and direction; None: no
    cap) may differ between the networks; with a cap, ``eligible`` [K, M, M, n] bool ([k, i, j, c]:
    neuron c of module j has a synapse into module i ≠ j) says which spikes count against it, and
    ``router_seeds`` (one per network) seed the draws of which ones pass under the ``random``
    policy, fresh for every :func:`run` (None: the lowest addresses pass).
    """

    w_rec: torch.Tensor
    bias: torch.Tensor
    n_modules: int
    beta: Optional[torch.Tensor] = None
    threshold: Optional[torch.Tensor] = None
    spike_fn: Optional[Callable[[torch.Tensor], torch.Tensor]] = None
    eligible: Optional[torch.Tensor] = None
    onset: Optional[torch.Tensor] = None
    cap: Optional[torch.Tensor] = None
    router_seeds: Optional[Sequence[int]] = None

    @property
    def spiking(self) -> bool:
        return self.threshold is not None


@dataclass(frozen=True)
class Readout:
    """Effective readout parameters of K networks.

    ``scheme`` ``separate`` or ``concat``: ``weight`` [K, M, O, F] and ``bias`` [K, M, O] per module;
    ``shared``: [K, O, M·F] and [K, O] over all modules; O = H·C; optional ``bottleneck_weight`` [K, M, k, n] and
    ``bottleneck_bias`` [K, M, k]; ``leak`` λ of leaky output units (None: the readout is
    instantaneous); ``counts``: the features are the running spike counts.
    """

    weight: torch.Tensor
    bias: torch.Tensor
    n_heads: int
    n_classes: int
    scheme: str
    bottleneck_weight: Optional[torch.Tensor] = None
    bottleneck_bias: Optional[torch.Tensor] = None
    leak: Optional[float] = None
    counts: bool = False


@dataclass(frozen=True)
class RunOutput:
    """What :func:`run` returns, time-major: ``states`` [T, K, B, N] (tanh activations or 0/1
    spikes), ``membrane`` [T, K, B, N] (spiking) or None."""

    states: torch.Tensor
    membrane: Optional[torch.Tensor]


def lif_step(
    current: torch.Tensor,
    mem: torch.Tensor,
    beta: torch.Tensor,
    threshold: torch.Tensor,
    spike_fn: Callable[[torch.Tensor], torch.Tensor],
) -> Tuple[torch.Tensor, torch.Tensor]:
    """One step of ``snn.Leaky(reset_mechanism="zero")``: (S_t, U_t) from I_t and U_{t−1}.

    R = H(U_{t−1} − θ) (detached); U_t = clamp(β, 0, 1)·((1 − R)·U_{t−1}) + I_t; S_t = H(U_t − θ),
    with snnTorch's order of operations, so the numbers are snnTorch's bit for bit.
    """
    reset = spike_fn(mem - threshold).detach()
    mem = beta.clamp(0, 1) * ((1 - reset) * mem) + current
    return spike_fn(mem - threshold), mem


def input_current(
    w_in: torch.Tensor, x: torch.Tensor, scheme: str, slot_of_module: Optional[torch.Tensor] = None
) -> torch.Tensor:
    """W_in·x_t of K networks: x [T, G, B, S, D] -> [T, K, B, N], G dividing K (each input is read
    by K/G adjacent networks).

    ``w_in``: ``separate`` input, each module's own block [M, K, n, D] (module m reads slot
    ``slot_of_module[m]``; one batched matmul per module and input, W·xᵀ, which on the CPU is
    faster than x·Wᵀ, as is its gradient); ``shared`` input [K, N, S·D] (masked); ``fused`` input
    [K, N, D] on the sum of the slots.
    """
    n_steps, g, b, n_slots, d = x.shape
    if scheme == "separate":
        m, k, n, _ = w_in.shape
        per_module = x.permute(0, 3, 1, 2, 4)  # [T, S, G, B, D]: no copy of a slot-major x
        if m != n_slots:
            per_module = per_module[:, slot_of_module]  # [T, M, G, B, D]
        rows = per_module.permute(1, 2, 0, 3, 4).reshape(m * g, n_steps * b, d)
        current = torch.bmm(w_in.reshape(m * g, k // g * n, d), rows.transpose(1, 2))  # [M·G, K/G·n, T·B]
        return current.view(m, k, n, n_steps, b).permute(3, 1, 4, 0, 2).reshape(n_steps, k, b, m * n)
    k = w_in.shape[0]
    if g != k:
        x = x.repeat_interleave(k // g, dim=1)
    if scheme == "fused":
        return torch.einsum("tkbd,knd->tkbn", x.sum(dim=3), w_in)
    return torch.einsum("tkbi,kni->tkbn", x.flatten(3), w_in)


def _step_weights(population: Population, n_steps: int) -> list:
    """W_rec(t)ᵀ [K, N, N] for t = 1 .. T (the same tensor while no onset changes it)."""
    w_t = population.w_rec.transpose(1, 2)
    if population.onset is None:
        return [w_t] * n_steps
    m = population.n_modules
    w_intra_t = w_t * intra_module_mask(m, w_t.shape[-1] // m).to(w_t.device)
    steps = []
    for t in range(1, n_steps + 1):
        on = (population.onset <= t).view(-1, 1, 1)
        steps.append(w_t if bool(on.all()) else torch.where(on, w_t, w_intra_t))
    return steps


def router_pass(candidates: torch.Tensor, cap, priority: Optional[torch.Tensor] = None) -> torch.Tensor:
    """The spikes a router lets through: of ``candidates`` [..., n] (0/1 spikes of one direction's
    eligible source neurons, in address order), the first ``cap`` (a number, or a tensor that
    broadcasts against [..., 1]) in address order, or, with ``priority`` [..., n] (distinct
    numbers), the ``cap`` with the smallest priority among those that spike."""
    if priority is None:
        return candidates * (candidates.cumsum(dim=-1) <= cap)
    keys = torch.where(candidates.detach() > 0, priority, torch.full_like(priority, float("inf")))
    rank = keys.argsort(dim=-1).argsort(dim=-1)
    return candidates * (rank < cap)


def _capped_current(
    population: Population,
    spikes: torch.Tensor,
    w_blocks: torch.Tensor,
    t: int,
    router_generators: Optional[Sequence[torch.Generator]],
) -> torch.Tensor:
    """W_rec(t)·s with at most ``cap`` spikes per step and direction crossing between modules.

    Of the spiking neurons of module j with a synapse into module i, the ``cap`` with the lowest
    index pass; the others are dropped for i only. Before a network's onset no spike crosses.
    """
    m = population.n_modules
    s = spikes.unflatten(-1, (m, -1))  # [K, B, M, n]
    eligible = population.eligible.to(s.dtype)  # [K, i, j, n]
    if population.onset is not None:
        eligible = eligible * (population.onset <= t).to(s.dtype).view(-1, 1, 1, 1)
    candidates = s[:, :, None] * eligible[:, None]  # [K, B, i, j, n]
    priority = None
    if router_generators is not None:  # uniform priorities drawn on the CPU, per network
        shape = candidates.shape[1:]
        priority = torch.stack([torch.rand(shape, generator=g) for g in router_generators]).to(s.device)
    passed = router_pass(candidates, population.cap.view(-1, 1, 1, 1, 1), priority)
    own = torch.eye(m, dtype=s.dtype, device=s.device)[..., None]
    routed = passed + s[:, :, None] * own
    return torch.einsum("kijac,kbijc->kbia", w_blocks, routed).flatten(-2)


def run(population: Population, drives: Sequence[torch.Tensor], last_only: bool = False) -> RunOutput:
    """The recurrence over the drives d_t = W_in·x_t + b, one [K, B, N] tensor per step (a static
    input may pass the same tensor T times: its gradients add up). ``last_only``: keep only the
    last step's states and membrane ([1, K, B, N]), all that a rate network's loss reads."""
    n_steps = len(drives)
    weights = _step_weights(population, n_steps)
    w_blocks = None
    if population.cap is not None:
        k, big_n, _ = population.w_rec.shape
        m = population.n_modules
        w_blocks = population.w_rec.view(k, m, big_n // m, m, big_n // m).transpose(2, 3)  # [K, i, j, a, c]
    seeds = population.router_seeds
    router_generators = None if seeds is None else [torch.Generator().manual_seed(seed) for seed in seeds]
    state = drives[0].new_zeros(drives[0].shape)
    mem = drives[0].new_zeros(drives[0].shape) if population.spiking else None
    states, membranes = [], []
    for t, (drive, w_t) in enumerate(zip(drives, weights), start=1):
        if w_blocks is None:
            current = torch.baddbmm(drive, state, w_t)
        else:
            current = drive + _capped_current(population, state, w_blocks, t, router_generators)
        if population.spiking:
            state, mem = lif_step(current, mem, population.beta[:, None], population.threshold[:, None], population.spike_fn)
            membranes.append(mem)
        else:
            state = torch.tanh(current)
        states.append(state)
    if last_only:
        return RunOutput(states[-1][None], membranes[-1][None] if membranes else None)
    return RunOutput(torch.stack(states), torch.stack(membranes) if membranes else None)


def cross_spikes(population: Population, spikes: torch.Tensor, eligible: torch.Tensor) -> torch.Tensor:
    """Spikes that reach another module [T, K, B, M, M]: [t, k, b, i, j] spikes of module j at step t
    that reach module i (``eligible`` [K, M, M, n] as in :class:`Population`; after the cap). Spikes
    of step t arrive at step t + 1, so those of steps t < onset − 1 arrive while the interconnect is
    off and count zero."""
    per_module = spikes.detach().unflatten(-1, (population.n_modules, -1))
    cross = torch.einsum("tkbjc,kijc->tkbij", per_module, eligible.to(per_module.dtype))
    if population.cap is not None:
        cross = torch.minimum(cross, population.cap.to(cross.dtype).view(1, -1, 1, 1, 1))
    if population.onset is not None:
        # step t (0-based) delivers at 1-based step t + 2, so it counts from t ≥ onset − 2
        step = torch.arange(len(cross), device=cross.device).view(-1, 1)
        delivered = step >= population.onset.view(1, -1) - 2  # [T, K]
        cross = cross * delivered.to(cross.dtype)[..., None, None, None]
    return cross


def competitive_max(module_logits: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    """Competitive max decision over modules.

    ``module_logits`` [..., M, C] -> (logits [..., C] of the deciding module, its index [...]).
    The deciding module is the one whose largest logit is highest (first one on ties).
    """
    deciding = module_logits.amax(dim=-1).argmax(dim=-1)
    index = deciding[..., None, None].expand(*deciding.shape, 1, module_logits.shape[-1])
    return module_logits.gather(-2, index).squeeze(-2), deciding


def leaky_integral(values: torch.Tensor, leak: float) -> torch.Tensor:
    """V_t = λ·V_{t−1} + r_t, V_0 = 0, over the leading time axis, as one lower-triangular product."""
    steps = torch.arange(len(values), device=values.device)
    lag = steps[:, None] - steps[None, :]
    decay = torch.where(lag >= 0, leak ** lag.clamp(min=0).to(values.dtype), 0.0)
    return torch.tensordot(decay, values, dims=([1], [0]))


def read_out(
    readout: Readout, states: torch.Tensor, n_modules: int, last_only: bool = False
) -> Tuple[torch.Tensor, Optional[torch.Tensor], Optional[torch.Tensor]]:
    """Logits [T, K, B, H, C], module logits [T, K, B, H, M, C] (separate and concat readouts) or
    None, and the bottleneck [T, K, B, M, k] or None (with ``last_only`` and a leak: of the
    integrated features), from the states [T, K, B, N]. Separate readouts decide by the
    competitive max; a concat readout's logits are all M·C module logits, module-major
    ([T, K, B, H, M·C]): class indices 0..C−1 are module 0's, so an argmax elsewhere is wrong.

    ``last_only``: the last step's only ([1, ...]; all that the loss and the decision read). A
    leaky readout's last step is V_T = Σ_t λ^(T−t)·f(z_t), and f (bottleneck included) is affine,
    so it equals f of Σ_t λ^(T−t)·z_t with the biases scaled by Σ_t λ^(T−t): one readout, not T.
    """
    features = states.cumsum(dim=0) if readout.counts else states
    bias_scale = 1.0
    integrate = readout.leak is not None
    if last_only and integrate:
        decay = readout.leak ** torch.arange(len(features) - 1, -1, -1, dtype=features.dtype, device=features.device)
        features, bias_scale, integrate = torch.tensordot(decay, features, dims=1)[None], decay.sum(), False
    elif last_only:
        features = features[-1:]
    z = features.unflatten(-1, (n_modules, -1))  # [T, K, B, M, n]
    bottleneck = None
    if readout.bottleneck_weight is not None:
        z = bottleneck = (
            torch.einsum("tkbmi,kmoi->tkbmo", z, readout.bottleneck_weight)
            + readout.bottleneck_bias[:, None] * bias_scale
        )
    heads = (readout.n_heads, readout.n_classes)
    if readout.scheme == "shared":
        out = torch.einsum("tkbi,koi->tkbo", z.flatten(-2), readout.weight) + readout.bias[:, None] * bias_scale
        out = leaky_integral(out, readout.leak) if integrate else out
        return out.unflatten(-1, heads), None, bottleneck
    out = torch.einsum("tkbmi,kmoi->tkbmo", z, readout.weight) + readout.bias[:, None] * bias_scale
    out = leaky_integral(out, readout.leak) if integrate else out
    module_logits = out.unflatten(-1, heads).transpose(3, 4)  # [T, K, B, H, M, C]
    if readout.scheme == "concat":
        return module_logits.flatten(-2), module_logits, bottleneck
    return competitive_max(module_logits)[0], module_logits, bottleneck
