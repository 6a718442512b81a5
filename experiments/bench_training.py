"""Training speed: a plain snnTorch loop against spikemod's trainer, in one process.

The workload is a slice of the Fig. 2 sweep: two modules of n = 25 neurons, T = 5, batch 128,
6 sparsities x 3 seeds, spiking and rate. The baseline is what one would write by hand: two
``snn.Leaky`` modules (or tanh modules) with per-module input layers, masked recurrent and cross
weights and per-module readouts, trained with AdamW, one network at a time. spikemod trains the 18
networks of each variant as one stack (:func:`spikemod.training.train` on the 18 configs), and, for
the single-network speed, the first of them alone (K = 1). They run interleaved (the machine is
shared, so ratios of neighbouring measurements are what counts). With ``--noise r`` both train on
noisy input, x_t = (1 − r)·x + r·structured noise (as the reference preset trains), drawn for the
baseline by the same :func:`spikemod.task.temporal_input`. ``--device cuda`` trains both on the GPU
(the input draws stay on the CPU for both); ``--seeds S`` stacks 6·S networks instead of 18.
``--compile`` also times the stack's training step eager against ``torch.compile`` (same process,
same stack, interleaved) and prints the compile time and the loss difference it brings.
Printed: samples/s of each and their ratio, the fraction of this process's dense matmul FLOP rate
(a 2048² float32 matmul on the same device) reached, and peak memory (host, and the GPU's with cuda).

    SPIKEMOD_DATA=/path/to/data python experiments/bench_training.py [--n-train 3840] [--repeats 2] [--noise 0.4]
    SPIKEMOD_DATA=/path/to/data python experiments/bench_training.py --device cuda [--seeds 30]
    SPIKEMOD_DATA=/path/to/data python experiments/bench_training.py --compile [--device cuda]
"""

from __future__ import annotations

import argparse
import itertools
import resource
import statistics
import time
from typing import List, Optional

import snntorch as snn
import torch
import torch.nn.functional as F
from torch import nn

from common import main_guard

from spikemod.config import RunConfig
from spikemod.memory import reuse_freed_memory
from spikemod.stack import NetworkStack
from spikemod.task import PairDataset, network_input, temporal_input
from spikemod.training import build_model, check_device, loss_logits, make_optimizer, task_losses, train

N, T, BATCH, D = 25, 5, 128, 784
P_VALUES = ("one", 0.01, 0.05, 0.1, 0.5, 1.0)


def matmul_flops(device: torch.device) -> float:
    """FLOP/s of a dense 2048² float32 matmul on ``device`` (best of 5)."""
    a, b = torch.randn(2048, 2048, device=device), torch.randn(2048, 2048, device=device)
    a @ b
    best = min(_timed(lambda: a @ b, device) for _ in range(5))
    return 2 * 2048**3 / best


def _synchronize(device: torch.device) -> None:
    """Wait for the device's queued work (a no-op on the CPU), so that host clocks time it."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _timed(fn, device: torch.device) -> float:
    _synchronize(device)
    start = time.perf_counter()
    fn()
    _synchronize(device)
    return time.perf_counter() - start


def flops_per_sample() -> float:
    """Useful FLOPs of one training sample (forward + backward), separate input, static image.

    Input projection: each module sees its own digit, 2·(2n)·D forward and the same for the
    weight gradient; recurrence (2n)² and readout 2n·20 per step, three times (forward, two grads).
    """
    n_total = 2 * N
    return 2 * (2 * n_total * D) + 3 * T * (2 * n_total * n_total + 2 * n_total * 20)


class PlainSNN(nn.Module):
    """Hand-written baseline: two modules with input layers, masked recurrent/cross weights, readouts."""

    def __init__(self, spiking: bool, n_synapses: int) -> None:
        super().__init__()
        self.spiking = spiking
        self.fc_in = nn.ModuleList([nn.Linear(D, N) for _ in range(2)])
        self.rec = nn.ParameterList([nn.Parameter(torch.empty(N, N).uniform_(-0.1, 0.1)) for _ in range(2)])
        self.cross = nn.ParameterList([nn.Parameter(torch.empty(N, N).uniform_(-0.1, 0.1)) for _ in range(2)])
        self.register_buffer("rec_mask", 1 - torch.eye(N))
        masks = []
        for _ in range(2):
            mask = torch.zeros(N * N)
            mask[torch.randperm(N * N)[:n_synapses]] = 1
            masks.append(mask.view(N, N))
        self.register_buffer("cross_mask", torch.stack(masks))
        self.lif = nn.ModuleList([snn.Leaky(beta=0.9, reset_mechanism="zero") for _ in range(2)])
        self.readout = nn.ModuleList([nn.Linear(N, 20) for _ in range(2)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits [B, 20] of the input [T, B, 2, D]."""
        s = [x.new_zeros(x.shape[1], N) for _ in range(2)]
        mem = [x.new_zeros(x.shape[1], N) for _ in range(2)]
        out = 0
        for t in range(T):
            new = []
            for m in range(2):
                current = (
                    self.fc_in[m](x[t, :, m])
                    + s[m] @ (self.rec[m] * self.rec_mask).t()
                    + s[1 - m] @ (self.cross[m] * self.cross_mask[m]).t()
                )
                if self.spiking:
                    spk, mem[m] = self.lif[m](current, mem[m])
                else:
                    spk = torch.tanh(current)
                new.append(spk)
            s = new
            out = out + torch.stack([self.readout[m](s[m]) for m in range(2)], dim=1)
        return out.amax(dim=1)  # [B, 20]: the two heads x 10 classes


def run_baseline(
    spiking: bool, dataset: PairDataset, n_networks: int, batch_size: int, device: torch.device
) -> float:
    """Samples/s of plain snnTorch training on ``device``, one network after the other (one epoch
    each), on the data set's task input (static, or noisy when its ``task_config.noise_ratio`` > 0)."""
    _synchronize(device)
    seen, start = 0, time.perf_counter()
    for k in range(n_networks):
        torch.manual_seed(k)
        model = PlainSNN(spiking, n_synapses=max(1, int(0.1 * N * N))).to(device)
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
        generator = torch.Generator().manual_seed(k)
        for batch in dataset.batches(batch_size, shuffle=True, generator=generator):
            x, _ = temporal_input(batch.images, dataset.task_config, T, generator)
            logits = model(x.to(device)).view(-1, 2, 10)
            loss = F.cross_entropy(logits.flatten(0, 1), batch.targets.flatten().to(device))
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            seen += len(batch.targets)
        snn.SpikingNeuron.instances.clear()
    _synchronize(device)
    return seen / (time.perf_counter() - start)


def sweep_configs(
    variant: str, dataset: str, n_train: int, noise: float = 0.0, batch_size: int = BATCH, n_seeds: int = 3
) -> list:
    base = RunConfig.from_dict(
        {
            "data": {"dataset": dataset, "n_train": n_train, "n_test": n_train // 6},
            "model": {"variant": variant, "n_neurons": N},
            "task": {"n_steps": T, "noise_ratio": noise},
            "train": {"epochs": 1, "batch_size": batch_size},
        }
    )
    configs = []
    for seed in range(n_seeds):
        for p in P_VALUES:
            model = {"p": 1 / N**2, "synapses": 1} if p == "one" else {"p": float(p)}
            configs.append(base.replace(model=model, seed=seed))
    return configs


def run_spikemod(configs: list, device: torch.device) -> tuple:
    """(training samples/s over all networks, samples/s including data set-up and evaluation)."""
    _synchronize(device)
    start = time.perf_counter()
    results = train(configs, progress=False, device=str(device))
    _synchronize(device)
    wall = time.perf_counter() - start
    per_network = results[0].history["samples_per_second"][0]
    n_train = configs[0].data.n_train
    return per_network * len(configs), n_train * len(configs) / wall


def compile_speedup(configs: list, dataset: PairDataset, batch_size: int, device: torch.device, repeats: int) -> str:
    """The stack's training step (forward, task loss, backward, AdamW) over the data set's first
    10 batches, eager against ``torch.compile`` of forward and loss, interleaved on one stack: the
    compile time (first compiled pass), median samples/s of each, their ratio, and the largest
    difference of the K losses between the two on the first batch (rounding: fused kernels sum in
    another order)."""
    stack = NetworkStack([build_model(c) for c in configs]).to(device)
    optimizer = make_optimizer(stack.module_parameters(), configs[0].train)
    n_inputs, loss_kind = len({c.seed for c in configs}), configs[0].train.loss
    generator = torch.Generator().manual_seed(0)
    batches = []
    for batch in itertools.islice(dataset.batches(batch_size, shuffle=True, generator=generator), 10):
        drawn = [network_input(batch.images, configs[0], generator) for _ in range(n_inputs)]
        x = torch.stack([x for x, _ in drawn], dim=1)  # [T, G, B, S, D]: each seed its own draw
        targets = batch.targets.expand(len(configs), *batch.targets.shape)
        batches.append((x.to(device), targets.to(device), drawn[0][1]))

    def losses(x: torch.Tensor, targets: torch.Tensor, static: bool) -> torch.Tensor:
        out = stack(x, static, last_only=True)
        return task_losses(loss_logits(out.logits, out.module_logits, loss_kind), targets)

    compiled = torch.compile(losses, dynamic=False)

    def steps(fn) -> None:
        for x, targets, static in batches:
            loss = fn(x, targets, static).sum()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()

    first = batches[0]
    compile_s = _timed(lambda: steps(compiled), device)
    with torch.no_grad():
        difference = (losses(*first) - compiled(*first)).abs().max().item()
    eager, fused = [], []
    for _ in range(max(repeats, 3)):
        eager.append(_timed(lambda: steps(losses), device))
        fused.append(_timed(lambda: steps(compiled), device))
    n_samples = len(configs) * sum(targets.shape[1] for _, targets, _ in batches)
    e, c = n_samples / statistics.median(eager), n_samples / statistics.median(fused)
    return (
        f"training step of the stack: eager {e:9.0f} samples/s | torch.compile {c:9.0f} samples/s | "
        f"ratio {c / e:.2f}x (compile and first pass {compile_s:.1f} s) | largest loss difference {difference:.1e}"
    )


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="mnist", help="mnist (needs SPIKEMOD_DATA) or digits")
    parser.add_argument("--n-train", type=int, default=3840, help="training pairs per network")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--baseline-networks", type=int, default=2, help="networks timed per baseline repeat")
    parser.add_argument(
        "--noise", type=float, default=0.0, help="structured input noise r for both (default 0: static input)"
    )
    parser.add_argument("--batch-size", type=int, default=BATCH, help=f"batch size for both (default {BATCH})")
    parser.add_argument("--device", default="cpu", help="where both train: cpu (default) or cuda")
    parser.add_argument("--seeds", type=int, default=3, help="seeds of the stack: 6 sparsities x S networks (default 3)")
    parser.add_argument(
        "--compile",
        action="store_true",
        help="also time the stack's training step eager against torch.compile (needs a C++ compiler on the CPU)",
    )
    args = parser.parse_args(argv)
    if args.seeds < 1:
        parser.error(f"--seeds {args.seeds} is invalid: use a positive number")
    device = check_device(args.device)

    peak_flops = matmul_flops(device)
    per_sample = flops_per_sample()
    malloc = "freed memory reused" if reuse_freed_memory() else "system malloc"
    where = torch.cuda.get_device_name(device) if device.type == "cuda" else f"{torch.get_num_threads()} CPU threads"
    print(f"torch {torch.__version__}, {where}, input noise r = {args.noise}, batch {args.batch_size}, {malloc}")
    print(f"dense 2048² matmul: {peak_flops / 1e9:.1f} GFLOP/s; one training sample: {per_sample / 1e6:.3f} MFLOP")
    for variant in ("spiking", "rate"):
        configs = sweep_configs(variant, args.dataset, args.n_train, args.noise, args.batch_size, args.seeds)
        dataset = PairDataset(configs[0].data, configs[0].task, train=True, seed=0)
        base, ours, ours_wall, single = [], [], [], []
        for _ in range(args.repeats):  # interleaved
            base.append(run_baseline(variant == "spiking", dataset, args.baseline_networks, args.batch_size, device))
            train_speed, wall_speed = run_spikemod(configs, device)
            ours.append(train_speed)
            ours_wall.append(wall_speed)
            single.append(run_spikemod(configs[:1], device)[0])
        ratios = [o / b for o, b in zip(ours, base)]
        single_ratios = [s / b for s, b in zip(single, base)]
        b, o, w = statistics.median(base), statistics.median(ours), statistics.median(ours_wall)
        print(
            f"{variant:8s} plain snnTorch {b:9.0f} samples/s | spikemod stack of {len(configs)}: "
            f"{o:9.0f} samples/s training ({w:.0f} incl. data set-up and evaluation) | "
            f"ratio {statistics.median(ratios):.1f}x (per repeat: {', '.join(f'{r:.1f}' for r in ratios)}) | "
            f"FLOP fraction: baseline {b * per_sample / peak_flops:.1%}, spikemod {o * per_sample / peak_flops:.1%}"
        )
        print(
            f"{'':8s} spikemod one network (K = 1): {statistics.median(single):9.0f} samples/s | "
            f"ratio {statistics.median(single_ratios):.1f}x (per repeat: {', '.join(f'{r:.1f}' for r in single_ratios)})"
        )
        if args.compile:
            print(f"{'':8s} {compile_speedup(configs, dataset, args.batch_size, device, args.repeats)}")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    gpu = f", GPU {torch.cuda.max_memory_allocated(device) / 2**20:.0f} MB" if device.type == "cuda" else ""
    print(f"peak memory: host (maxrss) {peak:.0f} MB{gpu}")
    return 0


if __name__ == "__main__":
    main_guard(main)
