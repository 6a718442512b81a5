"""Does the reference's readout fan-in move Fig. 2? Rate, reference preset, both ends, 10 seeds.

The reference initialises the first layer of every retraining readout with the bound 1/√(2n) of
both modules' features (a masked Linear(2n → 30)); spikemod, in both presets, with the subset's
own fan-in (1/√n for one module; ``metrics.readout_fan_in``). This script trains the rate networks
of ``fig2_sparsity.py --preset reference`` at one synapse and at p = 1 (10 seeds), keeps their
checkpoints, and measures each network twice: with the preset's readouts (``subset``, in the
sweep) and with the reference's (``network``: the same network, seed and data, so only the
readouts' initial weights differ).

    SPIKEMOD_DATA=/path/to/data python experiments/readout_fan_in.py --workers 2

summary.md: per end and metric, F with each fan-in and their difference paired by seed (mean ±
95% interval), beside the reference notebook's value. Results go to
experiments/results/readout-fan-in-reference (the second measurement in
network-fan-in/<run id>.h5); running it again runs and measures only what is missing.
"""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import pandas as pd
from common import main_guard, make_parser, run_experiment
from compare_presets import ENDS, METRICS, NOTEBOOK, ends
from fig2_sparsity import configs as fig2_configs
from tqdm.auto import tqdm

from spikemod import plots
from spikemod.metrics.suite import SpecializationResult, measure_checkpoint
from spikemod.results import atomic_file

FAN_IN = "network"


def remeasured(store: Path) -> Path:
    return store / f"{FAN_IN}-fan-in"


def measure_again(store: Path) -> None:
    """Each stored network measured with the reference's fan-in, unless already done."""
    out = remeasured(store)
    out.mkdir(exist_ok=True)
    todo = [p for p in sorted((store / "checkpoints").glob("*.h5")) if not (out / p.name).exists()]
    for checkpoint in tqdm(todo, desc=f"{FAN_IN} fan-in", unit="run"):
        with atomic_file(out / checkpoint.name) as temporary:  # an interrupted one is measured again
            measure_checkpoint(checkpoint, temporary, metrics={"readout_fan_in": FAN_IN})


def paired_table(store: Path) -> pd.DataFrame:
    """One row per run: end, seed and F of every metric with each fan-in (``F.<metric>`` and
    ``F.<metric>.network``)."""
    table = ends(plots.load_table(store))
    for metric in METRICS:
        table[f"F.{metric}.{FAN_IN}"] = [
            SpecializationResult.load(remeasured(store) / f"{run}.h5").metrics[metric].last
            for run in table["run_id"]
        ]
    return table


def summary(table: pd.DataFrame) -> str:
    """The Markdown table: per end and metric, both F and their paired difference."""
    table = table.assign(
        **{f"diff.{m}": table[f"F.{m}.{FAN_IN}"] - table[f"F.{m}"] for m in METRICS}
    )
    columns = [c for m in METRICS for c in (f"F.{m}", f"F.{m}.{FAN_IN}", f"diff.{m}")]
    mean, half, count = plots.seed_intervals(table, ["end"], columns)
    lines = [
        "| end | metric | seeds | notebook | F, subset fan-in (preset) | F, network fan-in (reference code) | difference, paired |",
        "|---|---|---|---|---|---|---|",
    ]
    for end in ENDS:
        if end not in mean.index:
            continue
        for metric in METRICS:
            cells = [
                plots.format_interval(mean.loc[end, c], half.loc[end, c])
                for c in (f"F.{metric}", f"F.{metric}.{FAN_IN}", f"diff.{metric}")
            ]
            notebook = f"{NOTEBOOK[metric][ENDS.index(end)]:.2f}"
            lines.append(f"| {end} | {metric} | {int(count.loc[end].max())} | {notebook} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def draw(store: Path) -> List[Path]:
    measure_again(store)
    path = store / "summary.md"
    path.write_text(summary(paired_table(store)))
    return [path]


def main(argv: Optional[List[str]] = None) -> int:
    parser = make_parser(__doc__.split("\n\n")[0], "readout-fan-in")
    parser.set_defaults(preset="reference", variants=["rate"], seeds=10, keep_checkpoints=True)
    args = parser.parse_args(argv)
    runs = [c for c in fig2_configs(args) if c.model.synapses == 1 or c.model.p == 1.0]
    return run_experiment(args, runs, draw)


if __name__ == "__main__":
    main_guard(main)
