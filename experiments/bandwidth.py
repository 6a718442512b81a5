"""Does a router bandwidth limit give rise to specialization as sparsity does? (spiking only)

Spiking networks of Fig. 2 (n = 25, separate pathways) with communication limited three ways:
``synapse`` (no cap; one synapse to p = 1, Fig. 2's points), ``bandwidth`` (all-to-all synapses,
at most k ∈ {0, 1, 2, 4, 8, 16} spikes per step and direction, ``model.bandwidth_cap``) and
``both`` (a few (p, k) pairs). Capped runs use both router policies (``model.router``): the lowest
addresses pass, or a uniform draw among the spiking sources. 10 seeds.

    SPIKEMOD_DATA=/path/to/data python experiments/bandwidth.py --workers 2
    python experiments/bandwidth.py --quick            # offline smoke run
    python experiments/bandwidth.py --preset reference --workers 2

If specialization follows the information that crosses, whatever limits it, the families fall on
one curve of F against the spikes crossing per sample; if the synapse structure matters beyond
the traffic it allows, they do not. summary.md answers it: the bandwidth and both families'
distance from the synapse family's curve at the same traffic (interpolated in log traffic), with
95% intervals over seeds, and the same distance at the same test accuracy. Figures: bandwidth (F
and accuracy against the traffic, all families; against k; F against the accuracy). Results go to
experiments/results/bandwidth (-reference for that preset).
"""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import numpy as np
import pandas as pd
from common import base_config, main_guard, make_parser, run_experiment, seeds, summary_and_figures
from fig2_sparsity import P_FULL, P_QUICK, model_fields
from matplotlib.figure import Figure

from spikemod import plots
from spikemod.config import RunConfig

CAPS = (0, 1, 2, 4, 8, 16)
BOTH = ((0.05, 2), (0.05, 8), (0.1, 1), (0.1, 4))
ROUTERS = ("address", "random")
FAMILY_COLORS = {"synapse": "tab:blue", "bandwidth": "tab:red", "both": "tab:green"}
METRICS = ("retraining", "ablation", "correlation")


def configs(args) -> List[RunConfig]:
    base = base_config(args).replace(model={"variant": "spiking"})
    n = base.model.n_neurons
    points = P_QUICK if args.quick else P_FULL
    runs = []
    for seed in seeds(args):
        for p in points:
            runs.append(base.replace(model=model_fields(p, n), seed=seed))
        for router in ROUTERS:
            for cap in CAPS:
                runs.append(base.replace(model={"p": 1.0, "bandwidth_cap": cap, "router": router}, seed=seed))
            for p, cap in BOTH:
                runs.append(base.replace(model={"p": p, "bandwidth_cap": cap, "router": router}, seed=seed))
    return runs


def family(row: pd.Series) -> str:
    capped = not pd.isna(row["config.model.bandwidth_cap"])
    if not capped:
        return "synapse"
    return "bandwidth" if row["config.model.p"] == 1.0 else "both"


def columns(table: pd.DataFrame) -> pd.DataFrame:
    out = table.assign(
        family=table.apply(family, axis=1),
        router=np.where(table["config.model.bandwidth_cap"].isna(), "-", table["config.model.router"]),
        synapses=table["q.n_synapses"].astype(int),
    )
    for metric in METRICS:
        out[f"F.{metric}"] = plots.final_specialization(table, metric)
    return out


AXES = {"traffic.total": "traffic", "accuracy_mean": "accuracy"}


def distance_to_synapse_curve(data: pd.DataFrame, metric: str, along: str = "traffic.total") -> pd.DataFrame:
    """Per capped run: its F minus the synapse family's curve at the same ``along`` (the spikes
    crossing per sample, ``traffic.total``, or the test accuracy, ``accuracy_mean``). The curve
    joins the synapse family's points (mean over seeds per p), linear in log traffic or in accuracy;
    runs outside its range (and runs without traffic on the traffic axis) are left out."""
    column = f"F.{metric}"
    curve = data[data["family"] == "synapse"].groupby("config.model.p")[[along, column]].mean().sort_values(along)
    capped = data[data["family"] != "synapse"]
    on_traffic = along == "traffic.total"
    scale = np.log if on_traffic else np.asarray
    if on_traffic:
        curve, capped = curve[curve[along] > 0], capped[capped[along] > 0]
    capped = capped[capped[along].between(curve[along].min(), curve[along].max())]
    expected = np.interp(scale(capped[along]), scale(curve[along].to_numpy()), curve[column].to_numpy())
    return capped.assign(distance=capped[column] - expected)


def summary(table: pd.DataFrame) -> str:
    data = columns(table)
    keys = ["family", "router", "config.model.p", "config.model.bandwidth_cap"]
    values = [*(f"F.{m}" for m in METRICS), "accuracy_mean", "traffic.total"]
    mean, half, count = plots.seed_intervals(data.fillna({"config.model.bandwidth_cap": -1}), keys, values)
    header = ["family", "router", "p", "cap", "seeds", "retraining F", "ablation F", "correlation F", "accuracy", "spikes crossing / sample"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for key in mean.index:
        cap = "none" if key[3] == -1 else str(int(key[3]))
        cells = [key[0], key[1], f"{key[2]:.4g}", cap, str(int(count.loc[key].max()))]
        cells += [plots.format_interval(mean.loc[key, c], half.loc[key, c], 1 if c == "traffic.total" else 2) for c in values]
        lines.append("| " + " | ".join(cells) + " |")
    for along, name in AXES.items():
        lines += ["", f"Distance of the capped families' F from the synapse family's curve at the same {name} "
                  f"(F − F_synapse({name}); mean over the runs of each seed, then over seeds, 95% interval):", ""]
        lines += ["| metric | family | router | seeds | distance |", "|---|---|---|---|---|"]
        for metric in METRICS:
            distances = distance_to_synapse_curve(data, metric, along)
            per_seed = distances.groupby(["family", "router", "seed"])["distance"].mean()
            mean_d, half_d, count_d = plots.seed_intervals(per_seed.reset_index(), ["family", "router"], ["distance"])
            for key in mean_d.index:
                interval = plots.format_interval(mean_d.loc[key, "distance"], half_d.loc[key, "distance"])
                lines.append(f"| {metric} | {key[0]} | {key[1]} | {int(count_d.loc[key, 'distance'])} | {interval} |")
    return "\n".join(lines) + "\n"


def figure(table: pd.DataFrame, out: Path) -> List[Path]:
    data = columns(table)
    fig = Figure(figsize=(3.2 * (len(METRICS) + 1), 9.3), layout="constrained")
    axes = fig.subplots(3, len(METRICS) + 1, squeeze=False)
    y_columns = [*(f"F.{m}" for m in METRICS), "accuracy_mean"]
    labels = [*(f"{plots.METRIC_LABELS[m]} F" for m in METRICS), "test accuracy"]
    markers = {"-": "o", "address": "s", "random": "^"}
    for j, (y, label) in enumerate(zip(y_columns, labels)):
        ax = axes[0, j]
        for (fam, router), rows in data.groupby(["family", "router"]):
            mean = rows.groupby(["config.model.p", "config.model.bandwidth_cap"], dropna=False)[list(dict.fromkeys(["traffic.total", "accuracy_mean", y]))].mean()
            style = dict(color=FAMILY_COLORS[fam], marker=markers[router], s=22, label=f"{fam}" + ("" if router == "-" else f", {router}"))
            ax.scatter(mean["traffic.total"], mean[y], **style)
            if y != "accuracy_mean":
                axes[2, j].scatter(mean["accuracy_mean"], mean[y], **style)
        ax.set(xscale="symlog", xlabel="inter-module spikes per sample", ylabel=label, title=label)
        ax.grid(alpha=0.3)
        axes[2, j].set(xlabel="test accuracy", ylabel=label)
        axes[2, j].grid(alpha=0.3)
        ax = axes[1, j]
        capped = data[data["family"] == "bandwidth"]
        for router, rows in capped.groupby("router"):
            mean = rows.groupby("config.model.bandwidth_cap")[y].mean()
            ax.plot(mean.index, mean.to_numpy(), "-" + markers[router], color=FAMILY_COLORS["bandwidth"], label=router)
        uncapped = data[(data["family"] == "synapse") & (data["config.model.p"] == 1.0)][y]
        if len(uncapped):
            ax.axhline(uncapped.mean(), color=FAMILY_COLORS["synapse"], linestyle="--", label="no cap (k = none)")
        ax.set(xscale="symlog", xlabel="cap k (spikes per step and direction, p = 1)", ylabel=label)
        ax.grid(alpha=0.3)
    axes[2, -1].set_visible(False)  # accuracy against itself
    axes[0, 0].legend(fontsize="x-small")
    axes[1, 0].legend(fontsize="small", title="router")
    fig.suptitle(f"Specialization under a synapse limit, a bandwidth limit, or both (spiking, {plots.seeds_text(table)})")
    return plots.save_figure(fig, out, "bandwidth")


draw = summary_and_figures(summary, figure)


def main(argv: Optional[List[str]] = None) -> int:
    parser = make_parser(__doc__.split("\n\n")[0], "bandwidth", quick_seeds=1)
    parser.set_defaults(variants=["spiking"], seeds=None)
    args = parser.parse_args(argv)
    if args.seeds is None and not args.quick:
        args.seeds = 10
    return run_experiment(args, configs(args), draw)


if __name__ == "__main__":
    main_guard(main)
