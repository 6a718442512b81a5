"""The "Extreme sparsity gives rise to functional specialization" experiment for rate and spiking networks.

The paper's setup (the ``extreme-sparsity`` preset, spikemod.presets): two modules of n = 100 with
separate inputs and readouts, the parity target, a Deep-R interconnect from one synapse to
all-to-all (10 values, log-spaced and dense near Q = 0.49), Adadelta 0.5. Two architectures per
point, as in the paper: the standard one (5 epochs), measured with the weight-mask and correlation
metrics, and one with a 5-unit bottleneck per module (7 epochs), measured with the bottleneck
metric. 3 seeds, rate and spiking.

    SPIKEMOD_DATA=/path/to/data python experiments/extreme_sparsity.py --workers 2
    python experiments/extreme_sparsity.py --quick        # offline smoke run, n = 20, a few minutes

Results go to experiments/results/extreme-sparsity (one HDF5 file per run); running the command
again runs only what is missing. The figure (extreme_sparsity: M_spec against p and Q, the raw
metrics, the accuracy, and for spiking M_spec against the spikes crossing) and summary.md (M_spec
per point with its 95% interval, and the Q at which each metric first exceeds half of its
one-synapse value) are drawn from the stored results.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import List, Optional

import pandas as pd
from common import RESULTS, add_executor_options, dataset, main_guard, run_experiment, seeds, summary_and_figures

from spikemod import plots
from spikemod.config import RunConfig
from spikemod.presets import with_preset

#: Synapses per direction (n = 100: p = count / 10,000), dense around p = 0.01 (Q = 0.49).
SYNAPSES_FULL = (1, 10, 30, 60, 100, 200, 500, 1100, 3000, 10_000)
SYNAPSES_QUICK = (1, 4, 8, 20, 40, 100, 400)  # n = 20
#: The two architectures: (bottleneck units, epochs, metrics).
ARCHITECTURES = {
    "standard": (None, 5, ("weight_mask", "correlation")),
    "bottleneck": (5, 7, ("bottleneck",)),
}


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smoke mode: offline digits, n = 20, short training")
    parser.add_argument("--store", type=Path, help="results store (default: experiments/results/extreme-sparsity[-quick])")
    parser.add_argument("--workers", type=int, default=2, help="local worker processes (default 2)")
    parser.add_argument("--data-root", help="data root with MNIST (default: $SPIKEMOD_DATA)")
    parser.add_argument("--dataset", choices=("mnist", "digits"), help="mnist (default) or digits (the --quick default)")
    parser.add_argument("--seeds", type=int, default=None, help="number of seeds (default: 3, --quick: 1)")
    parser.add_argument("--variants", nargs="+", default=["rate", "spiking"], choices=["rate", "spiking"])
    parser.add_argument("--keep-checkpoints", action="store_true", help="also store each run's trained network")
    parser.add_argument("--device", default="cpu", help="cpu (default) or cuda")
    parser.add_argument("--figures-only", action="store_true", help="draw from the store, run nothing")
    parser.add_argument("--dry-run", action="store_true", help="print the runs and stop")
    add_executor_options(parser)
    parser.set_defaults(name="extreme-sparsity", quick_seeds=1)
    return parser


def configs(args: argparse.Namespace) -> List[RunConfig]:
    """Seed-major, so that an interrupted sweep has whole curves for the first seeds."""
    base = with_preset(RunConfig(), "extreme-sparsity")
    data_root = args.data_root if dataset(args) == "mnist" else None
    base = base.replace(data={"dataset": dataset(args), "data_root": data_root})
    n = base.model.n_neurons
    counts = SYNAPSES_FULL
    if args.quick:
        n, counts = 20, SYNAPSES_QUICK
        base = base.replace(
            model={"n_neurons": n},
            train={"batch_size": 64},
            metrics={"readout_batch_size": 64},
        )
    runs = []
    for seed in seeds(args):
        for variant in args.variants:
            for bottleneck, epochs, metrics in ARCHITECTURES.values():
                for count in counts:
                    runs.append(
                        base.replace(
                            model={"variant": variant, "n_neurons": n, "synapses": count, "p": count / n**2, "bottleneck": bottleneck},
                            train={"epochs": max(2, epochs - 2) if args.quick else epochs},
                            metrics={"metrics": metrics},
                            seed=seed,
                        )
                    )
    return runs


def summary(table: pd.DataFrame) -> str:
    """Markdown: M_spec per variant, metric and point (mean ± 95% interval), and the Q of the half rise."""
    lines = []
    for metric in plots.EXTREME_SPARSITY_METRICS:
        if f"specialization.{metric}.raw" not in table:
            continue
        data = plots.extreme_sparsity_columns(table, metric)
        mean, half, count = plots.seed_intervals(data, ["config.model.variant", "synapses"], ["spec", "own", "other", "accuracy_mean"])
        q = data.groupby(["config.model.variant", "synapses"])["q.paper"].first()
        lines += [f"### {plots.METRIC_LABELS[metric]}", "", "| variant | synapses | Q | seeds | M_spec | M(n, n) | M(n, 1−n) | accuracy |", "|---|---|---|---|---|---|---|---|"]
        for key in mean.index:
            cells = [key[0], str(key[1]), f"{q[key]:.4f}", str(int(count.loc[key, "spec"]))]
            cells += [plots.format_interval(mean.loc[key, c], half.loc[key, c]) for c in ("spec", "own", "other", "accuracy_mean")]
            lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
        for variant, rows in mean["spec"].groupby(level=0):
            curve = rows.droplevel(0).sort_index()  # by synapse count: Q falls along it
            threshold = 0.5 * curve.iloc[0]
            above = curve >= threshold
            # the densest point of the run of points above half that starts at one synapse
            last = above.values.argmin() - 1 if not above.all() else len(curve) - 1
            lines.append(
                f"- {variant}: M_spec first exceeds half of its one-synapse value ({curve.iloc[0]:.2f} / 2) "
                f"at Q = {q[(variant, curve.index[last])]:.4f} ({curve.index[last]} synapses), going from p = 1 towards one synapse"
            )
        lines.append("")
    return "\n".join(lines)


draw = summary_and_figures(summary, plots.extreme_sparsity_figure)


def main(argv: Optional[List[str]] = None) -> int:
    args = make_parser().parse_args(argv)
    if args.store is None:
        args.store = RESULTS / ("extreme-sparsity" + ("-quick" if args.quick else ""))
    return run_experiment(args, configs(args), draw)


if __name__ == "__main__":
    main_guard(main)
