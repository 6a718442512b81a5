"""The papers' claims, answered for rate and spiking networks under each preset, from the stores.

Every claim is a statistic computed per seed (so rate and spiking are compared on the same seeds,
which draw the same pairs), reported as its mean over seeds ± the half-width of the 95% Student-t
interval, with a verdict by the rule given in :data:`RULES`; "rate − spiking" is a paired t-test
over the seeds both variants have. F is the retraining F at the last step unless said otherwise.

    python experiments/claims.py        # prints the table, writes experiments/results/claims.md

Reads only stored results; a claim whose store is missing says so.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Callable, Dict, List, Optional, Tuple

import numpy as np
import pandas as pd
from common import RESULTS
from scipy import stats

from spikemod import plots

VARIANTS = ("rate", "spiking")
#: Per claim: what it says, the statistic per seed, and the verdict rule.
RULES = {
    "extreme": "d = mean F at Q > 0.49 (one synapse, p = 0.01) − F at p = 0.05; e = F(0.05) − F(1). "
    "Holds: d > 0 (interval) and d > e; partly: d > 0 only; otherwise does not",
    "agree": "per metric, F(one synapse) − F(p = 1). Holds: all three > 0 (interval); partly: some",
    "size": "F(n = 10) − F(n = 50), separate pathways, c = 0, mean over 1, 10, 100 synapses. Holds: > 0 (interval)",
    "covariance": "F(c = 0) − F(c = 0.9), separate pathways, mean over n and synapses. Holds: > 0 (interval)",
    "input": "F(separate pathways) − F(shared pathway), c = 0, mean over n and synapses. Holds: > 0 (interval)",
    "collapse": "fused pathway, static input: drop F(step 1) − F(step 2) at 100 synapses. Holds: ≥ 0.2 and larger "
    "than at 1 synapse (interval of the difference > 0); partly: drop > 0 (interval)",
    "noise": "fused pathway, 100 synapses: least-squares slope of F over steps 2..T under noise r = 0.4 minus the same slope with static input (which holds the tail of the one collapse), paired by seed. Holds: < 0 (interval)",
    "noise-0.9": "the same slope difference under noise r = 0.9. Holds: < 0 (interval)",
    "onsets": "onset pairs with t0 > t1: F^0(t0) − F^0(t0 − 1), module 0's specialization on digit 0 when it "
    "switches on, mean over pairs and synapse counts. Holds: > 0 (interval)",
    "weight_mask": "extreme-sparsity store: weight-mask M_spec, mean over p ≤ 0.11 (Q > 0.4), minus M_spec at p = 1. Holds: > 0 (interval)",
    "es_extreme": "extreme-sparsity store: d = bottleneck and correlation M_spec at p < 0.01 (Q > 0.49) − at p = 0.05; "
    "e = M_spec(0.05) − M_spec(1), mean over the two metrics. Holds: d > 0 (interval) and d > e",
    "bandwidth": "bandwidth store (spiking): the bandwidth family's retraining F minus the synapse family's at the same "
    "traffic (address router). Holds (one curve): the interval contains 0; does not: it excludes 0",
    "bandwidth_accuracy": "the same distance at the same test accuracy instead of the same traffic. Holds (one "
    "curve): the interval contains 0; does not: it excludes 0",
    "loss": "loss-mechanism store: retraining F at p = 1 with the marginal loss minus with the deciding loss, paired "
    "over seeds. Holds (the finding stands): > 0 (interval)",
    "parity": "loss-mechanism store, p = 1, mean over modules: a = the other digit's parity probe under the marginal "
    "loss − 0.5 (chance); b = the other digit's identity probe under the deciding loss − under the marginal loss, "
    "paired over seeds. Holds: a > 0 and b > 0 (intervals); partly: one of them",
}
CLAIMS = {
    "extreme": "specialization only at extreme sparsity (Q > 0.49)",
    "agree": "the metrics agree qualitatively",
    "size": "larger modules specialize less at a fixed synapse count",
    "covariance": "covariance lowers specialization",
    "input": "separate input specializes more than shared input",
    "collapse": "collapse after communication starts, once, at high p, static input (Fig. 4A)",
    "noise": "continual decrease under noise at high p (Fig. 4B)",
    "noise-0.9": "continual decrease under strong noise (r = 0.9) at high p (Fig. 4B)",
    "onsets": "specialization follows the onsets (Fig. 4C)",
    "weight_mask": "weight-mask metric rising from Q ≈ 0.4 (\"Extreme sparsity\")",
    "es_extreme": "bottleneck and correlation metrics rise only for Q > 0.49 (\"Extreme sparsity\")",
    "bandwidth": "a bandwidth cap specializes as sparsity does, at the same traffic (spiking only)",
    "bandwidth_accuracy": "a bandwidth cap specializes as sparsity does, at the same accuracy (spiking only)",
    "loss": "with the marginal loss, modules stay specialized at p = 1 (the loss, not only the structure)",
    "parity": "under the marginal loss a module learns the other digit's parity, not its identity (the mechanism)",
}

PerSeed = Dict[str, pd.Series]  # variant -> statistic per seed


def interval(values: pd.Series) -> Tuple[float, float, int]:
    """Mean, half-width of the 95% Student-t interval (NaN for one value) and count."""
    values = values.dropna()
    n = len(values)
    half = stats.t.ppf(0.975, n - 1) * values.std() / np.sqrt(n) if n > 1 else float("nan")
    return float(values.mean()), float(half), n


def _with_f(table: pd.DataFrame, metric: str = "retraining") -> pd.DataFrame:
    return table.assign(F=plots.final_specialization(table, metric), synapses=table["q.n_synapses"].astype(int))


def _per_variant(table: pd.DataFrame, statistic: Callable[[pd.DataFrame], pd.Series]) -> PerSeed:
    return {v: statistic(rows) for v, rows in table.groupby("config.model.variant")}


def _pivot(rows: pd.DataFrame, column: str, value: str = "F") -> pd.DataFrame:
    return rows.pivot_table(index="seed", columns=column, values=value, aggfunc="mean")


def extreme(fig2: pd.DataFrame) -> Tuple[PerSeed, PerSeed]:
    data = _with_f(fig2).assign(p=fig2["config.model.p"].round(4))

    def d(rows):
        grid = _pivot(rows, "p")
        return grid[[p for p in grid.columns if p < 0.0101]].mean(axis=1) - grid[0.05]

    def e(rows):
        grid = _pivot(rows, "p")
        return grid[0.05] - grid[1.0]

    return _per_variant(data, d), _per_variant(data, e)


def agree(fig2: pd.DataFrame) -> Dict[str, PerSeed]:
    out = {}
    for metric in plots.metrics_in(fig2):
        data = _with_f(fig2, metric)
        data = data.assign(end=np.select([data["synapses"] == 1, data["synapses"] == data["config.model.n_neurons"] ** 2], ["one", "full"], ""))
        out[metric] = _per_variant(data, lambda rows: (lambda grid: grid["one"] - grid["full"])(_pivot(rows, "end")))
    return out


def _separate(table: pd.DataFrame) -> pd.Series:
    return (table["config.model.input_scheme"] == "separate") & (table["config.model.readout_scheme"] == "separate")


def size(fig3: pd.DataFrame) -> PerSeed:
    data = _with_f(fig3)
    data = data[_separate(data) & (data["config.task.covariance"] == 0)]

    def statistic(rows):
        grid = rows.pivot_table(index=["seed", "synapses"], columns="config.model.n_neurons", values="F")
        return (grid[min(grid.columns)] - grid[max(grid.columns)]).groupby("seed").mean()

    return _per_variant(data, statistic)


def covariance(fig3: pd.DataFrame) -> PerSeed:
    data = _with_f(fig3)
    data = data[_separate(data)]

    def statistic(rows):
        grid = rows.pivot_table(
            index=["seed", "synapses", "config.model.n_neurons"], columns="config.task.covariance", values="F"
        )
        return (grid[min(grid.columns)] - grid[max(grid.columns)]).groupby("seed").mean()

    return _per_variant(data, statistic)


def input_scheme(fig3: pd.DataFrame) -> Optional[PerSeed]:
    """F(separate pathways) − F(shared pathway) per seed at c = 0; None where the store lacks one of the two."""
    data = _with_f(fig3)
    data = data[data["config.task.covariance"] == 0].assign(arch=data.apply(plots.architecture, axis=1))
    if not {"separate pathways", "shared pathway"} <= set(data["arch"]):
        return None

    def statistic(rows):
        grid = rows.pivot_table(index=["seed", "synapses", "config.model.n_neurons"], columns="arch", values="F")
        return (grid["separate pathways"] - grid["shared pathway"]).groupby("seed").mean()

    return _per_variant(data, statistic)


def _fused(fig4: pd.DataFrame, noise: float) -> pd.DataFrame:
    data = fig4.assign(synapses=fig4["q.n_synapses"].astype(int))
    keep = (
        (data["config.task.noise_ratio"] == noise)
        & ~data["config.task.random_onset"]
        & (data["config.model.interconnect_onset"] == 1)
    )
    return data[keep]


def collapse(fig4: pd.DataFrame) -> Tuple[PerSeed, PerSeed]:
    data = _fused(fig4, 0.0)
    data = data.assign(drop=data["specialization.retraining.F"].map(lambda f: float(np.asarray(f)[0] - np.asarray(f)[1])))

    def at(count):
        return lambda rows: _pivot(rows, "synapses", "drop")[count]

    high = _per_variant(data, at(100))
    low = _per_variant(data, at(1))
    return high, {v: high[v] - low[v] for v in high}


def noise(fig4: pd.DataFrame, noise_ratio: float) -> PerSeed:
    """Per seed: the slope of F over steps 2..T at 100 synapses under noise ``noise_ratio`` minus
    with static input; variants without both conditions are left out."""

    def slopes(ratio: float) -> PerSeed:
        data = _fused(fig4, ratio)
        data = data[data["synapses"] == 100]
        slope = data["specialization.retraining.F"].map(lambda f: float(np.polyfit(np.arange(1, len(f)), np.asarray(f)[1:], 1)[0]))
        return _per_variant(data.assign(slope=slope), lambda rows: rows.groupby("seed")["slope"].mean())

    noisy, static = slopes(noise_ratio), slopes(0.0)
    return {v: (noisy[v] - static[v]).dropna() for v in noisy if v in static}


def onsets(table: pd.DataFrame) -> PerSeed:
    """From ``onset_pairs.<t0>-<t1>.retraining.module_scores`` columns (either protocol)."""
    prefix, suffix = "onset_pairs.", ".retraining.module_scores"
    columns = [c for c in table.columns if c.startswith(prefix) and c.endswith(suffix)]
    pairs = [(c, *map(int, c[len(prefix) : -len(suffix)].split("-"))) for c in columns]
    pairs = [(c, t0) for c, t0, t1 in pairs if t0 > t1]

    def jump(row) -> float:
        """Mean over the row's measured pairs (rate and spiking have their own onset steps)."""
        values = [np.asarray(row[c]) for c, _ in pairs if isinstance(row[c], (list, np.ndarray))]
        steps = [t0 for c, t0 in pairs if isinstance(row[c], (list, np.ndarray))]
        return float(np.mean([v[t0 - 1, 0] - v[t0 - 2, 0] for v, t0 in zip(values, steps)])) if values else np.nan

    data = table.assign(jump=[jump(row) for _, row in table.iterrows()]).dropna(subset=["jump"])
    return _per_variant(data, lambda r: r.groupby("seed")["jump"].mean())


def _rise_cells(d: PerSeed, e: PerSeed) -> List[str]:
    """Cells of a "rises only at extreme sparsity" claim: d (the rise over the extreme points) and
    e (the fall over the rest); holds when d > 0 (interval) and d > e, partly when only d > 0."""
    cells = []
    for v in VARIANTS:
        if v not in d:
            cells.append("not run")
            continue
        verdict = ("holds" if interval(d[v])[0] > interval(e[v])[0] else "partly") if _positive(d[v]) else "does not"
        e_mean, e_half, _ = interval(e[v])
        cells.append(_cell(d[v], verdict, "d = ") + f"; e = {e_mean:+.2f} ± {e_half:.2f}")
    return cells


def _cell(values: pd.Series, verdict: str, label: str = "") -> str:
    mean, half, n = interval(values)
    if n < 2:  # no interval, no verdict
        return f"undecided: {label}{mean:+.2f} (n = {n})"
    return f"{verdict}: {label}{mean:+.2f} ± {half:.2f} (n = {n})"


def _positive(values: pd.Series) -> bool:
    mean, half, _ = interval(values)
    return mean - half > 0


def _paired(per_seed: PerSeed) -> str:
    if not all(v in per_seed for v in VARIANTS):
        return "–"
    both = pd.concat([per_seed[v] for v in VARIANTS], axis=1, keys=VARIANTS).dropna()
    if len(both) < 2:
        return "–"
    difference = both["rate"] - both["spiking"]
    if difference.std() < 1e-12:  # no spread (to rounding): the t statistic is undefined
        return f"{difference.mean():+.2f} (the same in all {len(both)} seeds)"
    p = stats.ttest_rel(both["rate"], both["spiking"]).pvalue
    return f"{difference.mean():+.2f} (paired t-test over {len(both)} seeds, p = {p:.2g})"


def _simple_row(per_seed: PerSeed, holds: Callable[[pd.Series], str]) -> List[str]:
    return [_cell(per_seed[v], holds(per_seed[v])) if v in per_seed else "not run" for v in VARIANTS] + [_paired(per_seed)]


def _positive_verdict(values: pd.Series) -> str:
    return "holds" if _positive(values) else "does not"


def claim_rows(stores: Dict[str, Optional[pd.DataFrame]], onset_table: Optional[pd.DataFrame]) -> Dict[str, List[str]]:
    """Cells (rate, spiking, rate − spiking) per claim for one preset's stores (None: not run)."""
    rows: Dict[str, List[str]] = {}
    missing = ["not run yet"] * 2 + ["–"]
    fig2, fig3, fig4 = stores.get("fig2"), stores.get("fig3"), stores.get("fig4")
    if fig2 is not None:
        d, e = extreme(fig2)
        rows["extreme"] = _rise_cells(d, e) + [_paired(d)]
        by_metric = agree(fig2)
        cells = []
        for v in VARIANTS:
            if not all(v in s for s in by_metric.values()):
                cells.append("not run")
                continue
            positive = [_positive(s[v]) for s in by_metric.values()]
            verdict = "holds" if all(positive) else ("partly" if any(positive) else "does not")
            parts = ", ".join(f"{m} {interval(s[v])[0]:+.2f} ± {interval(s[v])[1]:.2f}" for m, s in by_metric.items())
            cells.append(f"{verdict}: {parts} (n = {interval(by_metric['retraining'][v])[2]})")
        rows["agree"] = cells + [_paired(by_metric["retraining"])]
    else:
        rows["extreme"] = rows["agree"] = missing
    if fig3 is not None:
        rows["size"] = _simple_row(size(fig3), _positive_verdict)
        rows["covariance"] = (
            _simple_row(covariance(fig3), _positive_verdict)
            if fig3["config.task.covariance"].nunique() > 1
            else ["not run (c = 0 slice only)"] * 2 + ["–"]
        )
        by_input = input_scheme(fig3)
        rows["input"] = (
            _simple_row(by_input, _positive_verdict)
            if by_input is not None
            else ["not run (needs the separate and shared pathways)"] * 2 + ["–"]
        )
    else:
        rows["size"] = rows["covariance"] = rows["input"] = missing
    if fig4 is not None:
        high, excess = collapse(fig4)
        cells = []
        for v in VARIANTS:
            if v not in high:
                cells.append("not run")
                continue
            mean, half, _ = interval(high[v])
            verdict = "holds" if mean >= 0.2 and _positive(excess[v]) else ("partly" if _positive(high[v]) else "does not")
            x_mean, x_half, _ = interval(excess[v])
            cells.append(_cell(high[v], verdict, "drop ") + f"; over 1 synapse {x_mean:+.2f} ± {x_half:.2f}")
        rows["collapse"] = cells + [_paired(high)]
        for key, ratio in (("noise", 0.4), ("noise-0.9", 0.9)):
            rows[key] = (
                _simple_row(noise(fig4, ratio), lambda s: "holds" if interval(s)[0] + interval(s)[1] < 0 else "does not")
                if len(_fused(fig4, ratio)) else missing
            )
    else:
        rows["collapse"] = rows["noise"] = rows["noise-0.9"] = missing
    onset_source = onset_table if onset_table is not None else fig4
    has_onsets = onset_source is not None and any(c.startswith("onset_pairs.") for c in onset_source.columns)
    rows["onsets"] = _simple_row(onsets(onset_source), _positive_verdict) if has_onsets else missing
    return rows


def _spec_by_p(table: pd.DataFrame, metric: str) -> pd.DataFrame:
    """Per variant and seed, M_spec of ``metric`` at each p (columns)."""
    data = plots.extreme_sparsity_columns(table, metric).assign(p=lambda d: d["q.p"].round(5))
    return data.pivot_table(index=["config.model.variant", "seed"], columns="p", values="spec")


def extreme_sparsity_rows(table: pd.DataFrame) -> Dict[str, List[str]]:
    rows: Dict[str, List[str]] = {}
    masks = _spec_by_p(table, "weight_mask")
    rise = masks[[p for p in masks.columns if p <= 0.11]].mean(axis=1) - masks[masks.columns.max()]
    per_seed = {v: rise.xs(v) for v in rise.index.get_level_values(0).unique()}
    rows["weight_mask"] = _simple_row(per_seed, _positive_verdict)
    grids = [_spec_by_p(table, m) for m in ("bottleneck", "correlation")]
    d = sum(g[[p for p in g.columns if p < 0.01]].mean(axis=1) - g[g.columns[np.argmin(abs(g.columns - 0.05))]] for g in grids) / 2
    e = sum(g[g.columns[np.argmin(abs(g.columns - 0.05))]] - g[g.columns.max()] for g in grids) / 2
    variants = d.index.get_level_values(0).unique()
    rows["es_extreme"] = _rise_cells({v: d.xs(v) for v in variants}, {v: e.xs(v) for v in variants}) + ["–"]
    return rows


def bandwidth_row(table: pd.DataFrame, along: str = "traffic.total") -> List[str]:
    from bandwidth import columns, distance_to_synapse_curve

    distances = distance_to_synapse_curve(columns(table), "retraining", along)
    chosen = distances[(distances["family"] == "bandwidth") & (distances["router"] == "address")]
    per_seed = chosen.groupby("seed")["distance"].mean()
    mean, half, _ = interval(per_seed)
    verdict = "holds (one curve)" if abs(mean) <= half else "does not"
    return ["– (spiking only)", _cell(per_seed, verdict), "–"]


def loss_row(table: pd.DataFrame) -> List[str]:
    data = _with_f(table)
    data = data[data["synapses"] == data["config.model.n_neurons"] ** 2]
    per_seed = {}
    for variant, rows in data.groupby("config.model.variant"):
        grid = rows.pivot_table(index="seed", columns="config.train.loss", values="F")
        if {"marginal", "deciding"} <= set(grid.columns):
            per_seed[variant] = grid["marginal"] - grid["deciding"]
    return _simple_row(per_seed, _positive_verdict)


def parity_row(table: pd.DataFrame) -> List[str]:
    from loss_mechanism import columns

    data = columns(table)
    data = data[data["q.n_synapses"] == data["config.model.n_neurons"] ** 2]
    cells = []
    for variant in VARIANTS:
        rows = data[data["config.model.variant"] == variant]
        if not {"marginal", "deciding"} <= set(rows["loss"]):
            cells.append("not run")
            continue
        marginal = rows[rows["loss"] == "marginal"].groupby("seed")
        a = marginal["other_parity"].mean() - 0.5
        b = rows[rows["loss"] == "deciding"].groupby("seed")["other"].mean() - marginal["other"].mean()
        verdict = {2: "holds", 1: "partly", 0: "does not"}[int(_positive(a)) + int(_positive(b))]
        b_mean, b_half, _ = interval(b)
        cells.append(_cell(a, verdict, "a = ") + f"; b = {b_mean:+.2f} ± {b_half:.2f}")
    return cells + ["–"]


def _load(path: Path) -> Optional[pd.DataFrame]:
    return plots.load_table(path) if (path / "runs").is_dir() and any((path / "runs").glob("*.h5")) else None


def claims_table(results: Path) -> str:
    from fig4c_test_onsets import onset_table
    from spikemod.results import ResultStore

    presets = {
        "reference": {name: _load(results / f"{name}-reference") for name in ("fig2", "fig3", "fig4")},
        "default": {name: _load(results / name) for name in ("fig2", "fig3", "fig4")},
        "default, marginal loss": {"fig2": _load(results / "fig2-marginal")},
    }
    reference_store = ResultStore(results / "fig2-reference")
    test_onsets = onset_table(reference_store) if (reference_store.root / "test_onsets").is_dir() else None
    header = ["claim", "preset", "rate", "spiking", "rate − spiking"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    computed = {
        preset: claim_rows(stores, test_onsets if preset == "reference" else None) for preset, stores in presets.items()
    }
    later = {"extreme-sparsity": {}, "default": {}, "reference": {}}
    extreme_store = _load(results / "extreme-sparsity")
    if extreme_store is not None:
        later["extreme-sparsity"].update(extreme_sparsity_rows(extreme_store))
    for preset, suffix in (("default", ""), ("reference", "-reference")):
        bandwidth_store, loss_store = _load(results / f"bandwidth{suffix}"), _load(results / f"loss-mechanism{suffix}")
        if bandwidth_store is not None:
            later[preset]["bandwidth"] = bandwidth_row(bandwidth_store)
            later[preset]["bandwidth_accuracy"] = bandwidth_row(bandwidth_store, "accuracy_mean")
        if loss_store is not None:
            later[preset]["loss"] = loss_row(loss_store)
            later[preset]["parity"] = parity_row(loss_store)
    for key, claim in CLAIMS.items():
        if key in ("weight_mask", "es_extreme", "bandwidth", "bandwidth_accuracy", "loss", "parity"):
            found = [(preset, rows[key]) for preset, rows in later.items() if key in rows]
            for preset, cells in found or [("–", ["not run yet"] * 2 + ["–"])]:
                lines.append("| " + " | ".join([claim, preset, *cells]) + " |")
            continue
        for preset, rows in computed.items():
            if key in rows and (preset != "default, marginal loss" or key in ("extreme", "agree")):
                lines.append("| " + " | ".join([claim, preset, *rows[key]]) + " |")
    lines.append("")
    lines += [f"- {CLAIMS[key]}: {rule}" for key, rule in RULES.items()]
    return "\n".join(lines) + "\n"


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--results", type=Path, default=RESULTS, help="folder holding the stores")
    args = parser.parse_args(argv)
    table = claims_table(args.results)
    print(table, end="")
    (args.results / "claims.md").write_text(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
