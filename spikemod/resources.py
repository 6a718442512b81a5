"""Resource accounting per inference: spikes, interconnect traffic, synaptic operations, energy.

One inference is one sample over its T steps. Every count is per sample ([B] or [B, M, ...]
arrays); :meth:`ResourceCounts.summary` gives the means over a data set. The counts work from
plain arrays (spike trains [T, B, N], a recurrent adjacency [N, N] with row = target and column =
source, the module size), so the same code counts torch and Lava spike trains
(:func:`count_spike_trains`); :func:`count_resources` feeds it a :class:`ModularNetwork`'s masks and
output, and :func:`measure_resources` runs it over a data set.

Definitions (modules own the contiguous index ranges [m·n, (m+1)·n)):

- **event**: a spike (spiking) or one activation h_t of one neuron (rate: every neuron emits a
  value at every step, a dense code).
- **emitted** [B, M]: events per module. Spiking: the spikes of the module's neurons.
- **crossing** [B, M, M]: entry (i, j) counts the events of module j that cross the interconnect
  to module i: events of neurons of j with at least one synapse into i, each counted once per
  target module however many synapses it has there (one message per spike and destination module,
  as a router sends it). Under a bandwidth cap only the spikes that pass count (the network's
  rule: per step and direction the ``cap`` spiking eligible neurons with the lowest index pass).
  This equals the network's ``cross_spikes`` summed over time. The diagonal is zero.
- **synaptic_ops** [B, M, M]: entry (i, j) counts events of module j delivered over one existing
  synapse into module i: Σ over events of the source neuron's fan-out into i (nonzero entries of
  its column of the effective recurrent mask within block (i, j)). The diagonal is the inside-module
  work, the rest the across-module work. Spiking: one accumulate (AC) per synaptic op; rate: one
  multiply-accumulate (MAC) per existing synapse per step, the work of an implementation that
  skips absent synapses (a dense N×N matmul, as torch runs it, does N² per step). Every emitted
  event is counted, the last step's included: it is routed and fanned out when it is emitted.
- **interconnect onset** k (``interconnect_onset``, 1-based): the events of step t reach the
  other modules at step t + 1, so those of steps t < k - 1 neither cross nor make across-module
  synaptic ops (the network's ``cross_spikes`` are zero there too); inside-module work is unchanged.
- **input_ops** [B, M]: input work per target module. Spiking input encodings (``rate``,
  ``latency``): input spikes × their fan-out into the module (synaptic ops on the chip).
  ``direct`` current input: dense MACs on the host, one per nonzero input weight per evaluation
  (once per sample for static input, else at every step; ``fused`` input superimposes the slots
  first and multiplies once by W [N, D]), reported separately.
- **neuron_updates** [B]: N × T (every neuron's state is updated at every step).

Energy (:class:`EnergyModel`, joules per operation, user-overridable) is a first-order estimate:
Σ count × energy per operation. Spiking on-chip terms use Loihi's figures (Davies et al. 2018,
IEEE Micro 38(1):82-99, Table 2 "Loihi pre-silicon performance and energy measurements", from
SDF/SPICE simulation, consistent with early post-silicon characterisation): 23.6 pJ per synaptic
spike op (the minimum), 81 pJ per active neuron update (52 pJ inactive), 1.7 pJ per within-tile
spike and 3.0 / 4.0 pJ per east-west / north-south tile hop. Host and rate-variant MACs use 4.6 pJ
per 32-bit float MAC (3.7 pJ multiply + 0.9 pJ add, Horowitz, ISSCC 2014, 45 nm, 0.9 V).

What the estimate leaves out: static/leakage power and the timestep barrier synchronisation
(Loihi's per-chip idle costs, which scale with wall time, not with activity); the readout and
bottleneck layers; on-chip learning; host-chip I/O (injecting input spikes or currents, reading
out); memory traffic of the rate variant (weight and activation fetches, which on real hardware
often cost more than the arithmetic); the tanh evaluations of the rate variant; and the placement:
every module is assumed to sit on its own core, one tile hop from every other module. The two
processes (Loihi 14 nm, Horowitz 45 nm) also differ, so compare the variants by their counts first
and read energies as orders of magnitude.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, Dict, Iterable, Optional

import h5py
import numpy as np
import torch

from . import seeding
from .checkpoint import load_checkpoint
from .config import RunConfig
from .connectivity import blocks
from .dynamics import router_pass
from .network import ModularNetwork, NetworkOutput
from .task import PairDataset, network_input

__all__ = [
    "EnergyModel",
    "ResourceCounts",
    "count_spike_trains",
    "count_dense_activity",
    "count_resources",
    "measure_resources",
    "measure_checkpoint_resources",
    "format_resources",
    "resources_to_hdf5",
    "resources_from_hdf5",
    "save_resources",
    "load_resources",
    "RESOURCES_GROUP",
]

#: HDF5 group of a results file that holds the resource counts (next to "specialization").
RESOURCES_GROUP = "resources"

INPUT_KINDS = ("spikes", "current", "none")
VARIANTS = ("spiking", "rate")


@dataclass(frozen=True)
class EnergyModel:
    """Energy per operation in joules; override any field, e.g. ``EnergyModel(synaptic_op=30e-12)``.

    Defaults: Loihi, Davies et al. 2018 (IEEE Micro 38(1):82-99), Table 2:
    ``synaptic_op`` 23.6 pJ ("energy per synaptic spike op (min)", so a lower bound); ``neuron_update`` 81 pJ
    ("energy per neuron update, active"; 52 pJ inactive: with current input every neuron integrates
    input at every step, so the active figure applies); ``spike`` 1.7 pJ ("within-tile spike
    energy", paid by every emitted spike); ``tile_hop`` 3.5 pJ, the mean of the east-west 3.0 pJ and
    north-south 4.0 pJ "energy per tile hop", paid once per spike and target module crossing the
    interconnect. ``mac`` 4.6 pJ, a 32-bit float multiply (3.7 pJ) plus add (0.9 pJ) at 45 nm
    (Horowitz, ISSCC 2014), for the rate variant and host-side input MACs.
    """

    synaptic_op: float = 23.6e-12
    neuron_update: float = 81e-12
    spike: float = 1.7e-12
    tile_hop: float = 3.5e-12
    mac: float = 4.6e-12

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            number = isinstance(value, (int, float)) and not isinstance(value, bool)
            if not number or not math.isfinite(value):
                raise ValueError(
                    f"EnergyModel.{f.name} = {value!r} is invalid: use a finite number of joules"
                )
            if value < 0:
                raise ValueError(f"EnergyModel.{f.name} = {value!r} is invalid: energies must be >= 0 J")


@dataclass(frozen=True, eq=False)
class ResourceCounts:
    """Per-sample resource counts of one variant (see the module docs for the definitions).

    ``emitted`` [B, M]; ``crossing`` [B, M, M] and ``synaptic_ops`` [B, M, M] with entry (i, j) =
    from module j to module i; ``input_ops`` [B, M]; ``neuron_updates`` [B]. All int64.
    ``input_kind``: ``spikes`` (input_ops are synaptic ops), ``current`` (host MACs) or ``none``.
    """

    variant: str
    n_steps: int
    module_size: int
    input_kind: str
    emitted: np.ndarray
    crossing: np.ndarray
    synaptic_ops: np.ndarray
    input_ops: np.ndarray
    neuron_updates: np.ndarray
    energy_model: EnergyModel = EnergyModel()

    def __post_init__(self) -> None:
        if self.variant not in VARIANTS:
            raise ValueError(f"variant {self.variant!r} is invalid: use 'spiking' or 'rate'")
        if self.input_kind not in INPUT_KINDS:
            raise ValueError(f"input_kind {self.input_kind!r} is invalid: use one of {INPUT_KINDS}")
        b, m = self.emitted.shape
        shapes = {
            "crossing": (b, m, m),
            "synaptic_ops": (b, m, m),
            "input_ops": (b, m),
            "neuron_updates": (b,),
        }
        for name, shape in shapes.items():
            if getattr(self, name).shape != shape:
                raise ValueError(
                    f"ResourceCounts.{name} has shape {getattr(self, name).shape}, expected {shape}"
                )

    @property
    def n_samples(self) -> int:
        return self.emitted.shape[0]

    @property
    def n_modules(self) -> int:
        return self.emitted.shape[1]

    @property
    def events(self) -> np.ndarray:
        """[B] events emitted by the whole network (spikes, or activations for rate)."""
        return self.emitted.sum(axis=1)

    @property
    def total_crossing(self) -> np.ndarray:
        """[B] events crossing the interconnect, all directions."""
        return self.crossing.sum(axis=(1, 2))

    @property
    def inside_ops(self) -> np.ndarray:
        """[B] recurrent synaptic ops inside modules (the diagonal blocks)."""
        return np.trace(self.synaptic_ops, axis1=1, axis2=2)

    @property
    def across_ops(self) -> np.ndarray:
        """[B] recurrent synaptic ops across modules (the off-diagonal blocks)."""
        return self.synaptic_ops.sum(axis=(1, 2)) - self.inside_ops

    def energy_breakdown(self) -> Dict[str, np.ndarray]:
        """Estimated energy per sample [B] in joules, per term (zero where a variant lacks it).

        ``recurrent``: synaptic ops × ``synaptic_op`` (spiking) or MACs × ``mac`` (rate);
        ``input``: input synaptic ops × ``synaptic_op`` (spike input) or host MACs × ``mac``
        (current input); spiking only: ``neuron`` (updates), ``spike`` (within-tile routing of
        every spike) and ``interconnect`` (one tile hop per crossing spike and target module).
        """
        e = self.energy_model
        spiking = self.variant == "spiking"
        ops = self.synaptic_ops.sum(axis=(1, 2)).astype(np.float64)
        inputs = self.input_ops.sum(axis=1).astype(np.float64)
        input_energy = e.synaptic_op if self.input_kind == "spikes" else e.mac
        zero = np.zeros(self.n_samples)
        return {
            "recurrent": ops * (e.synaptic_op if spiking else e.mac),
            "input": inputs * input_energy,
            "neuron": self.neuron_updates * e.neuron_update if spiking else zero,
            "spike": self.events * e.spike if spiking else zero,
            "interconnect": self.total_crossing * e.tile_hop if spiking else zero,
        }

    @property
    def energy(self) -> np.ndarray:
        """[B] estimated energy per inference in joules (the sum of :meth:`energy_breakdown`)."""
        return sum(self.energy_breakdown().values())

    def summary(self) -> Dict[str, float]:
        """Means over the samples, flat names (e.g. ``crossing_1_from_0``), for tables and HDF5."""
        out: Dict[str, float] = {}
        for m in range(self.n_modules):
            out[f"emitted_{m}"] = float(self.emitted[:, m].mean())
        out["emitted"] = float(self.events.mean())
        for i in range(self.n_modules):
            for j in range(self.n_modules):
                if i != j:
                    out[f"crossing_{i}_from_{j}"] = float(self.crossing[:, i, j].mean())
        out["crossing"] = float(self.total_crossing.mean())
        out["inside_ops"] = float(self.inside_ops.mean())
        out["across_ops"] = float(self.across_ops.mean())
        out["input_ops"] = float(self.input_ops.sum(axis=1).mean())
        out["neuron_updates"] = float(self.neuron_updates.mean())
        for name, joules in self.energy_breakdown().items():
            out[f"energy_{name}"] = float(joules.mean())
        out["energy"] = float(self.energy.mean())
        return out

    @classmethod
    def concatenate(cls, parts: Iterable["ResourceCounts"]) -> "ResourceCounts":
        """Join the samples of several counts of the same network (e.g. batches of a data set)."""
        parts = list(parts)
        if not parts:
            raise ValueError("nothing to concatenate: pass at least one ResourceCounts")
        first = parts[0]

        def settings(c: "ResourceCounts") -> tuple:
            return (c.variant, c.n_steps, c.module_size, c.input_kind, c.n_modules, c.energy_model)

        if any(settings(p) != settings(first) for p in parts[1:]):
            raise ValueError(
                "cannot concatenate counts of different variants, T, module sizes, inputs or energy models"
            )
        arrays = {
            name: np.concatenate([getattr(p, name) for p in parts])
            for name in ("emitted", "crossing", "synaptic_ops", "input_ops", "neuron_updates")
        }
        return cls(
            first.variant,
            first.n_steps,
            first.module_size,
            first.input_kind,
            energy_model=first.energy_model,
            **arrays,
        )


# ----- counting on plain arrays -----


def _tensor(name: str, value: Any) -> torch.Tensor:
    if isinstance(value, torch.Tensor):
        return value.detach().cpu()
    try:
        return torch.as_tensor(np.asarray(value))
    except (TypeError, ValueError, RuntimeError):
        raise ValueError(
            f"{name} must be a torch tensor or numpy array, got {type(value).__name__}"
        ) from None


def _adjacency(value: Any, n_total: int) -> torch.Tensor:
    a = _tensor("adjacency", value)
    if tuple(a.shape) != (n_total, n_total):
        raise ValueError(
            f"adjacency must be [{n_total}, {n_total}] (row = target, column = source), "
            f"got {tuple(a.shape)}"
        )
    return a != 0


def _binary(name: str, x: torch.Tensor) -> torch.Tensor:
    if x.dtype == torch.bool:
        return x.double()
    if not bool(((x == 0) | (x == 1)).all()):
        raise ValueError(
            f"{name} must hold only 0 and 1 (spikes); for current input pass input_spikes=None "
            "(its host MACs are counted from input_adjacency)"
        )
    return x.double()


def _modules(n_total: int, module_size: int) -> int:
    if isinstance(module_size, bool) or not isinstance(module_size, int) or module_size < 1:
        raise ValueError(f"module_size = {module_size!r} is invalid: use a positive integer")
    if n_total % module_size:
        raise ValueError(
            f"{n_total} neurons do not split into modules of {module_size}: module_size must divide N"
        )
    return n_total // module_size


def _first_crossing_step(interconnect_onset: int) -> int:
    """0-based index of the first step whose events cross (delivered at onset or later)."""
    onset = interconnect_onset
    if isinstance(onset, bool) or not isinstance(onset, int) or onset < 1:
        raise ValueError(f"interconnect_onset = {interconnect_onset!r} is invalid: use an integer >= 1")
    return max(interconnect_onset - 2, 0)


def _split_ops(totals: torch.Tensor, crossing_totals: torch.Tensor, fan_out: torch.Tensor) -> torch.Tensor:
    """Synaptic ops [B, i, j]: every event inside its module, ``crossing_totals`` across modules."""
    own = torch.eye(fan_out.shape[0], dtype=fan_out.dtype)[..., None]
    return torch.einsum("bjc,ijc->bij", totals, fan_out * own) + torch.einsum(
        "bjc,ijc->bij", crossing_totals, fan_out * (1 - own)
    )


def _fan_out(adjacency: torch.Tensor, n_modules: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Fan-out [i, j, c] of neuron c of module j into module i; eligible: >= 1 synapse and i != j."""
    block = blocks(adjacency, n_modules)  # [i, j, target, source]
    fan_out = block.sum(dim=-2).double()
    eligible = block.any(dim=-2) & ~torch.eye(n_modules, dtype=torch.bool)[..., None]
    return fan_out, eligible.double()


def _input_ops(
    n_modules: int,
    batch: int,
    n_steps: int,
    input_spikes: Any,
    input_adjacency: Any,
    static_input: bool,
    n_total: int,
) -> tuple[str, torch.Tensor]:
    if input_adjacency is None:
        if input_spikes is not None:
            raise ValueError(
                "input_spikes need input_adjacency [N, K] (the nonzero input weights) to be counted"
            )
        return "none", torch.zeros(batch, n_modules, dtype=torch.float64)
    a_in = _tensor("input_adjacency", input_adjacency)
    if a_in.dim() != 2 or a_in.shape[0] != n_total:
        raise ValueError(
            f"input_adjacency must be [N = {n_total}, K] (row = neuron, column = input), "
            f"got {tuple(a_in.shape)}"
        )
    fan_in = (a_in != 0).reshape(n_modules, -1, a_in.shape[1]).sum(dim=1).double()  # [M, K]
    if input_spikes is None:
        evaluations = 1 if static_input else n_steps
        return "current", (evaluations * fan_in.sum(dim=1)).expand(batch, n_modules).clone()
    x = _binary("input_spikes", _tensor("input_spikes", input_spikes))
    if tuple(x.shape) != (n_steps, batch, a_in.shape[1]):
        raise ValueError(
            f"input_spikes must be [T = {n_steps}, B = {batch}, K = {a_in.shape[1]}] to match the spike "
            f"trains and input_adjacency, got {tuple(x.shape)}"
        )
    return "spikes", x.sum(dim=0) @ fan_in.t()


def _counts(**arrays: torch.Tensor) -> Dict[str, np.ndarray]:
    return {name: np.rint(a.numpy()).astype(np.int64) for name, a in arrays.items()}


def count_spike_trains(
    spikes: Any,
    adjacency: Any,
    module_size: int,
    *,
    input_spikes: Any = None,
    input_adjacency: Any = None,
    static_input: bool = False,
    bandwidth_cap: Optional[int] = None,
    interconnect_onset: int = 1,
    energy_model: EnergyModel = EnergyModel(),
) -> ResourceCounts:
    """Count the resources of recorded spike trains (torch or numpy, e.g. from Lava).

    ``spikes`` [T, B, N] 0/1; ``adjacency`` [N, N], nonzero = synapse (row = target, column =
    source); ``module_size`` n (module m = neurons [m·n, (m+1)·n)). Input, optional:
    ``input_adjacency`` [N, K] (nonzero input weights) with ``input_spikes`` [T, B, K] 0/1 for a
    spiking encoding, or without them for current input (host MACs; ``static_input``: computed once
    per sample). ``bandwidth_cap``: the network's per-step, per-direction cap on crossing spikes.
    ``interconnect_onset``: the network's first step (1-based) that receives the interconnect.
    """
    s = _tensor("spikes", spikes)
    if s.dim() != 3:
        raise ValueError(f"spikes must be [T, B, N] (time, batch, neuron), got shape {tuple(s.shape)}")
    s = _binary("spikes", s)
    n_steps, batch, n_total = s.shape
    n_modules = _modules(n_total, module_size)
    fan_out, eligible = _fan_out(_adjacency(adjacency, n_total), n_modules)
    per_module = s.unflatten(-1, (n_modules, module_size))  # [T, B, j, c]
    first = _first_crossing_step(interconnect_onset)
    if bandwidth_cap is None:
        totals = per_module.sum(dim=0)  # [B, j, c]
        crossing_totals = per_module[first:].sum(dim=0)
        crossing = torch.einsum("bjc,ijc->bij", crossing_totals, eligible)
        synaptic_ops = _split_ops(totals, crossing_totals, fan_out)
    else:
        if isinstance(bandwidth_cap, bool) or not isinstance(bandwidth_cap, int) or bandwidth_cap < 0:
            raise ValueError(
                f"bandwidth_cap = {bandwidth_cap!r} is invalid: use None or an integer >= 0"
            )
        # Per step and direction the `cap` eligible spiking neurons with the lowest index pass.
        candidates = per_module[:, :, None] * eligible  # [T, B, i, j, c]
        candidates[:first] = 0  # delivered while the interconnect is off
        passed = router_pass(candidates, bandwidth_cap)
        own = torch.eye(n_modules, dtype=torch.float64)[..., None]
        routed = passed + per_module[:, :, None] * own
        crossing = passed.sum(dim=(0, -1))
        synaptic_ops = torch.einsum("tbijc,ijc->bij", routed, fan_out)
    input_kind, input_ops = _input_ops(
        n_modules, batch, n_steps, input_spikes, input_adjacency, static_input, n_total
    )
    arrays = _counts(
        emitted=per_module.sum(dim=(0, 3)),
        crossing=crossing,
        synaptic_ops=synaptic_ops,
        input_ops=input_ops,
        neuron_updates=torch.full((batch,), float(n_total * n_steps)),
    )
    return ResourceCounts(
        "spiking", n_steps, module_size, input_kind, energy_model=energy_model, **arrays
    )


def count_dense_activity(
    n_steps: int,
    batch_size: int,
    adjacency: Any,
    module_size: int,
    *,
    input_adjacency: Any = None,
    static_input: bool = False,
    interconnect_onset: int = 1,
    energy_model: EnergyModel = EnergyModel(),
) -> ResourceCounts:
    """Count the rate variant: every neuron emits an activation at every step (dense MACs).

    Arguments as in :func:`count_spike_trains`; the counts do not depend on the data, only on the
    connectivity and T, and are repeated for ``batch_size`` samples. Current input only.
    """
    for name, value in (("n_steps", n_steps), ("batch_size", batch_size)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} = {value!r} is invalid: use a positive integer")
    a = _tensor("adjacency", adjacency)
    n_total = a.shape[0] if a.dim() == 2 else -1
    if n_total < 1:
        raise ValueError(
            f"adjacency must be [N, N] (row = target, column = source), got {tuple(a.shape)}"
        )
    n_modules = _modules(n_total, module_size)
    fan_out, eligible = _fan_out(_adjacency(a, n_total), n_modules)
    totals = torch.full((batch_size, n_modules, module_size), float(n_steps), dtype=torch.float64)
    crossing_steps = max(n_steps - _first_crossing_step(interconnect_onset), 0)
    crossing_totals = torch.full_like(totals, float(crossing_steps))
    input_kind, input_ops = _input_ops(
        n_modules, batch_size, n_steps, None, input_adjacency, static_input, n_total
    )
    arrays = _counts(
        emitted=totals.sum(dim=2),
        crossing=torch.einsum("bjc,ijc->bij", crossing_totals, eligible),
        synaptic_ops=_split_ops(totals, crossing_totals, fan_out),
        input_ops=input_ops,
        neuron_updates=torch.full((batch_size,), float(n_total * n_steps)),
    )
    return ResourceCounts("rate", n_steps, module_size, input_kind, energy_model=energy_model, **arrays)


# ----- counting a ModularNetwork -----


def count_resources(
    model: ModularNetwork,
    output: NetworkOutput,
    x: torch.Tensor,
    *,
    encoding: str = "direct",
    static: bool = False,
    energy_model: EnergyModel = EnergyModel(),
) -> ResourceCounts:
    """Count one forward pass ``output = model(x, static)`` of a
    :class:`~spikemod.network.ModularNetwork`.

    ``x`` [T, B, S, D] is the network input; ``encoding`` (``TaskConfig.encoding``) says whether it
    holds input spikes (``rate``, ``latency``: input synaptic ops) or currents (``direct``: host MACs).
    """
    if encoding not in ("direct", "rate", "latency"):
        raise ValueError(f"unknown encoding {encoding!r}: use 'direct', 'rate' or 'latency'")
    if model.config.variant == "rate" and encoding != "direct":
        raise ValueError(f"the rate variant takes current input: use encoding='direct', not {encoding!r}")
    with torch.no_grad():
        adjacency = model.recurrent_mask().cpu()
        input_adjacency = (model.input_weight() != 0).cpu()
        if encoding == "direct" and model.config.input_scheme == "fused":
            # The host superimposes the slots and multiplies once by W [N, D].
            input_adjacency = (model.w_in != 0).cpu()
    n_steps, batch = x.shape[:2]
    if model.config.variant == "rate":
        return count_dense_activity(
            n_steps,
            batch,
            adjacency,
            model.n_neurons,
            input_adjacency=input_adjacency,
            static_input=static,
            interconnect_onset=model.config.interconnect_onset,
            energy_model=energy_model,
        )
    return count_spike_trains(
        output.states,
        adjacency,
        model.n_neurons,
        input_spikes=None if encoding == "direct" else x.flatten(2),
        input_adjacency=input_adjacency,
        static_input=static,
        bandwidth_cap=model.config.bandwidth_cap,
        interconnect_onset=model.config.interconnect_onset,
        energy_model=energy_model,
    )


def measure_resources(
    model: ModularNetwork,
    dataset: PairDataset,
    config: RunConfig,
    *,
    batch_size: Optional[int] = None,
    generator: Optional[torch.Generator] = None,
    energy_model: EnergyModel = EnergyModel(),
) -> ResourceCounts:
    """Resource counts of ``model`` on every sample of ``dataset``, a
    :class:`~spikemod.task.PairDataset`.

    ``config`` is the run's :class:`~spikemod.config.RunConfig` (task, encoding and T); ``generator``
    draws noise and spike encodings (default: the split's measured-input stream of ``config.seed``,
    :mod:`spikemod.seeding`, in batches of ``config.train.batch_size``: the inputs of the test
    accuracy and the metrics).
    """
    batch_size = batch_size or config.train.batch_size
    if generator is None:
        generator = seeding.generator(config.seed, seeding.inputs_purpose(dataset.train))
    encoding = config.task.encoding
    parts = []
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            for batch in dataset.batches(batch_size):
                x, static = network_input(batch.images, config, generator)
                output = model(x.to(model.device), static=static).to("cpu")
                counts = count_resources(
                    model, output, x, encoding=encoding, static=static, energy_model=energy_model
                )
                parts.append(counts)
    finally:
        model.train(was_training)
    return ResourceCounts.concatenate(parts)


def measure_checkpoint_resources(
    checkpoint: "str | Path",
    out: "str | Path | None" = None,
    *,
    energy_model: EnergyModel = EnergyModel(),
    **overrides: Any,
) -> tuple[ResourceCounts, Path]:
    """Resources of a checkpoint on its test pairs, stored in the group ``resources`` of ``out``.

    ``out`` defaults to the checkpoint file; ``overrides`` replace config fields as in
    :func:`~spikemod.metrics.suite.measure_checkpoint` (e.g. ``data={"n_test": 2000}``).
    Returns the counts and the file written.
    """
    loaded = load_checkpoint(checkpoint)
    config = loaded.config.replace(**overrides) if overrides else loaded.config
    test_set = PairDataset(config.data, config.task, train=False, seed=config.seed)
    counts = measure_resources(
        loaded.model, test_set, config, energy_model=energy_model
    )
    path = Path(out) if out is not None else Path(checkpoint)
    save_resources(path, counts)
    return counts, path


# ----- reporting and storage -----


def _si(value: float, unit: str) -> str:
    if value == 0:
        return f"0 {unit}"
    for factor, prefix in ((1, ""), (1e-3, "m"), (1e-6, "µ"), (1e-9, "n"), (1e-12, "p")):
        if abs(value) >= factor:
            return f"{value / factor:.3g} {prefix}{unit}"
    return f"{value / 1e-15:.3g} f{unit}"


def format_resources(counts: ResourceCounts) -> str:
    """A short text table of the mean resources per inference."""
    s = counts.summary()
    spiking = counts.variant == "spiking"
    event = "spikes" if spiking else "activations"
    op = "synaptic ops (AC)" if spiking else "MACs"
    m = counts.n_modules
    lines = [
        f"Resources per inference ({counts.variant}, T = {counts.n_steps}, "
        f"mean over {counts.n_samples} samples)",
        f"  {event} emitted:  "
        + "  ".join(f"module {k}: {s[f'emitted_{k}']:.1f}" for k in range(m))
        + f"  total: {s['emitted']:.1f}",
        f"  {event} crossing: "
        + "  ".join(
            f"{j}->{i}: {s[f'crossing_{i}_from_{j}']:.1f}" for j in range(m) for i in range(m) if i != j
        )
        + f"  total: {s['crossing']:.1f}",
        f"  recurrent {op}: inside {s['inside_ops']:.1f}  across {s['across_ops']:.1f}",
    ]
    if counts.input_kind != "none":
        kind = "input synaptic ops (spikes)" if counts.input_kind == "spikes" else "input MACs (host)"
        lines.append(f"  {kind}: {s['input_ops']:.1f}")
    lines.append(f"  neuron updates: {s['neuron_updates']:.0f}")
    terms = ", ".join(
        f"{name} {_si(s[f'energy_{name}'], 'J')}"
        for name in ("recurrent", "input", "neuron", "spike", "interconnect")
        if s[f"energy_{name}"] > 0
    )
    lines.append(f"  estimated energy: {_si(s['energy'], 'J')} ({terms})")
    return "\n".join(lines)


_ARRAYS = ("emitted", "crossing", "synaptic_ops", "input_ops", "neuron_updates")


def resources_to_hdf5(group: Any, counts: ResourceCounts) -> None:
    """Write ``counts`` into an h5py group: per-sample arrays as datasets, means and settings as
    attrs (``mean_<summary name>``, ``energy_model_<field>``)."""
    for name in _ARRAYS:
        group.create_dataset(name, data=getattr(counts, name), compression="gzip")
    group.attrs["variant"] = counts.variant
    group.attrs["n_steps"] = counts.n_steps
    group.attrs["module_size"] = counts.module_size
    group.attrs["input_kind"] = counts.input_kind
    for name, value in asdict(counts.energy_model).items():
        group.attrs[f"energy_model_{name}"] = value
    for name, value in counts.summary().items():
        group.attrs[f"mean_{name}"] = value


def resources_from_hdf5(group: Any) -> ResourceCounts:
    """Read counts written by :func:`resources_to_hdf5`."""
    missing = [name for name in _ARRAYS if name not in group]
    if missing:
        raise ValueError(
            f"HDF5 group {group.name} holds no resource counts (missing {', '.join(missing)})"
        )
    energy = EnergyModel(
        **{f.name: float(group.attrs[f"energy_model_{f.name}"]) for f in fields(EnergyModel)}
    )
    return ResourceCounts(
        str(group.attrs["variant"]),
        int(group.attrs["n_steps"]),
        int(group.attrs["module_size"]),
        str(group.attrs["input_kind"]),
        energy_model=energy,
        **{name: group[name][()] for name in _ARRAYS},
    )


def save_resources(path: "str | Path", counts: ResourceCounts, group: str = RESOURCES_GROUP) -> None:
    """Write ``counts`` into ``group`` of the HDF5 file ``path`` (created if needed; group replaced)."""
    with h5py.File(path, "a") as f:
        if group in f:
            del f[group]
        resources_to_hdf5(f.create_group(group), counts)


def load_resources(path: "str | Path", group: str = RESOURCES_GROUP) -> ResourceCounts:
    """Read counts written by :func:`save_resources`."""
    with h5py.File(path, "r") as f:
        if group not in f:
            raise ValueError(f"{path} has no group '{group}'; run `spikemod measure` to create it")
        return resources_from_hdf5(f[group])
