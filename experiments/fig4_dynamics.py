"""Fig. 4 of "Dynamics" for rate and spiking networks: specialization at every time step.

Fused-pathway networks (separate input, shared readout) of n = 25 neurons with 1, 10 and 100
synapses per direction, measured at every step under six input conditions: static input, static
input with the interconnect switched on at step 3 or 5 (panel A; ``model.interconnect_onset``:
before that step only the recurrence inside each module acts), dynamic structured noise at two
levels (r = 0.4, the reference code's default, and r = 0.9, the paper's code example), and random
digit onsets (each digit switched on at a random step, pure noise before, r = 0.4 after). 3 seeds,
full MNIST pairs, 5 epochs (108 runs, each chunk of one shape trained as one stack).

The dashed line marks the first step at which inter-module information can reach a module: step 2
(states start at zero) or the interconnect onset. With random onsets, panel C of the paper: the
networks trained on random onsets are measured again with both digit onsets fixed, at 3 x 3 onset
pairs (steps 2, T/2 and T - 1 for each digit; all of 2..4 at T = 5), and fig4_onset_pairs_<variant>
shows each module's signed specialization F^m over time per pair.

    SPIKEMOD_DATA=/path/to/data python experiments/fig4_dynamics.py --workers 2
    python experiments/fig4_dynamics.py --quick          # offline smoke run, a few minutes

Results go to experiments/results/fig4 (one HDF5 file per run; with --keep-checkpoints also each
run's trained network, for spikemod export); running the command again runs only what is missing.
The figure (fig4_dynamics) is drawn from the stored results.
"""

from __future__ import annotations

from pathlib import Path
from typing import Dict, List, Optional, Tuple

import numpy as np

from common import base_config, main_guard, make_parser, run_experiment, seeds

from spikemod.config import RunConfig
from spikemod.presets import FUSED_READOUT

SYNAPSES = (1, 10, 100)
STATIC = {"noise_ratio": 0.0, "random_onset": False}
#: Input conditions as config sections: TaskConfig fields and, optionally, ModelConfig fields.
CONDITIONS: Dict[str, Dict[str, Dict[str, object]]] = {
    "static": {"task": STATIC},
    "static-on-3": {"task": STATIC, "model": {"interconnect_onset": 3}},
    "static-on-5": {"task": STATIC, "model": {"interconnect_onset": 5}},
    "noise-0.4": {"task": {"noise_ratio": 0.4, "random_onset": False}},
    "noise-0.9": {"task": {"noise_ratio": 0.9, "random_onset": False}},
    "onset": {"task": {"noise_ratio": 0.4, "random_onset": True}},
}


def onset_pairs(n_steps: int) -> List[Tuple[int, int]]:
    """3 x 3 pairs of digit onsets spread over 2..T-1 (Fig. 4C)."""
    onsets = sorted({int(round(v)) for v in np.linspace(2, n_steps - 1, 3)})
    return [(t0, t1) for t0 in onsets for t1 in onsets]


def configs(args) -> List[RunConfig]:
    base = base_config(args)
    n = base.model.n_neurons
    runs = []
    for seed in seeds(args):
        for variant in args.variants:
            for condition in args.conditions:
                for count in SYNAPSES:
                    config = base.replace(
                        model={
                            "variant": variant,
                            "synapses": count,
                            "p": count / n**2,
                            "input_scheme": "separate",
                            "readout_scheme": FUSED_READOUT[args.preset],
                            **CONDITIONS[condition].get("model", {}),
                        },
                        task=CONDITIONS[condition]["task"],
                        seed=seed,
                    )
                    if config.task.random_onset:
                        config = config.replace(metrics={"onset_pairs": onset_pairs(config.n_steps)})
                    runs.append(config)
    return runs


def draw(store: Path) -> List[Path]:
    from spikemod import plots

    table = plots.load_table(store)
    paths = plots.fig4_dynamics(table, store / "figures")
    if table["config.task.random_onset"].any():
        paths += plots.fig4_onset_pairs(table, store / "figures")
    return paths


def main(argv: Optional[List[str]] = None) -> int:
    parser = make_parser(__doc__.split("\n\n")[0], "fig4", quick_seeds=1)
    parser.add_argument("--conditions", nargs="+", default=list(CONDITIONS), choices=list(CONDITIONS))
    args = parser.parse_args(argv)
    return run_experiment(args, configs(args), draw)


if __name__ == "__main__":
    main_guard(main)
