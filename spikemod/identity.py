"""Run identity: a config's dotted fields, its overrides of the defaults, and its run id.

Fields are named ``section.field`` (``model.p``, ``task.covariance``), ``seed`` or ``preset``. :func:`run_id`
names every run by a hash of the fields where its config differs from the defaults; the results
store files runs under it, and a sweep started again skips the ids already stored.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import typing
from typing import Any, Dict

from .config import ConfigError, RunConfig

__all__ = [
    "config_fields",
    "field_type",
    "coerce_field",
    "get_field",
    "set_field",
    "config_overrides",
    "normalize_config",
    "run_id",
]

_SECTIONS = ("data", "task", "model", "train", "metrics")
#: RunConfig's own fields, named without a section.
_TOP_LEVEL = {"seed": int, "preset": str}


@functools.lru_cache(maxsize=1)
def config_fields() -> Dict[str, Any]:
    """Every dotted field of a RunConfig (``model.p``, ..., ``seed``, ``preset``), mapped to its type hint."""
    fields: Dict[str, Any] = dict(_TOP_LEVEL)
    for section in _SECTIONS:
        cls = typing.get_type_hints(RunConfig)[section]
        for name, hint in typing.get_type_hints(cls).items():
            fields[f"{section}.{name}"] = hint
    return fields


def field_type(dotted: str) -> Any:
    """The type hint of a dotted field, or a ConfigError naming the unknown field."""
    hints = config_fields()
    if dotted not in hints:
        raise ConfigError(
            f"unknown config field {dotted!r}; use 'seed', 'preset' or 'section.field' with a section of "
            f"{', '.join(_SECTIONS)} (e.g. model.p, task.covariance)"
        )
    return hints[dotted]


def _coerce(hint: Any, value: Any) -> Any:
    """Bring a YAML/JSON value to the type ``hint`` where that is lossless (1 -> 1.0, list -> tuple)."""
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


def coerce_field(dotted: str, value: Any) -> Any:
    """``value`` in the type of the dotted field where that is lossless (``model.p``: 1 -> 1.0)."""
    return _coerce(field_type(dotted), value)


def set_field(config: RunConfig, dotted: str, value: Any) -> RunConfig:
    """Copy of ``config`` with one dotted field set, e.g. ``set_field(cfg, "model.p", 0.1)``."""
    value = coerce_field(dotted, value)
    if dotted in _TOP_LEVEL:
        return dataclasses.replace(config, **{dotted: value})
    section, name = dotted.split(".")
    return config.replace(**{section: {name: value}})


def get_field(config: RunConfig, dotted: str) -> Any:
    """The value of a dotted field, e.g. ``get_field(cfg, "model.p")``."""
    if dotted in _TOP_LEVEL:
        return getattr(config, dotted)
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
    for dotted in config_fields():
        value = get_field(config, dotted)
        if type(coerce_field(dotted, value)) is not type(value):
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
