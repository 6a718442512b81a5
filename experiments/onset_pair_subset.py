"""Fig. 4C's onset pairs measured on a subset of the training pairs: how much does F move?

Fig. 4's random-onset networks (n = 25, fused pathway, 10 synapses per direction, rate and
spiking) are measured at the 3 x 3 onset pairs with their readouts trained on all 60,000
training pairs and on the first 5,000 and 10,000 (``MetricConfig.onset_pair_samples``), each
subset once for the usual readout epochs and once for as many epochs as keep the number of
optimizer steps (``MetricConfig.onset_pair_epochs``: 3 x 60,000 / 5,000 = 36 and 18). The
networks are the same (same seed, same training); only the onset-pair measurement differs.

    SPIKEMOD_DATA=/path/to/data python experiments/onset_pair_subset.py --workers 2
    python experiments/onset_pair_subset.py --quick        # offline smoke run

summary.md answers it: per variant, subset size and readout epochs, F − F(all pairs) over every
pair, feature metric and step (mean, mean absolute, largest), against the seed spread (the
standard deviation of F(all pairs) over seeds, averaged over pairs, metrics and steps), and the
seconds per run and per onset-pair measurement. The figure (onset_pair_subset) puts each subset's F against the full
set's. Results go to experiments/results/onset-pair-subset; running it again runs what is missing.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path
from typing import List, Optional

import numpy as np
import pandas as pd
from common import main_guard, make_parser, run_experiment, summary_and_figures
from fig4_dynamics import configs as fig4_configs
from matplotlib.figure import Figure

from spikemod import plots
from spikemod.config import RunConfig
from spikemod.task import PairDataset

SYNAPSES = 10
SAMPLES = (5000, 10000)
SAMPLES_QUICK = (100, 300)
PREFIX = "onset_pairs."


def matched_epochs(config: RunConfig, samples: int) -> int:
    """Readout epochs over the first ``samples`` training pairs that make at least as many optimizer
    steps as ``metrics.readout_epochs`` over all of them: ⌈epochs · N / samples⌉."""
    n_pairs = len(PairDataset(config.data, config.task, train=True, seed=config.seed))
    return math.ceil(config.metrics.readout_epochs * n_pairs / samples)


def configs(args) -> List[RunConfig]:
    onset_runs = fig4_configs(argparse.Namespace(**{**vars(args), "conditions": ["onset"]}))
    onset_runs = [c for c in onset_runs if c.model.n_synapses == SYNAPSES]
    conditions = [{"onset_pair_samples": None, "onset_pair_epochs": None}]
    for n in SAMPLES_QUICK if args.quick else SAMPLES:
        matched = matched_epochs(onset_runs[0], n)
        conditions += [
            {"onset_pair_samples": n, "onset_pair_epochs": None},
            {"onset_pair_samples": n, "onset_pair_epochs": matched},
        ]
    return [c.replace(metrics=condition) for c in onset_runs for condition in conditions]


def _condition(table: pd.DataFrame) -> pd.DataFrame:
    """Each run's ``samples`` (0 for all training pairs) and ``epochs`` (of the onset-pair readouts)."""
    samples = table["config.metrics.onset_pair_samples"]
    epochs = table.get("config.metrics.onset_pair_epochs", pd.Series(np.nan, index=table.index))
    return pd.DataFrame({
        "samples": samples.fillna(0).astype(int),
        "epochs": pd.to_numeric(epochs).fillna(table["config.metrics.readout_epochs"]).astype(int),
    })


def long_table(table: pd.DataFrame) -> pd.DataFrame:
    """One row per run, onset pair, feature metric and step: ``F``, with the run's ``variant``,
    ``seed``, ``samples`` (0 for all training pairs) and readout ``epochs``."""
    rows = []
    columns = [c for c in table.columns if c.startswith(PREFIX) and c.endswith(".F")]
    conditions = _condition(table)
    for index, run in table.iterrows():
        samples, epochs = conditions.loc[index]
        for column in columns:
            values = np.asarray(run[column], dtype=float)
            if values.ndim == 0:  # a pair of the other variant's T
                continue
            pair, metric = column[len(PREFIX) :].split(".")[:2]
            for step, f in enumerate(values, start=1):
                rows.append((run["config.model.variant"], run["seed"], samples, epochs, pair, metric, step, f))
    return pd.DataFrame(rows, columns=["variant", "seed", "samples", "epochs", "pair", "metric", "step", "F"])


def paired(table: pd.DataFrame) -> pd.DataFrame:
    """Each subset's F beside the full set's (``F_all``), same network, pair, metric and step."""
    data = long_table(table)
    keys = ["variant", "seed", "pair", "metric", "step"]
    full = data[data["samples"] == 0].set_index(keys)["F"].rename("F_all")
    return data[data["samples"] > 0].join(full, on=keys)


def summary(table: pd.DataFrame) -> str:
    data = paired(table)
    spread = long_table(table).query("samples == 0").groupby(["variant", "pair", "metric", "step"])["F"].std()
    seconds = table.assign(
        **_condition(table),
        total=table[[c for c in table.columns if c.startswith("meta.stage_s.")]].sum(axis=1),
    ).groupby(["config.model.variant", "samples", "epochs"])[["total", "meta.stage_s.onset_pairs"]].mean()
    header = ["variant", "training pairs", "readout epochs", "seeds", "F − F(all): mean", "mean absolute",
              "largest absolute", "seed spread of F(all)", "seconds per run", "of which onset pairs"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for variant, rows in table.groupby("config.model.variant"):
        variant_spread = spread.xs(variant).mean()
        for (samples, epochs), full in seconds.loc[variant].query("samples == 0").iterrows():
            lines.append(f"| {variant} | all | {epochs} | {rows['seed'].nunique()} | – | – | – | {variant_spread:.3f} | "
                         f"{full['total']:.0f} | {full['meta.stage_s.onset_pairs']:.0f} |")
        for (samples, epochs), same in data[data["variant"] == variant].groupby(["samples", "epochs"]):
            difference = same["F"] - same["F_all"]
            cost = seconds.loc[(variant, samples, epochs)]
            lines.append(
                f"| {variant} | {samples} | {epochs} | {same['seed'].nunique()} | {difference.mean():+.3f} | "
                f"{difference.abs().mean():.3f} | {difference.abs().max():.3f} | {variant_spread:.3f} | "
                f"{cost['total']:.0f} | {cost['meta.stage_s.onset_pairs']:.0f} |"
            )
    lines += ["", "Per feature metric (mean absolute F − F(all), and the seed spread of F(all)):", ""]
    lines += ["| variant | training pairs | readout epochs | metric | mean absolute | seed spread |", "|---|---|---|---|---|---|"]
    for (variant, samples, epochs, metric), same in data.groupby(["variant", "samples", "epochs", "metric"]):
        lines.append(f"| {variant} | {samples} | {epochs} | {metric} | {(same['F'] - same['F_all']).abs().mean():.3f} | "
                     f"{spread.xs((variant, metric), level=['variant', 'metric']).mean():.3f} |")
    return "\n".join(lines) + "\n"


def figure(table: pd.DataFrame, out: Path) -> List[Path]:
    data = paired(table)
    variants = sorted(data["variant"].unique())
    fig = Figure(figsize=(3.6 * len(variants), 3.6), layout="constrained")
    axes = fig.subplots(1, len(variants), squeeze=False)[0]
    for ax, variant in zip(axes, variants):
        for k, ((samples, epochs), same) in enumerate(data[data["variant"] == variant].groupby(["samples", "epochs"])):
            ax.scatter(same["F_all"], same["F"], s=5, alpha=0.5, color=f"C{k}", label=f"first {samples} pairs, {epochs} epochs")
        ax.plot([-1, 1], [-1, 1], color="0.5", linewidth=0.8)
        ax.set(xlabel="F, readouts on all training pairs", ylabel="F, readouts on a subset", title=variant)
        ax.grid(alpha=0.3)
        ax.legend(fontsize="small")
    fig.suptitle("Onset-pair F (every pair, feature metric and step) on a subset of the training pairs")
    return plots.save_figure(fig, out, "onset_pair_subset")


draw = summary_and_figures(summary, figure)


def main(argv: Optional[List[str]] = None) -> int:
    parser = make_parser(__doc__.split("\n\n")[0], "onset-pair-subset", quick_seeds=1)
    args = parser.parse_args(argv)
    return run_experiment(args, configs(args), draw)


if __name__ == "__main__":
    main_guard(main)
