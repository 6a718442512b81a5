"""Fig. 2 side by side at both ends of the sparsity axis (one synapse, p = 1): the reference
notebook's numbers, the reference preset and the default preset, each as the mean over seeds with
the half-width of its 95% Student-t interval.

    python experiments/compare_presets.py     # prints the table, writes results/fig2-reference/side_by_side.md

Reads only stored results (experiments/results/fig2 and fig2-reference); a store that is missing
or not finished shows what it holds, with its seed count.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import List, Optional

import pandas as pd
from common import RESULTS

from spikemod import plots

METRICS = ("retraining", "ablation", "correlation")
#: The reference notebook (rate, n = 25, one seed), read off its plots (±0.02): (one synapse, p = 1).
NOTEBOOK = {
    "retraining": (0.69, 0.04),
    "ablation": (0.92, 0.42),
    "correlation": (0.86, 0.49),
    "accuracy": (0.60, 0.88),
}
ENDS = ("one synapse", "p = 1")


def ends(table: pd.DataFrame) -> pd.DataFrame:
    """The runs at one synapse and at p = 1, with ``end``, ``F.<metric>`` and ``accuracy`` columns."""
    synapses = table["q.n_synapses"].astype(int)
    n = table["config.model.n_neurons"]
    end = pd.Series(pd.NA, index=table.index, dtype="object")
    end[synapses == 1] = ENDS[0]
    end[synapses == n**2] = ENDS[1]
    finals = {f"F.{m}": plots.final_specialization(table, m) for m in METRICS if m in plots.metrics_in(table)}
    return table.assign(end=end, accuracy=table["accuracy_mean"], **finals).dropna(subset=["end"])


def rows(store: Path, source: str) -> List[List[str]]:
    """Table rows (end, variant, source, seeds, each value with its interval) of one store."""
    if not (store / "runs").is_dir():
        return []
    data = ends(plots.load_table(store))
    values = [c for c in (*(f"F.{m}" for m in METRICS), "accuracy") if c in data]
    mean, half, count = plots.seed_intervals(data, ["end", "config.model.variant"], values)
    out = []
    for end, variant in mean.index:
        cells = [end, variant, source, str(int(count.loc[(end, variant)].max()))]
        for column in (*(f"F.{m}" for m in METRICS), "accuracy"):
            if column not in mean:
                cells.append("–")
                continue
            cells.append(plots.format_interval(mean.loc[(end, variant), column], half.loc[(end, variant), column]))
        out.append(cells)
    return out


def side_by_side(results: Path) -> str:
    """The Markdown table."""
    body = []
    for i, end in enumerate(ENDS):
        notebook = [f"{NOTEBOOK[m][i]:.2f}" for m in (*METRICS, "accuracy")]
        body.append([end, "rate", "reference notebook", "1", *notebook])
    body += rows(results / "fig2-reference", "reference preset")
    body += rows(results / "fig2", "default preset")
    body.sort(key=lambda r: (ENDS.index(r[0]), r[1]))
    header = ["end", "variant", "source", "seeds", "retraining F", "ablation F", "correlation F", "accuracy"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(r) + " |" for r in body]
    return "\n".join(lines) + "\n"


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--results", type=Path, default=RESULTS, help="folder holding the stores")
    args = parser.parse_args(argv)
    table = side_by_side(args.results)
    print(table, end="")
    out = args.results / "fig2-reference"
    if out.is_dir():
        (out / "side_by_side.md").write_text(table)
        print(f"written: {out / 'side_by_side.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
