"""The functions behind ``spikemod export``, ``spikemod simulate`` and ``spikemod fidelity``.

- :func:`export_checkpoint`: checkpoint -> network description (HDF5, see :mod:`.export`); needs
  no Lava.
- :func:`simulate_description`: run a description on the test pairs of its config in snnTorch
  and in Lava (floating or fixed point) and write both sides' spike counts, predictions and
  accuracies, and their agreement, to HDF5 (groups ``torch``, ``lava_float`` or ``lava_fixed``,
  ``samples``; a second run with the other precision adds its group to the same file).
- :func:`fidelity_of_description`: the full :class:`~.fidelity.FidelityReport` (torch, Lava float,
  Lava fixed point, and the NIR round trip when the extra ``nir`` is installed), optionally with the specialization F measured on each backend's spikes.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Dict, Optional, Tuple, Union

import h5py

from spikemod.config import ConfigError, RunConfig
from spikemod.h5tree import write_tree

from .export import NetworkDescription, describe, load_description, save_description

__all__ = ["LavaUnavailableError", "export_checkpoint", "simulate_description", "fidelity_of_description"]

PathLike = Union[str, Path]


class LavaUnavailableError(RuntimeError):
    """lava-nc is not installed."""


def _fidelity_module():
    try:
        from . import fidelity
    except ModuleNotFoundError as err:
        if err.name and err.name.split(".")[0] == "lava":
            raise LavaUnavailableError(
                "lava-nc is not installed; install it with `pip install 'spikemod[lava]'` "
                "(it needs Python 3.10)"
            ) from None
        raise
    return fidelity


def export_checkpoint(checkpoint: PathLike, out: PathLike) -> Tuple[NetworkDescription, Path]:
    """Export a trained spiking checkpoint to a Lava network description file."""
    from spikemod.checkpoint import load_checkpoint

    loaded = load_checkpoint(checkpoint)
    description = describe(loaded.model, loaded.config)
    return description, save_description(out, description)


def _task_inputs(description: NetworkDescription, data: Dict[str, Any], train: bool = False):
    from spikemod.task import PairDataset

    config: RunConfig = description.config
    data_cfg = dataclasses.replace(config.data, **data) if data else config.data
    dataset = PairDataset(data_cfg, config.task, train=train, seed=config.seed)
    return _fidelity_module().task_inputs(description, dataset)


def _default_out(path: Path) -> Path:
    return path.with_name(path.stem + ".simulation.h5")


def _write(out: Path, tree: Dict[str, Any]) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(out, "a") as f:
        for key in tree:
            if key in f:
                del f[key]
            elif key in f.attrs:
                del f.attrs[key]
        write_tree(f, tree)


def simulate_description(
    path: PathLike,
    out: Optional[PathLike] = None,
    fixed_point: bool = False,
    scale: Optional[float] = None,
    batch_size: Optional[int] = None,
    **data: Any,
):
    """Run a description on its test pairs in snnTorch and in Lava; write the results to ``out``.

    ``data`` overrides fields of the config's DataConfig (``data_root``, ``n_test``). Returns the
    :class:`~.fidelity.FidelityReport` (torch and one Lava backend) and the file written (default:
    ``NET.simulation.h5`` beside the description).
    """
    fidelity = _fidelity_module()
    path = Path(path)
    description = load_description(path)
    inputs = _task_inputs(description, data)
    backend = "lava-fixed" if fixed_point else "lava-float"
    report = fidelity.fidelity_report(
        description, inputs, ("torch", backend), scale, batch_size or fidelity.DEFAULT_BATCH_SIZE
    )
    out = Path(out) if out is not None else _default_out(path)
    tree = report.to_tree()
    tree["samples"] = {"digits": inputs.digits.numpy(), "targets": inputs.targets.numpy()}
    tree["description"] = str(path)
    _write(out, tree)
    return report, out


def fidelity_of_description(
    path: PathLike,
    out: Optional[PathLike] = None,
    scale: Optional[float] = None,
    batch_size: Optional[int] = None,
    specialization: bool = False,
    metrics: Optional[Dict[str, Any]] = None,
    seed: Optional[int] = None,
    **data: Any,
):
    """The fidelity report of a description on its test pairs (torch, Lava float, Lava fixed, and
    the NIR round trip when the extra ``nir`` is installed).

    With ``specialization``, also the F of the config's feature metrics on each backend's spikes
    (readouts train on the train pairs; limit them with ``n_train``); ``metrics`` replaces fields
    of the config's MetricConfig (as ``spikemod measure --metrics/--correlation/--last-step`` do)
    and ``seed`` the config's seed for the metrics. The report goes into the group ``fidelity`` of
    ``out`` (default: ``NET.simulation.h5``).
    """
    fidelity = _fidelity_module()
    path = Path(path)
    description = load_description(path)
    test_data = {k: v for k, v in data.items() if k != "n_train"}
    train_data = {k: v for k, v in data.items() if k != "n_test"}
    test_inputs = _task_inputs(description, test_data)
    train_inputs, metric_config = None, None
    notes: list = []
    if specialization:
        train_inputs = _task_inputs(description, train_data, train=True)
        requested = dataclasses.replace(description.config.metrics, **(metrics or {}))
        if "weight_mask" in (metrics or {}).get("metrics", ()):
            raise ConfigError(
                "the weight-mask metric masks the network's weights, which an exported network's "
                "spikes cannot give: leave weight_mask out of --metrics"
            )
        chosen = requested.feature_metrics
        if not chosen:
            raise ConfigError("the config measures only weight masks, which spikes cannot give; choose other metrics")
        metric_config = dataclasses.replace(requested, metrics=chosen)
        if metric_config.correlation_procedure == "reshuffled" and "correlation" in chosen:
            # the reshuffled correlation re-runs the network on new inputs, which recorded spikes
            # cannot: every backend is scored with the matched pairs instead, and the table says so
            metric_config = dataclasses.replace(metric_config, correlation_procedure="matched")
            notes.append("correlation: matched pairs (the config's reshuffled procedure re-runs the network)")
    report = fidelity.fidelity_report(
        description,
        test_inputs,
        fidelity.available_backends(),
        scale,
        batch_size or fidelity.DEFAULT_BATCH_SIZE,
        train_inputs,
        metric_config,
        description.config.seed if seed is None else seed,
    )
    report = dataclasses.replace(report, notes=tuple(notes))
    out = Path(out) if out is not None else _default_out(path)
    _write(out, {"fidelity": report.to_tree()})
    return report, out
