"""HDF5 checkpoints of trained networks (h5py; no pickle).

Layout of a checkpoint file:

- attributes: ``format`` = "spikemod-checkpoint", ``format_version``, ``config`` (RunConfig JSON),
  ``seed``, ``versions`` (JSON of library versions), ``n_inputs``, ``n_slots``, ``n_heads``,
  ``n_classes``;
- ``state/<name>``: every entry of the model's ``state_dict`` (weights, masks, Deep-R θ and signs);
- ``masks/recurrent`` and ``masks/input``: the effective boolean connection masks, for inspection;
- ``history/<key>``: the training history, one array per key;
- ``extra``: further values given to :func:`save_checkpoint` (attributes for scalars and strings,
  datasets for arrays).

:func:`load_checkpoint` rebuilds the model from the stored config and loads the state strictly.
"""

from __future__ import annotations

import json
import platform
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Union

import h5py
import numpy as np
import torch

from . import __version__, seeding
from .config import ConfigError, RunConfig
from .network import ModularNetwork

__all__ = ["Checkpoint", "CheckpointError", "save_checkpoint", "load_checkpoint", "library_versions"]

FORMAT = "spikemod-checkpoint"
FORMAT_VERSION = 1
#: Constants that snnTorch's ``Leaky`` put into the state of checkpoints written before the LIF step
#: became a pure function (always 1 and 1, reset to zero); nothing reads them.
SNNTORCH_CONSTANTS = ("lif.graded_spikes_factor", "lif.reset_mechanism_val")

PathLike = Union[str, Path]


class CheckpointError(ValueError):
    """A checkpoint file is missing, corrupt, or does not match this version of spikemod."""


@dataclass
class Checkpoint:
    """A loaded checkpoint: the rebuilt model (in eval mode) and what was stored with it."""

    model: ModularNetwork
    config: RunConfig
    history: Dict[str, np.ndarray]
    seed: int
    versions: Dict[str, str]
    extra: Dict[str, Any] = field(default_factory=dict)


def library_versions() -> Dict[str, str]:
    """Versions of Python and the libraries that produced a result."""
    import snntorch

    return {
        "spikemod": __version__,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "snntorch": snntorch.__version__,
        "numpy": np.__version__,
        "h5py": h5py.__version__,
    }


def save_checkpoint(
    path: PathLike, model: ModularNetwork, config: RunConfig, history: Dict[str, Any], **extra: Any
) -> Path:
    """Write ``model`` with its config, seed, history and library versions to an HDF5 file."""
    if model.config != config.model:
        raise CheckpointError(
            "the model was not built from config.model; pass the RunConfig the model was trained with"
        )
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(path, "w") as f:
        f.attrs["format"] = FORMAT
        f.attrs["format_version"] = FORMAT_VERSION
        f.attrs["config"] = config.to_json()
        f.attrs["seed"] = config.seed
        f.attrs["versions"] = json.dumps(library_versions())
        for name in ("n_inputs", "n_slots", "n_heads", "n_classes"):
            f.attrs[name] = getattr(model, name)
        state = f.create_group("state")
        for name, tensor in model.state_dict().items():
            state.create_dataset(name, data=tensor.detach().cpu().numpy())
        masks = f.create_group("masks")
        masks.create_dataset("recurrent", data=model.recurrent_mask().cpu().numpy())
        masks.create_dataset("input", data=(model.input_weight() != 0).detach().cpu().numpy())
        group = f.create_group("history")
        for key, values in history.items():
            group.create_dataset(key, data=np.asarray(values))
        extras = f.create_group("extra")
        for key, value in extra.items():
            if isinstance(value, (str, int, float, bool, np.integer, np.floating)):
                extras.attrs[key] = value
            else:
                data = value.detach().cpu().numpy() if isinstance(value, torch.Tensor) else np.asarray(value)
                extras.create_dataset(key, data=data)
    return path


def load_checkpoint(path: PathLike) -> Checkpoint:
    """Read a checkpoint written by :func:`save_checkpoint` and rebuild its model."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    try:
        f = h5py.File(path, "r")
    except OSError as err:
        raise CheckpointError(f"{path} is not a readable HDF5 checkpoint ({err})") from None
    with f:
        if f.attrs.get("format") != FORMAT:
            raise CheckpointError(f"{path} is an HDF5 file but not a spikemod checkpoint (no format tag)")
        version = int(f.attrs.get("format_version", -1))
        if version != FORMAT_VERSION:
            raise CheckpointError(
                f"{path} has checkpoint format {version}; this spikemod reads format {FORMAT_VERSION}"
            )
        try:
            config = RunConfig.from_json(f.attrs["config"])
            state = {
                name: torch.from_numpy(np.asarray(data))
                for name, data in f["state"].items()
                if name not in SNNTORCH_CONSTANTS
            }
            history = {key: np.asarray(data) for key, data in f["history"].items()}
            extra: Dict[str, Any] = {}
            if "extra" in f:
                extra.update(f["extra"].attrs)
                extra.update({key: np.asarray(data) for key, data in f["extra"].items()})
            sizes = {name: int(f.attrs[name]) for name in ("n_inputs", "n_slots", "n_heads", "n_classes")}
            seed = int(f.attrs["seed"])
            versions = json.loads(f.attrs["versions"])
        except ConfigError as err:
            raise CheckpointError(f"{path} holds an invalid config: {err}") from None
        except KeyError as err:
            raise CheckpointError(f"{path} is incomplete: {err.args[0]}") from None
        except (OSError, ValueError) as err:
            raise CheckpointError(f"{path} is corrupt: {err}") from None
    with torch.random.fork_rng(devices=[]):
        model = ModularNetwork(config.model, **sizes, router_seed=seeding.stream_seed(config.seed, "router"))
    try:
        model.load_state_dict(state)
    except RuntimeError as err:
        raise CheckpointError(
            f"the weights in {path} do not fit the network its config describes: {err}"
        ) from None
    model.eval()
    return Checkpoint(model, config, history, seed, versions, extra)
