"""Throughput of trained spiking modular networks in Lava's CPU simulator, batched vs per sample.

Measured in one run on the same network and inputs:

1. one compiled single copy and one ``run()`` per sample (state reset through ``Var.set``), on the
   first ``--per-sample`` test pairs;
2. batched: ``--batch-size`` copies per compiled network (block-diagonal weights, 4 processes),
   on the same pairs and then on the whole test set, floating and fixed point;
3. for context, snnTorch and the numpy reference of Lava's arithmetic on the whole test set.

It also reports accuracy and spike agreement with snnTorch. Without ``--checkpoint`` it first
trains a small spiking network on MNIST (``--train-pairs`` pairs, ``--epochs`` epochs).

Example::

    SPIKEMOD_DATA=/work/shared/data python experiments/bench_lava.py --out bench_lava.h5
"""

from __future__ import annotations

import argparse
import os
import time

import h5py
import torch

from spikemod.checkpoint import load_checkpoint
from spikemod.config import RunConfig
from spikemod.hardware.export import describe
from spikemod.hardware.fidelity import simulate, spike_agreement, task_inputs
from spikemod.hardware.host import lava_network
from spikemod.hardware.reference import reference_run
from spikemod.hardware.simulator import DEFAULT_BATCH_SIZE, LavaTiming, run_lava, run_lava_per_sample
from spikemod.h5tree import write_tree
from spikemod.task import PairDataset
from spikemod.training import train


def _parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", help="trained spiking checkpoint (default: train one)")
    parser.add_argument("--data-root", help="data folder (default: $SPIKEMOD_DATA)")
    parser.add_argument("--train-pairs", type=int, default=10000, help="training pairs when training")
    parser.add_argument("--epochs", type=int, default=2, help="training epochs when training")
    parser.add_argument("--n-test", type=int, help="test pairs (default: all 10,000)")
    parser.add_argument("--per-sample", type=int, default=100, help="pairs run one run() each")
    parser.add_argument("--batch-size", type=int, default=DEFAULT_BATCH_SIZE, help="copies per compiled network")
    parser.add_argument("--threads", type=int, default=2, help="torch threads")
    parser.add_argument("--out", help="HDF5 file for the numbers")
    return parser.parse_args()


def _network(args: argparse.Namespace):
    if args.checkpoint:
        loaded = load_checkpoint(args.checkpoint)
        return loaded.model, loaded.config
    config = RunConfig().replace(
        data=dict(dataset="mnist", data_root=args.data_root, n_train=args.train_pairs),
        model=dict(variant="spiking", n_neurons=25, p=0.1),
        train=dict(epochs=args.epochs),
    )
    started = time.perf_counter()
    result = train(config, progress=False)
    print(f"trained {config.model.n_modules}x{config.model.n_neurons} LIF network, T = {config.n_steps}, "
          f"on {args.train_pairs} pairs in {time.perf_counter() - started:.0f} s")
    return result.model, config


def _row(name: str, samples: int, seconds: float, note: str = "") -> str:
    return f"{name:<44} {samples:>7} {seconds:9.2f} {samples / seconds:11.1f}  {note}"


def main() -> None:
    args = _parse()
    torch.set_num_threads(args.threads)
    model, config = _network(args)
    if args.data_root:
        config = config.replace(data={"data_root": args.data_root})
    if args.n_test:
        config = config.replace(data={"n_test": args.n_test})
    description = describe(model, config)
    test_set = PairDataset(config.data, config.task, train=False, seed=config.seed)
    inputs = task_inputs(description, test_set)
    n_samples = len(inputs)
    float_net = lava_network(description)
    print(f"network: {description.n_modules} modules x {description.module_size} neurons, "
          f"{float_net.weights.nnz} synapses, T = {config.n_steps}; {n_samples} test pairs; "
          f"{os.cpu_count()} CPU cores")

    # The same pairs, one run() per sample and batched.
    k = min(args.per_sample, n_samples)
    per_sample_timing = LavaTiming()
    started = time.perf_counter()
    per_sample = run_lava_per_sample(float_net, inputs.current[:, :k], per_sample_timing)
    per_sample_seconds = time.perf_counter() - started
    batched_timing = LavaTiming()
    started = time.perf_counter()
    batched = run_lava(float_net, inputs.current[:, :k], args.batch_size, batched_timing)
    batched_seconds = time.perf_counter() - started
    if not (per_sample == batched).all():
        raise SystemExit("per-sample and batched Lava runs disagree: the batched network is wrong")

    # The whole test set.
    torch_run = simulate(description, inputs, "torch", batch_size=args.batch_size)
    lava_float = simulate(description, inputs, "lava-float", batch_size=args.batch_size)
    lava_fixed = simulate(description, inputs, "lava-fixed", batch_size=args.batch_size)
    started = time.perf_counter()
    reference, _ = reference_run(float_net, inputs.current)
    reference_seconds = time.perf_counter() - started

    print(f"\n{'backend':<44} {'samples':>7} {'seconds':>9} {'samples/s':>11}")
    print(_row("lava float, one run() per sample", k, per_sample_seconds,
               f"compile {per_sample_timing.compile:.2f} s, {per_sample_timing.run_calls} runs"))
    print(_row(f"lava float, batched ({args.batch_size} per network)", k, batched_seconds,
               f"compile {batched_timing.compile:.2f} s, {batched_timing.run_calls} run(s)"))
    speedup = per_sample_seconds / batched_seconds
    print(f"batched speed-up on the same {k} pairs: {speedup:.1f}x")
    for sim in (lava_float, lava_fixed):
        t = sim.timing
        print(_row(f"{sim.backend}, whole test set", n_samples, sim.seconds,
                   f"build {t.build:.1f} + compile {t.compile:.1f} + run {t.run:.1f} + read {t.read:.1f} s, "
                   f"{t.networks} networks"))
    print(_row("snnTorch (float32), whole test set", n_samples, torch_run.seconds))
    print(_row("numpy reference of Lava float, whole test set", n_samples, reference_seconds))

    float_agreement = spike_agreement(torch_run.spikes, lava_float.spikes)
    fixed_agreement = spike_agreement(torch_run.spikes, lava_fixed.spikes)
    print(f"batched whole test set vs one run() per sample: {lava_float.samples_per_second * per_sample_seconds / k:.0f}x "
          "samples/s")

    def heads(sim) -> str:
        return "/".join(f"{a:.4f}" for a in sim.accuracy)

    print(f"\naccuracy per head: torch {heads(torch_run)}, lava float {heads(lava_float)}, lava fixed {heads(lava_fixed)}")
    print(f"identical spike bits vs torch: float {float_agreement.identical_bits:.6f}, "
          f"fixed {fixed_agreement.identical_bits:.6f} (count r {fixed_agreement.count_correlation:.4f}, "
          f"scale s = {lava_fixed.scale:g}); numpy reference == lava float: {bool((reference == lava_float.spikes).all())}")

    if args.out:
        tree = {
            "n_samples": n_samples,
            "per_sample": {"samples": k, "seconds": per_sample_seconds, "compile": per_sample_timing.compile},
            "batched_same_samples": {"samples": k, "seconds": batched_seconds, "batch_size": args.batch_size},
            "speedup": speedup,
            "torch": {"seconds": torch_run.seconds, "accuracy": torch_run.accuracy},
            "lava_float": {"seconds": lava_float.seconds, "accuracy": lava_float.accuracy,
                           "identical_bits": float_agreement.identical_bits},
            "lava_fixed": {"seconds": lava_fixed.seconds, "accuracy": lava_fixed.accuracy,
                           "identical_bits": fixed_agreement.identical_bits,
                           "count_correlation": fixed_agreement.count_correlation, "scale": lava_fixed.scale},
            "numpy_reference_seconds": reference_seconds,
            "config": config.to_json(),
        }
        with h5py.File(args.out, "w") as f:
            write_tree(f, tree)
        print(f"numbers: {args.out}")


if __name__ == "__main__":
    main()
