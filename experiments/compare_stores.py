"""Do two stores of the same runs agree within seed spread? (another machine, CPU, or a GPU)

Spiking networks amplify rounding, so the same run on another machine (AVX2 against AVX-512, a
CPU against a GPU) ends elsewhere; what must hold is that it ends within the spread over seeds.
Runs are matched by run id. For each cell (the configs' varying fields other than the seed) and
each quantity (the mean test accuracy, and each metric's F at the last measured step) the table
gives the matched runs n, the mean difference d = second − first, the mean |d|, the seed
standard deviation sd of the first store's cell (over all its seeds), and two ratios:

- ``|d| / sd``: how far each run moved. 0: the same numbers; about 2/√π ≈ 1.13: as far as another
  seed would be (the run's trajectory has decorrelated, as spiking runs do).
- ``z`` = mean d / (sd·√(2/n)): whether the cell's mean moved. Where the runs have decorrelated,
  |z| under 2 means the two stores agree within seed spread.

    python experiments/compare_stores.py experiments/results/fig2 /path/to/fig2-from-the-gpu
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import List, Optional

import numpy as np
import pandas as pd

from common import main_guard
from spikemod import plots
from spikemod.config import ConfigError
from spikemod.results import load_results


def last_step(table: pd.DataFrame, metrics: List[str]) -> pd.DataFrame:
    """Per run: ``accuracy`` (mean test accuracy) and each of ``metrics``' F at its last measured step."""
    return pd.DataFrame({"accuracy": table["accuracy_mean"], **{m: plots.final_specialization(table, m) for m in metrics}})


def agreement(first: pd.DataFrame, second: pd.DataFrame) -> pd.DataFrame:
    """One row per cell and quantity: n, mean d, mean |d|, the first store's seed sd, |d| / sd and z.

    ``first`` and ``second`` are :func:`~spikemod.results.load_results` tables; runs of ``second``
    that ``first`` lacks are left out, and a cell with a single seed has no sd (NaN)."""
    if first.empty or second.empty:
        raise ConfigError("a store holds no finished run: run its sweep first, then compare")
    metrics = plots.metrics_in(first)
    cells = [
        c for c in first.columns if c.startswith("config.") and c != "config.seed" and first[c].astype(str).nunique() > 1
    ]
    key = first[cells].astype(str).agg(", ".join, axis=1) if cells else pd.Series("all", index=first.index)
    a = last_step(first, metrics).assign(cell=key.values, run_id=first["run_id"].values)
    b = last_step(second, [m for m in metrics if f"specialization.{m}.F" in second]).assign(run_id=second["run_id"].values)
    matched = a.merge(b, on="run_id", suffixes=("", ".second"))
    if matched.empty:
        raise ConfigError("the two stores share no run: compare stores of the same sweep (same configs)")
    rows = []
    for quantity in [q for q in ["accuracy", *metrics] if f"{q}.second" in matched]:
        difference = matched[f"{quantity}.second"] - matched[quantity]
        by_cell = difference.groupby(matched["cell"])
        spread = a.groupby("cell")[quantity].std()
        for cell, d in by_cell:
            rows.append(
                {
                    "quantity": quantity,
                    "cell": cell,
                    "n": len(d),
                    "mean d": d.mean(),
                    "mean |d|": d.abs().mean(),
                    "seed sd": spread[cell],
                }
            )
    table = pd.DataFrame(rows)  # a cell of equal seeds has sd 0: its ratios are NaN or infinite
    return table.assign(
        **{"|d| / sd": table["mean |d|"] / table["seed sd"], "z": table["mean d"] / (table["seed sd"] * np.sqrt(2 / table["n"]))}
    )


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("first", type=Path, help="the reference store (its seed spread is the yardstick)")
    parser.add_argument("second", type=Path, help="the store to compare with it (the same sweep, run elsewhere)")
    args = parser.parse_args(argv)
    for store in (args.first, args.second):
        if not store.is_dir():
            raise ConfigError(f"results store {store} does not exist: pass a store folder (it holds runs/)")
    table = agreement(load_results(args.first), load_results(args.second))
    with pd.option_context("display.width", 200, "display.max_rows", None):
        print(table.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    return 0


if __name__ == "__main__":
    main_guard(main)
