"""Check the papers' central result on trained rate networks: specialization needs extreme sparsity.

Trains two rate networks with n = 25 neurons per module on two-digit MNIST ("Dynamics" defaults:
separate input and readouts, 5 steps, the parity task with both targets), one with a single synapse
per direction and one with p = 1, then measures them with the metric suite. The papers report a
retraining F of about 0.69 with one synapse and 0.04 at p = 1 (reference-code notes); this script
checks F >= 0.5 and F <= 0.2 and exits with status 1 otherwise.

    SPIKEMOD_DATA=/path/to/data python experiments/check_specialization.py --epochs 5 --out results/check

Each network's checkpoint and its metrics (group ``specialization``) go to ``OUT/<name>.h5``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from spikemod.checkpoint import save_checkpoint
from spikemod.config import ModelConfig, RunConfig, TrainConfig
from spikemod.metrics import measure
from spikemod.task import PairDataset
from spikemod.training import train

NETWORKS = {
    "one_synapse": {"synapses": 1},
    "p1": {"p": 1.0},
}
EXPECTED = {"one_synapse": (">=", 0.5), "p1": ("<=", 0.2)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=5, help="training epochs per network (default 5)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--n-neurons", type=int, default=25)
    parser.add_argument("--out", type=Path, default=Path("results/check_specialization"))
    args = parser.parse_args(argv)

    summary = []
    for name, model_fields in NETWORKS.items():
        config = RunConfig(
            model=ModelConfig(n_neurons=args.n_neurons, **model_fields),
            train=TrainConfig(epochs=args.epochs),
            seed=args.seed,
        )
        start = time.perf_counter()
        trained = train(config, progress=False)
        trained_s = time.perf_counter() - start
        train_set = PairDataset(config.data, config.task, train=True, seed=config.seed)
        test_set = PairDataset(config.data, config.task, train=False, seed=config.seed)
        start = time.perf_counter()
        result = measure(trained.model, train_set, test_set, config)
        measured_s = time.perf_counter() - start
        path = save_checkpoint(args.out / f"{name}.h5", trained.model, config, trained.history)
        result.save(path)
        accuracy = " / ".join(f"{a:.4f}" for a in trained.test_accuracy.tolist())
        print(f"\n== {name}: n = {args.n_neurons}, {config.model.n_synapses} synapse(s) per direction, "
              f"test accuracy {accuracy} (T' / T''), trained in {trained_s:.0f} s, measured in {measured_s:.1f} s")
        print(result.table())
        print(f"saved to {path}")
        summary.append((name, result.metrics["retraining"].last, result.specialization()))

    failed = False
    print("\n== summary (F at the last step)")
    for name, retraining_f, all_f in summary:
        op, bound = EXPECTED[name]
        ok = retraining_f >= bound if op == ">=" else retraining_f <= bound
        failed |= not ok
        others = ", ".join(f"{metric} {value:.3f}" for metric, value in all_f.items())
        verdict = "ok" if ok else "FAILED"
        print(f"{name:<12} retraining F = {retraining_f:.3f} (expected {op} {bound}: {verdict}); {others}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
