"""Data roots, the clear error for missing data, the offline digits set and EMNIST letters."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from spikemod.config import DataConfig
from spikemod.data import (
    EMNIST_EXCLUDED_LETTERS,
    MNIST_MEAN,
    MNIST_STD,
    DataUnavailableError,
    load_image_sets,
    resolve_data_root,
)


def test_data_root_precedence(monkeypatch, tmp_path):
    monkeypatch.setenv("SPIKEMOD_DATA", str(tmp_path / "env"))
    assert resolve_data_root(str(tmp_path / "opt")) == tmp_path / "opt"
    assert resolve_data_root(None) == tmp_path / "env"
    monkeypatch.delenv("SPIKEMOD_DATA")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    assert resolve_data_root(None) == tmp_path / "cache" / "spikemod"


def test_missing_data_offline_gives_one_clear_error(monkeypatch, tmp_path):
    monkeypatch.setenv("SPIKEMOD_OFFLINE", "1")
    with pytest.raises(DataUnavailableError) as info:
        load_image_sets(DataConfig(dataset="mnist", data_root=str(tmp_path)), train=True)
    message = str(info.value)
    assert "MNIST" in message and str(tmp_path) in message
    for fix in ("--data-root", "SPIKEMOD_DATA", "--dataset digits"):
        assert fix in message
    assert info.value.__cause__ is None and info.value.__suppress_context__


def test_digits_offline_set_is_28x28_and_split():
    train = load_image_sets(DataConfig(dataset="digits"), train=True)[0]
    test = load_image_sets(DataConfig(dataset="digits"), train=False)[0]
    assert train.images.shape[1] == 784 and len(train.labels) + len(test.labels) == 1797
    assert set(train.labels.tolist()) == set(range(10))
    pixels = train.images * MNIST_STD + MNIST_MEAN
    assert pixels.min() >= -1e-5 and pixels.max() <= 1 + 1e-5 and pixels.max() > 0.9
    assert "smoke" in train.name


def _write_idx(path: Path, array: np.ndarray) -> None:
    code = 0x08  # unsigned byte
    header = struct.pack(">I", (code << 8) | array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    path.write_bytes(header + array.astype(np.uint8).tobytes())


def test_emnist_letters_gives_disjoint_class_sets_per_slot(tmp_path):
    raw = tmp_path / "EMNIST" / "raw"
    raw.mkdir(parents=True)
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(1, 27), 4)  # letters a..z are labelled 1..26
    images = rng.integers(0, 256, size=(len(labels), 28, 28))
    images[:, 0, 5] = labels  # mark each image's letter in a pixel (EMNIST stores images transposed)
    for split in ("train", "test"):
        _write_idx(raw / f"emnist-letters-{split}-images-idx3-ubyte", images)
        _write_idx(raw / f"emnist-letters-{split}-labels-idx1-ubyte", labels)
    sets = load_image_sets(DataConfig(dataset="emnist_letters", data_root=str(tmp_path)), train=True)
    letters_per_slot = []
    for image_set in sets:
        assert sorted(set(image_set.labels.tolist())) == list(range(10))
        pixels = torch.round(image_set.images.view(-1, 28, 28) * MNIST_STD * 255 + MNIST_MEAN * 255)
        letter = pixels[:, 5, 0].long()  # transposed back by the loader
        letters_per_slot.append(set(letter.tolist()))
        # relabelled classes are consistent: each class holds one letter
        for k in range(10):
            assert len(set(letter[image_set.labels == k].tolist())) == 1
    assert not letters_per_slot[0] & letters_per_slot[1]
    excluded = {ord(c) - ord("a") + 1 for c in EMNIST_EXCLUDED_LETTERS}
    assert not (letters_per_slot[0] | letters_per_slot[1]) & excluded
