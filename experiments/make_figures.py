"""Regenerate every figure from the stored results (never retrains).

For each experiment (fig2, fig3, fig4, extreme-sparsity, bandwidth, loss-mechanism,
onset-pair-subset) and each of its stores found under the results folder (``<name>`` for full
mode, ``<name>-quick`` for quick mode, ``<name>-quick-mnist`` and the like for other data sets),
the experiment's own ``draw`` writes its figures into ``<store>/figures`` (PNG and PDF); fig2 and
the last four also write ``<store>/summary.md``, and a fig2 store with test-onset measurements (``fig4c_test_onsets.py``) gets its ``fig4c_test_onsets`` figures. Both presets' stores
are drawn (``fig2`` and ``fig2-reference``, and so on).

    python experiments/make_figures.py                      # every store in experiments/results
    python experiments/make_figures.py --only fig2 --results /tmp/my-results

The torch vs Lava comparison figure is drawn by ``spikemod demo`` (its report), not here.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import List, Optional

from common import RESULTS

import bandwidth
import extreme_sparsity
import fig2_sparsity
import fig3_resources
import fig4_dynamics
import fig4c_test_onsets
import loss_mechanism
import onset_pair_subset
from spikemod import plots
from spikemod.results import ResultStore

EXPERIMENTS = {
    "fig2": fig2_sparsity,
    "fig3": fig3_resources,
    "fig4": fig4_dynamics,
    "extreme-sparsity": extreme_sparsity,
    "bandwidth": bandwidth,
    "loss-mechanism": loss_mechanism,
    "onset-pair-subset": onset_pair_subset,
}


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--results", type=Path, default=RESULTS, help="folder holding the stores")
    parser.add_argument("--only", nargs="+", choices=list(EXPERIMENTS), help="experiments to draw")
    args = parser.parse_args(argv)
    chosen = args.only or list(EXPERIMENTS)
    drawn = 0
    for name in chosen:
        paths = []
        for store in (args.results / name, *sorted(args.results.glob(f"{name}-*"))):
            if (store / "runs").is_dir() and any((store / "runs").glob("*.h5")):
                paths += EXPERIMENTS[name].draw(store)
                if (store / fig4c_test_onsets.MEASUREMENT).is_dir():
                    table = fig4c_test_onsets.onset_table(ResultStore(store))
                    paths += plots.fig4_onset_pairs(table, store / "figures", name="fig4c_test_onsets")
                print(f"{name}: drew {store}")
        for path in paths:
            print(f"  {path}")
        drawn += len(paths)
    if drawn == 0:
        print(f"no stored results under {args.results}: run an experiment first", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
