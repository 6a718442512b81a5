"""The specialization suite: run the chosen metrics, report them, store them in HDF5.

:func:`measure` takes a trained :class:`~spikemod.network.ModularNetwork` and the train and test
pairs; it works out the variant from the network's output (rate states, or spikes turned into
counts), so the user never says which. :func:`measure_features` runs the same metrics on features
recorded anywhere else (e.g. spike counts from Lava). Every random choice (input noise, readout
initialisation and batches, correlation partners, mask scores) comes from the named streams of
``seed`` (:mod:`spikemod.seeding`); the input noise of each split is the one that training's
evaluation, the resource counts and the fidelity report draw too.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import h5py
import numpy as np
import torch

from .. import __version__, seeding
from ..config import MetricConfig, RunConfig
from ..modularity import Modularity, network_modularity
from ..stopwatch import Stopwatch
from ..h5tree import read_tree, write_tree
from .ablation import ablation_metric
from .bottleneck import bottleneck_metric, readout_units
from .correlation import correlation_metric, reshuffled_correlation_metric
from .features import FeatureSet, extract_features, extract_onset_pair_features, feature_epochs
from .probes import parity_metric
from .retraining import retraining_metric, train_readouts
from .scores import UNIT, MetricScores, scoring
from .weight_mask import weight_mask_metric

__all__ = [
    "SpecializationResult",
    "measure",
    "measure_features",
    "measure_onset_pairs",
    "measure_test_onsets",
    "readout_training_features",
    "measure_checkpoint",
    "RESULTS_GROUP",
]

#: HDF5 group that holds the suite's results.
RESULTS_GROUP = "specialization"

def measured_steps(n_steps: int, per_step: bool) -> np.ndarray:
    """The 1-based time steps to measure: all of them, or only the last."""
    return np.arange(1, n_steps + 1) if per_step else np.array([n_steps])


@dataclass(frozen=True)
class SpecializationResult:
    """Scores of each metric per measured step, plus what produced them.

    ``metrics`` maps a metric name to its :class:`MetricScores` (arrays [T, M, K] and F [T]);
    ``steps`` are the 1-based time steps measured; ``features`` the kind of features
    (``rate``, ``count``, ``trace`` or ``bottleneck``; ``none`` when only weight masks ran).
    ``seconds``: wall time per stage of the measurement (``features``, then each metric), which
    is provenance and not stored with the scores.
    """

    metrics: Dict[str, MetricScores]
    steps: np.ndarray
    seed: int
    features: str
    modularity: Optional[Modularity] = None
    config: Optional[RunConfig] = None
    seconds: Dict[str, float] = dataclasses.field(default_factory=dict)

    def specialization(self) -> Dict[str, float]:
        """F of every metric at the last measured step."""
        return {name: scores.last for name, scores in self.metrics.items()}

    def table(self) -> str:
        """A text table at the last step: metric × module × digit (raw M and normalised M̄), F^m,
        the "Extreme sparsity" form S(m) and F; then F at every measured step, and Q."""
        first = next(iter(self.metrics.values()))
        digits = first.raw.shape[2]
        header = f"{'metric':<12} {'module':>6} " + " ".join(f"{'M(m,' + str(k) + ')':>8}" for k in range(digits))
        header += f" {'M̄(m,0)':>8} {'M̄(m,1)':>8} {'F^m':>7} {'S(m)':>7} {'F':>7}"
        features = "" if self.features == "none" else f"{self.features} features, "
        lines = [f"specialization at step {int(self.steps[-1])} ({features}seed {self.seed})", header]
        for name, scores in self.metrics.items():
            raw, norm, fm = scores.raw[-1], scores.normalised[-1], scores.module_scores[-1]
            extreme = scores.extreme_sparsity[-1]
            for m in range(raw.shape[0]):
                label = name if m == 0 else ""
                f = f"{scores.last:7.3f}" if m == 0 else ""
                es = f"{extreme[m]:7.3f}" if m < len(extreme) else ""
                values = " ".join(f"{raw[m, k]:8.3f}" for k in range(digits))
                lines.append(
                    f"{label:<12} {m:>6} {values} {norm[m, 0]:8.3f} {norm[m, 1]:8.3f} {fm[m]:7.3f} {es:>7} {f:>7}"
                )
        if len(self.steps) > 1:
            lines.append(f"{'F at step':<12}" + "".join(f"{int(s):>7}" for s in self.steps))
            for name, scores in self.metrics.items():
                lines.append(f"{name:<12}" + "".join(f"{v:7.3f}" for v in scores.specialization))
        if self.modularity is not None:
            q = self.modularity
            lines.append(
                f"Q: papers' {q.paper:.4f}, exact {q.exact:.4f}, graph {q.graph:.4f} "
                f"(p = {q.p:.4g}, {q.n_synapses} synapses per direction)"
            )
        return "\n".join(lines)

    def to_tree(self) -> Dict[str, Any]:
        """Nested dict for :func:`spikemod.h5tree.write_tree`: per metric ``F`` (last step),
        ``F_per_step`` [T], ``module_scores`` [T, M], ``raw``, ``base``, ``normalised`` [T, M, K],
        ``extreme_sparsity`` [T, 2] and ``details``; plus steps, metric names (in order), seed,
        features, config and Q."""
        tree: Dict[str, Any] = {
            "seed": self.seed,
            "features": self.features,
            "steps": self.steps,
            "metric_names": np.array(list(self.metrics), dtype=str),
            "config": self.config.to_json() if self.config is not None else None,
            "versions": {"spikemod": __version__, "torch": torch.__version__},
        }
        if self.modularity is not None:
            tree["modularity"] = dataclasses.asdict(self.modularity)
        for name, scores in self.metrics.items():
            tree[name] = {
                "F": scores.last,
                "F_per_step": scores.specialization,
                "module_scores": scores.module_scores,
                "raw": scores.raw,
                "base": scores.base,
                "normalised": scores.normalised,
                "extreme_sparsity": scores.extreme_sparsity,
                "details": dict(scores.details),
                "form": scores.form,
                "clip": None if scores.clip is None else np.array(scores.clip),
            }
        return tree

    def save(self, path: "str | Path", group: str = RESULTS_GROUP) -> None:
        """Write into ``group`` of the HDF5 file ``path`` (created if needed; the group is replaced)."""
        with h5py.File(path, "a") as f:
            if group in f:
                del f[group]
            write_tree(f.create_group(group), self.to_tree())

    @classmethod
    def load(cls, path: "str | Path", group: str = RESULTS_GROUP) -> "SpecializationResult":
        """Read a result written by :meth:`save`."""
        with h5py.File(path, "r") as f:
            if group not in f:
                raise ValueError(f"{path} has no group '{group}'; run `spikemod measure` to create it")
            tree = read_tree(f[group])
        steps = np.atleast_1d(tree["steps"])
        metrics = {name: _scores(name, tree[name], steps) for name in np.atleast_1d(tree["metric_names"]).tolist()}
        modularity = Modularity(**tree["modularity"]) if "modularity" in tree else None
        config = RunConfig.from_json(tree["config"]) if tree["config"] is not None else None
        return cls(metrics, steps, int(tree["seed"]), tree["features"], modularity, config)


def _scores(name: str, tree: Dict[str, Any], steps: np.ndarray) -> MetricScores:
    """A metric's scores from its stored tree (stores written before ``form`` and ``clip`` existed
    hold the difference form and the unit clip)."""
    clip = tree.get("clip", np.array(UNIT))
    return MetricScores(
        name, tree["raw"], tree["base"], steps, tree["details"],
        form=tree.get("form", "difference"), clip=None if clip is None else tuple(float(v) for v in clip),
    )


def measure_features(
    train: Union[FeatureSet, Sequence[FeatureSet]], test: FeatureSet, config: MetricConfig, seed: int = 0
) -> SpecializationResult:
    """Run the feature-based metrics (retraining, ablation, correlation) of ``config.metrics``.

    Readouts train on ``train`` (or on ``train[e]`` in epoch e: features of fresh input noise per
    epoch) and are scored on ``test``; the correlation metric uses ``test``. With
    ``config.per_step`` False only the last step is measured. The weight-mask metric and the
    reshuffled correlation need the network itself: use :func:`measure`.
    """
    if "weight_mask" in config.metrics:
        raise ValueError(
            "the weight_mask metric retrains masks on the network's own weights, which features do "
            "not carry; use measure(model, ...) or drop 'weight_mask' from MetricConfig.metrics"
        )
    if "correlation" in config.metrics and config.correlation_procedure == "reshuffled":
        raise ValueError(
            "the reshuffled correlation re-runs the network on reshuffled inputs, which features do not "
            "allow; use measure(model, ...) or MetricConfig.correlation_procedure = 'matched'"
        )
    epochs = feature_epochs(train)
    if any(t.n_digits != 2 for t in epochs) or test.n_digits != 2:
        raise ValueError("the specialization scores compare two digits: digits must be [B, 2]")
    steps = measured_steps(test.n_steps, config.per_step)
    rows = torch.as_tensor(steps - 1)
    train, test = [t.at_steps(rows) for t in epochs], test.at_steps(rows)
    metrics: Dict[str, MetricScores] = {}
    watch = Stopwatch()
    if "retraining" in config.metrics or "ablation" in config.metrics:
        with watch("retraining"):  # the readouts, which ablation scores too
            retraining, readouts = retraining_metric(train, test, config, seeding.generator(seed, "readouts"), steps)
        if "retraining" in config.metrics:
            metrics["retraining"] = retraining
        if "ablation" in config.metrics:
            with watch("ablation"):
                metrics["ablation"] = ablation_metric(readouts, test, steps, config.ablation_score)
    if "parity" in config.metrics:
        with watch("parity"):
            metrics["parity"] = parity_metric(train, test, config, seeding.generator(seed, "readouts"), steps)
    if "correlation" in config.metrics:
        with watch("correlation"):
            metrics["correlation"] = correlation_metric(
                test, config.correlation, seeding.generator(seed, "correlation"), steps
            )
    return _scored(metrics, steps, seed, test.kind, config, watch)


def _scored(
    metrics: Dict[str, MetricScores], steps: np.ndarray, seed: int, kind: str, config: MetricConfig, watch: Stopwatch
) -> SpecializationResult:
    """The result with each metric's module score and clip from ``config`` (:func:`.scores.scoring`)."""
    metrics = {
        name: dataclasses.replace(scores, **scoring(config.module_score, config.clip_correlation, name))
        for name, scores in metrics.items()
    }
    return SpecializationResult(metrics, steps, seed, kind, seconds=watch.seconds)


def readout_training_features(model: torch.nn.Module, train_data, config: RunConfig, seed: int) -> List[FeatureSet]:
    """The features metric readouts train on, from the ``inputs/train`` stream of ``seed``: one
    draw, or with ``MetricConfig.readout_noise`` ``fresh`` one draw of input noise per readout epoch."""
    inputs = seeding.generator(seed, seeding.inputs_purpose(True))
    return [extract_features(model, train_data, config, inputs) for _ in range(_noise_draws(config.metrics))]


def _noise_draws(metric_cfg: MetricConfig) -> int:
    """Draws of input noise the readouts train on: one per readout epoch with fresh noise, else one."""
    return metric_cfg.readout_epochs if metric_cfg.readout_noise == "fresh" else 1


def measure(
    model: torch.nn.Module,
    train_data,
    test_data,
    config: RunConfig,
    seed: Optional[int] = None,
    features: Optional[Tuple[Sequence[FeatureSet], FeatureSet]] = None,
) -> SpecializationResult:
    """Measure the specialization of a trained network with the metrics of ``config.metrics``.

    ``train_data``/``test_data`` are :class:`~spikemod.task.PairDataset` splits: readouts and
    masks train on the first and are scored on the second. The variant (rate or spiking) is read
    from the network's output. ``seed`` defaults to ``config.seed``. ``features``: the readout
    training features (one set per draw, :func:`readout_training_features`) and the test
    features, when they are already extracted; by default they are extracted here. The result
    also carries the network's Q values (:func:`~spikemod.modularity.network_modularity`).
    """
    seed = config.seed if seed is None else seed
    if getattr(model, "config", None) != config.model:
        raise ValueError(
            "the model was not built from config.model; pass the RunConfig the model was trained with "
            "(load_checkpoint returns both)"
        )
    metric_cfg = config.metrics
    reshuffled = "correlation" in metric_cfg.metrics and metric_cfg.correlation_procedure == "reshuffled"
    feature_metrics = tuple(m for m in metric_cfg.feature_metrics if not (reshuffled and m == "correlation"))
    metrics: Dict[str, MetricScores] = {}
    kind = "none"
    steps = measured_steps(config.n_steps, metric_cfg.per_step)
    watch = Stopwatch()
    if feature_metrics:
        with watch("features"):
            if features is None:
                features = (
                    readout_training_features(model, train_data, config, seed),
                    extract_features(model, test_data, config, seeding.generator(seed, seeding.inputs_purpose(False))),
                )
        train_features, test_features = features
        measured = measure_features(
            train_features, test_features, dataclasses.replace(metric_cfg, metrics=feature_metrics), seed
        )
        metrics.update(measured.metrics)
        kind = measured.features
        for stage, seconds in measured.seconds.items():
            watch.add(stage, seconds)
    if reshuffled:
        with watch("correlation"):
            metrics["correlation"], kind = reshuffled_correlation_metric(
                model,
                test_data,
                config,
                seeding.generator(seed, seeding.inputs_purpose(False)),
                seeding.generator(seed, "correlation"),
                steps,
            )
    if "bottleneck" in metric_cfg.metrics:
        with watch("bottleneck"):
            units = [
                readout_units(extract_features(model, data, config, seeding.generator(seed, seeding.inputs_purpose(train)), source="bottleneck"), config)
                .at_steps(torch.as_tensor(steps - 1))
                for data, train in ((train_data, True), (test_data, False))
            ]
            metrics["bottleneck"] = bottleneck_metric(*units, metric_cfg, seeding.generator(seed, "bottleneck"), steps)
        kind = kind if kind != "none" else "bottleneck"
    if "weight_mask" in metric_cfg.metrics:
        with watch("weight_mask"):
            metrics["weight_mask"] = weight_mask_metric(
                model, train_data, test_data, config, seeding.generator(seed, "weight-mask"), steps
            )
    scored = _scored(metrics, steps, seed, kind, metric_cfg, watch)
    return dataclasses.replace(scored, modularity=network_modularity(model), config=config)


def measure_onset_pairs(
    model: torch.nn.Module, train_data, test_data, config: RunConfig, seed: Optional[int] = None
) -> Dict[str, SpecializationResult]:
    """Fig. 4C: the feature metrics measured again with both digits' onsets fixed, for each pair of
    ``config.metrics.onset_pairs``; keyed ``"t0-t1"`` (onset steps of digit 0 and digit 1).

    Readouts are retrained (on the first ``metrics.onset_pair_samples`` training pairs, or all,
    for ``metrics.onset_pair_epochs`` epochs, or ``metrics.readout_epochs``) and scored on inputs
    with those onsets (the network itself was trained on random onsets).
    Each result equals :func:`measure` with ``task.onsets`` set to its pair; the features of all
    pairs come from one pass over the data, which draws the input noise once for every pair
    (:func:`~spikemod.metrics.features.extract_onset_pair_features`), so the features of every
    pair are held at once. Weight masks do not depend on the input timing and are not repeated.
    """
    seed = config.seed if seed is None else seed
    samples = config.metrics.onset_pair_samples
    train_data = train_data if samples is None else train_data.head(samples)
    pairs = config.metrics.onset_pairs
    # what each pair is measured with: the feature metrics, for the onset-pair readout epochs
    measured = config.replace(metrics={
        "metrics": config.metrics.feature_metrics,
        "onset_pairs": (),
        "readout_epochs": config.metrics.onset_pair_epochs or config.metrics.readout_epochs,
    })
    inputs = seeding.generator(seed, seeding.inputs_purpose(True))
    train = [
        extract_onset_pair_features(model, train_data, config, pairs, inputs) for _ in range(_noise_draws(measured.metrics))
    ]
    test = extract_onset_pair_features(
        model, test_data, config, pairs, seeding.generator(seed, seeding.inputs_purpose(False))
    )
    results = {}
    for i, pair in enumerate(pairs):
        features = ([draw[i] for draw in train], test[i])
        pair_config = measured.replace(task={"onsets": pair})
        results[f"{pair[0]}-{pair[1]}"] = measure(model, train_data, test_data, pair_config, seed, features)
    return results


def measure_test_onsets(
    model: torch.nn.Module,
    train_data,
    test_data,
    config: RunConfig,
    pairs: Sequence[Tuple[int, int]],
    seed: Optional[int] = None,
) -> Dict[str, MetricScores]:
    """Fig. 4C as the reference code measures it: onsets at test only.

    The retraining readouts are trained once on the run's own inputs (``config``, as
    :func:`measure` trains them) and then scored on test inputs whose digits switch on at each
    onset pair (t0, t1) of ``pairs`` (1-based steps in 2..T−1, noise before the onset as with
    random onsets). M(m, k) is the raw accuracy of module m's readout for digit k (base 0, so M̄ =
    M), scored with the config's module score (the reference: the ratio). Keyed ``"t0-t1"``.
    """
    seed = config.seed if seed is None else seed
    metric_cfg = config.metrics
    steps = measured_steps(config.n_steps, metric_cfg.per_step)
    rows = torch.as_tensor(steps - 1)
    train = [f.at_steps(rows) for f in readout_training_features(model, train_data, config, seed)]
    plain_test = extract_features(model, test_data, config, seeding.generator(seed, seeding.inputs_purpose(False)))
    readouts, _ = train_readouts(train, plain_test.at_steps(rows), metric_cfg, seeding.generator(seed, "readouts"))
    form = scoring(metric_cfg.module_score, metric_cfg.clip_correlation, "retraining")
    results = {}
    for pair in pairs:
        onset_config = config.replace(task={"random_onset": True, "onsets": tuple(pair)})
        test = extract_features(
            model, test_data, onset_config, seeding.generator(seed, seeding.inputs_purpose(False))
        ).at_steps(rows)
        accuracy = readouts.accuracy(test.features.flatten(2), test.digits)  # [S, K, T]
        raw = accuracy[:-1].permute(2, 0, 1).numpy()  # [T, M, K]
        details = {"all_modules_accuracy": accuracy[-1].T.numpy()}
        results[f"{pair[0]}-{pair[1]}"] = MetricScores("retraining", raw, 0.0, steps, details, **form)
    return results


def measure_checkpoint(
    checkpoint: "str | Path",
    out: "str | Path | None" = None,
    seed: Optional[int] = None,
    device: str = "cpu",
    **overrides: Any,
) -> tuple[SpecializationResult, Path]:
    """Measure a checkpoint with its own config and store the result (``spikemod measure``); the
    network runs on ``device`` (``cpu`` or ``cuda``).

    ``overrides`` replace fields of the checkpoint's config: ``metrics={...}`` and ``data={...}``
    (e.g. ``data={"n_test": 2000, "data_root": "..."}``). The result goes into the group
    ``specialization`` of ``out``, by default the checkpoint file itself (the run's HDF5 file;
    loading the checkpoint ignores the group). Returns the result and the file written.
    """
    from ..checkpoint import load_checkpoint
    from ..task import PairDataset
    from ..training import check_device

    loaded = load_checkpoint(checkpoint)
    config = loaded.config.replace(**overrides) if overrides else loaded.config
    train_set = PairDataset(config.data, config.task, train=True, seed=config.seed)
    test_set = PairDataset(config.data, config.task, train=False, seed=config.seed)
    result = measure(loaded.model.to(check_device(device)), train_set, test_set, config, seed=seed)
    path = Path(out) if out is not None else Path(checkpoint)
    result.save(path)
    return result, path
