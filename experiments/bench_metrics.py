"""Metric speed: plain PyTorch loops against spikemod's batched metrics, in one process.

Two metrics train many small models on one network's features or weights, and Fig. 4C measures
a random-onset network again at each of 3 x 3 fixed onset pairs:

- retraining: a Linear -> ReLU -> Linear readout (30 hidden units, AdamW) per module subset
  (each module alone, both together) x digit x time step. The baseline trains them one after the
  other, as the reference code does; spikemod trains all of them as one batched model
  (:func:`spikemod.metrics.retraining.train_readouts`);
- weight masks: an edge-popup supermask per digit x time step. The baseline trains them one after
  the other on the frozen network with ``torch.func.functional_call``; spikemod trains them
  together as copies in one ensemble (:func:`spikemod.metrics.weight_mask.weight_mask_metric`);
- onset pairs (retraining, ablation, correlation at each pair; random onsets, r = 0.4): the
  baseline calls :func:`spikemod.metrics.measure` once per pair, as spikemod did before; spikemod
  (:func:`spikemod.metrics.measure_onset_pairs`) extracts every pair's features in one pass that
  draws the input noise once per batch for all pairs. The results are equal number for number
  (tests/test_sweep.py); the work is pairs x (training + held-out pairs).

The network is a spiking one of Fig. 2 (two modules of n = 25, p = 0.1, T = 10, untrained: the
work per sample does not depend on the weights), on MNIST pairs. Early stopping is off so both
sides do the same number of updates; spikemod's weight-mask time also includes scoring the masks
on the held-out pairs, which the baseline skips. Printed: model-samples/s (trained models x training samples
x epochs per second) of each and their ratio, and peak memory.

    SPIKEMOD_DATA=/path/to/data python experiments/bench_metrics.py [--n-train 6000] [--repeats 2]
"""

from __future__ import annotations

import argparse
import math
import resource
import statistics
import time

import numpy as np
import snntorch as snn
import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

import fig4_dynamics
from spikemod.config import DataConfig, MetricConfig, ModelConfig, RunConfig
from spikemod.metrics import measure, measure_onset_pairs
from spikemod.metrics.features import FeatureSet, extract_features
from spikemod.metrics.retraining import train_readouts
from spikemod.metrics.weight_mask import MASK_MOMENTUM, MASK_WEIGHT_DECAY, parameter_owners, weight_mask_metric
from spikemod.task import PairDataset, network_input
from spikemod.training import build_model


def plain_readouts(train: FeatureSet, test: FeatureSet, config: MetricConfig, seed: int) -> int:
    """Train one readout per subset x digit x step, one after the other; returns the readouts trained."""
    x_train, x_test = train.features, test.features  # [T, B, M, F]
    n_modules = train.n_modules
    subsets = [[m] for m in range(n_modules)] + [list(range(n_modules))]
    count = 0
    for subset in subsets:
        for digit in range(train.n_digits):
            for step in range(train.n_steps):
                torch.manual_seed(seed + count)
                inputs = x_train[step][:, subset].flatten(1)
                readout = nn.Sequential(
                    nn.Linear(inputs.shape[1], config.readout_hidden), nn.ReLU(),
                    nn.Linear(config.readout_hidden, train.n_classes),
                )
                optimizer = torch.optim.AdamW(
                    readout.parameters(), lr=config.readout_lr, weight_decay=config.readout_weight_decay
                )
                for _ in range(config.readout_epochs):
                    order = torch.randperm(train.n_samples)
                    for start in range(0, train.n_samples, config.readout_batch_size):
                        rows = order[start : start + config.readout_batch_size]
                        loss = F.cross_entropy(readout(inputs[rows]), train.digits[rows, digit])
                        optimizer.zero_grad()
                        loss.backward()
                        optimizer.step()
                    with torch.no_grad():
                        readout(x_test[step][:, subset].flatten(1)).argmax(-1).eq(test.digits[:, digit]).float().mean()
                count += 1
    return count


def plain_weight_masks(model, train_data: PairDataset, config: RunConfig, seed: int) -> int:
    """Train one edge-popup mask per digit x step, one after the other; returns the masks trained."""
    cfg = config.metrics
    owners = parameter_owners(model)
    frozen = {name: p.detach() for name, p in model.named_parameters()}
    candidates = sum(int((o >= 0).sum()) for o in owners.values())
    n_keep = max(1, round(cfg.mask_fraction * candidates))
    count = 0
    for step in range(1, config.n_steps + 1):
        for digit in range(2):
            generator = torch.Generator().manual_seed(seed + count)
            scores = {}
            for name in owners:
                shape = frozen[name].shape
                fan_in = model.n_neurons if name == "w_rec" else shape[-1]
                scores[name] = ((torch.rand(shape) * 2 - 1) / math.sqrt(fan_in)).requires_grad_(True)
            optimizer = torch.optim.SGD(
                list(scores.values()), lr=cfg.mask_lr, momentum=MASK_MOMENTUM, weight_decay=MASK_WEIGHT_DECAY
            )
            for _ in range(cfg.mask_epochs):
                for batch in train_data.batches(config.train.batch_size, shuffle=True, generator=generator):
                    flat = torch.cat([scores[n].flatten() for n in owners])
                    candidate = torch.cat([(owners[n] >= 0).flatten() for n in owners])
                    ranked = torch.where(candidate, flat.detach(), torch.tensor(-math.inf))
                    keep = torch.zeros_like(flat).index_fill_(0, ranked.topk(n_keep).indices, 1.0)
                    binary = torch.where(candidate, keep + flat - flat.detach(), torch.ones_like(flat))
                    parts = binary.split([scores[n].numel() for n in owners])
                    params = {**frozen, **{n: frozen[n] * part.view_as(frozen[n]) for n, part in zip(owners, parts)}}
                    x, static = network_input(batch.images, config, generator)
                    logits = functional_call(model, params, (x,), {"static": static}).logits[step - 1]
                    target = batch.digits[:, digit : digit + 1].expand(-1, logits.shape[1])
                    loss = F.cross_entropy(logits.flatten(0, 1), target.flatten())
                    optimizer.zero_grad()
                    loss.backward()
                    optimizer.step()
            count += 1
    return count


def plain_onset_pairs(model, train_data: PairDataset, test_data: PairDataset, config: RunConfig) -> int:
    """Measure each onset pair on its own, one after the other; returns the pairs measured."""
    for pair in config.metrics.onset_pairs:
        measure(model, train_data, test_data, config.replace(task={"onsets": pair}, metrics={"onset_pairs": ()}))
    return len(config.metrics.onset_pairs)


def _timed(fn) -> tuple:
    start = time.perf_counter()
    value = fn()
    return value, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="mnist", help="mnist (needs SPIKEMOD_DATA) or digits")
    parser.add_argument("--n-train", type=int, default=6000, help="training pairs (readout and mask training)")
    parser.add_argument("--n-test", type=int, default=2000, help="held-out pairs")
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()

    config = RunConfig(
        data=DataConfig(dataset=args.dataset, n_train=args.n_train, n_test=args.n_test),
        model=ModelConfig(variant="spiking", n_neurons=25, p=0.1),
        metrics=MetricConfig(metrics=("retraining", "weight_mask"), readout_stop_accuracy=1.0),
    )
    train_data = PairDataset(config.data, config.task, train=True, seed=0)
    test_data = PairDataset(config.data, config.task, train=False, seed=0)
    model = build_model(config).eval()
    with torch.no_grad():
        train_features = extract_features(model, train_data, config, torch.Generator().manual_seed(0))
        test_features = extract_features(model, test_data, config, torch.Generator().manual_seed(1))
    steps = np.arange(1, config.n_steps + 1)
    onset_config = config.replace(
        task={"noise_ratio": 0.4, "random_onset": True},
        metrics={"metrics": ("retraining", "ablation", "correlation"), "onset_pairs": fig4_dynamics.onset_pairs(config.n_steps)},
    )
    onset_data = [PairDataset(onset_config.data, onset_config.task, train=split, seed=0) for split in (True, False)]
    cfg = config.metrics
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; spiking n = 25, p = 0.1, T = {config.n_steps}, "
          f"{args.n_train} training pairs")

    rows = []
    for _ in range(args.repeats):  # interleaved
        n_readouts, plain_s = _timed(lambda: plain_readouts(train_features, test_features, cfg, 0))
        _, ours_s = _timed(lambda: train_readouts(train_features, test_features, cfg, torch.Generator().manual_seed(0)))
        work = n_readouts * cfg.readout_epochs * args.n_train
        rows.append(("retraining", n_readouts, work / plain_s, work / ours_s))
        n_masks, plain_s = _timed(lambda: plain_weight_masks(model, train_data, config, 0))
        _, ours_s = _timed(
            lambda: weight_mask_metric(model, train_data, test_data, config, torch.Generator().manual_seed(0), steps)
        )
        work = n_masks * cfg.mask_epochs * args.n_train
        rows.append(("weight masks", n_masks, work / plain_s, work / ours_s))
        n_pairs, plain_s = _timed(lambda: plain_onset_pairs(model, *onset_data, onset_config))
        _, ours_s = _timed(lambda: measure_onset_pairs(model, *onset_data, onset_config))
        work = n_pairs * (args.n_train + args.n_test)
        rows.append(("onset pairs", n_pairs, work / plain_s, work / ours_s))
        snn.SpikingNeuron.instances.clear()
    for metric, unit in (("retraining", "model"), ("weight masks", "model"), ("onset pairs", "pair")):
        measured = [r for r in rows if r[0] == metric]
        plain = statistics.median(r[2] for r in measured)
        ours = statistics.median(r[3] for r in measured)
        ratios = ", ".join(f"{r[3] / r[2]:.1f}" for r in measured)
        print(f"{metric:12s} {measured[0][1]} {unit}s | plain {plain:10.0f} {unit}-samples/s | spikemod {ours:10.0f} "
              f"{unit}-samples/s | ratio {ours / plain:.1f}x (per repeat: {ratios})")
    print(f"peak memory (maxrss): {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")


if __name__ == "__main__":
    main()
