"""Fig. 2 of "Dynamics" for rate and spiking networks: specialization against sparsity p and modularity Q.

Two modules of n = 25 neurons, separate input and readouts, the parity task with both targets,
trained for 5 epochs on full MNIST pairs; the interconnect goes from a single synapse per direction
to p = 1 (6 values); 3 seeds; rate and spiking variants. Each run is measured with the retraining,
ablation and correlation metrics at every time step.

    SPIKEMOD_DATA=/path/to/data python experiments/fig2_sparsity.py --workers 2
    python experiments/fig2_sparsity.py --quick          # offline smoke run, a few minutes

Results go to experiments/results/fig2 (one HDF5 file per run; with --keep-checkpoints also each
run's trained network, for spikemod export); running the command again runs only what is missing.
The figures (fig2_sparsity; fig2_resources: F against inter-module spikes and energy; fig2_steps: F
per time step) and a table of the numbers (summary.md) are drawn from the stored results.
"""

from __future__ import annotations

from pathlib import Path
from typing import Dict, List, Optional

from common import base_config, main_guard, make_parser, run_experiment, seeds

from spikemod.config import RunConfig

#: Interconnect densities of the full sweep; the first point is a single synapse per direction.
P_FULL = ("one", 0.01, 0.05, 0.1, 0.5, 1.0)
P_QUICK = ("one", 0.05, 0.2, 1.0)


def model_fields(p: object, n_neurons: int) -> Dict[str, object]:
    """Model fields of one sparsity point: ``"one"`` is exactly one synapse per direction (p = 1/n^2)."""
    if p == "one":
        return {"p": 1.0 / n_neurons**2, "synapses": 1}
    return {"p": float(p)}


def configs(args) -> List[RunConfig]:
    """Seed-major order, so that an interrupted sweep has whole curves for the first seeds."""
    base = base_config(args)
    points = P_QUICK if args.quick else P_FULL
    return [
        base.replace(model={"variant": variant, **model_fields(p, base.model.n_neurons)}, seed=seed)
        for seed in seeds(args)
        for variant in args.variants
        for p in points
    ]


def draw(store: Path) -> List[Path]:
    from spikemod import plots

    table = plots.load_table(store)
    out = store / "figures"
    summary = store / "summary.md"
    summary.write_text(plots.fig2_summary(table))
    return (
        plots.fig2_sparsity(table, out)
        + plots.fig2_resources(table, out)
        + plots.fig4_dynamics(table, out, name="fig2_steps")
        + [summary]
    )


def main(argv: Optional[List[str]] = None) -> int:
    args = make_parser(__doc__.split("\n\n")[0], "fig2").parse_args(argv)
    return run_experiment(args, configs(args), draw)


if __name__ == "__main__":
    main_guard(main)
