"""A self-contained description of a trained spiking modular network, for neuromorphic runtimes.

:func:`describe` takes a trained :class:`~spikemod.network.ModularNetwork` and checks that it maps
exactly onto Lava's LIF (reset to zero, one beta and one threshold per module, no bandwidth cap);
:func:`save_description` / :func:`load_description` write and read it as HDF5. The file needs
neither the checkpoint nor torch to be run: everything is plain arrays.

File layout (``format`` = "spikemod-lava-network", ``format_version`` = 1):

- attributes: ``config`` (RunConfig JSON; its ``model.beta`` is also the decay of the leaky output
  units of the membrane readout), ``n_inputs``, ``n_slots``, ``n_heads``, ``n_classes``,
  ``spikemod_version``;
- ``input_weight`` [N, S·D], ``recurrent_weight`` [N, N] (row = target, column = source),
  ``bias`` [N], ``beta`` [M] and ``threshold`` [M] (one per module), float32;
- ``readout/weight`` and ``readout/bias`` (separate readout: [M, H·C, F] and [M, H·C]; shared:
  [H·C, M·F] and [H·C]); with a bottleneck also ``bottleneck/weight`` [M, k, n] and
  ``bottleneck/bias`` [M, k].
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Union

import h5py
import numpy as np

from spikemod import __version__
from spikemod.config import ConfigError, RunConfig
from spikemod.exportability import export_problem, module_value_problem

__all__ = [
    "ExportError",
    "DescriptionError",
    "NetworkDescription",
    "describe",
    "save_description",
    "load_description",
    "FORMAT",
    "FORMAT_VERSION",
]

FORMAT = "spikemod-lava-network"
FORMAT_VERSION = 1

PathLike = Union[str, Path]


class ExportError(ValueError):
    """A model cannot be exported to Lava exactly; the message names the feature and the fix."""


class DescriptionError(ValueError):
    """A network description file is missing, corrupt, or inconsistent."""


@dataclass(frozen=True, eq=False)
class NetworkDescription:
    """Everything needed to run a trained spiking modular network outside torch (see module docs)."""

    config: RunConfig
    input_weight: np.ndarray
    recurrent_weight: np.ndarray
    bias: np.ndarray
    beta: np.ndarray
    threshold: np.ndarray
    readout_weight: np.ndarray
    readout_bias: np.ndarray
    bottleneck_weight: Optional[np.ndarray]
    bottleneck_bias: Optional[np.ndarray]
    n_inputs: int
    n_slots: int
    n_heads: int
    n_classes: int

    def __post_init__(self) -> None:
        _validate(self)

    @property
    def n_modules(self) -> int:
        return self.config.model.n_modules

    @property
    def module_size(self) -> int:
        return self.config.model.n_neurons

    @property
    def n_total(self) -> int:
        return self.n_modules * self.module_size

    def neuron_beta(self) -> np.ndarray:
        """beta per neuron [N]."""
        return np.repeat(self.beta, self.module_size)

    def neuron_threshold(self) -> np.ndarray:
        """Threshold per neuron [N]."""
        return np.repeat(self.threshold, self.module_size)

    def arrays(self) -> Dict[str, np.ndarray]:
        """The arrays by their HDF5 path."""
        arrays = {
            "input_weight": self.input_weight,
            "recurrent_weight": self.recurrent_weight,
            "bias": self.bias,
            "beta": self.beta,
            "threshold": self.threshold,
            "readout/weight": self.readout_weight,
            "readout/bias": self.readout_bias,
        }
        if self.bottleneck_weight is not None:
            arrays["bottleneck/weight"] = self.bottleneck_weight
            arrays["bottleneck/bias"] = self.bottleneck_bias
        return arrays


def _expected_shapes(d: NetworkDescription) -> Dict[str, tuple]:
    m, n, total = d.n_modules, d.module_size, d.n_total
    outputs = d.n_heads * d.n_classes
    k = d.config.model.bottleneck
    features = n if k is None else k
    shapes = {
        "input_weight": (total, d.n_slots * d.n_inputs),
        "recurrent_weight": (total, total),
        "bias": (total,),
        "beta": (m,),
        "threshold": (m,),
    }
    if d.config.model.readout_scheme in ("separate", "concat"):
        shapes.update({"readout/weight": (m, outputs, features), "readout/bias": (m, outputs)})
    else:
        shapes.update({"readout/weight": (outputs, m * features), "readout/bias": (outputs,)})
    if k is not None:
        shapes.update({"bottleneck/weight": (m, k, n), "bottleneck/bias": (m, k)})
    return shapes


def _validate(d: NetworkDescription) -> None:
    """Shapes match the config, values are finite, the LIF parameters are in range."""
    if d.config.model.variant != "spiking":
        raise DescriptionError("the description's config is not a spiking network (model.variant)")
    if (d.config.model.bottleneck is None) != (d.bottleneck_weight is None):
        raise DescriptionError("the bottleneck arrays do not match config.model.bottleneck")
    expected = _expected_shapes(d)
    arrays = d.arrays()
    for name, shape in expected.items():
        array = arrays[name]
        if not isinstance(array, np.ndarray) or array.shape != shape:
            got = getattr(array, "shape", type(array).__name__)
            raise DescriptionError(f"{name} has shape {got}, but the config and sizes need {shape}")
        if not np.issubdtype(array.dtype, np.floating) or not np.isfinite(array).all():
            raise DescriptionError(f"{name} must hold finite floats")
    if ((d.beta < 0) | (d.beta > 1)).any():
        raise DescriptionError(f"beta must lie in [0, 1], got {d.beta.tolist()}")
    if (d.threshold <= 0).any():
        raise DescriptionError(f"thresholds must be positive, got {d.threshold.tolist()}")


def _numpy(tensor) -> np.ndarray:
    return tensor.detach().cpu().numpy().astype(np.float32, copy=True)


def _per_module(name: str, values: np.ndarray, n_modules: int, fix: str) -> np.ndarray:
    """One value per module, or an :class:`ExportError` when a module's neurons differ."""
    problem = module_value_problem(name, values, n_modules)
    if problem is not None:
        raise ExportError(f"{problem}, but Lava's LIF takes one {name} per process. {fix}")
    return values.reshape(n_modules, -1)[:, 0].copy()


def describe(model, config: RunConfig) -> NetworkDescription:
    """The description of a trained spiking ``model`` built from ``config`` (raises :class:`ExportError`).

    Exportable: the LIF step of :func:`spikemod.dynamics.lif_step` (``snn.Leaky`` with reset to
    zero, which is Lava's LIF) with one beta and one threshold per module (modules that share them
    become one LIF process), any input scheme, readout, bottleneck, Deep-R interconnect and input
    encoding (the host computes the input current and the readout). Not exportable: the rate
    variant, per-neuron beta or threshold inside a module, a bandwidth cap and an interconnect
    onset after step 1.
    """
    model_cfg = config.model
    problem = export_problem(model, config, "Lava", "Sparse", "Sparse connections")
    if problem is not None:
        raise ExportError(problem)
    m = model_cfg.n_modules
    beta = _per_module(
        "beta", _numpy(model.beta()), m, "Train with learn_beta=False (modules that differ in beta are fine)."
    )
    threshold = _per_module(
        "threshold", _numpy(model.threshold()), m, "Train with learn_threshold=False."
    )
    bottleneck = model.bottleneck
    readout = model.readout
    try:
        return NetworkDescription(
            config=config,
            input_weight=_numpy(model.input_weight()),
            recurrent_weight=_numpy(model.recurrent_weight()),
            bias=_numpy(model.bias()),
            beta=beta,
            threshold=threshold,
            readout_weight=_numpy(readout.weight),
            readout_bias=_numpy(readout.bias),
            bottleneck_weight=None if bottleneck is None else _numpy(bottleneck.weight),
            bottleneck_bias=None if bottleneck is None else _numpy(bottleneck.bias),
            n_inputs=model.n_inputs,
            n_slots=model.n_slots,
            n_heads=model.n_heads,
            n_classes=model.n_classes,
        )
    except DescriptionError as err:
        raise ExportError(f"the trained model cannot be exported: {err}") from None


def save_description(path: PathLike, description: NetworkDescription) -> Path:
    """Write ``description`` to an HDF5 file (see the module docs for the layout)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(path, "w") as f:
        f.attrs["format"] = FORMAT
        f.attrs["format_version"] = FORMAT_VERSION
        f.attrs["spikemod_version"] = __version__
        f.attrs["config"] = description.config.to_json()
        for name in ("n_inputs", "n_slots", "n_heads", "n_classes"):
            f.attrs[name] = getattr(description, name)
        for name, array in description.arrays().items():
            f.create_dataset(name, data=array)
    return path


_REQUIRED: List[str] = ["input_weight", "recurrent_weight", "bias", "beta", "threshold", "readout/weight", "readout/bias"]


def load_description(path: PathLike) -> NetworkDescription:
    """Read and validate a file written by :func:`save_description` (raises :class:`DescriptionError`)."""
    path = Path(path)
    if not path.is_file():
        raise DescriptionError(f"network description {path} does not exist")
    try:
        f = h5py.File(path, "r")
    except OSError as err:
        raise DescriptionError(f"{path} is not a readable HDF5 file (corrupt or truncated?): {err}") from None
    with f:
        tag = f.attrs.get("format")
        if tag != FORMAT:
            raise DescriptionError(
                f"{path} is not a spikemod Lava network description (format tag {tag!r}); "
                "create one with `spikemod export CHECKPOINT --to lava --out FILE`"
            )
        version = int(f.attrs.get("format_version", -1))
        if version != FORMAT_VERSION:
            raise DescriptionError(
                f"{path} has description format {version}; this spikemod reads format {FORMAT_VERSION}. "
                "Re-export the checkpoint with this version"
            )
        try:
            config = RunConfig.from_json(f.attrs["config"])
            arrays = {name: np.asarray(f[name]) for name in _REQUIRED}
            has_bottleneck = "bottleneck" in f
            bottleneck_weight = np.asarray(f["bottleneck/weight"]) if has_bottleneck else None
            bottleneck_bias = np.asarray(f["bottleneck/bias"]) if has_bottleneck else None
            sizes = {name: int(f.attrs[name]) for name in ("n_inputs", "n_slots", "n_heads", "n_classes")}
        except ConfigError as err:
            raise DescriptionError(f"{path} holds an invalid config: {err}") from None
        except KeyError as err:
            raise DescriptionError(f"{path} is incomplete: {err}") from None
        except (OSError, ValueError, TypeError) as err:
            raise DescriptionError(f"{path} is corrupt: {err}") from None
    try:
        return NetworkDescription(
            config=config,
            input_weight=arrays["input_weight"],
            recurrent_weight=arrays["recurrent_weight"],
            bias=arrays["bias"],
            beta=arrays["beta"],
            threshold=arrays["threshold"],
            readout_weight=arrays["readout/weight"],
            readout_bias=arrays["readout/bias"],
            bottleneck_weight=bottleneck_weight,
            bottleneck_bias=bottleneck_bias,
            **sizes,
        )
    except DescriptionError as err:
        raise DescriptionError(f"{path} does not match its own config: {err}") from None
