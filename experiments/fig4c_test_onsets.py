"""Fig. 4C as the reference code measures it: onsets at test only, on the Fig. 2 networks.

The reference ("Dynamics" code, ``compute_random_timing_dynamics``) takes the separate-readout
networks of Fig. 2, trained without onsets, trains their retraining readouts on the usual inputs,
and scores them on test inputs whose digits switch on at fixed steps (t0, t1), pure noise before:
(t0, t1) ∈ {1, 2, 3}² in its 0-based steps, {2, 3, 4}² here (1-based, T = 5; for T = 10 the three
steps 2, T/2 and T − 1). F^m is computed on the raw accuracies
(:func:`spikemod.metrics.suite.measure_test_onsets`).

    python experiments/fig4c_test_onsets.py --store experiments/results/fig2-reference --seeds 3

Needs a store made with --keep-checkpoints. Each network's measurement is written to
``<store>/test_onsets/<run_id>.h5`` as soon as it ends, so a run started again does only what is
missing; the figure (``<store>/figures/fig4c_test_onsets_<variant>``) is drawn from those files.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import List, Optional, Sequence

import pandas as pd
from common import RESULTS
from fig4_dynamics import onset_pairs
from tqdm.auto import tqdm

from spikemod import plots
from spikemod.checkpoint import load_checkpoint
from spikemod.metrics.suite import measure_test_onsets
from spikemod.results import ResultStore
from spikemod.task import PairDataset

MEASUREMENT = "test_onsets"


def measure_store(store: ResultStore, seeds: int, variants: Sequence[str] = ("rate", "spiking")) -> int:
    """Measure every stored network of the first ``seeds`` seeds and of ``variants`` that is not
    measured yet; returns how many were measured."""
    table = plots.load_table(store.root)
    chosen = table[(table["seed"] < seeds) & table["config.model.variant"].isin(variants)]
    missing = [key for key in chosen["run_id"] if not store.measurement_path(MEASUREMENT, key).is_file()]
    without = [key for key in missing if not store.checkpoint_path(key).is_file()]
    if without:
        raise SystemExit(
            f"error: {len(without)} runs of {store.root} have no stored network; run the sweep again with "
            "--keep-checkpoints"
        )
    for key in tqdm(missing, desc="test onsets", unit="network"):
        loaded = load_checkpoint(store.checkpoint_path(key))
        config = loaded.config
        train_set = PairDataset(config.data, config.task, train=True, seed=config.seed)
        test_set = PairDataset(config.data, config.task, train=False, seed=config.seed)
        scores = measure_test_onsets(loaded.model, train_set, test_set, config, onset_pairs(config.n_steps))
        tree = {
            pair: {"retraining": {"module_scores": s.module_scores, "F": s.specialization, "raw": s.raw}}
            for pair, s in scores.items()
        }
        store.write_measurement(MEASUREMENT, key, {"onset_pairs": tree})
    return len(missing)


def onset_table(store: ResultStore) -> pd.DataFrame:
    """The store's table, one row per measured run, with the measurement as ``onset_pairs.*`` columns."""
    table = plots.load_table(store.root)
    measured = {
        key: pd.json_normalize(tree, sep=".").iloc[0] for key, tree in store.measurements(MEASUREMENT).items()
    }
    onsets = pd.DataFrame.from_dict(measured, orient="index").filter(like="onset_pairs.")
    table = table.drop(columns=[c for c in table.columns if c.startswith("onset_pairs.")])
    return table.join(onsets, on="run_id", how="inner")


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--store", type=Path, default=RESULTS / "fig2-reference", help="a Fig. 2 store with checkpoints")
    parser.add_argument("--seeds", type=int, default=3, help="measure the networks of the first N seeds (default 3)")
    parser.add_argument("--variants", nargs="+", default=["rate", "spiking"], choices=["rate", "spiking"])
    parser.add_argument("--figures-only", action="store_true", help="draw from the stored measurements only")
    args = parser.parse_args(argv)
    store = ResultStore(args.store)
    if not store.completed():
        print(f"no finished run in {args.store}: run experiments/fig2_sparsity.py --keep-checkpoints first", file=sys.stderr)
        return 1
    if not args.figures_only:
        print(f"measured {measure_store(store, args.seeds, args.variants)} networks")
    table = onset_table(store)
    for path in plots.fig4_onset_pairs(table, args.store / "figures", name="fig4c_test_onsets"):
        print(f"figure: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
