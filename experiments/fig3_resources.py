"""Fig. 3 of "Dynamics" for rate and spiking networks: specialization over resource constraints.

Heatmaps of specialization F over module size n × interconnect synapses p_s per direction, for
several covariance levels c between the two digits, per architecture: separate pathways (separate
input and readouts), fused pathways (separate input, shared readout) and shared pathway (shared
input and readout); rate and spiking side by side. Full mode: n in {10, 25, 50}, p_s in {1, 10, 100},
c in {0, 0.5, 0.9}, 3 seeds, full MNIST pairs, 5 epochs (486 runs).

    SPIKEMOD_DATA=/path/to/data python experiments/fig3_resources.py --workers 2
    python experiments/fig3_resources.py --quick          # offline smoke run, a few minutes
    python experiments/fig3_resources.py --preset reference --covariances 0   # the c = 0 slice

Results go to experiments/results/fig3 (one HDF5 file per run; with --keep-checkpoints also each
run's trained network, for spikemod export); running the command again runs only what is missing.
The figure (fig3_heatmaps) is drawn from the stored results.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import List, Optional

from common import base_config, main_guard, make_parser, run_experiment, seeds

from spikemod.config import RunConfig
from spikemod.presets import FUSED_READOUT

#: The papers' architectures as (input scheme, readout scheme); the fused pathway's readout is the
#: preset's (spikemod.presets.FUSED_READOUT: shared, or the reference's concat).
ARCHITECTURES = {
    "separate": ("separate", "separate"),
    "fused": ("separate", "shared"),
    "shared": ("shared", "shared"),
}
FULL = {"n": (10, 25, 50), "synapses": (1, 10, 100), "covariance": (0.0, 0.5, 0.9)}
QUICK = {"n": (6, 12), "synapses": (1, 10), "covariance": (0.0, 0.9)}


def configs(args) -> List[RunConfig]:
    base = base_config(args)
    grid = QUICK if args.quick else FULL
    return [
        base.replace(
            model={
                "variant": variant,
                "n_neurons": n,
                "synapses": count,
                "p": count / n**2,
                "input_scheme": ARCHITECTURES[arch][0],
                "readout_scheme": FUSED_READOUT[args.preset] if arch == "fused" else ARCHITECTURES[arch][1],
            },
            task={"covariance": covariance},
            seed=seed,
        )
        for seed in seeds(args)
        for variant in args.variants
        for arch in args.architectures
        for covariance in args.covariances or grid["covariance"]
        for n in grid["n"]
        for count in grid["synapses"]
    ]


def draw(store: Path) -> List[Path]:
    from spikemod import plots

    return plots.fig3_heatmaps(plots.load_table(store), store / "figures")


def parser() -> argparse.ArgumentParser:
    """The shared options (common.make_parser), --architectures and --covariances."""
    parser = make_parser(__doc__.split("\n\n")[0], "fig3", quick_seeds=1)
    parser.add_argument(
        "--architectures", nargs="+", default=list(ARCHITECTURES), choices=list(ARCHITECTURES)
    )
    parser.add_argument(
        "--covariances",
        nargs="+",
        type=float,
        help="covariance levels c to run (default: 0 0.5 0.9; --quick: 0 0.9), e.g. 0 for the c = 0 slice",
    )
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    args = parser().parse_args(argv)
    return run_experiment(args, configs(args), draw)


if __name__ == "__main__":
    main_guard(main)
