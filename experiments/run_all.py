"""The whole paper suite in one command: Fig. 2 (10 seeds), Fig. 3, Fig. 4 and the "Extreme sparsity" experiment.

Each stage is its figure script, run with the options given here (every script's own store; a
stage resumes where it stopped, so the command can be run again after an interruption):

    SPIKEMOD_DATA=/path/to/data python experiments/run_all.py --workers 2
    python experiments/run_all.py --quick                      # offline smoke run of every stage
    python experiments/run_all.py --executor slurm --partition gpu --device cuda --gpus 1
    python experiments/run_all.py --stages fig2 fig3 --dry-run

Options other than --stages go to every stage's script (see ``fig2_sparsity.py --help``):
--quick, --workers, --data-root, --dataset, --seeds, --variants, --device, --keep-checkpoints,
--executor and the slurm options, --dry-run, --figures-only. Fig. 2 runs 10 seeds unless --quick or
--seeds says otherwise. Each stage prints its worker-seconds per stage of a run (training, feature
extraction, each metric, resources); the command ends with the wall time of each stage.
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Callable, Dict, List, Optional, Tuple

import extreme_sparsity
import fig2_sparsity
import fig3_resources
import fig4_dynamics
from common import main_guard

#: Stage name: (the script's main, options it gets before the forwarded ones in full mode).
STAGES: Dict[str, Tuple[Callable[[Optional[List[str]]], int], List[str]]] = {
    "fig2": (fig2_sparsity.main, ["--seeds", "10"]),
    "fig3": (fig3_resources.main, []),
    "fig4": (fig4_dynamics.main, []),
    "extreme-sparsity": (extreme_sparsity.main, []),
}


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog="Every other option goes to each stage's script: see experiments/fig2_sparsity.py --help.",
    )
    parser.add_argument(
        "--stages", nargs="+", choices=list(STAGES), default=list(STAGES), help="stages to run (default: all, in this order)"
    )
    args, forwarded = parser.parse_known_args(sys.argv[1:] if argv is None else argv)
    full = "--quick" not in forwarded and "--seeds" not in forwarded
    status, times = 0, {}
    for name in args.stages:
        stage, defaults = STAGES[name]
        print(f"=== {name}", flush=True)
        start = time.perf_counter()
        status = max(status, stage((defaults if full else []) + forwarded))
        times[name] = time.perf_counter() - start
    if "--dry-run" in forwarded:
        return status
    print("\nwall time per stage:")
    for name, seconds in times.items():
        print(f"  {name:<17} {seconds / 60:7.1f} min")
    print(f"  {'all':<17} {sum(times.values()) / 60:7.1f} min")
    return status


if __name__ == "__main__":
    main_guard(main)
