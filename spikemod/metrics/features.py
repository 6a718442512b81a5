"""Per-module, per-step feature tensors: the common input of every functional metric.

The metrics never look at a model directly. They take a :class:`FeatureSet`: features
[T, B, M, F] (step, sample, module, feature) and the digits [B, 2] of each sample. The same metric
code therefore runs on

- rate states: the tanh activations h_t;
- spikes from snnTorch or Lava: the spike count of each neuron up to step t divided by t
  (``count``), or an exponentially filtered trace tr_t = decay·tr_{t−1} + s_t (``trace``);
- bottleneck units [T, B, M, k], when the network has a bottleneck.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import List, Optional, Sequence, Tuple

import torch

from ..config import RunConfig
from ..task import network_input, onset_pair_network_inputs

__all__ = ["FeatureSet", "FEATURE_KINDS", "feature_epochs", "module_features", "extract_features", "extract_onset_pair_features", "output_features", "select_features"]

#: How states [T, B, N] become features: tanh states as they are, or spike counts or traces.
FEATURE_KINDS = ("rate", "count", "trace")


@dataclass(frozen=True)
class FeatureSet:
    """Features [T, B, M, F] of B samples and their digits [B, K] (K = 2 digit slots).

    ``kind`` says what the features are (``rate``, ``count``, ``trace``, ``bottleneck``), for the record.
    """

    features: torch.Tensor
    digits: torch.Tensor
    n_classes: int = 10
    kind: str = "unspecified"

    def __post_init__(self) -> None:
        if not isinstance(self.features, torch.Tensor) or self.features.ndim != 4:
            shape = tuple(getattr(self.features, "shape", ()))
            raise ValueError(
                f"features must be a tensor [T, B, M, F] (steps, samples, modules, features), got shape {shape}; "
                "turn states [T, B, N] into this with module_features(states, n_modules, kind)"
            )
        if not isinstance(self.digits, torch.Tensor) or self.digits.ndim != 2:
            raise ValueError(f"digits must be a tensor [B, K], got {type(self.digits).__name__}")
        if self.digits.shape[0] != self.features.shape[1]:
            raise ValueError(
                f"features hold {self.features.shape[1]} samples but digits {self.digits.shape[0]}; "
                "they must come from the same samples in the same order"
            )
        if self.digits.min() < 0 or self.digits.max() >= self.n_classes:
            raise ValueError(f"digits must be class indices in [0, {self.n_classes})")
        object.__setattr__(self, "features", self.features.detach().float())
        object.__setattr__(self, "digits", self.digits.long())

    @property
    def n_steps(self) -> int:
        return self.features.shape[0]

    @property
    def n_samples(self) -> int:
        return self.features.shape[1]

    @property
    def n_modules(self) -> int:
        return self.features.shape[2]

    @property
    def n_digits(self) -> int:
        return self.digits.shape[1]

    def at_steps(self, steps: torch.Tensor) -> "FeatureSet":
        """The same samples at the given 0-based steps only."""
        return FeatureSet(self.features[steps], self.digits, self.n_classes, self.kind)


def feature_epochs(train: "FeatureSet | Sequence[FeatureSet]") -> List[FeatureSet]:
    """Readout training features as one set per epoch: a single set serves every epoch; a sequence
    holds the same pairs with fresh input noise, one draw per epoch (``MetricConfig.readout_noise``)."""
    return [train] if isinstance(train, FeatureSet) else list(train)


def module_features(
    states: torch.Tensor, n_modules: int, kind: str = "rate", trace_decay: float = 0.9
) -> torch.Tensor:
    """Features [T, B, M, n] from states [T, B, N = M·n] (module m owns neurons [m·n, (m+1)·n)).

    ``rate``: the states themselves. ``count``: spike count up to step t divided by t.
    ``trace``: tr_t = trace_decay·tr_{t−1} + s_t, tr_0 = 0.
    """
    if kind not in FEATURE_KINDS:
        raise ValueError(f"unknown feature kind {kind!r}: use one of {', '.join(FEATURE_KINDS)}")
    if states.ndim != 3:
        raise ValueError(f"states must be [T, B, N], got shape {tuple(states.shape)}")
    n_steps, batch, n_total = states.shape
    if n_total % n_modules:
        raise ValueError(f"{n_total} neurons cannot be split into {n_modules} equal modules")
    states = states.detach().float()
    if kind == "count":
        steps = torch.arange(1, n_steps + 1, dtype=states.dtype).view(-1, 1, 1)
        states = states.cumsum(0) / steps
    elif kind == "trace":
        if not 0.0 <= trace_decay < 1.0:
            raise ValueError(f"trace_decay = {trace_decay} must be in [0, 1)")
        # tr_t = Σ_{s<=t} decay^(t−s)·s_s, as one lower-triangular matrix product over time.
        t = torch.arange(n_steps, dtype=states.dtype)
        lag = t[:, None] - t[None, :]
        kernel = torch.where(lag >= 0, trace_decay ** lag.clamp(min=0), torch.zeros(()))
        states = torch.einsum("ts,sbn->tbn", kernel, states)
    return states.reshape(n_steps, batch, n_modules, n_total // n_modules)


@torch.no_grad()
def extract_features(
    model: torch.nn.Module,
    dataset,
    config: RunConfig,
    generator: torch.Generator,
    batch_size: Optional[int] = None,
    source: Optional[str] = None,
) -> FeatureSet:
    """Run ``model`` over a :class:`spikemod.task.PairDataset` and collect its features.

    The input is built as in training (:func:`spikemod.task.network_input`, in batches of
    ``TrainConfig.batch_size`` unless given): temporal input, then the spike encoding; noise,
    onsets and input spikes are drawn from ``generator`` on the CPU. The network runs where its
    parameters are; the features come back to the CPU. ``source`` is ``state``, ``bottleneck``
    or ``auto`` (default: ``MetricConfig.feature_source``). The variant is read off the output:
    a network with a membrane potential is spiking, and its spikes become counts or traces.
    """
    return _collect(model, dataset, config, batch_size, source, lambda images: [network_input(images, config, generator)])[0]


@torch.no_grad()
def extract_onset_pair_features(
    model: torch.nn.Module,
    dataset,
    config: RunConfig,
    pairs: Sequence[Tuple[int, int]],
    generator: torch.Generator,
    batch_size: Optional[int] = None,
) -> List[FeatureSet]:
    """:func:`extract_features` of a random-onset network with both digit onsets fixed, for each
    pair (t0, t1), in one pass over the data: each batch's noise, most of the cost, is drawn once
    for all pairs (:func:`spikemod.task.onset_pair_network_inputs`). Pair i's features equal
    ``extract_features(model, dataset, config with task.onsets = pairs[i], generator)`` from a
    generator in the same state."""

    def inputs(images):
        return [(x, False) for x in onset_pair_network_inputs(images, config, pairs, generator)]

    return _collect(model, dataset, config, batch_size, None, inputs)


def _collect(model, dataset, config: RunConfig, batch_size: Optional[int], source: Optional[str], inputs) -> List[FeatureSet]:
    """Features of the network inputs ``inputs(images)`` (a list of (input, static)) per batch."""
    source = source or config.metrics.feature_source
    batch_size = batch_size or config.train.batch_size
    was_training = model.training
    model.eval()
    batches, digits, kind = [], [], "unspecified"  # batches[b][i]: batch b's features of input i
    device = next(model.parameters()).device
    try:
        for batch in dataset.batches(batch_size, shuffle=False):
            selected = [
                output_features(model(x.to(device), static=static).to("cpu"), config, source)
                for x, static in inputs(batch.images)
            ]
            batches.append([batch_features for batch_features, _ in selected])
            kind = selected[0][1]
            digits.append(batch.digits)
    finally:
        model.train(was_training)
    digits = torch.cat(digits)
    return [FeatureSet(torch.cat(per_input, 1), digits, dataset.n_classes, kind) for per_input in zip(*batches)]


def output_features(output, config: RunConfig, source: str) -> Tuple[torch.Tensor, str]:
    """Features [T, B, M, F] of one :class:`NetworkOutput` and their kind (see :func:`extract_features`)."""
    spiking = getattr(output, "membrane", None) is not None
    return select_features(output.states, getattr(output, "bottleneck", None), spiking, config, source)


def select_features(
    states: torch.Tensor, bottleneck: Optional[torch.Tensor], spiking: bool, config: RunConfig, source: str
) -> Tuple[torch.Tensor, str]:
    """The metric features [T, B, M, F] and their kind, from states [T, B, N] (rate activations or
    spikes) or the bottleneck [T, B, M, k]: ``source`` ``bottleneck``, ``state`` or ``auto`` (the
    bottleneck where there is one); spikes become counts or traces (``MetricConfig.spike_feature``)."""
    if source == "auto":
        source = "bottleneck" if bottleneck is not None else "state"
    if source == "bottleneck":
        if bottleneck is None:
            raise ValueError(
                "MetricConfig.feature_source = 'bottleneck' but the network has no bottleneck; "
                "use 'state' or 'auto'"
            )
        return bottleneck.detach().float(), "bottleneck"
    kind = config.metrics.spike_feature if spiking else "rate"
    return module_features(states, config.model.n_modules, kind, config.metrics.trace_decay), kind
