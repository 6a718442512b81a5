"""Shared fixtures. Lava tests are skipped when lava-nc is missing, except where
SPIKEMOD_REQUIRE_LAVA=1 (CI), where a missing Lava fails them. Likewise SPIKEMOD_REQUIRE_DATA=1
turns a missing MNIST into a failure instead of a skip."""

from __future__ import annotations

import importlib.util
import os

import pytest
import snntorch
import torch

from spikemod.config import DataConfig
from spikemod.data import DataUnavailableError, ImageSet, load_image_sets


def _required(variable: str) -> bool:
    return os.environ.get(variable) == "1"


def pytest_runtest_setup(item: pytest.Item) -> None:
    if item.get_closest_marker("lava") and importlib.util.find_spec("lava") is None:
        message = "lava-nc is not installed (it needs Python 3.10: run `make test`)"
        if _required("SPIKEMOD_REQUIRE_LAVA"):
            pytest.fail(message + "; SPIKEMOD_REQUIRE_LAVA=1 forbids skipping", pytrace=False)
        pytest.skip(message)


@pytest.fixture(autouse=True)
def _fresh_state():
    """Each test starts from the same global RNG state and an empty snnTorch neuron registry."""
    torch.manual_seed(0)
    snntorch.SpikingNeuron.instances.clear()
    yield


@pytest.fixture(scope="session")
def mnist_test_sets() -> list[ImageSet]:
    """Real MNIST test images from the data root, or a skip (a failure under SPIKEMOD_REQUIRE_DATA=1)."""
    try:
        return load_image_sets(DataConfig(dataset="mnist"), train=False)
    except DataUnavailableError as err:
        if _required("SPIKEMOD_REQUIRE_DATA"):
            pytest.fail(str(err), pytrace=False)
        pytest.skip(f"MNIST not available: {err}")
