"""One run, from config to result tree: train, measure specialization, count resources, compute Q.

:func:`run_one` is everything a run does. :func:`run_chunk` runs several runs of one shape,
training them together as one stack (:func:`spikemod.training.train` on a list of configs); the
result tree is that of each run alone, to float tolerance. :func:`make_chunks` cuts a list of runs into such
chunks. Where the results go is the executors' business (:mod:`spikemod.executors`).
"""

from __future__ import annotations

import platform
import socket
import time
from typing import Any, Callable, Dict, List, Optional, Sequence

import numpy as np
import torch

from . import __version__
from .config import ConfigError, RunConfig
from .decisions import decision_statistics
from .metrics.suite import measure, measure_onset_pairs
from .resources import measure_resources
from .stopwatch import Stopwatch
from .task import PairDataset
from .training import TrainResult, batch_key, train

__all__ = ["run_one", "run_chunk", "make_chunks", "cpu_model"]

#: Called with each run's config and trained network before the network is measured.
OnTrained = Callable[[RunConfig, TrainResult], None]


def run_one(
    config: RunConfig,
    trained: Optional[TrainResult] = None,
    on_trained: Optional[OnTrained] = None,
    device: str = "cpu",
) -> Dict[str, Any]:
    """Train one network and measure it; the result tree stored for the run.

    Keys: ``accuracy`` [H] (test accuracy per head of the kept state) and its mean
    ``accuracy_mean``; ``q`` (papers', exact and graph Q, p, synapse count); ``specialization``
    (``steps`` [T] and, per metric, ``raw``/``base``/``normalised`` [T, M, K], ``module_scores``
    [T, M], ``F`` [T], ``extreme_sparsity`` [T, 2], ``details``); with ``metrics.onset_pairs``,
    ``onset_pairs`` (per ``"t0-t1"`` and feature metric: ``module_scores`` [T, M] and ``F`` [T]
    with both digit onsets fixed, Fig. 4C); ``traffic`` (events crossing
    between modules per test sample: ``crossing`` [M, M] (i <- j), ``total``; spiking also
    ``per_step`` [M, M] from the kept epoch); ``decisions`` (separate readouts: who decides, by
    what margin, and whether the answer holder does, :func:`~spikemod.decisions.decision_statistics`);
    ``resources`` (mean counts and energy per inference); ``history`` (per-epoch training curves);
    ``meta`` (wall time, host, versions, ``device``, ``cpu``: the processor's model name, and
    ``cpu_capability``: the vector instructions ATen's CPU kernels use, e.g. AVX512 or AVX2; both
    decide the rounding, so spiking runs of one config differ between machines; training speed,
    ``stage_s``: seconds per stage, ``training``, ``features``, each metric, ``resources``,
    ``decisions``, ``onset_pairs``: provenance that is not a function of the config).
    ``trained``: the run's network already trained (by :func:`run_chunk`'s stack); it is then
    only measured, and ``wall_time_s`` covers the measurement only (``run_chunk`` adds the run's
    share of the stack's training to ``stage_s``). ``on_trained(config, trained)``
    is called once the network is trained, before it is measured (e.g. to store its checkpoint).
    ``device``: where the network trains and runs for its measurement (``cpu`` or ``cuda``).
    """
    start = time.perf_counter()
    watch = Stopwatch()
    if trained is None:
        with watch("training"):
            trained = train(config, progress=False, device=device)
    if on_trained is not None:
        on_trained(config, trained)
    model = trained.model.to(device)
    train_set = PairDataset(config.data, config.task, train=True, seed=config.seed)
    test_set = PairDataset(config.data, config.task, train=False, seed=config.seed)
    specialization = measure(model, train_set, test_set, config)
    for stage, seconds in specialization.seconds.items():
        watch.add(stage, seconds)
    with watch("resources"):
        counts = measure_resources(model, test_set, config)
    decisions = None
    if config.model.readout_scheme == "separate":
        with watch("decisions"):
            decisions = decision_statistics(model, test_set, config)

    history = dict(trained.history)
    samples_per_second = history.pop("samples_per_second")
    best_epoch = history["best_epoch"][0]
    traffic: Dict[str, Any] = {
        "crossing": counts.crossing.mean(axis=0),
        "total": float(counts.total_crossing.mean()),
    }
    if "test_cross_spikes" in history:
        traffic["per_step"] = np.asarray(history["test_cross_spikes"][best_epoch])
    accuracy = trained.test_accuracy.numpy()
    onset_pairs = {}
    if config.metrics.onset_pairs:
        with watch("onset_pairs"):
            onset_pairs = {
                pair: {
                    name: {"module_scores": scores.module_scores, "F": scores.specialization}
                    for name, scores in r.metrics.items()
                }
                for pair, r in measure_onset_pairs(model, train_set, test_set, config).items()
            }
    model.cpu()  # measured: free the device
    return {
        "accuracy": accuracy,
        "accuracy_mean": float(accuracy.mean()),
        "q": vars(specialization.modularity),
        "specialization": {
            "steps": specialization.steps,
            "features": specialization.features,
            **{
                name: {
                    "raw": scores.raw,
                    "base": scores.base,
                    "normalised": scores.normalised,
                    "module_scores": scores.module_scores,
                    "F": scores.specialization,
                    "extreme_sparsity": scores.extreme_sparsity,
                    "details": dict(scores.details),
                }
                for name, scores in specialization.metrics.items()
            },
        },
        **({"onset_pairs": onset_pairs} if onset_pairs else {}),
        **({"decisions": decisions} if decisions is not None else {}),
        "traffic": traffic,
        "resources": counts.summary(),
        "history": {key: np.asarray(value) for key, value in history.items()},
        "meta": {
            "wall_time_s": time.perf_counter() - start,
            "stage_s": watch.seconds,
            "samples_per_second": np.asarray(samples_per_second),
            "host": socket.gethostname(),
            "finished_at": time.time(),
            "torch_threads": torch.get_num_threads(),
            "device": str(torch.device(device)),
            "cpu": cpu_model(),
            "cpu_capability": torch.backends.cpu.get_cpu_capability(),
            "versions": {
                "spikemod": __version__,
                "torch": torch.__version__,
                "python": platform.python_version(),
            },
        },
    }


def run_chunk(
    configs: Sequence[RunConfig],
    on_result: Optional[Callable[[RunConfig, Dict[str, Any]], None]] = None,
    on_trained: Optional[OnTrained] = None,
    device: str = "cpu",
) -> List[Dict[str, Any]]:
    """Run configs of one chunk (see :func:`make_chunks`); ``on_result(config, result)`` is called
    as each run ends. Runs of one :func:`~spikemod.training.batch_key` train together; each trained
    network then goes through :func:`run_one`'s measurement (and ``on_trained``), all on ``device``."""
    groups: Dict[str, List[RunConfig]] = {}
    for config in configs:
        groups.setdefault(batch_key(config), []).append(config)
    results = []
    for group in groups.values():
        start = time.perf_counter()
        trained = train(group, progress=False, device=device)
        share = (time.perf_counter() - start) / len(group)  # each run's share of the stack's training
        for config, network in zip(group, trained):
            result = run_one(config, network, on_trained, device)
            result["meta"]["stage_s"] = {"training": share, **result["meta"]["stage_s"]}
            if on_result is not None:
                on_result(config, result)
            results.append(result)
    return results


def cpu_model() -> str:
    """The processor's model name: /proc/cpuinfo's ``model name`` on Linux, else platform.processor()."""
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def make_chunks(configs: Sequence[RunConfig], chunk_size: int) -> List[List[RunConfig]]:
    """Group configs by :func:`~spikemod.training.batch_key` (first-seen order) and cut groups
    into chunks of at most ``chunk_size``: each chunk trains as one stack."""
    if chunk_size < 1:
        raise ConfigError(f"chunk size {chunk_size} is invalid: use a positive integer")
    groups: Dict[str, List[RunConfig]] = {}
    for config in configs:
        groups.setdefault(batch_key(config), []).append(config)
    return [group[i : i + chunk_size] for group in groups.values() for i in range(0, len(group), chunk_size)]
