"""The ``spikemod`` command line.

Every subcommand is one function decorated with :func:`subcommand`: it receives argparse's
subparsers, adds its parser and sets ``handler`` (a function ``args -> exit code``)::

    @subcommand
    def measure_command(subparsers):
        parser = subparsers.add_parser("measure", help="...", description="...")
        parser.add_argument("checkpoint")
        parser.set_defaults(handler=_measure)

Run options shared by several subcommands come from :func:`add_run_options` (a ``--config`` file
plus flag overrides) and are turned into a :class:`~spikemod.config.RunConfig` by
:func:`run_config_from_args`. Expected failures (bad config, missing data, corrupt checkpoint,
diverged training) print one line on stderr and exit with status 2 (usage) or 1 (run failed).
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Dict, List, Optional, Sequence, Tuple

from . import __version__
from .config import (
    DATASETS,
    ENCODINGS,
    INITS,
    INPUT_SCHEMES,
    LOSSES,
    OPTIMIZERS,
    PRESETS,
    READOUT_SCHEMES,
    SPIKE_READOUTS,
    SURROGATES,
    TARGETS,
    VARIANTS,
    ConfigError,
    RunConfig,
)
from .memory import reuse_freed_memory
from .sweep import SweepSpec, parse_grid_option

if TYPE_CHECKING:
    from .slurm import SlurmOptions

__all__ = [
    "main",
    "build_parser",
    "subcommand",
    "add_run_options",
    "run_config_from_args",
    "add_slurm_options",
    "slurm_options",
]

AddParser = Callable[[Any], None]
_SUBCOMMANDS: List[AddParser] = []


def subcommand(add_parser: AddParser) -> AddParser:
    """Register a function that adds one subcommand to the ``spikemod`` parser."""
    _SUBCOMMANDS.append(add_parser)
    return add_parser


# (flag, section or None for RunConfig itself, field, argparse keyword arguments)
_SWITCH = argparse.BooleanOptionalAction
_RUN_OPTIONS: Tuple[Tuple[str, Optional[str], str, Dict[str, Any]], ...] = (
    ("--seed", None, "seed", dict(type=int, help="random seed (default 0)")),
    ("--dataset", "data", "dataset", dict(choices=DATASETS, help="image source (default mnist)")),
    ("--data-root", "data", "data_root", dict(help="data folder (default: $SPIKEMOD_DATA)")),
    ("--n-train", "data", "n_train", dict(type=int, help="use only this many training pairs")),
    ("--n-test", "data", "n_test", dict(type=int, help="use only this many test pairs")),
    ("--targets", "task", "targets", dict(choices=TARGETS, help="trained targets (default both)")),
    ("--steps", "task", "n_steps", dict(type=int, help="time steps T (default: rate 5, spiking 10)")),
    ("--covariance", "task", "covariance", dict(type=float, help="digit covariance c in [0, 1]")),
    ("--noise-ratio", "task", "noise_ratio", dict(type=float, help="structured input noise r in [0, 1]")),
    ("--random-onset", "task", "random_onset", dict(action=_SWITCH, help="digits switch on at random steps")),
    ("--encoding", "task", "encoding", dict(choices=ENCODINGS, help="spiking input encoding (default direct)")),
    ("--variant", "model", "variant", dict(choices=VARIANTS, help="rate (tanh) or spiking (LIF) modules")),
    ("--modules", "model", "n_modules", dict(type=int, help="number of modules M (default 2)")),
    ("--n", "model", "n_neurons", dict(type=int, help="neurons per module n (default 25)")),
    ("--p", "model", "p", dict(type=float, help="fraction of the n^2 synapses per direction: int(p n^2)")),
    ("--synapses", "model", "synapses", dict(type=int, help="exact synapse count per direction (over --p)")),
    ("--input", "model", "input_scheme", dict(choices=INPUT_SCHEMES, help="input scheme (default separate)")),
    ("--readout", "model", "readout_scheme", dict(choices=READOUT_SCHEMES, help="readout (default separate)")),
    ("--bottleneck", "model", "bottleneck", dict(type=int, help="bottleneck units per module (default none)")),
    ("--init", "model", "init", dict(choices=INITS, help="initialisation (default: rate pytorch, spiking uniform)")),
    ("--init-scale", "model", "init_scale", dict(type=float, help="uniform init bound (default: 0.1; spiking 0.01)")),
    ("--deep-r", "model", "deep_r", dict(action=_SWITCH, help="rewire the interconnect with Deep-R")),
    ("--beta", "model", "beta", dict(type=float, help="LIF membrane decay (default 0.9)")),
    ("--threshold", "model", "threshold", dict(type=float, help="LIF threshold (default 1)")),
    ("--learn-beta", "model", "learn_beta", dict(action=_SWITCH, help="learn beta per neuron")),
    ("--learn-threshold", "model", "learn_threshold", dict(action=_SWITCH, help="learn thresholds per neuron")),
    ("--surrogate", "model", "surrogate", dict(choices=SURROGATES, help="surrogate gradient (default atan)")),
    ("--spike-readout", "model", "spike_readout", dict(choices=SPIKE_READOUTS, help="default membrane")),
    ("--bandwidth-cap", "model", "bandwidth_cap", dict(type=int, help="max spikes per step and direction")),
    ("--optimizer", "train", "optimizer", dict(choices=OPTIMIZERS, help="module optimiser (default adamw)")),
    ("--lr", "train", "lr", dict(type=float, help="learning rate (default: adadelta 0.5, adamw 1e-3)")),
    ("--epochs", "train", "epochs", dict(type=int, help="training epochs (default 5)")),
    ("--batch-size", "train", "batch_size", dict(type=int, help="batch size (default 256)")),
    ("--loss", "train", "loss", dict(choices=LOSSES, help="deciding (reference, default) or marginal: faster")),
    ("--target-accuracy", "train", "target_accuracy", dict(type=float, help="stop once every head has it")),
)


def _dest(section: Optional[str], name: str) -> str:
    return f"run.{section}.{name}" if section else f"run.{name}"


def add_run_options(parser: argparse.ArgumentParser) -> None:
    """Add ``--config FILE`` and one override flag per commonly changed RunConfig field."""
    parser.add_argument(
        "--config",
        metavar="FILE",
        help="a RunConfig as .json, .yaml or .yml; the flags below override its fields",
    )
    _add_preset_option(parser)
    group = parser.add_argument_group("run options (override --config and --preset)")
    for flag, section, name, kwargs in _RUN_OPTIONS:
        if "action" not in kwargs and "choices" not in kwargs:
            kwargs = dict(kwargs, metavar=flag.lstrip("-").upper().replace("-", "_"))
        group.add_argument(flag, dest=_dest(section, name), default=None, **kwargs)


def _add_preset_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--preset",
        choices=PRESETS,
        help="start from a named set of fields: default (spikemod's choices) or reference (the papers' "
        "code item by item: 30 epochs keeping the final state, noise r = 0.4, no hidden bias, "
        "time-shared metric readouts, ratio F^m; see spikemod.presets); applied over --config",
    )


def run_config_from_args(args: argparse.Namespace) -> RunConfig:
    """The RunConfig of ``--config`` (or the defaults), then ``--preset``, then the given flags."""
    from .presets import with_preset

    config = RunConfig.load(args.config) if args.config else RunConfig()
    if args.preset:
        config = with_preset(config, args.preset)
    sections: Dict[str, Any] = {}
    for _, section, name, _ in _RUN_OPTIONS:
        value = getattr(args, _dest(section, name))
        if value is None:
            continue
        if section is None:
            sections[name] = value
        else:
            sections.setdefault(section, {})[name] = value
    return config.replace(**sections) if sections else config


def _set_threads(threads: Optional[int]) -> None:
    if threads is not None:
        import torch

        torch.set_num_threads(threads)


@subcommand
def train_command(subparsers: Any) -> None:
    """``spikemod train``: train one network and write an HDF5 checkpoint."""
    parser = subparsers.add_parser(
        "train",
        help="train a modular network and write a checkpoint",
        description=(
            "Train a modular rate or spiking network on the two-digit parity task, print a "
            "summary and write the best state with its config, history and library versions to "
            "an HDF5 checkpoint. Example: spikemod train --variant spiking --n 25 --p 0.01 "
            "--epochs 5 --dataset mnist --out run.h5"
        ),
    )
    parser.add_argument(
        "--out", metavar="FILE", help="checkpoint to write (.h5; default: runs/<variant>-<run id>.h5)"
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.add_argument("--threads", type=int, metavar="K", help="torch CPU threads")
    _add_device_option(parser)
    add_run_options(parser)
    parser.set_defaults(handler=_train)


def _add_device_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--device",
        default="cpu",
        help="where the networks train and run: cpu (default) or cuda; random draws stay on the CPU, "
        "so the numbers agree with the CPU's to float rounding (spiking: within the seed spread)",
    )


def _train(args: argparse.Namespace) -> int:
    from .checkpoint import save_checkpoint
    from .identity import run_id
    from .training import train

    config = run_config_from_args(args)
    _set_threads(args.threads)
    result = train(config, progress=not args.quiet, device=args.device)
    out = args.out or Path("runs") / f"{config.model.variant}-{run_id(config)}.h5"
    path = save_checkpoint(out, result.model, config, result.history)
    print(_train_summary(config, result.history, path))
    return 0


def _train_summary(config: RunConfig, history: Dict[str, list], path: Any) -> str:
    m = config.model
    best = history["best_epoch"][0]
    heads = {"parity": ["T'"], "inverse": ["T''"], "both": ["T'", "T''"]}[config.task.targets]
    accuracy = ", ".join(f"{h} {a:.4f}" for h, a in zip(heads, history["test_accuracy"][best]))
    rate = sum(history["samples_per_second"]) / len(history["samples_per_second"])
    lines = [
        f"{m.variant} network: {m.n_modules} modules x {m.n_neurons} neurons, "
        f"{m.n_synapses} synapses per direction (p = {m.p_effective:.4g}"
        f"{', Deep-R' if m.deep_r else ''}), T = {config.n_steps}, "
        f"input {m.input_scheme}, readout {m.readout_scheme}",
        f"epochs run: {len(history['test_accuracy'])}, kept epoch: {best + 1} ({config.train.keep}), "
        f"training speed: {rate:,.0f} samples/s",
        f"test accuracy: {accuracy}",
    ]
    if "test_cross_spikes" in history:
        cross = history["test_cross_spikes"][best]
        modules = range(m.n_modules)
        pairs = [f"{j}->{i}: {cross[i][j]:.2f}" for i in modules for j in modules if i != j]
        lines.append("spikes crossing per sample and step: " + ", ".join(pairs))
    lines.append(f"checkpoint: {path}")
    return "\n".join(lines)


@subcommand
def measure_command(subparsers: Any) -> None:
    """``spikemod measure``: specialization metrics of a checkpoint, stored in HDF5."""
    from .config import CORRELATION_KINDS, METRICS

    parser = subparsers.add_parser(
        "measure",
        help="measure the functional specialization of a trained network",
        description=(
            "Run the specialization metrics (retraining, ablation, correlation, weight masks) on a "
            "checkpoint, per time step, with the checkpoint's config and seed; print a table of "
            "metric x module x digit and F, and store the results in the group 'specialization' "
            "of the checkpoint file (or --out). Rate and spiking networks are told apart by "
            "themselves. Example: spikemod measure run.h5 --metrics retraining,ablation"
        ),
    )
    parser.add_argument(
        "checkpoint",
        help="checkpoint written by spikemod train (.h5), or a network exported by spikemod export: "
        "then the metrics run on the spike counts of snnTorch, Lava float and Lava fixed point",
    )
    parser.add_argument("--out", metavar="FILE", help="HDF5 file for the results (default: the checkpoint)")
    parser.add_argument("--metrics", help=f"comma-separated subset of {','.join(METRICS)} (default: the config's)")
    parser.add_argument("--correlation", choices=CORRELATION_KINDS, help="similarity of the correlation metric")
    parser.add_argument("--last-step", action="store_true", help="measure the last time step only")
    parser.add_argument("--seed", type=int, help="seed of the metrics (default: the checkpoint's)")
    parser.add_argument("--data-root", help="data folder (default: $SPIKEMOD_DATA)")
    parser.add_argument("--n-train", type=int, help="readout/mask training pairs (default: all)")
    parser.add_argument("--n-test", type=int, help="evaluation pairs (default: all)")
    parser.add_argument("--threads", type=int, metavar="K", help="torch CPU threads")
    _add_device_option(parser)
    parser.set_defaults(handler=_measure)


def _is_lava_description(path: str) -> bool:
    import h5py

    from .hardware.export import FORMAT

    try:
        with h5py.File(path, "r") as f:
            return f.attrs.get("format") == FORMAT
    except OSError:
        return False


def _measure(args: argparse.Namespace) -> int:
    from .metrics.suite import measure_checkpoint

    _set_threads(args.threads)
    metrics: Dict[str, Any] = {}
    if args.metrics:
        metrics["metrics"] = tuple(name.strip() for name in args.metrics.split(","))
    if args.correlation:
        metrics["correlation"] = args.correlation
    if args.last_step:
        metrics["per_step"] = False
    data = _data_overrides(args, ("data_root", "n_train", "n_test"))
    if _is_lava_description(args.checkpoint):
        # An exported network: the same metric suite on the spikes that Lava (float and fixed
        # point) and snnTorch produce for it, side by side.
        return _run_hardware(
            lambda: _print_fidelity(
                args.checkpoint, args.out, specialization=True, metrics=metrics, seed=args.seed, **data
            )
        )
    overrides = {name: value for name, value in (("metrics", metrics), ("data", data)) if value}
    result, path = measure_checkpoint(args.checkpoint, args.out, args.seed, device=args.device, **overrides)
    print(result.table())
    # Resource accounting (spikemod.resources): spikes, interconnect traffic, synaptic ops, energy.
    from .resources import format_resources, measure_checkpoint_resources

    counts, _ = measure_checkpoint_resources(args.checkpoint, args.out, **overrides)
    print(format_resources(counts))
    print(f"results: {path} (groups 'specialization', 'resources')")
    return 0


@subcommand
def sweep_command(subparsers: Any) -> None:
    """``spikemod sweep``: a grid of runs into a resumable results store, locally or on SLURM."""
    parser = subparsers.add_parser(
        "sweep",
        help="run a grid of configs into a resumable results store",
        description=(
            "Run a grid of configs into a results store, locally or on SLURM. Each run is stored as "
            "soon as it ends; running the same command again runs only what is missing. Exit status "
            "1 when a run failed."
        ),
    )
    parser.add_argument("spec", nargs="?", help="sweep file (.yaml/.json) with base config and grid")
    parser.add_argument("--config", help="base run config file (.yaml/.json); overrides the spec's base")
    _add_preset_option(parser)
    parser.add_argument(
        "--grid",
        action="append",
        default=[],
        metavar="FIELD=V1,V2",
        help="add or replace a grid entry, e.g. --grid model.p=0.01,0.1,1 --grid seed=0,1,2 (repeatable)",
    )
    parser.add_argument("--store", required=True, help="results directory (created; resumed when it exists)")
    parser.add_argument(
        "--keep-checkpoints",
        action="store_true",
        help="also store each run's trained network as STORE/checkpoints/RUN_ID.h5 (for spikemod export, "
        "measure); a run stored without one runs again",
    )
    parser.add_argument("--executor", choices=("local", "slurm"), default="local")
    parser.add_argument("--workers", type=int, help="local processes (default: the CPUs available)")
    parser.add_argument(
        "--chunk-size",
        type=int,
        help="runs trained together as one stack per task (default: 6 local, 8 per SLURM job; "
        "1 trains each run alone)",
    )
    parser.add_argument("--dry-run", action="store_true", help="print the plan and stop")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    _add_device_option(parser)
    add_slurm_options(parser)
    parser.set_defaults(handler=_sweep)


def add_slurm_options(parser: argparse.ArgumentParser) -> None:
    """The options of the ``slurm`` executor (submitit): job resources, sbatch options, waiting
    (read back by :func:`slurm_options`)."""
    slurm = parser.add_argument_group("slurm executor (submitit)")
    slurm.add_argument("--partition", help="SLURM partition (default: the cluster's default)")
    slurm.add_argument("--time", type=int, default=60, metavar="MIN", help="time limit per job in minutes")
    slurm.add_argument(
        "--cpus", type=int, default=1, help="CPUs per job; a job runs its chunk on that many workers"
    )
    slurm.add_argument("--mem", type=float, default=4.0, metavar="GB", help="memory per job in GB")
    slurm.add_argument("--gpus", type=int, default=0, metavar="G", help="GPUs per job (with --device cuda)")
    slurm.add_argument("--array-parallelism", type=int, default=64, help="most array jobs running at once")
    slurm.add_argument(
        "--submitit-cluster",
        choices=("slurm", "local"),
        default="slurm",
        help="'local' runs the jobs as local processes through submitit (testing without a cluster)",
    )
    slurm.add_argument(
        "--slurm-option",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="further sbatch option, e.g. --slurm-option account=mylab --slurm-option qos=short (repeatable)",
    )
    slurm.add_argument("--no-wait", action="store_true", help="submit and return; run again to resume")


def slurm_options(args: argparse.Namespace) -> "SlurmOptions":
    """The :class:`~spikemod.slurm.SlurmOptions` of parsed :func:`add_slurm_options` options."""
    from .slurm import SlurmOptions

    return SlurmOptions(
        partition=args.partition,
        time_min=args.time,
        cpus=args.cpus,
        mem_gb=args.mem,
        array_parallelism=args.array_parallelism,
        cluster=args.submitit_cluster,
        wait=not args.no_wait,
        extra=tuple(_slurm_option(text) for text in args.slurm_option),
        gpus=args.gpus,
    )


def _sweep_spec(args: argparse.Namespace) -> SweepSpec:
    """The sweep described by the command-line options."""
    from .presets import with_preset

    spec = SweepSpec.load(args.spec) if args.spec else SweepSpec()
    if args.config:
        spec = dataclasses.replace(spec, base=RunConfig.load(args.config))
    if args.preset:
        spec = dataclasses.replace(spec, base=with_preset(spec.base, args.preset))
    for option in args.grid:
        spec = spec.with_grid(*parse_grid_option(option))
    if not args.spec and not args.config and not args.grid:
        raise ConfigError("nothing to sweep: give a sweep file, --config and/or --grid FIELD=V1,V2")
    return spec


def _slurm_option(text: str) -> Tuple[str, str]:
    name, sep, value = text.partition("=")
    if not sep or not name.strip():
        raise ConfigError(f"--slurm-option {text!r}: write NAME=VALUE, e.g. --slurm-option account=mylab")
    return name.strip().replace("-", "_"), value.strip()


def _sweep(args: argparse.Namespace) -> int:
    from .executors import LOCAL_CHUNK_SIZE, plan_sweep, run_local
    from .slurm import SLURM_CHUNK_SIZE, run_slurm

    from .training import check_device

    configs = _sweep_spec(args).configs()
    check_device(args.device)  # before any worker starts
    keep = args.keep_checkpoints
    if args.dry_run:
        print(plan_sweep(configs, args.store, keep).describe())
        return 0
    progress = not args.no_progress
    if args.executor == "local":
        report = run_local(
            configs,
            args.store,
            workers=args.workers,
            chunk_size=args.chunk_size or LOCAL_CHUNK_SIZE,
            progress=progress,
            keep_checkpoints=keep,
            device=args.device,
        )
    else:
        report = run_slurm(
            configs,
            args.store,
            slurm_options(args),
            chunk_size=args.chunk_size or SLURM_CHUNK_SIZE,
            progress=progress,
            keep_checkpoints=keep,
            device=args.device,
        )
    print(report.describe())
    return 0 if report.ok else 1


def _hardware_errors() -> Tuple[type, ...]:
    """Expected failures of the Lava commands (imported lazily: the core never imports Lava)."""
    from .hardware.commands import LavaUnavailableError
    from .hardware.export import DescriptionError, ExportError
    from .hardware.mapping import MappingError

    errors: Tuple[type, ...] = (ExportError, DescriptionError, MappingError, LavaUnavailableError)
    try:
        from .hardware.simulator import LavaSimulationError
    except ModuleNotFoundError:  # no Lava: LavaUnavailableError covers it
        return errors
    return errors + (LavaSimulationError,)


def _run_hardware(action: Callable[[], int]) -> int:
    try:
        return action()
    except _hardware_errors() as err:
        print(f"spikemod: error: {err}", file=sys.stderr)
        return 1


@subcommand
def export_command(subparsers: Any) -> None:
    """``spikemod export``: a trained spiking checkpoint as a Lava network description (HDF5)."""
    parser = subparsers.add_parser(
        "export",
        help="export a trained spiking network for Lava (Loihi) or as a NIR graph",
        description=(
            "Write a self-contained description of a trained spiking checkpoint (weights, LIF "
            "parameters, readout, config) to HDF5, after checking that it maps exactly onto Lava's "
            "LIF (--to lava), or a NIR graph (--to nir; the Neuromorphic Intermediate "
            "Representation that snnTorch, Norse, Nengo, Rockpool, SpiNNaker2 and others read; needs "
            "pip install 'spikemod[nir]'). Example: spikemod export run.h5 --to nir --out net.nir"
        ),
    )
    parser.add_argument("checkpoint", help="checkpoint written by spikemod train (.h5)")
    parser.add_argument("--to", choices=("lava", "nir"), default="lava", help="target (default lava)")
    parser.add_argument("--out", required=True, metavar="FILE", help="file to write (.h5 for lava, .nir for nir)")
    parser.set_defaults(handler=_export_to)


def _export_to(args: argparse.Namespace) -> int:
    if args.to == "nir":
        return _export_nir(args)
    return _run_hardware(lambda: _export(args))


def _export_nir(args: argparse.Namespace) -> int:
    from .checkpoint import load_checkpoint

    try:
        from .nir import export_nir
    except ImportError as err:
        raise ConfigError(f"--to nir needs the NIR packages ({err}): pip install 'spikemod[nir]'") from None
    loaded = load_checkpoint(args.checkpoint)
    path = export_nir(loaded.model, loaded.config, args.out)
    model = loaded.config.model
    print(f"exported {model.n_modules} modules x {model.n_neurons} LIF neurons as a NIR graph to {path}")
    return 0


def _export(args: argparse.Namespace) -> int:
    from .hardware.commands import export_checkpoint

    description, path = export_checkpoint(args.checkpoint, args.out)
    groups = len({(b, t) for b, t in zip(description.beta.tolist(), description.threshold.tolist())})
    print(
        f"exported {description.n_modules} modules x {description.module_size} LIF neurons "
        f"({groups} LIF process(es) per copy) to {path}"
    )
    return 0


def _add_simulation_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("description", help="network description written by spikemod export (.h5)")
    parser.add_argument("--out", metavar="FILE", help="HDF5 results (default: NET.simulation.h5 beside NET)")
    parser.add_argument("--scale", type=float, help="fixed-point units per unit of membrane (default: automatic)")
    parser.add_argument("--batch-size", type=int, metavar="B", help="samples per compiled Lava network (default 5000)")
    parser.add_argument("--data-root", help="data folder (default: $SPIKEMOD_DATA)")
    parser.add_argument("--n-test", type=int, help="evaluate only this many test pairs")


def _data_overrides(args: argparse.Namespace, names: Tuple[str, ...]) -> Dict[str, Any]:
    return {name: getattr(args, name) for name in names if getattr(args, name) is not None}


@subcommand
def simulate_command(subparsers: Any) -> None:
    """``spikemod simulate``: run an exported network in Lava and in snnTorch on the test pairs."""
    parser = subparsers.add_parser(
        "simulate",
        help="run an exported network in Lava (floating or fixed point)",
        description=(
            "Run a network description on the test pairs of its config in Lava's CPU simulator "
            "(Loihi 2 arithmetic with --fixed-point) and in snnTorch; print accuracy and spike "
            "agreement, and write both sides' spike counts to HDF5. "
            "Example: spikemod simulate net.h5 --fixed-point --data-root data"
        ),
    )
    _add_simulation_options(parser)
    parser.add_argument("--fixed-point", action="store_true", help="Loihi 2 fixed-point arithmetic")
    parser.set_defaults(handler=lambda args: _run_hardware(lambda: _simulate(args)))


def _simulate(args: argparse.Namespace) -> int:
    from .hardware.commands import simulate_description

    report, path = simulate_description(
        args.description,
        args.out,
        fixed_point=args.fixed_point,
        scale=args.scale,
        batch_size=args.batch_size,
        **_data_overrides(args, ("data_root", "n_test")),
    )
    print(report.table())
    print(f"results: {path}")
    return 0


@subcommand
def fidelity_command(subparsers: Any) -> None:
    """``spikemod fidelity``: torch vs Lava float, Lava fixed point and NIR, optionally with F."""
    parser = subparsers.add_parser(
        "fidelity",
        help="compare an exported network in snnTorch, Lava float, Lava fixed point and NIR",
        description=(
            "Accuracy, identical spike bits and spike-count correlation of Lava floating and "
            "fixed point, and of the network's NIR graph written and read back (with the extra "
            "'nir' installed), against snnTorch on the test pairs, and with --specialization the "
            "specialization F measured on each backend's own spikes. "
            "Example: spikemod fidelity net.h5 --specialization --n-train 5000"
        ),
    )
    _add_simulation_options(parser)
    parser.add_argument("--specialization", action="store_true", help="also measure F on each backend")
    parser.add_argument("--n-train", type=int, help="readout training pairs for --specialization")
    parser.set_defaults(handler=lambda args: _run_hardware(lambda: _fidelity(args)))


def _fidelity(args: argparse.Namespace) -> int:
    return _print_fidelity(
        args.description,
        args.out,
        scale=args.scale,
        batch_size=args.batch_size,
        specialization=args.specialization,
        **_data_overrides(args, ("data_root", "n_test", "n_train")),
    )


def _print_fidelity(description: str, out: Optional[str], **options: Any) -> int:
    """Run :func:`~spikemod.hardware.commands.fidelity_of_description` and print its report."""
    from .hardware.commands import fidelity_of_description

    report, path = fidelity_of_description(description, out, **options)
    print(report.table())
    print(f"results: {path} (group 'fidelity')")
    return 0


@subcommand
def demo_command(subparsers: Any) -> None:
    """``spikemod demo``: the README's main job, train -> measure -> export to Lava -> compare."""
    parser = subparsers.add_parser(
        "demo",
        help="train, measure, export to Lava and compare rate vs spiking (the main job)",
        description=(
            "Train a rate and a spiking network (n = 25) with one synapse per direction and with "
            "all-to-all interconnect, measure their specialization (retraining, ablation, "
            "correlation), export the spiking ones to Lava, simulate them in floating and fixed "
            "point, and write OUT/report.md with a figure, which says whether the rate networks show the "
            "papers' trend. Finished networks are reused when the command runs again. About 3-10 "
            "minutes on 2 cores with MNIST; without MNIST on disk it runs on the offline digits set "
            "(about 2-3 minutes, 60 training and 30 metric-readout epochs) after a one-line notice"
        ),
    )
    parser.add_argument("--out", default="runs/demo", metavar="DIR", help="output folder (default runs/demo)")
    parser.add_argument(
        "--dataset", choices=DATASETS, help="image source (default: mnist, or digits when MNIST is not on disk)"
    )
    parser.add_argument("--data-root", metavar="DIR", help="data folder (default: $SPIKEMOD_DATA, then the cache)")
    parser.add_argument("--n-train", type=int, metavar="N", help="training pairs (default: all, 60,000 on MNIST)")
    parser.add_argument("--n-test", type=int, default=5000, metavar="N", help="test pairs (default 5000)")
    parser.add_argument(
        "--epochs", type=int, metavar="E", help="training epochs (default: 5 on MNIST, 60 on digits)"
    )
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--no-lava", action="store_true", help="skip the Lava export and simulation")
    parser.set_defaults(handler=lambda args: _run_hardware(lambda: _demo(args)))


def _demo(args: argparse.Namespace) -> int:
    from pathlib import Path

    from .config import DataConfig
    from .data import DataUnavailableError, load_image_sets
    from .demo import run_demo

    dataset = args.dataset
    if dataset is None:
        try:
            load_image_sets(DataConfig(dataset="mnist", data_root=args.data_root), train=False)
            dataset = "mnist"
        except DataUnavailableError:
            print(
                "spikemod demo: MNIST is not on disk (give --data-root DIR or SPIKEMOD_DATA); "
                "running on the offline digits set instead",
                file=sys.stderr,
            )
            dataset = "digits"
    data = DataConfig(dataset=dataset, data_root=args.data_root, n_train=args.n_train, n_test=args.n_test)
    report = run_demo(Path(args.out), data, epochs=args.epochs, seed=args.seed, lava=not args.no_lava)
    print(report.read_text())
    print(f"report written to {report}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The ``spikemod`` parser with every registered subcommand."""
    parser = argparse.ArgumentParser(
        prog="spikemod",
        description="Functional specialization in sparse modular rate-based and spiking networks.",
    )
    parser.add_argument("--version", action="version", version=f"spikemod {__version__}")
    subparsers = parser.add_subparsers(title="commands", metavar="COMMAND")
    for add_parser in _SUBCOMMANDS:
        add_parser(subparsers)
    return parser


def _expected_errors() -> Tuple[Tuple[type, ...], Tuple[type, ...]]:
    """(usage errors -> exit 2, run failures -> exit 1)."""
    from .checkpoint import CheckpointError
    from .data import DataUnavailableError
    from .training import TrainingDivergedError

    return (ConfigError,), (CheckpointError, DataUnavailableError, TrainingDivergedError)


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Entry point of the ``spikemod`` command; returns the exit status. The process keeps freed
    memory for reuse (:mod:`spikemod.memory`)."""
    reuse_freed_memory()
    parser = build_parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "handler"):
        parser.print_help()
        return 2
    usage_errors, run_failures = _expected_errors()
    try:
        return args.handler(args)
    except usage_errors as err:
        print(f"spikemod: error: {err}", file=sys.stderr)
        return 2
    except run_failures as err:
        print(f"spikemod: error: {err}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
