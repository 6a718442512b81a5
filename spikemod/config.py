"""Frozen, validated run configuration.

One :class:`RunConfig` fully describes a run: data, task, model, training, metrics and seed.
Every dataclass validates itself at construction and raises :class:`ConfigError` naming the
field and its allowed values. Configs round-trip through plain dicts, JSON and YAML.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Tuple, Type, TypeVar

__all__ = [
    "ConfigError",
    "DataConfig",
    "TaskConfig",
    "ModelConfig",
    "TrainConfig",
    "MetricConfig",
    "RunConfig",
    "DATASETS",
    "ENCODINGS",
    "INPUT_SCHEMES",
    "READOUT_SCHEMES",
    "PRESETS",
    "TARGETS",
    "LOSSES",
    "VARIANTS",
    "METRICS",
]

DATASETS = ("mnist", "emnist_letters", "digits")
TARGETS = ("parity", "inverse", "both")
ENCODINGS = ("direct", "rate", "latency")
VARIANTS = ("rate", "spiking")
INPUT_SCHEMES = ("separate", "shared", "fused")
READOUT_SCHEMES = ("separate", "shared", "concat")
READOUT_FAN_INS = ("module", "network")
SUBSET_FAN_INS = ("subset", "network")
KEPT_STATES = ("best", "final")
READOUT_TIMES = ("per_step", "shared")
MODULE_SCORES = ("difference", "ratio")
ABLATION_SCORES = ("lost", "remaining")
CORRELATION_PROCEDURES = ("matched", "reshuffled")
READOUT_NOISES = ("fixed", "fresh")
#: Named starting points for a RunConfig (:mod:`spikemod.presets`).
PRESETS = ("default", "reference", "extreme-sparsity")
INITS = ("uniform", "pytorch")
SURROGATES = ("atan", "fast_sigmoid")
ROUTERS = ("address", "random")
SPIKE_READOUTS = ("membrane", "count")
OPTIMIZERS = ("adadelta", "adamw")
LOSSES = ("deciding", "marginal", "each")
METRICS = ("retraining", "ablation", "correlation", "weight_mask", "bottleneck", "parity")
CORRELATION_KINDS = ("pearson", "cka")
FEATURE_SOURCES = ("auto", "state", "bottleneck")
SPIKE_FEATURES = ("count", "trace")

#: Default number of time steps per variant. The rate model follows the "Dynamics" paper;
#: the spiking default is the smallest T that reached the rate model's accuracy (see README).
DEFAULT_STEPS = {"rate": 5, "spiking": 10}
#: Default initialisation per variant: the rate model follows "Dynamics" (PyTorch's RNN init); LIF
#: modules train better from a small uniform init, whose currents integrate to threshold over a
#: few steps (evidence: experiments/check_accuracy.py). ``init_scale`` None takes the variant's bound.
DEFAULT_INIT = {"rate": "pytorch", "spiking": "uniform"}
DEFAULT_INIT_SCALE = {"rate": 0.1, "spiking": 0.01}


class ConfigError(ValueError):
    """A configuration value is out of its allowed range."""


def _fail(cls: str, name: str, value: Any, allowed: str) -> None:
    raise ConfigError(f"{cls}.{name} = {value!r} is invalid: allowed {allowed}")


def _check_choice(cls: str, name: str, value: Any, choices: Tuple[str, ...]) -> None:
    if value not in choices:
        _fail(cls, name, value, "one of " + ", ".join(repr(c) for c in choices))


def _check_bool(cls: str, name: str, value: Any) -> None:
    if not isinstance(value, bool):
        _fail(cls, name, value, "true or false")


def _check_range(
    cls: str,
    name: str,
    value: Any,
    low: float,
    high: float = math.inf,
    low_open: bool = False,
    integer: bool = False,
) -> None:
    kind = "an integer" if integer else "a number"
    if isinstance(value, bool) or not isinstance(value, (int,) if integer else (int, float)):
        _fail(cls, name, value, kind)
    lower_ok = value > low if low_open else value >= low
    if not (lower_ok and value <= high) or (not integer and math.isnan(value)):
        bracket = "(" if low_open else "["
        upper = "inf)" if high == math.inf else f"{high}]"
        _fail(cls, name, value, f"{kind} in {bracket}{low}, {upper}")


@dataclass(frozen=True)
class DataConfig:
    """Which images feed the task.

    ``dataset``: ``mnist``; ``emnist_letters`` (disjoint letter subsets per module, the papers'
    "separate datasets" condition); or ``digits``, scikit-learn's small offline 8x8 digits set
    resized to 28x28, for smoke runs and fast tests only. ``data_root`` is resolved by
    :func:`spikemod.data.resolve_data_root` when left ``None``.
    """

    dataset: str = "mnist"
    data_root: Optional[str] = None
    n_train: Optional[int] = None
    n_test: Optional[int] = None

    def __post_init__(self) -> None:
        _check_choice("DataConfig", "dataset", self.dataset, DATASETS)
        for name in ("n_train", "n_test"):
            value = getattr(self, name)
            if value is not None:
                _check_range("DataConfig", name, value, 1, integer=True)


@dataclass(frozen=True)
class TaskConfig:
    """The two-digit parity task and its temporal input.

    ``covariance`` c sets P(D0 = D1) = 1/10 + 9c/10 (c = 0: independent digits; c = 1: always the
    same class). ``exclude_adjacent`` enforces (D1 - D0) mod 10 not in {0, 1}; it contradicts c > 0.
    ``targets``: ``parity`` trains T' (D0 if parities differ, else D1), ``inverse`` trains T'',
    ``both`` trains both with one readout head each. ``n_steps`` None means the variant's default.
    ``noise_ratio`` r mixes (1 - r)·x + r·noise with structured noise from ``noise_samples`` k other
    batch samples ("Dynamics" 5.3.1). ``random_onset`` switches each digit on at a random step in
    {1, ..., T - 2}, pure noise before ("Dynamics" 5.3.2): 0-based, so the digit is on from step 2
    to T - 1 (1-based). ``onsets`` (with ``random_onset``) fixes those steps instead: digit 0 is on
    from step ``onsets[0]`` and digit 1 from ``onsets[1]`` (1-based, in 2..T-1), as used to measure
    specialization per onset pair (Fig. 4C). ``encoding`` turns images into spiking input:
    ``direct`` current, Bernoulli ``rate`` coding or ``latency`` coding.
    """

    covariance: float = 0.0
    exclude_adjacent: bool = False
    targets: str = "both"
    n_steps: Optional[int] = None
    noise_ratio: float = 0.0
    noise_samples: int = 5
    random_onset: bool = False
    onsets: Optional[Tuple[int, int]] = None
    encoding: str = "direct"

    def __post_init__(self) -> None:
        _check_range("TaskConfig", "covariance", self.covariance, 0.0, 1.0)
        if self.exclude_adjacent and self.covariance > 0:
            _fail(
                "TaskConfig",
                "exclude_adjacent",
                True,
                "only with covariance = 0 (the exclusion rule forbids D0 = D1, which c > 0 asks for)",
            )
        _check_choice("TaskConfig", "targets", self.targets, TARGETS)
        if self.n_steps is not None:
            _check_range("TaskConfig", "n_steps", self.n_steps, 1, integer=True)
        _check_range("TaskConfig", "noise_ratio", self.noise_ratio, 0.0, 1.0)
        _check_range("TaskConfig", "noise_samples", self.noise_samples, 1, integer=True)
        if self.random_onset and self.n_steps is not None and self.n_steps < 3:
            _fail("TaskConfig", "n_steps", self.n_steps, "at least 3 with random_onset")
        if self.onsets is not None:
            object.__setattr__(self, "onsets", _onset_pair("TaskConfig", "onsets", self.onsets))
            if not self.random_onset:
                _fail("TaskConfig", "onsets", list(self.onsets), "None unless random_onset is true")
        _check_choice("TaskConfig", "encoding", self.encoding, ENCODINGS)
        if self.encoding == "latency" and (self.noise_ratio > 0 or self.random_onset):
            _fail("TaskConfig", "encoding", "latency", "'direct' or 'rate' with noise or random onset")

    @property
    def n_heads(self) -> int:
        """Number of readout heads: two when T' and T'' are trained jointly."""
        return 2 if self.targets == "both" else 1


@dataclass(frozen=True)
class ModelConfig:
    """A modular recurrent network: rate-based tanh modules or LIF modules.

    ``p`` is the fraction of the n^2 possible synapses per direction between two modules; the
    exact count is int(p·n^2). ``synapses`` gives the exact count instead (1 = a single synapse)
    and overrides ``p``. ``init``: ``uniform`` is U(-init_scale, init_scale) ("Extreme sparsity"),
    ``pytorch`` is PyTorch's default RNN init ("Dynamics"); None (and ``init_scale`` None) take the
    variant's default from :data:`DEFAULT_INIT` and :data:`DEFAULT_INIT_SCALE` (see
    :attr:`init_scheme`, :attr:`uniform_bound`). Spiking fields are ignored by the rate variant.
    ``bandwidth_cap`` limits the spikes crossing per step and direction (None: no cap); ``router``
    says which pass: the lowest addresses (``address``) or a uniform draw among the spiking ones
    (``random``: priorities drawn afresh for every forward pass from the seed's ``router`` stream,
    so every pass of a batch of the same size sees the same draws, in training, evaluation and
    on a loaded checkpoint alike).
    ``interconnect_onset`` is the first time step t (1-based) whose recurrent input includes the
    interconnect (W_cross·state_{t-1} from the other modules); before it only the recurrence inside
    each module acts. 1 (the default) = always on; since state_0 = 0, onset 2 gives the same numbers.

    ``readout_scheme``: ``separate`` (one readout per module, the competitive max decides),
    ``shared`` (one dense layer over all modules) or ``concat``, the reference code's "common
    readout": per head one Linear(M·F -> M·C) under a block-diagonal mask (module m's block of C
    logits reads only module m), one softmax cross-entropy over all M·C logits with the target in
    0..C-1, and the argmax over all M·C. The right answer then lies only in module 0's block.
    ``hidden_bias`` False drops the recurrent bias b (the reference's ``nn.RNN(bias=False)``).
    ``readout_fan_in``: the PyTorch-init bound of separate and concat readouts is 1/√F
    (``module``) or 1/√(M·F) (``network``, the reference's masked Linear(M·F -> M·C)).
    """

    variant: str = "rate"
    n_modules: int = 2
    n_neurons: int = 25
    p: float = 0.1
    synapses: Optional[int] = None
    input_scheme: str = "separate"
    readout_scheme: str = "separate"
    bottleneck: Optional[int] = None
    init: Optional[str] = None
    init_scale: Optional[float] = None
    deep_r: bool = False
    beta: float = 0.9
    threshold: float = 1.0
    learn_beta: bool = False
    learn_threshold: bool = False
    surrogate: str = "atan"
    surrogate_slope: Optional[float] = None
    spike_readout: str = "membrane"
    bandwidth_cap: Optional[int] = None
    router: str = "address"
    interconnect_onset: int = 1
    hidden_bias: bool = True
    readout_fan_in: str = "module"

    def __post_init__(self) -> None:
        c = "ModelConfig"
        _check_choice(c, "variant", self.variant, VARIANTS)
        _check_range(c, "n_modules", self.n_modules, 2, integer=True)
        _check_range(c, "n_neurons", self.n_neurons, 1, integer=True)
        _check_range(c, "p", self.p, 0.0, 1.0)
        if self.synapses is None:
            if int(self.p * self.n_neurons**2) < 1:
                _fail(c, "p", self.p, f"at least 1/n^2 = {1 / self.n_neurons**2:g} (or set synapses=1)")
        else:
            _check_range(c, "synapses", self.synapses, 0, self.n_neurons**2, integer=True)
        _check_choice(c, "input_scheme", self.input_scheme, INPUT_SCHEMES)
        _check_choice(c, "readout_scheme", self.readout_scheme, READOUT_SCHEMES)
        if self.bottleneck is not None:
            _check_range(c, "bottleneck", self.bottleneck, 1, integer=True)
        if self.init is not None:
            _check_choice(c, "init", self.init, INITS)
        if self.init_scale is not None:
            _check_range(c, "init_scale", self.init_scale, 0.0, low_open=True)
        _check_range(c, "beta", self.beta, 0.0, 1.0)
        _check_range(c, "threshold", self.threshold, 0.0, low_open=True)
        _check_choice(c, "surrogate", self.surrogate, SURROGATES)
        if self.surrogate_slope is not None:
            _check_range(c, "surrogate_slope", self.surrogate_slope, 0.0, low_open=True)
        _check_choice(c, "spike_readout", self.spike_readout, SPIKE_READOUTS)
        if self.bandwidth_cap is not None:
            _check_range(c, "bandwidth_cap", self.bandwidth_cap, 0, integer=True)
        _check_choice(c, "router", self.router, ROUTERS)
        _check_range(c, "interconnect_onset", self.interconnect_onset, 1, integer=True)
        _check_bool(c, "hidden_bias", self.hidden_bias)
        _check_choice(c, "readout_fan_in", self.readout_fan_in, READOUT_FAN_INS)

    @property
    def n_synapses(self) -> int:
        """Exact number of inter-module synapses per direction."""
        return self.synapses if self.synapses is not None else int(self.p * self.n_neurons**2)

    @property
    def p_effective(self) -> float:
        """The fraction of possible synapses per direction actually used."""
        return self.n_synapses / self.n_neurons**2

    @property
    def init_scheme(self) -> str:
        """The initialisation in effect: ``init``, else the variant's default."""
        return self.init if self.init is not None else DEFAULT_INIT[self.variant]

    @property
    def uniform_bound(self) -> float:
        """Bound of the ``uniform`` init in effect: ``init_scale``, else the variant's default."""
        return self.init_scale if self.init_scale is not None else DEFAULT_INIT_SCALE[self.variant]


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation of the task. ``lr`` None takes the optimiser's default (Adadelta 0.5, AdamW 1e-3).

    Deep-R parameters use Adam with ``deep_r_lr`` and ``deep_r_betas``; with ``deep_r_lr_final`` the
    rate falls geometrically with the connection density p, lr(p) = deep_r_lr·(deep_r_lr_final /
    deep_r_lr)^p ("Extreme sparsity": 0.1 at p = 0 to 0.01 at p = 1); ``deep_r_noise`` is the
    random-walk temperature (scaled by 1 - p, as in the reference sweeps) and ``deep_r_l1`` the L1
    shrinkage.

    ``loss`` (separate readouts; a shared readout has one set of logits and both are the same):
    ``deciding`` is the cross-entropy of the deciding module's logits, as the reference code trains;
    ``marginal`` that of log sum_m exp(logits of module m), a softmax over every module's logits
    summed over modules per class: the competitive max made smooth, so every module's logits get a
    gradient; ``each`` the sum over modules of every module's own cross-entropy, so that every
    module must answer every sample (a control for what the marginal loss changes). The decision
    is the competitive max with any of them. ``marginal`` trains faster
    (experiments/check_accuracy.py: rate p = 1, 5 epochs, 0.89 against 0.78). A ``concat``
    readout has one set of logits, as a shared one.

    ``keep``: the state kept after training, that of the ``best`` mean test accuracy over epochs or
    the ``final`` one (the reference's). ``drop_last`` skips a last training batch smaller than
    ``batch_size`` (the reference's DataLoader).
    """

    optimizer: str = "adamw"
    lr: Optional[float] = None
    weight_decay: float = 1e-5
    epochs: int = 5
    batch_size: int = 256
    target_accuracy: Optional[float] = None
    deep_r_lr: float = 0.1
    deep_r_l1: float = 1e-4
    deep_r_noise: float = 1e-4
    deep_r_lr_final: Optional[float] = None
    deep_r_betas: Tuple[float, float] = (0.9, 0.999)
    loss: str = "deciding"
    keep: str = "best"
    drop_last: bool = False

    def __post_init__(self) -> None:
        c = "TrainConfig"
        _check_choice(c, "optimizer", self.optimizer, OPTIMIZERS)
        _check_choice(c, "loss", self.loss, LOSSES)
        _check_choice(c, "keep", self.keep, KEPT_STATES)
        _check_bool(c, "drop_last", self.drop_last)
        if self.lr is not None:
            _check_range(c, "lr", self.lr, 0.0, low_open=True)
        _check_range(c, "weight_decay", self.weight_decay, 0.0)
        _check_range(c, "epochs", self.epochs, 1, integer=True)
        _check_range(c, "batch_size", self.batch_size, 1, integer=True)
        if self.target_accuracy is not None:
            _check_range(c, "target_accuracy", self.target_accuracy, 0.0, 1.0, low_open=True)
        _check_range(c, "deep_r_lr", self.deep_r_lr, 0.0, low_open=True)
        _check_range(c, "deep_r_l1", self.deep_r_l1, 0.0)
        _check_range(c, "deep_r_noise", self.deep_r_noise, 0.0)
        if self.deep_r_lr_final is not None:
            _check_range(c, "deep_r_lr_final", self.deep_r_lr_final, 0.0, low_open=True)
        betas = self.deep_r_betas
        valid = isinstance(betas, (list, tuple)) and len(betas) == 2
        if not (valid and all(isinstance(b, (int, float)) and not isinstance(b, bool) and 0 <= b < 1 for b in betas)):
            _fail(c, "deep_r_betas", betas, "two numbers in [0, 1)")
        object.__setattr__(self, "deep_r_betas", (float(betas[0]), float(betas[1])))

    def deep_r_rate(self, p: float) -> float:
        """The Deep-R learning rate at connection density p (see the class docs)."""
        if self.deep_r_lr_final is None:
            return self.deep_r_lr
        return self.deep_r_lr * (self.deep_r_lr_final / self.deep_r_lr) ** p

    @property
    def learning_rate(self) -> float:
        """The learning rate in effect."""
        if self.lr is not None:
            return self.lr
        return 0.5 if self.optimizer == "adadelta" else 1e-3


@dataclass(frozen=True)
class MetricConfig:
    """Specialization metrics and their retraining settings.

    Readouts (retraining, ablation) are Linear -> ReLU -> Linear with ``readout_hidden`` units,
    trained with AdamW (``readout_lr``, ``readout_weight_decay``) on batches of
    ``readout_batch_size`` for ``readout_epochs`` epochs; a readout stops once its held-out
    accuracy reaches ``readout_stop_accuracy`` at the end of an epoch. Weight masks keep the global
    top ``mask_fraction`` of module parameters (edge-popup, SGD with ``mask_lr``, momentum 0.9,
    weight decay 5e-4), trained for ``mask_epochs`` epochs.

    ``feature_source``: what the metrics read per module: ``state`` (tanh states or spikes),
    ``bottleneck`` units, or ``auto`` (the bottleneck when the network has one). Spikes become
    features as ``count`` (spike count up to step t divided by t) or ``trace`` (exponential trace
    with ``trace_decay``). ``per_step`` False measures the last step only. ``onset_pairs``
    (random-onset tasks only): pairs of digit onsets (see ``TaskConfig.onsets``) at which the
    feature metrics are measured again with both onsets fixed (Fig. 4C); none by default; their
    readouts train on the first ``onset_pair_samples`` training pairs (None: all of them) for
    ``onset_pair_epochs`` epochs (None: ``readout_epochs``; e.g. 6× as many over a sixth of the
    pairs keeps the number of optimizer steps).

    Reference choices ("Dynamics" code), each on its own: ``readout_time`` ``shared`` trains one
    retraining readout per (subset, digit) for all steps on the sum of the per-step losses
    (``per_step``: one per step); ``module_score`` ``ratio`` is F^m = (M̄₀ − M̄₁)/(M̄₀ + M̄₁)
    (``difference``: M̄₀ − M̄₁), with accuracy-based M̄ clipped to [1e-5, 1] as in that code;
    ``clip_correlation`` False leaves the correlation's M̄ = (c − b)/(1 − b) unclipped;
    ``ablation_score`` ``remaining`` scores the accuracy left after ablation, A, as the reference
    does (``lost``: 1 + b − A, the sign of the other metrics; F is the same with ``difference``);
    the ``bottleneck`` metric ("Extreme sparsity") retrains each module's bottleneck-to-readout
    weights alone, with Adadelta (``bottleneck_lr``) for ``bottleneck_epochs`` epochs; the
    ``parity`` probe is the retraining metric on the parity of each digit (:mod:`spikemod.metrics.probes`);
    ``readout_noise`` ``fresh`` trains the readouts on features of fresh input noise every epoch
    (the network re-run; ``fixed``: one draw); ``correlation_procedure`` ``reshuffled`` replaces the
    other digit's slot by a permutation of the batch's and re-runs the network, pairs samples
    within each class group of digit k (groups weighted equally) and takes the base from
    derangement pairs of the unmodified batch, over the first ``correlation_batches`` test batches
    (None: all); ``matched`` pairs existing samples (:mod:`spikemod.metrics.correlation`);
    ``readout_fan_in`` ``network`` initialises the first layer of every retraining readout with the
    bound 1/√(M·F) of all modules' features, as the reference's masked Linear(2n → 30) is
    (``subset``: the bound of the subset's own features, 1/√F for a single module).
    """

    metrics: Tuple[str, ...] = ("retraining", "ablation", "correlation")
    readout_hidden: int = 30
    readout_epochs: int = 3
    readout_lr: float = 1e-3
    readout_stop_accuracy: float = 0.95
    correlation: str = "pearson"
    readout_weight_decay: float = 1e-5
    readout_batch_size: int = 256
    mask_fraction: float = 0.05
    mask_epochs: int = 1
    mask_lr: float = 0.1
    feature_source: str = "auto"
    spike_feature: str = "count"
    trace_decay: float = 0.9
    per_step: bool = True
    onset_pairs: Tuple[Tuple[int, int], ...] = ()
    onset_pair_samples: Optional[int] = None
    onset_pair_epochs: Optional[int] = None
    readout_time: str = "per_step"
    module_score: str = "difference"
    clip_correlation: bool = True
    ablation_score: str = "lost"
    bottleneck_epochs: int = 5
    bottleneck_lr: float = 0.5
    readout_noise: str = "fixed"
    correlation_procedure: str = "matched"
    correlation_batches: Optional[int] = None
    readout_fan_in: str = "subset"

    def __post_init__(self) -> None:
        c = "MetricConfig"
        if isinstance(self.onset_pairs, (str, bytes)) or not isinstance(self.onset_pairs, (list, tuple)):
            _fail(c, "onset_pairs", self.onset_pairs, "a list of [onset of digit 0, onset of digit 1] pairs")
        pairs = tuple(_onset_pair(c, "onset_pairs", pair) for pair in self.onset_pairs)
        object.__setattr__(self, "onset_pairs", pairs)
        if isinstance(self.metrics, str) or not self.metrics:
            _fail(c, "metrics", self.metrics, "a non-empty tuple of " + ", ".join(METRICS))
        for name in self.metrics:
            _check_choice(c, "metrics", name, METRICS)
        if isinstance(self.metrics, list):
            object.__setattr__(self, "metrics", tuple(self.metrics))
        if pairs and not self.feature_metrics:
            _fail(
                c,
                "onset_pairs",
                [list(pair) for pair in pairs],
                "empty when only weight masks are measured "
                "(onset pairs use retraining, ablation or correlation)",
            )
        _check_range(c, "readout_hidden", self.readout_hidden, 1, integer=True)
        _check_range(c, "readout_epochs", self.readout_epochs, 1, integer=True)
        _check_range(c, "readout_lr", self.readout_lr, 0.0, low_open=True)
        _check_range(c, "readout_stop_accuracy", self.readout_stop_accuracy, 0.0, 1.0, low_open=True)
        _check_choice(c, "correlation", self.correlation, CORRELATION_KINDS)
        _check_range(c, "mask_fraction", self.mask_fraction, 0.0, 1.0, low_open=True)
        _check_range(c, "mask_epochs", self.mask_epochs, 1, integer=True)
        _check_range(c, "readout_weight_decay", self.readout_weight_decay, 0.0)
        _check_range(c, "readout_batch_size", self.readout_batch_size, 1, integer=True)
        _check_range(c, "mask_lr", self.mask_lr, 0.0, low_open=True)
        _check_choice(c, "feature_source", self.feature_source, FEATURE_SOURCES)
        _check_choice(c, "spike_feature", self.spike_feature, SPIKE_FEATURES)
        _check_range(c, "trace_decay", self.trace_decay, 0.0, 1.0)
        if self.trace_decay == 1.0:
            _fail(c, "trace_decay", self.trace_decay, "a number in [0.0, 1.0)")
        _check_choice(c, "readout_time", self.readout_time, READOUT_TIMES)
        _check_choice(c, "module_score", self.module_score, MODULE_SCORES)
        _check_bool(c, "clip_correlation", self.clip_correlation)
        _check_choice(c, "ablation_score", self.ablation_score, ABLATION_SCORES)
        _check_range(c, "bottleneck_epochs", self.bottleneck_epochs, 1, integer=True)
        _check_range(c, "bottleneck_lr", self.bottleneck_lr, 0.0, low_open=True)
        _check_choice(c, "readout_noise", self.readout_noise, READOUT_NOISES)
        _check_choice(c, "correlation_procedure", self.correlation_procedure, CORRELATION_PROCEDURES)
        _check_choice(c, "readout_fan_in", self.readout_fan_in, SUBSET_FAN_INS)
        if self.correlation_batches is not None:
            _check_range(c, "correlation_batches", self.correlation_batches, 1, integer=True)
        for name in ("onset_pair_samples", "onset_pair_epochs"):
            if getattr(self, name) is not None:
                _check_range(c, name, getattr(self, name), 1, integer=True)

    @property
    def feature_metrics(self) -> Tuple[str, ...]:
        """The chosen metrics that are computed from any features (retraining, ablation, correlation, parity)."""
        return tuple(m for m in self.metrics if m not in ("weight_mask", "bottleneck"))


T = TypeVar("T")


def load_yaml(text: str) -> Any:
    """Parse YAML safely, reading ``1e-5`` as a float as YAML 1.2 does (PyYAML alone gives a string)."""
    import yaml

    class Loader(yaml.SafeLoader):
        pass

    Loader.add_implicit_resolver(
        "tag:yaml.org,2002:float",
        re.compile(r"^[-+]?[0-9][0-9_]*(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
        list("-+0123456789"),
    )
    return yaml.load(text, Loader=Loader)


def _onset_pair(section: str, name: str, pair: Any) -> Tuple[int, int]:
    """A pair of onset steps as a tuple of two integers >= 2 (1-based steps)."""
    valid = isinstance(pair, (list, tuple)) and len(pair) == 2
    if not valid or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 2 for v in pair):
        _fail(section, name, pair, "[onset of digit 0, onset of digit 1], integer steps >= 2")
    return (pair[0], pair[1])


def _from_dict(cls: Type[T], values: Any) -> T:
    if not isinstance(values, dict):
        raise ConfigError(f"{cls.__name__} must be a mapping, got {type(values).__name__}")
    known = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise ConfigError(
            f"{cls.__name__} has no field(s) {', '.join(unknown)}; known fields: {', '.join(known)}"
        )
    return cls(**values)


@dataclass(frozen=True)
class RunConfig:
    """Everything that defines one run. Same config and seed give the same numbers on the same
    machine and library build (README, Reproducibility). ``preset`` records the named starting
    point the fields were set from (:func:`spikemod.presets.with_preset`); the fields decide."""

    data: DataConfig = field(default_factory=DataConfig)
    task: TaskConfig = field(default_factory=TaskConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    metrics: MetricConfig = field(default_factory=MetricConfig)
    seed: int = 0
    preset: str = "default"

    def __post_init__(self) -> None:
        _check_range("RunConfig", "seed", self.seed, 0, 2**32 - 1, integer=True)
        _check_choice("RunConfig", "preset", self.preset, PRESETS)
        if self.model.readout_scheme == "concat" and self.train.loss != "deciding":
            _fail("TrainConfig", "loss", self.train.loss, "'deciding' with the concat readout (one set of M·C logits)")
        if self.task.encoding != "direct" and self.model.variant == "rate":
            _fail("TaskConfig", "encoding", self.task.encoding, "'direct' for the rate variant")
        if self.metrics.onset_pairs and not self.task.random_onset:
            pairs = [list(pair) for pair in self.metrics.onset_pairs]
            _fail("MetricConfig", "onset_pairs", pairs, "empty unless task.random_onset is true")
        for section, name, pairs in (
            ("TaskConfig", "onsets", [self.task.onsets] if self.task.onsets else []),
            ("MetricConfig", "onset_pairs", self.metrics.onset_pairs),
        ):
            for pair in pairs:
                if not all(2 <= step <= self.n_steps - 1 for step in pair):
                    _fail(
                        section,
                        name,
                        list(pair),
                        f"onset steps in 2..{self.n_steps - 1} (T = {self.n_steps})",
                    )

    @property
    def n_steps(self) -> int:
        """Time steps in effect: the task's, else the variant's default."""
        return self.task.n_steps if self.task.n_steps is not None else DEFAULT_STEPS[self.model.variant]

    def replace(self, **sections: Any) -> "RunConfig":
        """Copy with whole sections or fields of sections replaced, e.g. ``replace(model={"p": 1.0})``."""
        changes = {}
        for name, value in sections.items():
            current = getattr(self, name)
            if isinstance(value, dict) and dataclasses.is_dataclass(current):
                value = dataclasses.replace(current, **value)
            changes[name] = value
        return dataclasses.replace(self, **changes)

    def describe(self) -> str:
        """A one-line summary for error messages, with the full config as JSON."""
        m = self.model
        return (
            f"variant={m.variant} n={m.n_neurons} modules={m.n_modules} synapses={m.n_synapses} "
            f"T={self.n_steps} optimizer={self.train.optimizer} lr={self.train.learning_rate} "
            f"seed={self.seed}; full config: {json.dumps(self.to_dict(), sort_keys=True)}"
        )

    def to_dict(self) -> dict:
        """Plain nested dict (tuples become lists), suitable for JSON and YAML."""
        return json.loads(json.dumps(dataclasses.asdict(self)))

    @classmethod
    def from_dict(cls, values: Any) -> "RunConfig":
        """Inverse of :meth:`to_dict`; missing sections and fields take their defaults."""
        if not isinstance(values, dict):
            raise ConfigError(f"RunConfig must be a mapping, got {type(values).__name__}")
        sections = {
            "data": DataConfig,
            "task": TaskConfig,
            "model": ModelConfig,
            "train": TrainConfig,
            "metrics": MetricConfig,
        }
        unknown = sorted(set(values) - set(sections) - {"seed", "preset"})
        if unknown:
            raise ConfigError(f"RunConfig has no section(s) {', '.join(unknown)}")
        kwargs: dict = {name: _from_dict(sec, values.get(name, {})) for name, sec in sections.items()}
        for name in ("seed", "preset"):
            if name in values:
                kwargs[name] = values[name]
        return cls(**kwargs)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "RunConfig":
        try:
            values = json.loads(text)
        except json.JSONDecodeError as err:
            raise ConfigError(f"config is not valid JSON: {err}") from None
        return cls.from_dict(values)

    def to_yaml(self) -> str:
        import yaml

        return yaml.safe_dump(self.to_dict(), sort_keys=True)

    @classmethod
    def from_yaml(cls, text: str) -> "RunConfig":
        import yaml

        try:
            values = load_yaml(text)
        except yaml.YAMLError as err:
            raise ConfigError(f"config is not valid YAML: {err}") from None
        return cls.from_dict(values or {})

    @classmethod
    def load(cls, path: "str | Path") -> "RunConfig":
        """Read a ``.json``, ``.yaml`` or ``.yml`` config file."""
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"config file {path} does not exist")
        text = path.read_text()
        return cls.from_yaml(text) if path.suffix in (".yaml", ".yml") else cls.from_json(text)
