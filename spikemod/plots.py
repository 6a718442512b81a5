"""Figures of the papers' results, drawn from stored sweep results only (never by retraining).

Every function takes the results table (a pandas DataFrame of one row per run, :func:`load_table`)
and an output folder, and writes the figure as PNG and PDF; it returns the paths written.
Specialization F is read at the last step (the decision step) unless a figure is about steps. Curves show the mean
over seeds with a band of ± one standard deviation (no band for a single seed) and every seed as
a dot.

- :func:`fig2_sparsity`: F against the papers' Q and against p (log axis), one column per metric
  plus test accuracy, rate and spiking in one figure ("Dynamics" Fig. 2, "Extreme sparsity" Fig. 2);
- :func:`fig2_resources`: F against the inter-module spikes crossing per sample (spiking) and
  against the estimated energy per inference without the host's input MACs (both variants);
- :func:`fig3_heatmaps`: F over module size n × interconnect synapses p_s, per covariance c,
  architecture and variant ("Dynamics" Fig. 3);
- :func:`fig4_dynamics`: F per time step per input condition (static, structured noise, random
  onsets), one line per synapse count, rate and spiking side by side ("Dynamics" Fig. 4);
- :func:`extreme_sparsity_figure`: the "Extreme sparsity" layout: per metric, M_spec against p and
  against Q, and the raw metrics; the accuracy, and for spiking M_spec against the spikes crossing.

:func:`fig2_summary` gives the numbers of Fig. 2 as a Markdown table, each as the mean over seeds
± the half-width of its 95% Student-t interval (:func:`seed_intervals`). Figures are built with
:class:`matplotlib.figure.Figure` (no pyplot, no global backend state).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Dict, List, Sequence, Tuple

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from .results import load_results

__all__ = [
    "METRIC_LABELS",
    "architecture",
    "input_condition",
    "interconnect_onset",
    "metrics_in",
    "final_specialization",
    "fig2_sparsity",
    "fig2_resources",
    "fig2_summary",
    "seed_intervals",
    "format_interval",
    "save_figure",
    "seeds_text",
    "fig3_heatmaps",
    "fig4_dynamics",
    "fig4_onset_pairs",
    "extreme_sparsity_figure",
    "extreme_sparsity_columns",
    "load_table",
]

METRIC_LABELS = {
    "retraining": "retraining",
    "ablation": "ablation",
    "correlation": "correlation",
    "weight_mask": "weight mask",
    "bottleneck": "bottleneck",
}
VARIANT_COLORS = {"rate": "tab:blue", "spiking": "tab:red"}
_ARCHITECTURES = {
    ("separate", "separate"): "separate pathways",
    ("separate", "shared"): "fused pathways",
    ("separate", "concat"): "fused pathways",
    ("shared", "shared"): "shared pathway",
}
#: Columns that tell the curves of Fig. 2 apart.
_VARIANT_AND_SIZE = ["config.model.variant", "config.model.n_neurons"]


def architecture(row: "pd.Series | Dict[str, Any]") -> str:
    """The papers' name of a run's architecture: separate, fused (separate input, shared or concat
    readout) or shared pathways."""
    key = (row["config.model.input_scheme"], row["config.model.readout_scheme"])
    return _ARCHITECTURES.get(key, f"{key[0]} input, {key[1]} readout")


def input_condition(row: "pd.Series | Dict[str, Any]") -> str:
    """The temporal input of a run: static, structured noise at ratio r, or random onsets, with
    ", interconnect on at step k" when the interconnect switches on after step 1."""
    ratio = row["config.task.noise_ratio"]
    if row["config.task.random_onset"]:
        condition = f"random onsets (noise r = {ratio:g})"
    else:
        condition = f"noise r = {ratio:g}" if ratio > 0 else "static input"
    onset = interconnect_onset(row)
    return condition if onset == 1 else f"{condition}, interconnect on at step {onset}"


def interconnect_onset(row: "pd.Series | Dict[str, Any]") -> int:
    """The run's interconnect onset (1 for runs stored before the field existed)."""
    onset = row.get("config.model.interconnect_onset")
    return 1 if onset is None or pd.isna(onset) else int(onset)


def metrics_in(table: pd.DataFrame) -> List[str]:
    """The specialization metrics stored for every run of ``table``, in a fixed order."""
    _require_rows(table)
    present = [
        name
        for name in METRIC_LABELS
        if f"specialization.{name}.F" in table and table[f"specialization.{name}.F"].notna().all()
    ]
    if not present:
        raise ValueError("the results hold no specialization metric (no specialization.<metric>.F column)")
    return present


def final_specialization(table: pd.DataFrame, metric: str) -> pd.Series:
    """F of every run at its last step."""
    return table[f"specialization.{metric}.F"].map(lambda f: float(np.asarray(f)[-1]))


def _derived(table: pd.DataFrame, metrics: Sequence[str] = ()) -> pd.DataFrame:
    """``table`` with the columns ``synapses`` (the synapse count as an int) and, for each metric,
    ``F.<metric>`` (F at the last step)."""
    finals = {f"F.{metric}": final_specialization(table, metric) for metric in metrics}
    return table.assign(synapses=table["q.n_synapses"].astype(int), **finals)


def _seed_statistics(
    table: pd.DataFrame, by: "str | List[str]", values: List[str]
) -> Tuple[pd.DataFrame, pd.DataFrame]:
    """Mean and standard deviation over seeds of the columns ``values`` per group of ``by``, ignoring
    NaN; the deviation of a single seed is 0."""
    grouped = table.groupby(by)[values]
    return grouped.mean(), grouped.std().mask(grouped.count() == 1, 0.0)


def seed_intervals(
    table: pd.DataFrame, by: "str | List[str]", values: List[str], level: float = 0.95
) -> Tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Per group of ``by``: the mean over seeds of each column of ``values``, the half-width of its
    Student-t interval at ``level`` (t_{(1+level)/2, n−1}·s/√n; NaN for one seed) and the number of
    seeds n, ignoring NaN."""
    from scipy.stats import t as student_t

    grouped = table.groupby(by)[values]
    mean, std, count = grouped.mean(), grouped.std(), grouped.count()
    quantile = student_t.ppf(0.5 + level / 2, (count - 1).where(count > 1))
    return mean, quantile * std / np.sqrt(count), count


def _require_rows(table: pd.DataFrame) -> None:
    if len(table) == 0:
        raise ValueError("the results table is empty: run the experiment first (nothing to plot)")


def _plot_curve(ax: Any, rows: pd.DataFrame, x: str, y: str, color: str, label: str) -> None:
    """Mean of ``y`` over seeds against ``x`` with a ± std band; every seed as a dot."""
    mean, std = _seed_statistics(rows, x, [y])
    xs, mean, std = mean.index.to_numpy(), mean[y].to_numpy(), std[y].to_numpy()
    ax.plot(xs, mean, "-o", color=color, label=label, markersize=4)
    ax.fill_between(xs, mean - std, mean + std, color=color, alpha=0.2, linewidth=0)
    ax.scatter(rows[x], rows[y], color=color, s=8, alpha=0.5, linewidths=0)


def save_figure(figure: Figure, out_dir: "str | Path", name: str) -> List[Path]:
    """Write ``figure`` as ``out_dir/name.png`` and ``.pdf`` (the PDF without a date, so the same
    results give the same bytes); returns both paths."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = [out_dir / f"{name}.png", out_dir / f"{name}.pdf"]
    figure.savefig(paths[0], dpi=110)
    figure.savefig(paths[1], metadata={"CreationDate": None})  # same results, same bytes
    return paths


def _variant_label(key: Tuple[str, int], table: pd.DataFrame) -> str:
    variant, n_neurons = key
    several_sizes = table["config.model.n_neurons"].nunique() > 1
    return f"{variant}, n = {n_neurons}" if several_sizes else variant


def fig2_sparsity(table: pd.DataFrame, out_dir: "str | Path", name: str = "fig2_sparsity") -> List[Path]:
    """F against Q (top) and p on a log axis (bottom), one column per metric plus accuracy."""
    metrics = metrics_in(table)
    data = _derived(table, metrics)
    columns = [(METRIC_LABELS[m] + " F", f"F.{m}") for m in metrics]
    columns.append(("test accuracy (mean of T', T'')", "accuracy_mean"))
    axes_x = [("Q = (1 - p) / 2(1 + p)", "q.paper", False), ("interconnect density p", "q.p", True)]
    figure = Figure(figsize=(3.2 * len(columns), 6.0), layout="constrained")
    axes = figure.subplots(2, len(columns), squeeze=False)
    groups = data.groupby(_VARIANT_AND_SIZE)
    for i, (x_label, x, log_x) in enumerate(axes_x):
        for j, (y_label, y) in enumerate(columns):
            ax = axes[i, j]
            for key, rows in groups:
                _plot_curve(ax, rows, x, y, VARIANT_COLORS.get(key[0], "k"), _variant_label(key, table))
            ax.set_xlabel(x_label)
            ax.set_ylabel(y_label)
            if log_x:
                ax.set_xscale("log")
            ax.grid(alpha=0.3)
            if i == 0:
                ax.set_title(y_label.split(" (")[0])
    axes[0, 0].legend(loc="best", fontsize="small")
    figure.suptitle(f"Specialization against structural modularity ({seeds_text(table)}, last step)")
    return save_figure(figure, out_dir, name)


#: The "Extreme sparsity" paper's metrics, in its order.
EXTREME_SPARSITY_METRICS = ("weight_mask", "bottleneck", "correlation")


def extreme_sparsity_columns(table: pd.DataFrame, metric: str) -> pd.DataFrame:
    """The runs that measured ``metric``, with its last-step M_spec (mean over modules n of
    (M(n, n) − M(n, 1−n)) / (M(n, n) + M(n, 1−n))) and raw own and other values (means over n)."""
    rows = table[table[f"specialization.{metric}.raw"].notna()] if f"specialization.{metric}.raw" in table else table.iloc[:0]
    raw = [np.asarray(r, dtype=float)[-1] for r in rows[f"specialization.{metric}.raw"]] if len(rows) else []
    own = [float(np.mean([r[n, n] for n in range(2)])) for r in raw]
    other = [float(np.mean([r[n, 1 - n] for n in range(2)])) for r in raw]
    spec = [float(np.mean(np.asarray(s, dtype=float)[-1])) for s in rows[f"specialization.{metric}.extreme_sparsity"]] if len(rows) else []
    return rows.assign(spec=spec, own=own, other=other, synapses=rows["q.n_synapses"].astype(int))


def extreme_sparsity_figure(table: pd.DataFrame, out_dir: "str | Path", name: str = "extreme_sparsity") -> List[Path]:
    """"Extreme sparsity" Fig. 3 and 4 for rate and spiking: one column per metric (weight mask,
    bottleneck, correlation; those measured), rows: M_spec against p (log axis), against Q, and
    the raw metrics M(n, n) (solid) and M(n, 1 − n) (dashed); a last column with the test accuracy
    against p and, for spiking, every metric's M_spec and the accuracy against the inter-module
    spikes per sample."""
    _require_rows(table)
    metrics = [m for m in EXTREME_SPARSITY_METRICS if f"specialization.{m}.raw" in table]
    if not metrics:
        raise ValueError("the results hold none of the weight_mask, bottleneck and correlation metrics")
    figure = Figure(figsize=(3.2 * (len(metrics) + 1), 8.4), layout="constrained")
    axes = figure.subplots(3, len(metrics) + 1, squeeze=False)
    for j, metric in enumerate(metrics):
        data = extreme_sparsity_columns(table, metric)
        for variant, rows in data.groupby("config.model.variant"):
            color = VARIANT_COLORS.get(variant, "k")
            _plot_curve(axes[0, j], rows, "q.p", "spec", color, variant)
            _plot_curve(axes[1, j], rows, "q.paper", "spec", color, variant)
            for column, style in (("own", "-"), ("other", "--")):
                mean = rows.groupby("q.p")[column].mean()
                axes[2, j].plot(mean.index, mean.to_numpy(), style, color=color, marker="o", markersize=3,
                                label=f"{variant}, M(n, {'n' if column == 'own' else '1−n'})")
        axes[0, j].set_title(METRIC_LABELS[metric])
        for i, (x_label, y_label) in enumerate((("interconnect density p", "$M_{spec}$"), ("Q = (1 - p) / 2(1 + p)", "$M_{spec}$"), ("interconnect density p", "raw metric"))):
            ax = axes[i, j]
            ax.set_xlabel(x_label)
            ax.set_ylabel(y_label)
            ax.grid(alpha=0.3)
            if i != 1:
                ax.set_xscale("log")
        axes[2, j].legend(fontsize="x-small")
    last = axes[:, -1]
    standard = table.assign(synapses=table["q.n_synapses"].astype(int))
    if "config.model.bottleneck" in standard:  # the accuracy of the networks without a bottleneck
        standard = standard[standard["config.model.bottleneck"].isna()]
    for variant, rows in standard.groupby("config.model.variant"):
        _plot_curve(last[0], rows, "q.p", "accuracy_mean", VARIANT_COLORS.get(variant, "k"), variant)
    last[0].set(xscale="log", xlabel="interconnect density p", ylabel="test accuracy", title="accuracy (no bottleneck)")
    last[0].grid(alpha=0.3)
    last[0].legend(fontsize="small")
    spiking = table[table["config.model.variant"] == "spiking"]
    if len(spiking) and "traffic.total" in spiking:
        for j, metric in enumerate(metrics):
            rows = extreme_sparsity_columns(spiking, metric)
            _plot_measured(last[1], rows, "traffic.total", "spec", f"C{j + 2}", METRIC_LABELS[metric])
        accuracy = standard[standard["config.model.variant"] == "spiking"]
        _plot_measured(last[2], accuracy, "traffic.total", "accuracy_mean", VARIANT_COLORS["spiking"], "spiking")
        last[1].set(ylabel="$M_{spec}$ (spiking)")
        last[2].set(ylabel="test accuracy (spiking)")
        for ax in last[1:]:
            ax.set(xscale="symlog", xlabel="inter-module spikes per sample")
            ax.grid(alpha=0.3)
            ax.legend(fontsize="small")
    else:
        for ax in last[1:]:
            ax.set_visible(False)
    figure.suptitle(f"Specialization against structural modularity, \"Extreme sparsity\" setup ({seeds_text(table)})")
    return save_figure(figure, out_dir, name)


def seeds_text(table: pd.DataFrame) -> str:
    """"1 seed" or "N seeds": the seeds in ``table``."""
    count = table["seed"].nunique()
    return f"{count} seed" + ("s" if count != 1 else "")


def _on_chip_energy(table: pd.DataFrame) -> pd.Series:
    """Energy per inference without the host's dense input MACs (which do not depend on p)."""
    if "resources.energy_input" not in table:
        return table["resources.energy"]
    return table["resources.energy"] - table["resources.energy_input"].fillna(0.0)


def _plot_measured(ax: Any, rows: pd.DataFrame, x: str, y: str, color: str, label: str) -> None:
    """A curve against a measured quantity: per synapse count, mean x and mean y with ± std error bars
    in both directions, joined in the order of the synapse count; every seed as a dot."""
    mean, std = _seed_statistics(rows, "synapses", [x, y])
    ax.errorbar(
        mean[x], mean[y], xerr=std[x], yerr=std[y],
        fmt="-o", color=color, label=label, markersize=4, capsize=2, linewidth=1.2,
    )
    ax.scatter(rows[x], rows[y], color=color, s=8, alpha=0.5, linewidths=0)


def fig2_resources(table: pd.DataFrame, out_dir: "str | Path", name: str = "fig2_resources") -> List[Path]:
    """F against the inter-module spikes crossing per sample (spiking runs; top) and against the
    estimated energy per inference without the input MACs (all runs; bottom), one column per metric.
    Points are the sparsity levels (mean ± std over seeds in both directions)."""
    metrics = metrics_in(table)
    data = _derived(table, metrics).assign(energy=_on_chip_energy(table))
    spiking = data[data["config.model.variant"] == "spiking"]
    rows_spec = []
    if len(spiking):
        rows_spec.append(("inter-module spikes per sample", "traffic.total", spiking))
    rows_spec.append(("energy / inference, input MACs excluded (J)", "energy", data))
    figure = Figure(figsize=(3.2 * len(metrics), 3.0 * len(rows_spec)), layout="constrained")
    axes = figure.subplots(len(rows_spec), len(metrics), squeeze=False)
    for i, (x_label, x, runs) in enumerate(rows_spec):
        for j, metric in enumerate(metrics):
            ax = axes[i, j]
            for key, rows in runs.groupby(_VARIANT_AND_SIZE):
                color, label = VARIANT_COLORS.get(key[0], "k"), _variant_label(key, table)
                _plot_measured(ax, rows, x, f"F.{metric}", color, label)
            if runs[x].min() > 0:
                ax.set_xscale("log")
            else:  # zero traffic (no spike crossed) stays on the axis
                ax.set_xscale("symlog", linthresh=_linear_threshold(runs[x]))
            ax.set_xlabel(x_label)
            ax.set_ylabel(f"{METRIC_LABELS[metric]} F")
            ax.grid(alpha=0.3)
            if i == 0:
                ax.set_title(METRIC_LABELS[metric])
        axes[i, 0].legend(loc="best", fontsize="small")
    figure.suptitle(f"Specialization against communication and energy ({seeds_text(table)}, last step)")
    return save_figure(figure, out_dir, name)


def _linear_threshold(values: pd.Series) -> float:
    """A symlog threshold below the smallest positive value (so zero traffic stays on the axis)."""
    positive = values[values > 0]
    return float(positive.min()) / 2 if len(positive) else 1.0


def fig2_summary(table: pd.DataFrame) -> str:
    """Markdown table of Fig. 2: per variant and p, the mean over seeds of F (last step) and accuracy
    ± the half-width of its 95% interval (:func:`seed_intervals`)."""
    metrics = metrics_in(table)
    data = _derived(table, metrics)
    keys = [*_VARIANT_AND_SIZE, "synapses"]
    values = [*(f"F.{m}" for m in metrics), "accuracy_mean", "traffic.total"]
    mean, half, _ = seed_intervals(data, keys, values)
    groups = data.groupby(keys)
    first, seeds = groups[["q.p", "q.paper"]].first(), groups.size()
    header = ["variant", "n", "synapses", "p", "Q", "seeds", *[f"{METRIC_LABELS[m]} F (95% CI)" for m in metrics],
              "accuracy", "spikes crossing / sample"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for key in seeds.index:
        variant, n_neurons, synapses = key
        p, q = first.loc[key, "q.p"], first.loc[key, "q.paper"]
        cells = [variant, str(n_neurons), str(synapses), f"{p:.4g}", f"{q:.3f}", str(seeds[key])]
        cells += [format_interval(mean.loc[key, f"F.{m}"], half.loc[key, f"F.{m}"], 2) for m in metrics]
        cells.append(format_interval(mean.loc[key, "accuracy_mean"], half.loc[key, "accuracy_mean"], 3))
        traffic = format_interval(mean.loc[key, "traffic.total"], half.loc[key, "traffic.total"], 1)
        cells.append(traffic if variant == "spiking" else "–")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def format_interval(mean: float, half: float, digits: int = 2) -> str:
    """``mean ± half``, or the mean alone where there is no interval (one seed)."""
    return f"{mean:.{digits}f}" if pd.isna(half) else f"{mean:.{digits}f} ± {half:.{digits}f}"


def fig3_heatmaps(
    table: pd.DataFrame, out_dir: "str | Path", metric: str = "retraining", name: str = "fig3_heatmaps"
) -> List[Path]:
    """Heatmaps of F over n (rows) × p_s (columns): one row of panels per architecture, one column per
    covariance c and variant (rate and spiking side by side for each c)."""
    if metric not in metrics_in(table):
        raise ValueError(f"metric {metric!r} is not in the results; stored: {', '.join(metrics_in(table))}")
    data = _derived(table, [metric]).assign(architecture=table.apply(architecture, axis=1))
    order = list(_ARCHITECTURES.values())
    architectures = sorted(
        data["architecture"].unique(), key=lambda a: (order.index(a) if a in order else len(order), a)
    )
    panel_keys = ["config.task.covariance", "config.model.variant"]
    panels = sorted(data.groupby(panel_keys).groups)
    sizes = sorted(data["config.model.n_neurons"].unique())
    synapses = sorted(data["synapses"].unique())
    means = data.pivot_table(
        values=f"F.{metric}", index=["architecture", *panel_keys, "config.model.n_neurons"], columns="synapses"
    )
    figure = Figure(figsize=(max(2.3 * len(panels) + 1.0, 5.5), 2.1 * len(architectures) + 0.6), layout="constrained")
    axes = figure.subplots(len(architectures), len(panels), squeeze=False)
    image = None
    for i, arch in enumerate(architectures):
        for j, (covariance, variant) in enumerate(panels):
            rows = pd.MultiIndex.from_tuples([(arch, covariance, variant, n) for n in sizes])
            grid = means.reindex(index=rows, columns=synapses).to_numpy(dtype=float)
            ax = axes[i, j]
            image = ax.imshow(grid, origin="lower", cmap="viridis", vmin=0.0, vmax=1.0, aspect="auto")
            for (a, b), value in np.ndenumerate(grid):
                if not np.isnan(value):
                    ax.text(b, a, f"{value:.2f}", ha="center", va="center", fontsize=7,
                            color="white" if value < 0.6 else "black")
            if np.isnan(grid).all():
                ax.text(0.5, 0.5, "not run", transform=ax.transAxes, ha="center", va="center", color="0.4")
            ax.set_xticks(range(len(synapses)), [str(s) for s in synapses])
            ax.set_yticks(range(len(sizes)), [str(n) for n in sizes])
            if i == len(architectures) - 1:
                ax.set_xlabel("synapses p_s per direction")
            if j == 0:
                ax.set_ylabel(f"{arch}\nmodule size n")
            if i == 0:
                ax.set_title(f"c = {covariance:g}, {variant}", fontsize="medium")
    figure.colorbar(image, ax=axes, shrink=0.8, label=f"{METRIC_LABELS[metric]} F (last step)")
    figure.suptitle(f"Specialization over module size and interconnect ({seeds_text(table)}, mean)")
    return save_figure(figure, out_dir, name)


def fig4_dynamics(
    table: pd.DataFrame, out_dir: "str | Path", metric: str = "retraining", name: str = "fig4_dynamics"
) -> List[Path]:
    """F per time step: one panel per input condition (columns) and variant (rows; side by side when
    there is a single condition), one line per synapse count. A dashed line marks the first step at
    which module states can carry information from the other module: step 2 (states start at zero),
    or the interconnect onset k when it is later ("interconnect on at step k" panels)."""
    if metric not in metrics_in(table):
        raise ValueError(f"metric {metric!r} is not in the results; stored: {', '.join(metrics_in(table))}")
    data = _derived(table).assign(condition=table.apply(input_condition, axis=1))
    conditions = sorted(data["condition"].unique(), key=_condition_order)
    variants = sorted(data["config.model.variant"].unique())
    synapses = sorted(data["synapses"].unique())
    groups = data.groupby(["config.model.variant", "condition", "synapses"])
    colors = {count: _viridis(k / max(1, len(synapses) - 1)) for k, count in enumerate(synapses)}
    single = len(conditions) == 1
    shape = (1, len(variants)) if single else (len(variants), len(conditions))
    figure = Figure(figsize=(3.4 * shape[1], 2.9 * shape[0]), layout="constrained")
    axes = figure.subplots(*shape, squeeze=False, sharey=True)
    for i, variant in enumerate(variants):
        for j, condition in enumerate(conditions):
            row, column = (0, i) if single else (i, j)
            ax = axes[row, column]
            if row == 0:
                ax.set_title(f"{variant}, {condition}" if single else condition, fontsize="medium")
            if not any((variant, condition, count) in groups.groups for count in synapses):
                ax.text(0.5, 0.5, "not run", ha="center", va="center", transform=ax.transAxes, color="0.4")
                ax.set_xticks([])
                continue
            first_crossing = 2
            for count in synapses:
                if (variant, condition, count) not in groups.groups:
                    continue
                rows = groups.get_group((variant, condition, count))
                first_crossing = max(2, interconnect_onset(rows.iloc[0]))
                per_step = np.stack([np.asarray(f, dtype=float) for f in rows[f"specialization.{metric}.F"]])
                steps = np.asarray(rows["specialization.steps"].iloc[0])
                mean = per_step.mean(axis=0)
                std = per_step.std(axis=0, ddof=1) if len(rows) > 1 else np.zeros_like(mean)
                label = f"{count} synapse" + ("s" if count != 1 else "")
                ax.plot(steps, mean, "-o", color=colors[count], label=label, markersize=3)
                ax.fill_between(steps, mean - std, mean + std, color=colors[count], alpha=0.2, linewidth=0)
            ax.axvline(first_crossing, color="0.3", linestyle="--", linewidth=0.8)
            ax.set_ylim(-0.02, 1.02)
            ax.grid(alpha=0.3)
            if row == shape[0] - 1:
                ax.set_xlabel("time step")
            if column == 0:
                y_label = f"{METRIC_LABELS[metric]} F"
                ax.set_ylabel(y_label if single else f"{variant}\n{y_label}")
    axes[0, -1].legend(loc="best", fontsize="small")
    figure.suptitle(f"Specialization per time step ({seeds_text(table)})")
    return save_figure(figure, out_dir, name)


def fig4_onset_pairs(
    table: pd.DataFrame, out_dir: "str | Path", metric: str = "retraining", name: str = "fig4_onset_pairs"
) -> List[Path]:
    """Fig. 4C: per-module specialization F^m over time with both digit onsets fixed, one panel per
    onset pair (rows: onset of digit 0, columns: onset of digit 1), one figure per variant.
    F^m > 0: module m specializes on digit 0, < 0: on digit 1; module 0 solid, module 1 dashed; one
    colour per synapse count; arrows mark the onsets (up: digit 0, down: digit 1)."""
    prefix = "onset_pairs."
    measured = table[[name for name in table.columns if name.startswith(prefix)]].notna()
    rows = _derived(table[measured.any(axis=1)])
    if not len(rows):
        raise ValueError("no run holds onset-pair results: measure with MetricConfig.onset_pairs")
    paths: List[Path] = []
    for variant, runs in rows.groupby("config.model.variant"):
        names = [name for name in measured.columns if measured.at[runs.index[0], name]]
        pair_names = {name[len(prefix) :].split(".")[0] for name in names}
        pairs = sorted(tuple(int(v) for v in pair.split("-")) for pair in pair_names)
        column = f"{prefix}{{}}-{{}}.{metric}.module_scores"
        if not all(column.format(*pair) in names for pair in pairs):
            raise ValueError(f"metric {metric!r} was not measured at the onset pairs")
        first, second = sorted({p[0] for p in pairs}), sorted({p[1] for p in pairs})
        synapses = sorted(runs["synapses"].unique())
        colors = {count: _viridis(k / max(1, len(synapses) - 1)) for k, count in enumerate(synapses)}
        figure = Figure(figsize=(2.6 * len(second), 2.2 * len(first)), layout="constrained")
        axes = figure.subplots(len(first), len(second), squeeze=False, sharex=True, sharey=True)
        steps = np.asarray(runs["specialization.steps"].iloc[0])
        for (t0, t1) in pairs:
            ax = axes[first.index(t0), second.index(t1)]
            for count, same in runs.groupby("synapses"):
                scores = np.mean([np.asarray(v, dtype=float) for v in same[column.format(t0, t1)]], axis=0)
                for module, style in ((0, "-"), (1, "--")):
                    ax.plot(steps, scores[:, module], style, color=colors[count], linewidth=1.2)
            ax.axhline(0, color="0.6", linewidth=0.6)
            ax.annotate("", (t0, 0.75), (t0, 0.35), arrowprops={"arrowstyle": "->", "color": "C3"})
            ax.annotate("", (t1, -0.75), (t1, -0.35), arrowprops={"arrowstyle": "->", "color": "C0"})
            ax.set_ylim(-1.05, 1.05)
            ax.set_title(f"digit 0 on at {t0}, digit 1 at {t1}", fontsize="small")
            ax.grid(alpha=0.3)
        for ax in axes[-1]:
            ax.set_xlabel("time step")
        for ax in axes[:, 0]:
            ax.set_ylabel(f"{METRIC_LABELS[metric]} $F^m$")
        handles = [
            axes[0, 0].plot([], [], color=colors[c], label=f"{c} synapse" + ("s" if c != 1 else ""))[0]
            for c in synapses
        ]
        for module, style in ((0, "-"), (1, "--")):
            handles += axes[0, 0].plot([], [], "k" + style, label=f"module {module}")
        figure.legend(handles=handles, loc="outside right center", fontsize="small")
        figure.suptitle(f"{variant}: specialization per module with fixed digit onsets ({seeds_text(runs)})")
        paths += save_figure(figure, out_dir, f"{name}_{variant}")
    return paths


def _condition_order(condition: str) -> Tuple[int, str, int, str]:
    group = 0 if condition.startswith("static input") else 1 if condition.startswith("noise") else 2
    onset = re.search(r"interconnect on at step (\d+)$", condition)
    base = condition[: onset.start()] if onset else condition
    return (group, base, int(onset.group(1)) if onset else 1, condition)


def _viridis(fraction: float) -> Tuple[float, float, float, float]:
    from matplotlib import colormaps

    return colormaps["viridis"](0.1 + 0.8 * fraction)


def load_table(store: "str | Path") -> pd.DataFrame:
    """The finished runs of a store, with a clear error when it holds none."""
    table = load_results(store)
    if len(table) == 0:
        raise ValueError(f"the results store {store} holds no finished run: run the experiment first")
    return table
