"""Sweeps: a base :class:`~spikemod.config.RunConfig` and a grid over dotted config fields.

A :class:`SweepSpec` expands to the Cartesian product of its grid, in grid order with the last
field varying fastest. Fields are named ``section.field`` (``model.p``, ``task.covariance``) or
``seed``. A spec comes from a small YAML/JSON file::

    name: fig2-quick
    base:                  # a RunConfig mapping, or the path of a config file (relative to this file)
      data: {dataset: digits}
      train: {epochs: 1}
    grid:
      model.variant: [rate, spiking]
      model.p: [0.01, 0.1, 1.0]
      seed: [0, 1, 2]

or from command-line options ``--grid model.p=0.01,0.1,1 --grid seed=0,1,2``. Every run is named
by :func:`run_id`, a hash of its config, so a sweep started again skips the runs already in its
results store. This module also holds the ``spikemod sweep`` command.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import hashlib
import itertools
import json
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import yaml

from .config import ConfigError, RunConfig, load_yaml

__all__ = [
    "SweepSpec",
    "config_fields",
    "get_field",
    "config_overrides",
    "set_field",
    "normalize_config",
    "run_id",
    "parse_grid_option",
    "configure_parser",
    "run_command",
]

_SECTIONS = ("data", "task", "model", "train", "metrics")


@functools.lru_cache(maxsize=1)
def config_fields() -> Dict[str, Any]:
    """Every dotted field a grid may vary (``model.p``, ..., ``seed``), mapped to its type hint."""
    fields: Dict[str, Any] = {"seed": int}
    for section in _SECTIONS:
        cls = typing.get_type_hints(RunConfig)[section]
        for name, hint in typing.get_type_hints(cls).items():
            fields[f"{section}.{name}"] = hint
    return fields


def _coerce(hint: Any, value: Any) -> Any:
    """Bring a YAML/JSON value to the field's type where that is lossless (1 -> 1.0, list -> tuple)."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is typing.Union:  # Optional[X]
        if value is None:
            return None
        return _coerce(next(a for a in args if a is not type(None)), value)
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if origin is tuple and isinstance(value, list):
        return tuple(value)
    return value


def _field_type(dotted: str) -> Any:
    """The type hint of a dotted field, or a ConfigError naming the unknown field."""
    hints = config_fields()
    if dotted not in hints:
        raise ConfigError(
            f"unknown config field {dotted!r}; use 'seed' or 'section.field' with a section of "
            f"{', '.join(_SECTIONS)} (e.g. model.p, task.covariance)"
        )
    return hints[dotted]


def set_field(config: RunConfig, dotted: str, value: Any) -> RunConfig:
    """Copy of ``config`` with one dotted field set, e.g. ``set_field(cfg, "model.p", 0.1)``."""
    value = _coerce(_field_type(dotted), value)
    if dotted == "seed":
        return dataclasses.replace(config, seed=value)
    section, name = dotted.split(".")
    return config.replace(**{section: {name: value}})


def get_field(config: RunConfig, dotted: str) -> Any:
    """The value of a dotted field, e.g. ``get_field(cfg, "model.p")``."""
    if dotted == "seed":
        return config.seed
    section, name = dotted.split(".")
    return getattr(getattr(config, section), name)


def config_overrides(config: RunConfig) -> Dict[str, Any]:
    """The dotted fields where ``config`` differs from the defaults, e.g. ``{"model.p": 0.01, "seed": 2}``."""
    default = RunConfig()
    return {
        dotted: get_field(config, dotted)
        for dotted in config_fields()
        if get_field(config, dotted) != get_field(default, dotted)
    }


def normalize_config(config: RunConfig) -> RunConfig:
    """The same config with every value in its field's type (int 1 -> float 1.0 for ``model.p``).

    Configs read from YAML or JSON may hold ``1`` where a float is meant; normalising makes equal
    configs produce equal run ids.
    """
    for dotted, hint in config_fields().items():
        value = get_field(config, dotted)
        if type(_coerce(hint, value)) is not type(value):
            config = set_field(config, dotted, value)
    return config


def run_id(config: RunConfig) -> str:
    """Stable id of a run: 16 hex digits of the SHA-256 of the fields where it differs from the defaults.

    ``data.data_root`` is left out: where the data lies does not change the run, so a sweep
    resumes on a machine with another data root. Fields left to the variant's default (time steps,
    initialisation) are hashed with the value in effect, so a change of defaults gives new ids
    instead of silently reusing runs made under the old ones. Fields at their default are not
    hashed, so a field added to the configs later keeps the ids of existing runs.
    """
    resolved = normalize_config(
        config.replace(
            task={"n_steps": config.n_steps},
            model={"init": config.model.init_scheme, "init_scale": config.model.uniform_bound},
        )
    )
    values = {k: v for k, v in config_overrides(resolved).items() if k != "data.data_root"}
    text = json.dumps(values, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class SweepSpec:
    """A base config and a grid ``((field, (value, ...)), ...)`` over dotted config fields."""

    base: RunConfig = field(default_factory=RunConfig)
    grid: Tuple[Tuple[str, Tuple[Any, ...]], ...] = ()
    name: Optional[str] = None

    def __post_init__(self) -> None:
        grid = []
        seen = set()
        for entry in self.grid:
            if not (isinstance(entry, (tuple, list)) and len(entry) == 2):
                raise ConfigError(f"SweepSpec.grid entries must be (field, values) pairs, got {entry!r}")
            name, values = entry
            hint = _field_type(name)
            if name in seen:
                raise ConfigError(f"SweepSpec.grid names {name!r} twice; give all its values in one entry")
            seen.add(name)
            if isinstance(values, (str, bytes)) or not isinstance(values, (tuple, list)) or not values:
                raise ConfigError(
                    f"SweepSpec.grid[{name!r}] must be a non-empty list of values, got {values!r}"
                )
            grid.append((name, tuple(_coerce(hint, v) for v in values)))
        object.__setattr__(self, "grid", tuple(grid))
        object.__setattr__(self, "base", normalize_config(self.base))
        self.configs()  # every combination must be a valid config

    def configs(self) -> List[RunConfig]:
        """All run configs of the sweep, without duplicates, in grid order (last field fastest)."""
        names = [name for name, _ in self.grid]
        configs, ids = [], set()
        for combination in itertools.product(*(values for _, values in self.grid)):
            config = self.base
            try:
                for name, value in zip(names, combination):
                    config = set_field(config, name, value)
            except ConfigError as err:
                point = ", ".join(f"{n}={v!r}" for n, v in zip(names, combination))
                raise ConfigError(f"sweep point ({point}) is not a valid config: {err}") from None
            key = run_id(config)
            if key not in ids:
                ids.add(key)
                configs.append(config)
        return configs

    def __len__(self) -> int:
        return len(self.configs())

    def with_grid(self, name: str, values: Sequence[Any]) -> "SweepSpec":
        """Copy with the grid entry ``name`` added, or replaced when it exists."""
        grid = [(n, v) for n, v in self.grid if n != name]
        return dataclasses.replace(self, grid=tuple(grid) + ((name, tuple(values)),))

    def to_dict(self) -> dict:
        """Plain mapping in the file format (see the module docstring)."""
        values = {"base": self.base.to_dict(), "grid": {n: list(v) for n, v in self.grid}}
        if self.name is not None:
            values["name"] = self.name
        return json.loads(json.dumps(values))

    @classmethod
    def from_dict(cls, values: Any, relative_to: Optional[Path] = None) -> "SweepSpec":
        """Inverse of :meth:`to_dict`; ``base`` may also be the path of a config file."""
        if not isinstance(values, dict):
            raise ConfigError(
                f"a sweep spec must be a mapping with 'base' and 'grid', got {type(values).__name__}"
            )
        unknown = sorted(set(values) - {"name", "base", "grid"})
        if unknown:
            raise ConfigError(
                f"sweep spec has unknown key(s) {', '.join(unknown)}; allowed: name, base, grid"
            )
        base = values.get("base") or {}
        if isinstance(base, str):
            path = Path(base)
            base = RunConfig.load(path if path.is_absolute() or relative_to is None else relative_to / path)
        else:
            base = RunConfig.from_dict(base)
        grid = values.get("grid") or {}
        if not isinstance(grid, dict):
            raise ConfigError(
                "sweep spec 'grid' must map dotted fields to lists, e.g. {'model.p': [0.01, 0.1]}"
            )
        return cls(base=base, grid=tuple((k, v) for k, v in grid.items()), name=values.get("name"))

    @classmethod
    def load(cls, path: "str | Path") -> "SweepSpec":
        """Read a ``.yaml``, ``.yml`` or ``.json`` sweep file."""
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"sweep file {path} does not exist")
        text = path.read_text()
        try:
            values = load_yaml(text) if path.suffix in (".yaml", ".yml") else json.loads(text)
        except (yaml.YAMLError, json.JSONDecodeError) as err:
            raise ConfigError(f"sweep file {path} is not valid {path.suffix[1:].upper()}: {err}") from None
        return cls.from_dict(values, relative_to=path.parent)


def _split_values(text: str) -> List[str]:
    """Split on commas outside brackets: ``a,[b,c],d`` -> ``a``, ``[b,c]``, ``d``."""
    parts, depth, current = [], 0, ""
    for char in text:
        depth += {"[": 1, "]": -1}.get(char, 0)
        if char == "," and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += char
    parts.append(current)
    return [p.strip() for p in parts]


def parse_grid_option(text: str) -> Tuple[str, Tuple[Any, ...]]:
    """``"model.p=0.01,0.1,1"`` -> ``("model.p", (0.01, 0.1, 1))``.

    Values are read as YAML scalars (numbers including ``1e-3``, true/false, strings); ``none`` or
    ``null`` is None; a list value is written in brackets, e.g. ``metrics.metrics=[retraining,ablation]``.
    """
    name, sep, raw = text.partition("=")
    if not sep or not name.strip() or not raw.strip():
        raise ConfigError(f"--grid {text!r}: write FIELD=V1,V2,..., e.g. --grid model.p=0.01,0.1,1")
    values = []
    for token in _split_values(raw):
        if token == "":
            raise ConfigError(f"--grid {text!r} has an empty value; separate values with single commas")
        try:
            values.append(None if token.lower() == "none" else load_yaml(token))
        except yaml.YAMLError as err:
            raise ConfigError(f"--grid {text!r}: value {token!r} is not readable: {err}") from None
    return name.strip(), tuple(values)


#: Help text of ``spikemod sweep``.
DESCRIPTION = (
    "Run a grid of configs into a results store, locally or on SLURM. Each run is stored as soon as it "
    "ends; running the same command again runs only what is missing. Exit status 1 when a run failed."
)


def configure_parser(parser: argparse.ArgumentParser) -> None:
    """Options of ``spikemod sweep``."""
    parser.add_argument("spec", nargs="?", help="sweep file (.yaml/.json) with base config and grid")
    parser.add_argument("--config", help="base run config file (.yaml/.json); overrides the spec's base")
    parser.add_argument(
        "--grid",
        action="append",
        default=[],
        metavar="FIELD=V1,V2",
        help="add or replace a grid entry, e.g. --grid model.p=0.01,0.1,1 --grid seed=0,1,2 (repeatable)",
    )
    parser.add_argument("--store", required=True, help="results directory (created; resumed when it exists)")
    parser.add_argument("--executor", choices=("local", "slurm"), default="local")
    parser.add_argument("--workers", type=int, help="local processes (default: the CPUs available)")
    parser.add_argument(
        "--chunk-size",
        type=int,
        help="runs trained together as one ensemble per task (default: 6 local, 8 per SLURM job; "
        "1 trains each run alone)",
    )
    parser.add_argument("--dry-run", action="store_true", help="print the plan and stop")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    slurm = parser.add_argument_group("slurm executor (submitit)")
    slurm.add_argument("--partition", help="SLURM partition (default: the cluster's default)")
    slurm.add_argument("--time", type=int, default=60, metavar="MIN", help="time limit per job in minutes")
    slurm.add_argument(
        "--cpus", type=int, default=1, help="CPUs per job; a job runs its chunk on that many workers"
    )
    slurm.add_argument("--mem", type=float, default=4.0, metavar="GB", help="memory per job in GB")
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


def spec_from_args(args: argparse.Namespace) -> SweepSpec:
    """The sweep described by the command-line options."""
    spec = SweepSpec.load(args.spec) if args.spec else SweepSpec()
    if args.config:
        spec = dataclasses.replace(spec, base=RunConfig.load(args.config))
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


def run_command(args: argparse.Namespace) -> int:
    """``spikemod sweep``: run the missing runs of a sweep; exit status 1 when any run failed."""
    from .executors import SlurmOptions, plan_sweep, run_sweep

    spec = spec_from_args(args)
    configs = spec.configs()
    if args.dry_run:
        print(plan_sweep(configs, args.store).describe())
        return 0
    slurm = SlurmOptions(
        partition=args.partition,
        time_min=args.time,
        cpus=args.cpus,
        mem_gb=args.mem,
        array_parallelism=args.array_parallelism,
        cluster=args.submitit_cluster,
        wait=not args.no_wait,
        extra=tuple(_slurm_option(text) for text in args.slurm_option),
    )
    report = run_sweep(
        configs,
        args.store,
        executor=args.executor,
        workers=args.workers,
        chunk_size=args.chunk_size,
        slurm=slurm,
        progress=not args.no_progress,
    )
    print(report.describe())
    return 0 if report.ok else 1
