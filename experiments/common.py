"""What every figure script shares: its command line, its base config and how it runs its sweep.

Each ``fig*.py`` script builds a list of run configs (full mode: the papers' settings; ``--quick``:
the offline ``digits`` set, small modules, short training), runs the missing ones into a results
store with :func:`spikemod.executors.run_local` (a re-run skips finished runs, so a killed sweep
resumes) and then draws its figures from the stored results only (:mod:`spikemod.plots`). With
``--keep-checkpoints`` the store also keeps every run's trained network
(``checkpoints/<run_id>.h5``), so any network of a figure can go to ``spikemod export``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Callable, List, Optional, Sequence

import pandas as pd
from spikemod.cli import add_slurm_options, slurm_options
from spikemod.config import LOSSES, PRESETS, ConfigError, RunConfig
from spikemod.data import DataUnavailableError, load_image_sets
from spikemod.executors import SweepReport, run_local
from spikemod.presets import with_preset
from spikemod.results import load_results
from spikemod.identity import config_overrides
from spikemod.training import check_device
from spikemod.results import ResultStore

#: Where the committed results and figures live.
RESULTS = Path(__file__).resolve().parent / "results"
#: Specialization metrics measured by every experiment (weight masks are optional: --weight-masks).
METRICS = ("retraining", "ablation", "correlation")


def make_parser(description: str, name: str, quick_seeds: int = 2) -> argparse.ArgumentParser:
    """Options shared by the figure scripts; ``name`` is the default store's folder in results/."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument(
        "--quick",
        action="store_true",
        help="smoke mode: offline digits data set, small modules, short training (minutes on 2 cores)",
    )
    parser.add_argument(
        "--store",
        type=Path,
        help=f"results store (default: experiments/results/{name}, {name}-quick with --quick, "
        "with -<dataset> appended for a non-default --dataset)",
    )
    parser.add_argument("--workers", type=int, default=2, help="local worker processes (default 2)")
    parser.add_argument("--data-root", help="data root with MNIST (default: $SPIKEMOD_DATA)")
    parser.add_argument(
        "--dataset",
        choices=("mnist", "digits"),
        help="mnist (default; with --quick: 10,000 training pairs) or the offline digits set "
        "(the --quick default)",
    )
    parser.add_argument(
        "--seeds", type=int, default=None, help=f"number of seeds (default: 3, --quick: {quick_seeds})"
    )
    parser.add_argument("--variants", nargs="+", default=["rate", "spiking"], choices=["rate", "spiking"])
    parser.add_argument(
        "--weight-masks", action="store_true", help="also measure the weight-mask metric (slower)"
    )
    parser.add_argument(
        "--loss",
        choices=LOSSES,
        default="deciding",
        help="training loss with separate readouts (TrainConfig.loss): deciding (the reference code's, "
        "default) or marginal (trains faster); a non-default loss gets its own store, -<loss> appended",
    )
    parser.add_argument(
        "--preset",
        choices=PRESETS,
        default="default",
        help="default (spikemod's choices) or reference (the papers' code item by item, "
        "spikemod.presets; its own store, -reference appended)",
    )
    parser.add_argument(
        "--keep-checkpoints",
        action="store_true",
        help="also store each run's trained network (STORE/checkpoints/RUN_ID.h5, for spikemod export); "
        "runs stored without one run again",
    )
    parser.add_argument(
        "--device", default="cpu", help="where the networks train and run: cpu (default) or cuda"
    )
    parser.add_argument(
        "--figures-only", action="store_true", help="draw the figures from the store, run nothing"
    )
    parser.add_argument("--dry-run", action="store_true", help="print the number of runs and stop")
    add_executor_options(parser)
    parser.set_defaults(name=name, quick_seeds=quick_seeds)
    return parser


def add_executor_options(parser: argparse.ArgumentParser) -> None:
    """``--executor local|slurm`` and the slurm executor's options (``spikemod sweep``'s)."""
    parser.add_argument(
        "--executor",
        choices=("local", "slurm"),
        default="local",
        help="local (default: --workers processes here) or slurm (a job array through submitit; "
        "the figures are drawn once the jobs end, or on a later call with --no-wait)",
    )
    add_slurm_options(parser)


def run_sweep(args: argparse.Namespace, configs: Sequence[RunConfig], store: Path) -> SweepReport:
    """Run the missing runs of ``configs`` into ``store`` with ``--executor``."""
    if args.executor == "slurm":
        from spikemod.slurm import run_slurm

        return run_slurm(
            configs, store, slurm_options(args), keep_checkpoints=args.keep_checkpoints, device=args.device
        )
    return run_local(
        configs, store, workers=args.workers, keep_checkpoints=args.keep_checkpoints, device=args.device
    )


def dataset(args: argparse.Namespace) -> str:
    """The data set in effect: ``--dataset``, else digits with --quick and MNIST without."""
    return args.dataset or ("digits" if args.quick else "mnist")


def store_path(args: argparse.Namespace) -> Path:
    """The results store of this invocation: ``results/<name>`` in full mode, ``<name>-quick`` with
    --quick, each with ``-<dataset>`` appended when the data set is not the mode's default and
    ``-<loss>`` for a non-default loss and ``-reference`` for the reference preset, so that runs of
    different modes never share a store (and a figure)."""
    if args.store is not None:
        return args.store
    default = "digits" if args.quick else "mnist"
    suffix = ("-quick" if args.quick else "") + ("" if dataset(args) == default else f"-{dataset(args)}")
    suffix += "" if args.loss == "deciding" else f"-{args.loss}"
    suffix += "" if args.preset == "default" else f"-{args.preset}"
    return RESULTS / f"{args.name}{suffix}"


def seeds(args: argparse.Namespace) -> List[int]:
    count = args.seeds if args.seeds is not None else (args.quick_seeds if args.quick else 3)
    if count < 1:
        raise ConfigError(f"--seeds {count} is invalid: use a positive number of seeds")
    return list(range(count))


def base_config(args: argparse.Namespace, n_neurons_full: int = 25, n_neurons_quick: int = 10) -> RunConfig:
    """The preset's settings (``--preset``; default: full MNIST pairs, n = 25, 5 epochs; reference:
    30 epochs and the rest of :mod:`spikemod.presets`), or the quick smoke settings.

    Quick: n = 10 and short readout training, on scikit-learn's digits resized to 28x28 (offline;
    3 epochs with batches of 64) or, with ``--dataset mnist``, on 10,000 MNIST training pairs
    (2,000 test pairs, 2 epochs); these budgets replace the preset's.
    """
    names = METRICS + (("weight_mask",) if args.weight_masks else ())
    data_root = args.data_root if dataset(args) == "mnist" else None
    start = with_preset(RunConfig(), args.preset)
    if not args.quick:
        return start.replace(
            data={"dataset": dataset(args), "data_root": data_root},
            model={"n_neurons": n_neurons_full},
            train={"loss": args.loss},
            metrics={"metrics": names},
        )
    if dataset(args) == "digits":
        return start.replace(
            data={"dataset": "digits"},
            model={"n_neurons": n_neurons_quick},
            train={"epochs": 3, "batch_size": 64, "loss": args.loss},
            metrics={"metrics": names, "readout_epochs": 2, "readout_batch_size": 64},
        )
    return start.replace(
        data={"dataset": "mnist", "data_root": data_root, "n_train": 10_000, "n_test": 2_000},
        model={"n_neurons": n_neurons_quick},
        train={"epochs": 2, "loss": args.loss},
        metrics={"metrics": names, "readout_epochs": 2},
    )


def run_experiment(
    args: argparse.Namespace,
    configs: Sequence[RunConfig],
    draw: Callable[[Path], List[Path]],
) -> int:
    """Run the missing runs of ``configs`` into the store, then draw the figures; exit status.

    The status is 1 when a run failed (the figures are still drawn from what is stored).
    """
    store = store_path(args)
    print(f"{args.name}: {len(configs)} runs, store {store}", flush=True)
    if args.dry_run:
        for config in configs:
            print("  " + ", ".join(f"{k}={v}" for k, v in config_overrides(config).items()))
        return 0
    status = 0
    if not args.figures_only:
        for data in {c.data for c in configs}:  # fail here, once, rather than in every run
            load_image_sets(data, train=True)
        start = time.perf_counter()
        check_device(args.device)
        report = run_sweep(args, configs, store)
        print(f"sweep finished in {time.perf_counter() - start:.0f} s", flush=True)
        if ResultStore(store).completed():
            print(stage_times(load_results(store)), flush=True)
        if not report.ok:
            print(report.describe(), file=sys.stderr)
            status = 1
    if not ResultStore(store).completed():
        print(f"no finished run in {store}: nothing to draw", file=sys.stderr)
        return 1
    for path in draw(store):
        print(f"figure: {path}")
    return status


def summary_and_figures(
    summary: Callable[[pd.DataFrame], str], figures: Callable[[pd.DataFrame, Path], List[Path]]
) -> Callable[[Path], List[Path]]:
    """A script's draw function: from the store's finished runs, ``summary(table)`` into
    ``<store>/summary.md`` and ``figures(table, <store>/figures)``; returns the paths written."""

    def draw(store: Path) -> List[Path]:
        from spikemod.plots import load_table

        table = load_table(store)
        (store / "summary.md").write_text(summary(table))
        return figures(table, store / "figures") + [store / "summary.md"]

    return draw


def stage_times(table: pd.DataFrame) -> str:
    """Where the time of a store's runs went: worker-seconds per stage (``meta.stage_s``:
    training, feature extraction, each metric, resources, ...), summed over the runs that
    recorded them, and their share."""
    columns = [c for c in table.columns if c.startswith("meta.stage_s.")]
    if not columns:
        return "stage times: none recorded (runs stored before spikemod recorded them)"
    totals = table[columns].sum().rename(lambda c: c.removeprefix("meta.stage_s."))
    counted = int(table[columns].notna().any(axis=1).sum())
    lines = [f"worker-seconds per stage over {counted} runs:"]
    lines += [f"  {stage:<12} {seconds:9.1f} s  {seconds / totals.sum():6.1%}" for stage, seconds in totals.items()]
    return "\n".join(lines)


def main_guard(main: Callable[[Optional[List[str]]], int]) -> None:
    """Run ``main`` and exit with its status; configuration and data errors become one clear message."""
    try:
        sys.exit(main(None))
    except (ConfigError, DataUnavailableError) as err:
        sys.exit(f"error: {err}")
