"""Is "specialization only at extreme sparsity" a property of the training loss? The mechanism test.

Fig. 2's networks (n = 25, separate pathways, one synapse to p = 1) trained with three losses on
the same seeds and pairs: ``deciding`` (the reference's), ``marginal`` (a softmax over all modules'
logits summed per class) and ``each`` (every module's own cross-entropy, a control: every module
must answer every sample). Measured: the retraining, ablation and correlation F; probes of what
each module knows, the other digit's identity (the retraining readouts, M(m, 1 − m)) and the
other digit's parity (``parity``: M(m, 1 − m)), and its own digit; and who decides
(``decisions``: the share of samples the answer holder decides, the margin between the modules'
largest logits). The mechanism says: under ``marginal`` the other digit's parity becomes
decodable as p grows while its identity stays near chance; under ``deciding`` both do.

    SPIKEMOD_DATA=/path/to/data python experiments/loss_mechanism.py --workers 2 --seeds 10
    python experiments/loss_mechanism.py --quick      # offline smoke run
    python experiments/loss_mechanism.py --preset reference --points one 1 --seeds 5  # where the effect lives

Results go to experiments/results/loss-mechanism (``-reference`` for the reference preset; the
concat readout trains only with the deciding loss, so it has no loss comparison); running the
command again runs only what is missing. Figures (loss_mechanism: F, probes and decisions against
p per loss, rate and spiking) and summary.md (at each p: every loss's numbers with 95% intervals,
and each loss against ``deciding``, paired over seeds with a paired t-test) are drawn from the store.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import List, Optional

import numpy as np
import pandas as pd
from common import base_config, main_guard, make_parser, run_experiment, seeds, summary_and_figures
from fig2_sparsity import P_FULL, P_QUICK, model_fields
from matplotlib.figure import Figure
from scipy import stats

from spikemod import plots
from spikemod.config import LOSSES, RunConfig

METRICS = ("retraining", "ablation", "correlation", "parity")
LOSS_STYLES = {"deciding": "-", "marginal": "--", "each": ":"}


def configs(args) -> List[RunConfig]:
    base = base_config(args)
    base = base.replace(metrics={"metrics": METRICS})
    points = args.points or (P_QUICK if args.quick else P_FULL)
    return [
        base.replace(model={"variant": variant, **model_fields(p, base.model.n_neurons)}, train={"loss": loss}, seed=seed)
        for seed in seeds(args)
        for variant in args.variants
        for loss in LOSSES
        for p in points
    ]


def point(text: str) -> "str | float":
    """A --points entry: ``one`` or a density in (0, 1]."""
    if text == "one":
        return text
    try:
        p = float(text)
    except ValueError:
        p = -1.0
    if not 0 < p <= 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not 'one' or a density p in (0, 1]")
    return p


def columns(table: pd.DataFrame) -> pd.DataFrame:
    """One row per run with the quantities the figure and summary read (last step, mean over
    modules): F per metric; ``own``, ``other`` (retraining accuracy for the module's own and the
    other digit); ``other_parity``; ``holder`` (share decided by the answer holder, mean over
    heads); ``margin``."""
    def last(column: str) -> List[np.ndarray]:
        return [np.asarray(v, dtype=float)[-1] for v in table[column]]

    retraining, parity = last("specialization.retraining.raw"), last("specialization.parity.raw")
    out = table.assign(
        loss=table["config.train.loss"],
        own=[np.mean(np.diag(r)) for r in retraining],
        other=[np.mean(r[[0, 1], [1, 0]]) for r in retraining],
        own_parity=[np.mean(np.diag(r)) for r in parity],
        other_parity=[np.mean(r[[0, 1], [1, 0]]) for r in parity],
        holder=[float(np.mean(v)) for v in table["decisions.holder_decides"]],
        margin=[float(np.mean(v)) for v in table["decisions.margin"]],
    )
    for metric in ("retraining", "ablation", "correlation"):
        out[f"F.{metric}"] = plots.final_specialization(table, metric)
    return out


PANELS = (
    ("F.retraining", "retraining F"),
    ("F.ablation", "ablation F"),
    ("F.correlation", "correlation F"),
    ("other", "other digit's identity"),
    ("other_parity", "other digit's parity"),
    ("own", "own digit's identity"),
    ("holder", "holder decides (share)"),
    ("margin", "deciding margin"),
)


def figure(table: pd.DataFrame, out: Path) -> List[Path]:
    data = columns(table)
    variants = sorted(data["config.model.variant"].unique())
    fig = Figure(figsize=(3.0 * len(PANELS) / 2, 3.0 * 2 * len(variants)), layout="constrained")
    axes = fig.subplots(2 * len(variants), len(PANELS) // 2, squeeze=False)
    for v, variant in enumerate(variants):
        rows = data[data["config.model.variant"] == variant]
        for i, (column, label) in enumerate(PANELS):
            ax = axes[2 * v + i // (len(PANELS) // 2), i % (len(PANELS) // 2)]
            for loss, runs in rows.groupby("loss"):
                mean = runs.groupby("q.p")[column].mean()
                ax.plot(mean.index, mean.to_numpy(), LOSS_STYLES.get(loss, "-"), marker="o", markersize=3,
                        color=plots.VARIANT_COLORS.get(variant, "k"), label=loss)
                ax.scatter(runs["q.p"], runs[column], s=6, alpha=0.4, color=plots.VARIANT_COLORS.get(variant, "k"))
            ax.set(xscale="log", xlabel="interconnect density p", title=f"{variant}: {label}")
            ax.grid(alpha=0.3)
        axes[2 * v, 0].legend(fontsize="small", title="loss")
    fig.suptitle("The training loss and what the modules know (last step, mean over modules)")
    return plots.save_figure(fig, out, "loss_mechanism")


def summary(table: pd.DataFrame) -> str:
    data = columns(table)
    values = [*(c for c, _ in PANELS), "accuracy_mean"]
    keys = ["config.model.variant", "synapses", "loss"]
    data = data.assign(synapses=data["q.n_synapses"].astype(int))
    mean, half, count = plots.seed_intervals(data, keys, values)
    header = ["variant", "synapses", "loss", "seeds", *[label for _, label in PANELS], "accuracy"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for key in mean.index:
        cells = [key[0], str(key[1]), key[2], str(int(count.loc[key].max()))]
        cells += [plots.format_interval(mean.loc[key, c], half.loc[key, c]) for c in values]
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "Probes are readout accuracies (chance: identity 0.1, parity 0.5). Each loss against `deciding`,",
              "paired over seeds (same seeds and pairs): the mean difference with its 95% Student-t interval and",
              "the paired t-test's p, at every point:", ""]
    lines += ["| variant | synapses | loss | quantity | difference | p |", "|---|---|---|---|---|---|"]
    for (variant, synapses), rows in data.groupby(["config.model.variant", "synapses"]):
        grid = {c: rows.pivot_table(index="seed", columns="loss", values=c) for c in ("F.retraining", "other", "other_parity")}
        for loss in ("marginal", "each"):
            for column, grid_c in grid.items():
                if loss not in grid_c or "deciding" not in grid_c:
                    continue
                pair = grid_c[[loss, "deciding"]].dropna()
                if len(pair) < 2:
                    continue
                test = stats.ttest_rel(pair[loss], pair["deciding"])
                low, high = test.confidence_interval(0.95)
                difference = f"{(low + high) / 2:+.3f} ± {(high - low) / 2:.3f}"
                lines.append(f"| {variant} | {synapses} | {loss} | {column} | {difference} | {test.pvalue:.2g} |")
    return "\n".join(lines) + "\n"


draw = summary_and_figures(summary, figure)


def main(argv: Optional[List[str]] = None) -> int:
    parser = make_parser(__doc__.split("\n\n")[0], "loss-mechanism", quick_seeds=1)
    parser.add_argument(
        "--points",
        nargs="+",
        type=point,
        help="interconnect points: 'one' (one synapse each way) or densities p, e.g. --points one 1 "
        "(default: Fig. 2's grid, one 0.01 0.05 0.1 0.5 1)",
    )
    args = parser.parse_args(argv)
    return run_experiment(args, configs(args), draw)


if __name__ == "__main__":
    main_guard(main)
