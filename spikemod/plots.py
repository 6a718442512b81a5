"""Figures of the papers' results, drawn from stored sweep results only (never by retraining).

Every function takes a :class:`~spikemod.results.ResultTable` (:func:`load_table`) and an
output folder, and writes the figure as PNG and PDF; it returns the paths written. Specialization F
is read at the last step (the decision step) unless a figure is about steps. Curves show the mean
over seeds with a band of ± one standard deviation (no band for a single seed) and every seed as
a dot.

- :func:`fig2_sparsity`: F against the papers' Q and against p (log axis), one column per metric
  plus test accuracy, rate and spiking in one figure ("Dynamics" Fig. 2, "Extreme sparsity" Fig. 2);
- :func:`fig2_resources`: F against the inter-module spikes crossing per sample (spiking) and
  against the estimated energy per inference without the host's input MACs (both variants);
- :func:`fig3_heatmaps`: F over module size n × interconnect synapses p_s, per covariance c,
  architecture and variant ("Dynamics" Fig. 3);
- :func:`fig4_dynamics`: F per time step per input condition (static, structured noise, random
  onsets), one line per synapse count, rate and spiking side by side ("Dynamics" Fig. 4).

:func:`fig2_summary` gives the numbers of Fig. 2 as a Markdown table. Figures are built with
:class:`matplotlib.figure.Figure` (no pyplot, no global backend state).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, List, Sequence, Tuple

import numpy as np
from matplotlib.figure import Figure

from .results import ResultTable, load_results

__all__ = [
    "METRIC_LABELS",
    "architecture",
    "input_condition",
    "interconnect_onset",
    "metrics_in",
    "final_specialization",
    "seed_statistics",
    "fig2_sparsity",
    "fig2_resources",
    "fig2_summary",
    "fig3_heatmaps",
    "fig4_dynamics",
    "fig4_onset_pairs",
    "load_table",
]

METRIC_LABELS = {
    "retraining": "retraining",
    "ablation": "ablation",
    "correlation": "correlation",
    "weight_mask": "weight mask",
}
VARIANT_COLORS = {"rate": "tab:blue", "spiking": "tab:red"}
_ARCHITECTURES = {
    ("separate", "separate"): "separate pathways",
    ("separate", "shared"): "fused pathways",
    ("shared", "shared"): "shared pathway",
}


def architecture(row: Dict[str, Any]) -> str:
    """The papers' name of a run's architecture: separate, fused (separate input, shared readout)
    or shared pathways."""
    key = (row["config.model.input_scheme"], row["config.model.readout_scheme"])
    return _ARCHITECTURES.get(key, f"{key[0]} input, {key[1]} readout")


def input_condition(row: Dict[str, Any]) -> str:
    """The temporal input of a run: static, structured noise at ratio r, or random onsets, with
    ", interconnect on at step k" when the interconnect switches on after step 1."""
    ratio = row["config.task.noise_ratio"]
    if row["config.task.random_onset"]:
        condition = f"random onsets (noise r = {ratio:g})"
    else:
        condition = f"noise r = {ratio:g}" if ratio > 0 else "static input"
    onset = interconnect_onset(row)
    return condition if onset == 1 else f"{condition}, interconnect on at step {onset}"


def interconnect_onset(row: Dict[str, Any]) -> int:
    """The run's interconnect onset (1 for runs stored before the field existed)."""
    return int(row.get("config.model.interconnect_onset", 1))


def metrics_in(table: ResultTable) -> List[str]:
    """The specialization metrics stored for every run of ``table``, in a fixed order."""
    _require_rows(table)
    present = [
        name for name in METRIC_LABELS if all(f"specialization.{name}.F" in row for row in table)
    ]
    if not present:
        raise ValueError("the results hold no specialization metric (no specialization.<metric>.F column)")
    return present


def final_specialization(row: Dict[str, Any], metric: str) -> float:
    """F of one run at its last step."""
    return float(np.asarray(row[f"specialization.{metric}.F"])[-1])


def seed_statistics(values: Sequence[float]) -> Tuple[float, float, int]:
    """Mean, standard deviation over seeds (0 for one seed) and count, ignoring NaN."""
    array = np.asarray(values, dtype=float)
    array = array[~np.isnan(array)]
    if len(array) == 0:
        return float("nan"), float("nan"), 0
    return float(array.mean()), float(array.std(ddof=1)) if len(array) > 1 else 0.0, len(array)


def _require_rows(table: ResultTable) -> None:
    if len(table) == 0:
        raise ValueError("the results table is empty: run the experiment first (nothing to plot)")


def _group(table: ResultTable, key: Callable[[Dict[str, Any]], Any]) -> Dict[Any, List[Dict[str, Any]]]:
    groups: Dict[Any, List[Dict[str, Any]]] = {}
    for row in table:
        groups.setdefault(key(row), []).append(row)
    return dict(sorted(groups.items(), key=lambda item: _sort_key(item[0])))


def _sort_key(value: Any) -> Any:
    if isinstance(value, tuple):
        return tuple(_sort_key(v) for v in value)
    return (0, value, "") if isinstance(value, (int, float)) else (1, 0, str(value))


def _curve(
    rows: Iterable[Dict[str, Any]], x: Callable[[Dict[str, Any]], float], y: Callable[[Dict[str, Any]], float]
) -> Tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Points of one curve: sorted x, mean, std, and every seed's (x, y)."""
    by_x: Dict[float, List[float]] = {}
    seeds_x, seeds_y = [], []
    for row in rows:
        by_x.setdefault(x(row), []).append(y(row))
        seeds_x.append(x(row))
        seeds_y.append(y(row))
    xs = np.array(sorted(by_x))
    stats = [seed_statistics(by_x[value]) for value in xs]
    mean = np.array([s[0] for s in stats])
    std = np.array([s[1] for s in stats])
    return xs, mean, std, np.array(seeds_x), np.array(seeds_y)


def _plot_curve(ax: Any, curve: Tuple[np.ndarray, ...], color: str, label: str) -> None:
    xs, mean, std, seeds_x, seeds_y = curve
    ax.plot(xs, mean, "-o", color=color, label=label, markersize=4)
    ax.fill_between(xs, mean - std, mean + std, color=color, alpha=0.2, linewidth=0)
    ax.scatter(seeds_x, seeds_y, color=color, s=8, alpha=0.5, linewidths=0)


def _save(figure: Figure, out_dir: "str | Path", name: str) -> List[Path]:
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = [out_dir / f"{name}.png", out_dir / f"{name}.pdf"]
    figure.savefig(paths[0], dpi=110)
    figure.savefig(paths[1], metadata={"CreationDate": None})  # same results, same bytes
    return paths


def _variant_label(key: Tuple[str, int], groups: Dict[Any, Any]) -> str:
    variant, n_neurons = key
    several_sizes = len({k[1] for k in groups}) > 1
    return f"{variant}, n = {n_neurons}" if several_sizes else variant


def fig2_sparsity(table: ResultTable, out_dir: "str | Path", name: str = "fig2_sparsity") -> List[Path]:
    """F against Q (top) and p on a log axis (bottom), one column per metric plus accuracy."""
    metrics = metrics_in(table)
    groups = _group(table, lambda r: (r["config.model.variant"], r["config.model.n_neurons"]))
    columns = [(METRIC_LABELS[m] + " F", lambda r, m=m: final_specialization(r, m)) for m in metrics]
    columns.append(("test accuracy (mean of T', T'')", lambda r: float(r["accuracy_mean"])))
    axes_x = [
        ("Q = (1 - p) / 2(1 + p)", lambda r: float(r["q.paper"]), False),
        ("interconnect density p", lambda r: float(r["q.p"]), True),
    ]
    figure = Figure(figsize=(3.2 * len(columns), 6.0), layout="constrained")
    axes = figure.subplots(2, len(columns), squeeze=False)
    for i, (x_label, x_of, log_x) in enumerate(axes_x):
        for j, (y_label, y_of) in enumerate(columns):
            ax = axes[i, j]
            for key, rows in groups.items():
                color, label = VARIANT_COLORS.get(key[0], "k"), _variant_label(key, groups)
                _plot_curve(ax, _curve(rows, x_of, y_of), color, label)
            ax.set_xlabel(x_label)
            ax.set_ylabel(y_label)
            if log_x:
                ax.set_xscale("log")
            ax.grid(alpha=0.3)
            if i == 0:
                ax.set_title(y_label.split(" (")[0])
    axes[0, 0].legend(loc="best", fontsize="small")
    figure.suptitle(f"Specialization against structural modularity ({_seeds_text(table)}, last step)")
    return _save(figure, out_dir, name)


def _seeds_text(table: ResultTable) -> str:
    count = len({row["seed"] for row in table})
    return f"{count} seed" + ("s" if count != 1 else "")


def _on_chip_energy(row: Dict[str, Any]) -> float:
    """Energy per inference without the host's dense input MACs (which do not depend on p)."""
    return float(row["resources.energy"]) - float(row.get("resources.energy_input", 0.0))


def _plot_measured(
    ax: Any,
    rows: Sequence[Dict[str, Any]],
    x: Callable[[Dict[str, Any]], float],
    y: Callable[[Dict[str, Any]], float],
    color: str,
    label: str,
) -> None:
    """A curve against a measured quantity: per synapse count, mean x and mean y with ± std error bars
    in both directions, joined in the order of the synapse count; every seed as a dot."""
    by_count: Dict[int, List[Dict[str, Any]]] = {}
    for row in rows:
        by_count.setdefault(int(row["q.n_synapses"]), []).append(row)
    points = [
        (seed_statistics([x(r) for r in members]), seed_statistics([y(r) for r in members]))
        for _, members in sorted(by_count.items())
    ]
    xs, ys = np.array([p[0][0] for p in points]), np.array([p[1][0] for p in points])
    ax.errorbar(
        xs, ys, xerr=[p[0][1] for p in points], yerr=[p[1][1] for p in points],
        fmt="-o", color=color, label=label, markersize=4, capsize=2, linewidth=1.2,
    )
    ax.scatter([x(r) for r in rows], [y(r) for r in rows], color=color, s=8, alpha=0.5, linewidths=0)


def fig2_resources(table: ResultTable, out_dir: "str | Path", name: str = "fig2_resources") -> List[Path]:
    """F against the inter-module spikes crossing per sample (spiking runs; top) and against the
    estimated energy per inference without the input MACs (all runs; bottom), one column per metric.
    Points are the sparsity levels (mean ± std over seeds in both directions)."""
    metrics = metrics_in(table)
    groups = _group(table, lambda r: (r["config.model.variant"], r["config.model.n_neurons"]))
    spiking = {k: v for k, v in groups.items() if k[0] == "spiking"}
    rows_spec = []
    if spiking:
        rows_spec.append(("inter-module spikes per sample", lambda r: float(r["traffic.total"]), spiking))
    rows_spec.append(("energy / inference, input MACs excluded (J)", _on_chip_energy, groups))
    figure = Figure(figsize=(3.2 * len(metrics), 3.0 * len(rows_spec)), layout="constrained")
    axes = figure.subplots(len(rows_spec), len(metrics), squeeze=False)
    for i, (x_label, x_of, row_groups) in enumerate(rows_spec):
        xs = [x_of(r) for rows in row_groups.values() for r in rows]
        for j, metric in enumerate(metrics):
            ax = axes[i, j]
            for key, rows in row_groups.items():
                y_of = lambda r, m=metric: final_specialization(r, m)  # noqa: E731
                color, label = VARIANT_COLORS.get(key[0], "k"), _variant_label(key, groups)
                _plot_measured(ax, rows, x_of, y_of, color, label)
            if min(xs) > 0:
                ax.set_xscale("log")
            else:  # zero traffic (no spike crossed) stays on the axis
                ax.set_xscale("symlog", linthresh=_linear_threshold(xs))
            ax.set_xlabel(x_label)
            ax.set_ylabel(f"{METRIC_LABELS[metric]} F")
            ax.grid(alpha=0.3)
            if i == 0:
                ax.set_title(METRIC_LABELS[metric])
        axes[i, 0].legend(loc="best", fontsize="small")
    figure.suptitle(f"Specialization against communication and energy ({_seeds_text(table)}, last step)")
    return _save(figure, out_dir, name)


def _linear_threshold(values: Sequence[float]) -> float:
    """A symlog threshold below the smallest positive value (so zero traffic stays on the axis)."""
    positive = [v for v in values if v > 0]
    return min(positive) / 2 if positive else 1.0


def fig2_summary(table: ResultTable) -> str:
    """Markdown table of Fig. 2: per variant and p, mean ± std over seeds of F (last step) and accuracy."""
    metrics = metrics_in(table)
    groups = _group(
        table, lambda r: (r["config.model.variant"], r["config.model.n_neurons"], int(r["q.n_synapses"]))
    )
    header = ["variant", "n", "synapses", "p", "Q", "seeds", *[f"{METRIC_LABELS[m]} F" for m in metrics],
              "accuracy", "spikes crossing / sample"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for (variant, n_neurons, synapses), rows in groups.items():
        cells = [variant, str(n_neurons), str(synapses), f"{rows[0]['q.p']:.4g}", f"{rows[0]['q.paper']:.3f}"]
        cells.append(str(len(rows)))
        for metric in metrics:
            mean, std, _ = seed_statistics([final_specialization(r, metric) for r in rows])
            cells.append(f"{mean:.2f} ± {std:.2f}")
        mean, std, _ = seed_statistics([float(r["accuracy_mean"]) for r in rows])
        cells.append(f"{mean:.3f} ± {std:.3f}")
        if variant == "spiking":
            mean, std, _ = seed_statistics([float(r["traffic.total"]) for r in rows])
            cells.append(f"{mean:.1f} ± {std:.1f}")
        else:
            cells.append("–")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def fig3_heatmaps(
    table: ResultTable, out_dir: "str | Path", metric: str = "retraining", name: str = "fig3_heatmaps"
) -> List[Path]:
    """Heatmaps of F over n (rows) × p_s (columns): one row of panels per architecture, one column per
    covariance c and variant (rate and spiking side by side for each c)."""
    if metric not in metrics_in(table):
        raise ValueError(f"metric {metric!r} is not in the results; stored: {', '.join(metrics_in(table))}")
    order = list(_ARCHITECTURES.values())
    architectures = sorted(
        {architecture(r) for r in table}, key=lambda a: (order.index(a) if a in order else len(order), a)
    )
    panels = sorted({(r["config.task.covariance"], r["config.model.variant"]) for r in table})
    sizes = sorted({r["config.model.n_neurons"] for r in table})
    synapses = sorted({int(r["q.n_synapses"]) for r in table})
    figure = Figure(figsize=(2.3 * len(panels) + 1.0, 2.1 * len(architectures) + 0.6), layout="constrained")
    axes = figure.subplots(len(architectures), len(panels), squeeze=False)
    image = None
    for i, arch in enumerate(architectures):
        for j, (covariance, variant) in enumerate(panels):
            grid = np.full((len(sizes), len(synapses)), np.nan)
            for a, n_neurons in enumerate(sizes):
                for b, count in enumerate(synapses):
                    values = [
                        final_specialization(r, metric)
                        for r in table
                        if architecture(r) == arch
                        and r["config.task.covariance"] == covariance
                        and r["config.model.variant"] == variant
                        and r["config.model.n_neurons"] == n_neurons
                        and int(r["q.n_synapses"]) == count
                    ]
                    grid[a, b] = seed_statistics(values)[0]
            ax = axes[i, j]
            image = ax.imshow(grid, origin="lower", cmap="viridis", vmin=0.0, vmax=1.0, aspect="auto")
            for (a, b), value in np.ndenumerate(grid):
                if not np.isnan(value):
                    ax.text(b, a, f"{value:.2f}", ha="center", va="center", fontsize=7,
                            color="white" if value < 0.6 else "black")
            ax.set_xticks(range(len(synapses)), [str(s) for s in synapses])
            ax.set_yticks(range(len(sizes)), [str(n) for n in sizes])
            if i == len(architectures) - 1:
                ax.set_xlabel("synapses p_s per direction")
            if j == 0:
                ax.set_ylabel(f"{arch}\nmodule size n")
            if i == 0:
                ax.set_title(f"c = {covariance:g}, {variant}", fontsize="medium")
    figure.colorbar(image, ax=axes, shrink=0.8, label=f"{METRIC_LABELS[metric]} F (last step)")
    figure.suptitle(f"Specialization over module size and interconnect ({_seeds_text(table)}, mean)")
    return _save(figure, out_dir, name)


def fig4_dynamics(
    table: ResultTable, out_dir: "str | Path", metric: str = "retraining", name: str = "fig4_dynamics"
) -> List[Path]:
    """F per time step: one panel per input condition (columns) and variant (rows; side by side when
    there is a single condition), one line per synapse count. A dashed line marks the first step at
    which module states can carry information from the other module: step 2 (states start at zero),
    or the interconnect onset k when it is later ("interconnect on at step k" panels)."""
    if metric not in metrics_in(table):
        raise ValueError(f"metric {metric!r} is not in the results; stored: {', '.join(metrics_in(table))}")
    conditions = sorted({input_condition(r) for r in table}, key=_condition_order)
    variants = sorted({r["config.model.variant"] for r in table})
    synapses = sorted({int(r["q.n_synapses"]) for r in table})
    colors = {count: _viridis(k / max(1, len(synapses) - 1)) for k, count in enumerate(synapses)}
    single = len(conditions) == 1
    shape = (1, len(variants)) if single else (len(variants), len(conditions))
    figure = Figure(figsize=(3.4 * shape[1], 2.9 * shape[0]), layout="constrained")
    axes = figure.subplots(*shape, squeeze=False, sharey=True)
    for i, variant in enumerate(variants):
        for j, condition in enumerate(conditions):
            row, column = (0, i) if single else (i, j)
            ax = axes[row, column]
            first_crossing = 2
            for count in synapses:
                rows = [
                    r
                    for r in table
                    if r["config.model.variant"] == variant
                    and input_condition(r) == condition
                    and int(r["q.n_synapses"]) == count
                ]
                if not rows:
                    continue
                first_crossing = max(2, interconnect_onset(rows[0]))
                per_step = np.stack([np.asarray(r[f"specialization.{metric}.F"], dtype=float) for r in rows])
                steps = np.asarray(rows[0]["specialization.steps"])
                mean = per_step.mean(axis=0)
                std = per_step.std(axis=0, ddof=1) if len(rows) > 1 else np.zeros_like(mean)
                label = f"{count} synapse" + ("s" if count != 1 else "")
                ax.plot(steps, mean, "-o", color=colors[count], label=label, markersize=3)
                ax.fill_between(steps, mean - std, mean + std, color=colors[count], alpha=0.2, linewidth=0)
            ax.axvline(first_crossing, color="0.3", linestyle="--", linewidth=0.8)
            ax.set_ylim(-0.02, 1.02)
            ax.grid(alpha=0.3)
            if row == 0:
                ax.set_title(f"{variant}, {condition}" if single else condition, fontsize="medium")
            if row == shape[0] - 1:
                ax.set_xlabel("time step")
            if column == 0:
                y_label = f"{METRIC_LABELS[metric]} F"
                ax.set_ylabel(y_label if single else f"{variant}\n{y_label}")
    axes[0, -1].legend(loc="best", fontsize="small")
    figure.suptitle(f"Specialization per time step ({_seeds_text(table)})")
    return _save(figure, out_dir, name)


def fig4_onset_pairs(
    table: ResultTable, out_dir: "str | Path", metric: str = "retraining", name: str = "fig4_onset_pairs"
) -> List[Path]:
    """Fig. 4C: per-module specialization F^m over time with both digit onsets fixed, one panel per
    onset pair (rows: onset of digit 0, columns: onset of digit 1), one figure per variant.
    F^m > 0: module m specializes on digit 0, < 0: on digit 1; module 0 solid, module 1 dashed; one
    colour per synapse count; arrows mark the onsets (up: digit 0, down: digit 1)."""
    rows = [r for r in table if any(key.startswith("onset_pairs.") for key in r)]
    if not rows:
        raise ValueError("no run holds onset-pair results: measure with MetricConfig.onset_pairs")
    paths: List[Path] = []
    for variant in sorted({r["config.model.variant"] for r in rows}):
        runs = [r for r in rows if r["config.model.variant"] == variant]
        prefix = "onset_pairs."
        pair_names = {key[len(prefix) :].split(".")[0] for key in runs[0] if key.startswith(prefix)}
        pairs = sorted(tuple(int(v) for v in pair.split("-")) for pair in pair_names)
        column = f"{prefix}{{}}-{{}}.{metric}.module_scores"
        if not all(column.format(*pair) in runs[0] for pair in pairs):
            raise ValueError(f"metric {metric!r} was not measured at the onset pairs")
        first, second = sorted({p[0] for p in pairs}), sorted({p[1] for p in pairs})
        synapses = sorted({int(r["q.n_synapses"]) for r in runs})
        colors = {count: _viridis(k / max(1, len(synapses) - 1)) for k, count in enumerate(synapses)}
        figure = Figure(figsize=(2.6 * len(second), 2.2 * len(first)), layout="constrained")
        axes = figure.subplots(len(first), len(second), squeeze=False, sharex=True, sharey=True)
        steps = np.asarray(runs[0]["specialization.steps"])
        for (t0, t1) in pairs:
            ax = axes[first.index(t0), second.index(t1)]
            for count in synapses:
                same = [r for r in runs if int(r["q.n_synapses"]) == count]
                scores = np.mean([np.asarray(r[column.format(t0, t1)], dtype=float) for r in same], axis=0)
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
        figure.suptitle(f"{variant}: specialization per module with fixed digit onsets ({_seeds_text(runs)})")
        paths += _save(figure, out_dir, f"{name}_{variant}")
    return paths


def _condition_order(condition: str) -> Tuple[int, str, int, str]:
    group = 0 if condition.startswith("static input") else 1 if condition.startswith("noise") else 2
    onset = re.search(r"interconnect on at step (\d+)$", condition)
    base = condition[: onset.start()] if onset else condition
    return (group, base, int(onset.group(1)) if onset else 1, condition)


def _viridis(fraction: float) -> Tuple[float, float, float, float]:
    from matplotlib import colormaps

    return colormaps["viridis"](0.1 + 0.8 * fraction)


def load_table(store: "str | Path") -> ResultTable:
    """The finished runs of a store, with a clear error when it holds none."""
    table = load_results(store)
    if len(table) == 0:
        raise ValueError(f"the results store {store} holds no finished run: run the experiment first")
    return table
