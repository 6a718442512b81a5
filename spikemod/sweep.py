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
by :func:`~spikemod.identity.run_id`, a hash of its config, so a sweep started again skips the runs
already in its results store.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, List, Optional, Sequence, Tuple

import yaml

from .config import ConfigError, RunConfig, load_yaml
from .identity import coerce_field, field_type, normalize_config, run_id, set_field

__all__ = ["SweepSpec", "parse_grid_option"]


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
            field_type(name)  # a ConfigError for an unknown field
            if name in seen:
                raise ConfigError(f"SweepSpec.grid names {name!r} twice; give all its values in one entry")
            seen.add(name)
            if isinstance(values, (str, bytes)) or not isinstance(values, (tuple, list)) or not values:
                raise ConfigError(
                    f"SweepSpec.grid[{name!r}] must be a non-empty list of values, got {values!r}"
                )
            grid.append((name, tuple(coerce_field(name, v) for v in values)))
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
