import json

import h5py
import numpy as np
import pytest
import torch

from spikemod.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from spikemod.config import RunConfig
from spikemod.training import build_model, task_loss

HISTORY = {"train_loss": [2.3, 2.1], "test_accuracy": [[0.2, 0.3], [0.4, 0.5]], "best_epoch": [1]}


def _config(**model) -> RunConfig:
    return RunConfig().replace(model={"n_neurons": 5, "p": 0.2, **model}, task={"n_steps": 4}, seed=11)


def _trained(config: RunConfig):
    """A model whose weights moved away from their initialisation (a few optimiser steps)."""
    model = build_model(config, n_inputs=784)
    opt = torch.optim.AdamW(model.parameters(), lr=0.05)
    x = torch.randn(4, 6, 2, 784)
    for _ in range(3):
        loss = task_loss(model(x).logits, torch.randint(0, 10, (6, 2)))
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model


@pytest.mark.parametrize(
    "model_fields",
    [
        {"variant": "rate"},
        {"variant": "rate", "readout_scheme": "shared", "bottleneck": 3, "input_scheme": "fused"},
        {"variant": "spiking", "deep_r": True, "learn_beta": True, "learn_threshold": True},
        {"variant": "spiking", "spike_readout": "count", "bandwidth_cap": 2, "init": "uniform"},
    ],
)
def test_save_load_gives_identical_outputs(tmp_path, model_fields):
    config = _config(**model_fields)
    model = _trained(config).eval()
    path = save_checkpoint(tmp_path / "run.h5", model, config, HISTORY, note="unit test", curve=[1.0, 2.0])
    loaded = load_checkpoint(path)
    x = torch.randn(4, 3, 2, 784)
    with torch.no_grad():
        a, b = model(x), loaded.model(x)
    for field in ("logits", "module_logits", "states", "membrane", "bottleneck", "cross_spikes"):
        left, right = getattr(a, field), getattr(b, field)
        assert (left is None) == (right is None), field
        if left is not None:
            assert torch.equal(left, right), field
    assert torch.equal(loaded.model.recurrent_mask(), model.recurrent_mask())
    assert loaded.config == config and loaded.seed == 11
    assert loaded.history["test_accuracy"].tolist() == HISTORY["test_accuracy"]
    assert loaded.versions["torch"] == torch.__version__ and "snntorch" in loaded.versions
    assert loaded.extra["note"] == "unit test" and loaded.extra["curve"].tolist() == [1.0, 2.0]
    assert not loaded.model.training


def test_checkpoints_written_with_snntorch_neurons_still_load(tmp_path):
    # before the LIF step became a pure function, snnTorch's Leaky added two constants to the state
    config = _config(variant="spiking")
    model = _trained(config).eval()
    path = save_checkpoint(tmp_path / "run.h5", model, config, HISTORY)
    with h5py.File(path, "a") as f:
        f["state"].create_dataset("lif.graded_spikes_factor", data=np.float32(1.0))
        f["state"].create_dataset("lif.reset_mechanism_val", data=np.int64(1))
    x = torch.randn(4, 3, 2, 784)
    with torch.no_grad():
        assert torch.equal(load_checkpoint(path).model(x).logits, model(x).logits)


def test_file_holds_masks_and_readable_config(tmp_path):
    config = _config()
    model = build_model(config)
    path = save_checkpoint(tmp_path / "run.h5", model, config, HISTORY)
    with h5py.File(path, "r") as f:
        assert json.loads(f.attrs["config"])["model"]["n_neurons"] == 5
        assert np.array_equal(f["masks/recurrent"][()], model.recurrent_mask().numpy())
        assert f["masks/input"][()].sum() == 2 * 5 * 784  # separate input: each module sees one slot


def test_missing_and_non_hdf5_files(tmp_path):
    with pytest.raises(CheckpointError, match="does not exist"):
        load_checkpoint(tmp_path / "nope.h5")
    text = tmp_path / "notes.h5"
    text.write_text("not hdf5")
    with pytest.raises(CheckpointError, match="not a readable HDF5"):
        load_checkpoint(text)
    other = tmp_path / "other.h5"
    with h5py.File(other, "w") as f:
        f["x"] = [1, 2]
    with pytest.raises(CheckpointError, match="not a spikemod checkpoint"):
        load_checkpoint(other)


def test_truncated_file_is_reported(tmp_path):
    config = _config()
    path = save_checkpoint(tmp_path / "run.h5", build_model(config), config, HISTORY)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError):
        load_checkpoint(path)


def test_mismatched_weights_are_reported(tmp_path):
    config = _config()
    path = save_checkpoint(tmp_path / "run.h5", build_model(config), config, HISTORY)
    with h5py.File(path, "a") as f:
        f.attrs["config"] = config.replace(model={"n_neurons": 6}).to_json()
    with pytest.raises(CheckpointError, match="do not fit the network"):
        load_checkpoint(path)


def test_invalid_config_and_missing_group_are_reported(tmp_path):
    config = _config()
    path = save_checkpoint(tmp_path / "run.h5", build_model(config), config, HISTORY)
    with h5py.File(path, "a") as f:
        f.attrs["config"] = json.dumps({"model": {"variant": "quantum"}})
    with pytest.raises(CheckpointError, match="invalid config.*variant"):
        load_checkpoint(path)
    path = save_checkpoint(tmp_path / "run2.h5", build_model(config), config, HISTORY)
    with h5py.File(path, "a") as f:
        del f["state"]
    with pytest.raises(CheckpointError, match="incomplete"):
        load_checkpoint(path)


def test_saving_with_the_wrong_config_is_refused(tmp_path):
    model = build_model(_config())
    with pytest.raises(CheckpointError, match="config.model"):
        save_checkpoint(tmp_path / "run.h5", model, _config(n_neurons=6), HISTORY)
