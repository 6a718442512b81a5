"""Run an exported network on task data in snnTorch and in Lava, and compare them.

:func:`task_inputs` builds the host side of a dataset (the input current W_in·x_t of every pair,
with the task's noise and encoding drawn from a seeded generator, and the digits and targets);
:func:`simulate` runs it on one backend:

- ``torch``: the snnTorch simulation of the exported network (float32, the trained model's numbers);
- ``lava-float``: Lava's floating-point LIF (float64), batched;
- ``lava-fixed``: Lava's Loihi 2 fixed-point LIF (``Loihi2SimCfg(select_tag="fixed_pt")``);
- ``nir``: the network written to a NIR file, read back and run by :func:`spikemod.nir.nir_run`
  (the extra ``nir``). It gets the same input currents as the other backends: its input Affine
  is the identity (with the network's bias), so W_in·x_t is the host's, as for Lava; the image
  drive itself is checked by tests/test_nir.py.

:func:`fidelity_report` compares every other backend with torch: accuracy per head, the
fraction of identical spike bits, the correlation of spike counts, and (optionally) the
specialization F of each, measured by :func:`spikemod.metrics.suite.measure_features` on each
backend's own spikes. Floating point is expected to be spike-exact; fixed point is not (one neuron
near threshold flips and the recurrence spreads it) and is judged by counts and accuracy.
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, Optional, Tuple

import numpy as np
import torch

from spikemod import seeding
from spikemod.config import MetricConfig
from spikemod.metrics.features import FeatureSet, select_features
from spikemod.task import network_input

from .export import NetworkDescription
from .host import input_current, lava_network, read_out, torch_run
from .simulator import DEFAULT_BATCH_SIZE, LavaTiming, run_lava

__all__ = [
    "BACKENDS",
    "available_backends",
    "TaskInputs",
    "Simulation",
    "SpikeAgreement",
    "FidelityReport",
    "task_inputs",
    "simulate",
    "spike_agreement",
    "spike_features",
    "fidelity_report",
]

BACKENDS = ("torch", "lava-float", "lava-fixed", "nir")


def available_backends() -> Tuple[str, ...]:
    """:data:`BACKENDS` less ``nir`` when the extra ``nir`` is not installed."""
    from importlib.util import find_spec

    return BACKENDS if find_spec("nir") and find_spec("nirtorch") else BACKENDS[:-1]

@dataclass(frozen=True)
class TaskInputs:
    """The host side of a dataset: ``current`` [T, P, N] float32, ``digits`` [P, 2], ``targets`` [P, H]."""

    current: np.ndarray
    digits: torch.Tensor
    targets: torch.Tensor

    def __len__(self) -> int:
        return self.current.shape[1]


def task_inputs(description: NetworkDescription, dataset, seed: Optional[int] = None) -> TaskInputs:
    """Input currents of every pair of a :class:`~spikemod.task.PairDataset`, in the config's batches.

    Noise, onsets and input spikes are drawn as in training (:func:`spikemod.task.network_input`)
    from the split's ``inputs/…`` stream of ``seed`` (default: the config's seed;
    :mod:`spikemod.seeding`), so every backend sees the same input, and the same as
    ``spikemod measure`` on the checkpoint.
    """
    config = description.config
    n_inputs = dataset.image_sets[0].images.shape[1]
    if n_inputs != description.n_inputs:
        raise ValueError(
            f"the dataset has {n_inputs} pixels per image but the network was trained on "
            f"{description.n_inputs}; use the dataset of its config ({config.data.dataset})"
        )
    seed = config.seed if seed is None else seed
    generator = seeding.generator(seed, seeding.inputs_purpose(dataset.train))
    currents, digits, targets = [], [], []
    for batch in dataset.batches(config.train.batch_size):
        x, static = network_input(batch.images, config, generator)
        currents.append(input_current(description, x, static).numpy())
        digits.append(batch.digits)
        targets.append(batch.targets)
    return TaskInputs(np.concatenate(currents, axis=1), torch.cat(digits), torch.cat(targets))


@dataclass(frozen=True)
class Simulation:
    """One backend's run over the inputs: ``spikes`` [T, P, N] bool, ``predictions`` [P, H],
    ``accuracy`` [H], wall time, and for Lava the timing breakdown and the fixed-point scale."""

    backend: str
    spikes: np.ndarray
    predictions: torch.Tensor
    accuracy: np.ndarray
    seconds: float
    timing: Optional[LavaTiming] = None
    scale: Optional[float] = None

    @property
    def spike_counts(self) -> np.ndarray:
        """Spikes per sample and neuron [P, N]."""
        return self.spikes.sum(axis=0, dtype=np.int32)

    @property
    def samples_per_second(self) -> float:
        return self.spikes.shape[1] / self.seconds if self.seconds > 0 else float("inf")


def simulate(
    description: NetworkDescription,
    inputs: TaskInputs,
    backend: str,
    scale: Optional[float] = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
) -> Simulation:
    """Run ``backend`` (one of :data:`BACKENDS`) on ``inputs``; the decision is read out on the host."""
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}: use one of {', '.join(BACKENDS)}")
    started = time.perf_counter()
    timing, network = None, None
    if backend in ("torch", "nir"):
        run = torch_run if backend == "torch" else nir_round_trip(description)
        spikes = np.zeros(inputs.current.shape, dtype=bool)
        for start in range(0, len(inputs), batch_size):
            part = torch.from_numpy(inputs.current[:, start : start + batch_size])
            spikes[:, start : start + batch_size] = run(description, part)[0].numpy() != 0
    else:
        network = lava_network(description, fixed_point=backend == "lava-fixed", scale=scale)
        timing = LavaTiming()
        spikes = run_lava(network, inputs.current, batch_size=batch_size, timing=timing)
    seconds = time.perf_counter() - started
    predictions = read_out(description, torch.from_numpy(spikes)).predictions()
    accuracy = (predictions == inputs.targets).float().mean(dim=0).numpy()
    return Simulation(backend, spikes, predictions, accuracy, seconds, timing, getattr(network, "scale", None))


def nir_round_trip(description: NetworkDescription) -> Callable[..., Tuple[torch.Tensor, ...]]:
    """A runner like :func:`~.host.torch_run` for the description's NIR graph after a write and a
    read: (spikes [T, B, N],) for the current [T, B, N]. The graph's input Affine is the identity
    with the network's bias, so the drive is current + b, as in :func:`~.host.torch_run`."""
    try:
        import nir

        from spikemod.nir import graph_of_arrays, nir_run
    except ImportError:
        raise ImportError(
            "the nir backend needs the optional extra 'nir': pip install 'spikemod[nir]'"
        ) from None
    arrays = description.arrays()
    arrays["input_weight"] = np.eye(description.n_total, dtype=np.float32)
    graph = graph_of_arrays(description.config, arrays, description.n_heads, description.n_classes)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "network.nir"
        nir.write(path, graph)
        graph = nir.read(path)

    def run(_: NetworkDescription, current: torch.Tensor) -> Tuple[torch.Tensor]:
        return (nir_run(graph, current[:, :, None, :]).spikes,)

    return run


@dataclass(frozen=True)
class SpikeAgreement:
    """How closely ``other`` spikes follow ``reference`` spikes (both [T, P, N]).

    ``identical_bits``: fraction of equal spike bits; ``count_correlation``: Pearson r of the spike
    counts of every (sample, neuron); ``mean_count_correlation``: r of each neuron's mean count;
    ``rates``: mean spikes per neuron and step of (reference, other).
    """

    identical_bits: float
    count_correlation: float
    mean_count_correlation: float
    rates: Tuple[float, float]


def _pearson(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a.astype(np.float64).ravel(), b.astype(np.float64).ravel()
    if a.std() == 0 or b.std() == 0:
        return 1.0 if np.array_equal(a, b) else float("nan")
    return float(np.corrcoef(a, b)[0, 1])


def spike_agreement(reference: np.ndarray, other: np.ndarray) -> SpikeAgreement:
    """Compare two spike rasters [T, P, N] of the same inputs."""
    if reference.shape != other.shape:
        raise ValueError(f"spike rasters differ in shape: {reference.shape} vs {other.shape}")
    ref_counts, counts = reference.sum(axis=0), other.sum(axis=0)
    return SpikeAgreement(
        identical_bits=float((reference == other).mean()),
        count_correlation=_pearson(ref_counts, counts),
        mean_count_correlation=_pearson(ref_counts.mean(axis=0), counts.mean(axis=0)),
        rates=(float(reference.mean()), float(other.mean())),
    )


def spike_features(description: NetworkDescription, spikes: np.ndarray, digits: torch.Tensor) -> FeatureSet:
    """Metric features of spike trains [T, P, N], as :func:`spikemod.metrics.features.output_features`
    makes them from the torch model: the bottleneck units, or spike counts/traces per module."""
    config = description.config
    states = torch.from_numpy(spikes).float()
    bottleneck = None
    if description.bottleneck_weight is not None and config.metrics.feature_source != "state":
        bottleneck = read_out(description, states).bottleneck
    features, kind = select_features(states, bottleneck, True, config, config.metrics.feature_source)
    return FeatureSet(features, digits, kind=kind)


@dataclass(frozen=True)
class FidelityReport:
    """Torch vs Lava float, Lava fixed point and the NIR round trip on the same inputs.

    ``notes``: what the report changed from the config (shown under the table). ``simulations``
    by backend; ``agreement`` of each other backend with torch; ``specialization``
    F per metric (last step) of each backend, when measured.
    """

    simulations: Dict[str, Simulation]
    agreement: Dict[str, SpikeAgreement]
    specialization: Dict[str, Dict[str, float]] = field(default_factory=dict)
    notes: Tuple[str, ...] = ()

    def table(self) -> str:
        """A text table: one row per backend."""
        torch_sim = next(iter(self.simulations.values()))
        samples, heads = torch_sim.spikes.shape[1], len(torch_sim.accuracy)
        metric_names = sorted({name for scores in self.specialization.values() for name in scores})
        header = f"{'backend':<11} {'accuracy':>{8 * heads}} {'same bits':>9} {'count r':>8} {'rate':>7} {'samples/s':>10}"
        header += "".join(f" {'F ' + name:>14}" for name in metric_names)
        lines = [f"fidelity on {samples} pairs (accuracy per head)", header]
        for backend, sim in self.simulations.items():
            accuracy = " ".join(f"{a:7.4f}" for a in sim.accuracy)
            agreement = self.agreement.get(backend)
            same = f"{agreement.identical_bits:9.5f}" if agreement else f"{'-':>9}"
            corr = f"{agreement.count_correlation:8.4f}" if agreement else f"{'-':>8}"
            row = f"{backend:<11} {accuracy:>{8 * heads}} {same} {corr} {sim.spikes.mean():7.4f} {sim.samples_per_second:10.0f}"
            scores = self.specialization.get(backend, {})
            row += "".join(f" {scores.get(name, float('nan')):14.3f}" for name in metric_names)
            lines.append(row)
        fixed = self.simulations.get("lava-fixed")
        if fixed is not None and fixed.scale is not None:
            lines.append(f"fixed point: scale s = {fixed.scale:.6g} integer units per unit of membrane")
        lines += [f"note: {note}" for note in self.notes]
        return "\n".join(lines)

    def to_tree(self) -> Dict[str, object]:
        """Nested dict for :func:`spikemod.h5tree.write_tree`."""
        tree: Dict[str, object] = {}
        for backend, sim in self.simulations.items():
            node: Dict[str, object] = {
                "accuracy": sim.accuracy,
                "spike_counts": sim.spike_counts,
                "predictions": sim.predictions.numpy(),
                "seconds": sim.seconds,
                "samples_per_second": sim.samples_per_second,
                "scale": sim.scale,
            }
            agreement = self.agreement.get(backend)
            if agreement is not None:
                node.update(
                    identical_bits=agreement.identical_bits,
                    count_correlation=agreement.count_correlation,
                    mean_count_correlation=agreement.mean_count_correlation,
                )
            if backend in self.specialization:
                node["specialization"] = dict(self.specialization[backend])
            tree[backend.replace("-", "_")] = node
        return tree


def fidelity_report(
    description: NetworkDescription,
    test_inputs: TaskInputs,
    backends: Optional[Tuple[str, ...]] = None,
    scale: Optional[float] = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    train_inputs: Optional[TaskInputs] = None,
    metrics: Optional[MetricConfig] = None,
    seed: int = 0,
) -> FidelityReport:
    """Run ``backends`` (default: :func:`available_backends`; torch first) on ``test_inputs`` and
    compare each with torch.

    With ``train_inputs`` and ``metrics`` (feature metrics only: retraining, ablation,
    correlation), also measure the specialization F of every backend on its own spikes: readouts
    train on the backend's train spikes and are scored on its test spikes.
    """
    from spikemod.metrics.suite import measure_features

    backends = available_backends() if backends is None else backends
    if "torch" not in backends:
        backends = ("torch",) + tuple(backends)
    simulations = {name: simulate(description, test_inputs, name, scale, batch_size) for name in backends}
    reference = simulations["torch"].spikes
    agreement = {
        name: spike_agreement(reference, sim.spikes) for name, sim in simulations.items() if name != "torch"
    }
    specialization: Dict[str, Dict[str, float]] = {}
    if metrics is not None:
        if train_inputs is None:
            raise ValueError("measuring specialization needs train_inputs to train the readouts on")
        for name in backends:
            train_spikes = simulate(description, train_inputs, name, scale, batch_size).spikes
            result = measure_features(
                spike_features(description, train_spikes, train_inputs.digits),
                spike_features(description, simulations[name].spikes, test_inputs.digits),
                metrics,
                seed,
            )
            specialization[name] = result.specialization()
    return FidelityReport(simulations, agreement, specialization)
