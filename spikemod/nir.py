"""Export of spiking modular networks to NIR (the Neuromorphic Intermediate Representation) and a
reference importer that runs such a file in torch with the model's spikes, bit for bit.

Needs the optional extra ``nir`` (``nir==1.0.8``, ``nirtorch==2.6``). No Lava.

Graph layout (node keys sort after their inputs: ``nir.read`` sorts them alphabetically and
nirtorch 2.6 crashes on a sub-graph reached before its input):

- ``a_input``: Input [S·D], the flattened digit slots x_t;
- ``b_drive_m``: Affine(W_in rows of module m, b_m), the drive d_t = W_in·x_t + b;
- ``c_module_m``: sub-graph {``a_input`` → ``b_lif`` ⇄ ``c_recurrent`` (Linear W_mm) → ``z_output``};
- ``d_cross_i_from_j``: Linear W_ij from module j's spikes into module i's sub-graph;
- readout per module: ``e_count_m`` (I, count readout only) → ``f_bottleneck_m`` (Affine, with a
  bottleneck) → ``g_readout_m`` (Affine onto all O outputs) → ``h_leaky`` (LI, membrane readout
  only) → ``z_output``. O = M·H·C with separate and concat readouts (module m's weights in rows
  m·H·C .. (m+1)·H·C, zeros elsewhere; the decision, the competitive max over modules or the
  argmax over all M·C of a head, is the consumer's) and O = H·C with a shared one (its columns split by module, the bias on module 0).
  Several inputs of a node add up, as everywhere in NIR.

Conventions (also in the graph's ``metadata``): NIR is continuous-time; this file is meant for a
forward-Euler executor with dt = 1e-4 (snnTorch's). An LIF τ·v̇ = (v_leak − v) + r·I then steps as
v_t = (1 − dt/τ)·v_{t−1} + (dt·r/τ)·I_t, so with

    τ = dt/(1 − β),  r = 1/(1 − β),  v_leak = v_reset = 0,  v_threshold = θ

it is the model's U_t = β·(1 − S_{t−1})·U_{t−1} + I_t, S_t = (U_t > θ), with reset to zero. τ and r
are float64: float32(1 − dt/τ) then gives back every float32 β exactly. The LI readout has τ and r
from the readout leak λ (V_t = λ·V_{t−1} + r_t); the I node counts spikes with r = 1/dt. Every
edge into a sub-graph from a recurrent Linear (W_mm, W_ij) carries the previous step's spikes: a
one-step delay, I_t = W_in·x_t + b + W_rec·s_{t−1}, which NIR cannot state portably (discrete
executors break each cycle with one step, as nirtorch does).

Exactness: the importer's spikes equal the model's (tests/test_nir.py), but its currents add the
same terms in another order (W_in·x + b, then W_mm·s, then each W_ij·s, instead of one matrix
product), so membranes and logits agree to float32 rounding (about 2e-6), not bit for bit; a spike
could flip only where U_t lands that close to θ.
"""

from __future__ import annotations

from pathlib import Path
from typing import Dict, List, Mapping, NamedTuple, Optional, Tuple, Union

import numpy as np
import torch
from torch import nn

from .config import ConfigError, RunConfig
from .dynamics import competitive_max
from .exportability import export_problem, module_value_problem
from .network import ModularNetwork

try:
    import nir
    import nirtorch
except ImportError as err:  # pragma: no cover - depends on the environment
    raise ImportError(
        "spikemod.nir needs the optional extra 'nir' (nir==1.0.8, nirtorch==2.6): pip install 'spikemod[nir]'"
    ) from err

__all__ = [
    "DT",
    "NODE_MAP",
    "NIRExportError",
    "NIROutput",
    "LIFState",
    "LIFNode",
    "LINode",
    "INode",
    "nir_graph",
    "graph_of_arrays",
    "export_nir",
    "import_nir",
    "nir_run",
    "nir_spikes",
]

DT = 1e-4

PathLike = Union[str, Path]


class NIRExportError(ConfigError):
    """A model cannot be written to NIR exactly; the message names the feature and the fix."""


class NIROutput(NamedTuple):
    """What :func:`nir_run` returns, time-major: ``spikes`` [T, B, N] (0/1, float32) and ``logits``
    [T, B, H, C] (separate readouts: of the module that wins the competitive max)."""

    spikes: torch.Tensor
    logits: torch.Tensor


# ----- export -----


def _numpy(tensor: torch.Tensor) -> np.ndarray:
    return tensor.detach().cpu().numpy().astype(np.float32, copy=True)


def _per_module(name: str, values: np.ndarray, n_modules: int, fix: str) -> np.ndarray:
    """``values`` [N] when it is constant within every module, else a :class:`NIRExportError`."""
    problem = module_value_problem(name, values, n_modules)
    if problem is not None:
        raise NIRExportError(
            f"{problem}, but an exact NIR export takes one {name} per module (snnTorch's importer asserts it). {fix}"
        )
    return values


def _time_constants(leak: np.ndarray, what: str) -> Tuple[np.ndarray, np.ndarray]:
    """τ = dt/(1 − β) and r = 1/(1 − β) in float64 from the float32 decays ``leak``."""
    if (leak >= 1).any():
        raise NIRExportError(
            f"{what} has β = 1 (no leak), which has no finite NIR time constant τ = dt/(1 − β); "
            "train with beta < 1"
        )
    one_minus = 1.0 - leak.astype(np.float64)
    return DT / one_minus, 1.0 / one_minus


def _check_exportable(model: ModularNetwork, config: RunConfig) -> None:
    """The conditions of every exact export (:func:`spikemod.exportability.export_problem`)."""
    problem = export_problem(model, config, "NIR", "a Linear edge", "Linear edges")
    if problem is not None:
        raise NIRExportError(problem)


def _module_graph(w_mm: np.ndarray, beta: np.ndarray, threshold: np.ndarray) -> nir.NIRGraph:
    """{a_input → b_lif ⇄ c_recurrent → z_output} of one module of n neurons."""
    n = len(beta)
    tau, r = _time_constants(beta, "the LIF neurons' beta")
    zeros = np.zeros(n, dtype=np.float32)
    nodes = {
        "a_input": nir.Input(np.array([n])),
        "b_lif": nir.LIF(tau=tau, r=r, v_leak=zeros, v_threshold=threshold, v_reset=zeros.copy()),
        "c_recurrent": nir.Linear(weight=w_mm),
        "z_output": nir.Output(np.array([n])),
    }
    edges = [("a_input", "b_lif"), ("b_lif", "c_recurrent"), ("c_recurrent", "b_lif"), ("b_lif", "z_output")]
    return nir.NIRGraph(nodes=nodes, edges=edges)


def _readout_blocks(
    weight: np.ndarray, bias: np.ndarray, n_modules: int, shared: bool
) -> List[Tuple[np.ndarray, np.ndarray]]:
    """Per module, the readout Affine onto all O outputs: (weight [O, F], bias [O])."""
    m = n_modules
    if shared:  # [O, M·F] split by module columns; the bias once
        features = weight.shape[1] // m
        return [
            (weight[:, i * features : (i + 1) * features].copy(), bias if i == 0 else np.zeros_like(bias))
            for i in range(m)
        ]
    outputs = weight.shape[1]  # [M, O', F], [M, O'] placed in rows i·O' .. (i + 1)·O'
    blocks = []
    for i in range(m):
        w = np.zeros((m * outputs, weight.shape[2]), dtype=np.float32)
        b = np.zeros(m * outputs, dtype=np.float32)
        w[i * outputs : (i + 1) * outputs] = weight[i]
        b[i * outputs : (i + 1) * outputs] = bias[i]
        blocks.append((w, b))
    return blocks


def nir_graph(model: ModularNetwork, config: RunConfig) -> nir.NIRGraph:
    """The NIR graph of a spiking ``model`` built from ``config`` (layout in the module docs;
    raises :class:`NIRExportError` for the rate variant, a bandwidth cap, an interconnect onset
    after step 1, β or θ differing within a module, and β = 1)."""
    _check_exportable(model, config)
    m = model.n_modules
    beta = _per_module("beta", _numpy(model.beta()), m, "Train with learn_beta=False (modules may differ).")
    threshold = _per_module("threshold", _numpy(model.threshold()), m, "Train with learn_threshold=False.")
    arrays = {
        "input_weight": _numpy(model.input_weight()),
        "bias": _numpy(model.bias()),
        "recurrent_weight": _numpy(model.recurrent_weight()),
        "beta": beta.reshape(m, -1)[:, 0],
        "threshold": threshold.reshape(m, -1)[:, 0],
        "readout/weight": _numpy(model.readout.weight),
        "readout/bias": _numpy(model.readout.bias),
    }
    if model.bottleneck is not None:
        arrays["bottleneck/weight"] = _numpy(model.bottleneck.weight)
        arrays["bottleneck/bias"] = _numpy(model.bottleneck.bias)
    return graph_of_arrays(config, arrays, model.n_heads, model.n_classes)


def graph_of_arrays(config: RunConfig, arrays: Mapping[str, np.ndarray], n_heads: int, n_classes: int) -> nir.NIRGraph:
    """The NIR graph of a spiking network given as float32 arrays, named and shaped as in a Lava
    network description (``spikemod.hardware.export``): ``input_weight`` [N, S·D], ``bias`` [N],
    ``recurrent_weight`` [N, N], ``beta`` and ``threshold`` [M] (one per module), ``readout/weight``
    and ``readout/bias``, and optionally ``bottleneck/weight`` and ``bottleneck/bias``."""
    cfg = config.model
    m, n = cfg.n_modules, cfg.n_neurons
    w_in, bias, w_rec = arrays["input_weight"], arrays["bias"], arrays["recurrent_weight"]
    beta, threshold = np.repeat(arrays["beta"], n), np.repeat(arrays["threshold"], n)
    blocks = [slice(i * n, (i + 1) * n) for i in range(m)]

    nodes: Dict[str, nir.NIRNode] = {"a_input": nir.Input(np.array([w_in.shape[1]]))}
    edges: List[Tuple[str, str]] = []
    for i, rows in enumerate(blocks):
        nodes[f"b_drive_{i}"] = nir.Affine(weight=w_in[rows].copy(), bias=bias[rows].copy())
        nodes[f"c_module_{i}"] = _module_graph(w_rec[rows, rows].copy(), beta[rows].copy(), threshold[rows].copy())
        edges += [("a_input", f"b_drive_{i}"), (f"b_drive_{i}", f"c_module_{i}")]
        for j, columns in enumerate(blocks):
            if j != i:
                nodes[f"d_cross_{i}_from_{j}"] = nir.Linear(weight=w_rec[rows, columns].copy())
                edges += [(f"c_module_{j}", f"d_cross_{i}_from_{j}"), (f"d_cross_{i}_from_{j}", f"c_module_{i}")]

    count = cfg.spike_readout == "count"
    readout = _readout_blocks(arrays["readout/weight"], arrays["readout/bias"], m, cfg.readout_scheme == "shared")
    n_outputs = len(readout[0][1])
    head = "h_leaky" if not count else "z_output"
    for i, (weight, out_bias) in enumerate(readout):
        source = f"c_module_{i}"
        if count:
            nodes[f"e_count_{i}"] = nir.I(r=np.full(n, 1.0 / DT))
            edges.append((source, f"e_count_{i}"))
            source = f"e_count_{i}"
        if "bottleneck/weight" in arrays:
            nodes[f"f_bottleneck_{i}"] = nir.Affine(
                weight=arrays["bottleneck/weight"][i].copy(), bias=arrays["bottleneck/bias"][i].copy()
            )
            edges.append((source, f"f_bottleneck_{i}"))
            source = f"f_bottleneck_{i}"
        nodes[f"g_readout_{i}"] = nir.Affine(weight=weight, bias=out_bias)
        edges += [(source, f"g_readout_{i}"), (f"g_readout_{i}", head)]
    if not count:
        tau, r = _time_constants(np.full(n_outputs, cfg.beta, dtype=np.float32), "the leaky readout (model.beta)")
        nodes["h_leaky"] = nir.LI(tau=tau, r=r, v_leak=np.zeros(n_outputs, dtype=np.float32))
        edges.append(("h_leaky", "z_output"))
    nodes["z_output"] = nir.Output(np.array([n_outputs]))

    metadata = {
        "producer": "spikemod",
        "dt": DT,
        "integration": "forward Euler: v_t = (1 - dt/tau)*v_{t-1} + (dt*r/tau)*I_t; LIF fires on v > "
        "v_threshold and resets to v_reset (zero) on the step after the spike",
        "recurrent_delay": "one step: every Linear edge into a c_module sub-graph carries the spikes of "
        "step t-1 (I_t = W_in x_t + b + W_rec s_{t-1})",
        "readout_scheme": cfg.readout_scheme,
        "spike_readout": cfg.spike_readout,
        "outputs": "separate and concat: M*H*C module logits, module-major; separate: the decision is the "
        "competitive max over modules (the module with the highest largest logit); concat: the argmax over "
        "each head's M*C logits (module 0's C are the classes, others are wrong). shared: H*C logits",
        "n_modules": m,
        "n_heads": n_heads,
        "n_classes": n_classes,
    }
    return nir.NIRGraph(nodes=nodes, edges=edges, metadata=metadata)


def export_nir(model: ModularNetwork, config: RunConfig, path: PathLike) -> Path:
    """Write :func:`nir_graph` of ``model`` to the NIR (HDF5) file ``path``; returns the path."""
    path = Path(path)
    graph = nir_graph(model, config)
    path.parent.mkdir(parents=True, exist_ok=True)
    nir.write(path, graph)
    return path


# ----- reference import -----


class LIFState(NamedTuple):
    """The state of :class:`LIFNode`: membrane U [B, n] and spikes S [B, n] of the last step."""

    membrane: torch.Tensor
    spikes: torch.Tensor


def _euler_factors(tau: np.ndarray, r: np.ndarray) -> Tuple[torch.Tensor, torch.Tensor]:
    """The forward-Euler decay 1 − dt/τ and input gain dt·r/τ, computed in float64, as float32."""
    tau, r = np.asarray(tau, dtype=np.float64), np.asarray(r, dtype=np.float64)
    return torch.from_numpy((1.0 - DT / tau).astype(np.float32)), torch.from_numpy((DT * r / tau).astype(np.float32))


def _require_zero(node: nir.NIRNode, names: Tuple[str, ...]) -> None:
    for name in names:
        if np.any(np.asarray(getattr(node, name)) != 0):
            raise ValueError(f"this importer runs spikemod's graphs only: {type(node).__name__}.{name} must be 0")


class LIFNode(nn.Module):
    """U_t = β·((1 − S_{t−1})·U_{t−1}) + g·I_t, S_t = (U_t − θ > 0), β = 1 − dt/τ, g = dt·r/τ
    (``snn.Leaky(reset_mechanism="zero")``'s order of operations; g is 1 for spikemod's graphs)."""

    def __init__(self, node: nir.LIF) -> None:
        super().__init__()
        _require_zero(node, ("v_leak", "v_reset"))
        beta, gain = _euler_factors(node.tau, node.r)
        self.register_buffer("beta", beta)
        self.register_buffer("gain", gain)
        self.register_buffer("threshold", torch.from_numpy(np.asarray(node.v_threshold, dtype=np.float32)))

    def forward(self, input: torch.Tensor, state: Optional[LIFState] = None) -> Tuple[torch.Tensor, LIFState]:
        if state is None:
            state = LIFState(torch.zeros_like(input), torch.zeros_like(input))
        membrane = self.beta * ((1 - state.spikes) * state.membrane) + self.gain * input
        spikes = (membrane - self.threshold > 0).to(input.dtype)
        return spikes, LIFState(membrane, spikes)


class LINode(nn.Module):
    """V_t = λ·V_{t−1} + g·I_t, λ = 1 − dt/τ, g = dt·r/τ (spikemod's leaky readout; g = 1)."""

    def __init__(self, node: nir.LI) -> None:
        super().__init__()
        _require_zero(node, ("v_leak",))
        decay, gain = _euler_factors(node.tau, node.r)
        self.register_buffer("decay", decay)
        self.register_buffer("gain", gain)

    def forward(self, input: torch.Tensor, state: Optional[torch.Tensor] = None) -> Tuple[torch.Tensor, torch.Tensor]:
        v = self.gain * input if state is None else self.decay * state + self.gain * input
        return v, v


class INode(nn.Module):
    """V_t = V_{t−1} + dt·r·I_t (dt·r = 1: the running spike count)."""

    def __init__(self, node: nir.I) -> None:
        super().__init__()
        self.register_buffer("gain", torch.from_numpy((DT * np.asarray(node.r, dtype=np.float64)).astype(np.float32)))

    def forward(self, input: torch.Tensor, state: Optional[torch.Tensor] = None) -> Tuple[torch.Tensor, torch.Tensor]:
        v = self.gain * input if state is None else state + self.gain * input
        return v, v


def _affine(node: nir.Affine) -> nn.Linear:
    """y = W·x + b (nirtorch 2.6's default map drops b)."""
    module = nn.Linear(node.weight.shape[1], node.weight.shape[0])
    module.weight.data = torch.from_numpy(np.asarray(node.weight, dtype=np.float32))
    module.bias.data = torch.from_numpy(np.asarray(node.bias, dtype=np.float32))
    return module


def _linear(node: nir.Linear) -> nn.Linear:
    """y = W·x."""
    module = nn.Linear(node.weight.shape[1], node.weight.shape[0], bias=False)
    module.weight.data = torch.from_numpy(np.asarray(node.weight, dtype=np.float32))
    return module


NODE_MAP = {nir.LIF: LIFNode, nir.LI: LINode, nir.I: INode, nir.Affine: _affine, nir.Linear: _linear}


def _graph(source: Union[PathLike, nir.NIRGraph]) -> nir.NIRGraph:
    return source if isinstance(source, nir.NIRGraph) else nir.read(source)


def import_nir(source: Union[PathLike, nir.NIRGraph]) -> torch.fx.GraphModule:
    """A NIR graph of this family (a file or a graph) as a torch module through
    ``nirtorch.nir_to_torch`` with :data:`NODE_MAP`: ``module(x_t [B, S·D], state)`` -> (the
    Output's inputs, one value per edge into it (their sum is the output), state); state None at
    t = 1. The recurrent edges read the previous step's values, as in the model."""
    return nirtorch.nir_to_torch(_graph(source), NODE_MAP)


def _metadata_int(graph: nir.NIRGraph, key: str) -> int:
    return int(np.asarray(graph.metadata[key]))


def nir_run(source: Union[PathLike, nir.NIRGraph], x: torch.Tensor) -> NIROutput:
    """Run a graph written by :func:`export_nir` on x [T, B, S, D]: its spikes and logits.

    The spikes are read from the state of each module's LIF node; the Output's values add up to
    the readout (module logits of all modules with separate readouts, then the competitive max)."""
    graph = _graph(source)
    module = import_nir(graph)
    m, heads, classes = (_metadata_int(graph, key) for key in ("n_modules", "n_heads", "n_classes"))
    state = None
    spikes, outputs = [], []
    with torch.no_grad():
        for x_t in x.flatten(2):
            *values, state = module(x_t, state)
            outputs.append(sum(values[1:], values[0]))
            spikes.append(torch.cat([state[f"c_module_{i}"]["b_lif"].spikes for i in range(m)], dim=-1))
    out = torch.stack(outputs)  # [T, B, O]
    scheme = str(graph.metadata["readout_scheme"])
    if scheme == "shared":
        logits = out.unflatten(-1, (heads, classes))
    elif scheme == "concat":
        logits = out.unflatten(-1, (m, heads, classes)).transpose(2, 3).flatten(-2)
    else:
        logits = competitive_max(out.unflatten(-1, (m, heads, classes)).transpose(2, 3))[0]
    return NIROutput(torch.stack(spikes), logits)


def nir_spikes(source: Union[PathLike, nir.NIRGraph], x: torch.Tensor) -> torch.Tensor:
    """The spikes [T, B, N] of a graph written by :func:`export_nir` on x [T, B, S, D]."""
    return nir_run(source, x).spikes
