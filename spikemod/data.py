"""Image sources for the task: MNIST, EMNIST letters and scikit-learn's offline digits.

Images come through ``torchvision.datasets``. The data root is resolved from an explicit option,
then the ``SPIKEMOD_DATA`` environment variable, then a per-user cache directory, where torchvision
downloads when the network allows. ``SPIKEMOD_OFFLINE=1`` forbids download attempts.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional, Tuple

import torch
import torch.nn.functional as F

from .config import DataConfig

__all__ = [
    "DataUnavailableError",
    "ImageSet",
    "MNIST_MEAN",
    "MNIST_STD",
    "EMNIST_EXCLUDED_LETTERS",
    "resolve_data_root",
    "load_image_sets",
]

#: Normalisation used by the papers' code for every dataset.
MNIST_MEAN = 0.1307
MNIST_STD = 0.3081
#: Letters removed from EMNIST before splitting into per-module class sets (as in the reference code).
EMNIST_EXCLUDED_LETTERS = ("i", "j", "l")
DIGITS_TEST_FRACTION = 0.2


class DataUnavailableError(RuntimeError):
    """A dataset is not on disk and could not be downloaded."""


@dataclass(frozen=True)
class ImageSet:
    """Images of one input slot: ``images`` [N, 784] normalised floats, ``labels`` [N] in 0..9."""

    images: torch.Tensor
    labels: torch.Tensor
    name: str

    @property
    def n_classes(self) -> int:
        return 10


def resolve_data_root(option: Optional[str] = None) -> Path:
    """The data root: ``option``, else ``$SPIKEMOD_DATA``, else ``$XDG_CACHE_HOME/spikemod`` (``~/.cache``)."""
    if option:
        return Path(option).expanduser()
    if os.environ.get("SPIKEMOD_DATA"):
        return Path(os.environ["SPIKEMOD_DATA"]).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(cache) / "spikemod"


def _normalise(pixels: torch.Tensor) -> torch.Tensor:
    """uint8 or [0, 1] images [N, 28, 28] -> normalised floats [N, 784]."""
    x = pixels.float()
    if pixels.dtype == torch.uint8:
        x = x / 255.0
    return ((x - MNIST_MEAN) / MNIST_STD).reshape(len(x), -1)


def _torchvision(name: str, root: Path, train: bool, **kwargs) -> Tuple[torch.Tensor, torch.Tensor]:
    """Load a torchvision dataset's raw tensors, downloading if allowed; one clear error if impossible."""
    import torchvision

    cls = getattr(torchvision.datasets, name)
    try:
        dataset = cls(str(root), train=train, download=False, **kwargs)
    except RuntimeError:
        if os.environ.get("SPIKEMOD_OFFLINE") == "1":
            reason = "SPIKEMOD_OFFLINE=1 forbids downloading"
        else:
            try:
                dataset = cls(str(root), train=train, download=True, **kwargs)
                return dataset.data, dataset.targets
            except Exception as err:  # torchvision raises many kinds of network errors
                reason = f"the download failed ({type(err).__name__}: {str(err).splitlines()[0][:200]})"
        raise DataUnavailableError(
            f"{name} {'train' if train else 'test'} data not found under {root} "
            f"(searched {root / name / 'raw'}), and {reason}.\n"
            "Fix it in one of three ways:\n"
            "  1. pass --data-root DIR, a folder holding MNIST/raw/ in torchvision's layout;\n"
            "  2. set the environment variable SPIKEMOD_DATA=DIR;\n"
            "  3. use the offline dataset: --dataset digits (scikit-learn's digits, for smoke runs only)."
        ) from None
    return dataset.data, dataset.targets


def _load_mnist(root: Path, train: bool) -> List[ImageSet]:
    pixels, labels = _torchvision("MNIST", root, train)
    images = ImageSet(_normalise(pixels), labels.long(), "mnist")
    return [images, images]


def _load_emnist_letters(root: Path, train: bool) -> List[ImageSet]:
    """Two disjoint 10-letter class sets, one per slot, relabelled 0..9 (EMNIST images are transposed)."""
    pixels, labels = _torchvision("EMNIST", root, train, split="letters")
    letters = [chr(ord("a") + i) for i in range(26)]
    kept = [i for i, letter in enumerate(letters) if letter not in EMNIST_EXCLUDED_LETTERS]
    pixels = pixels.transpose(1, 2)
    letter_index = labels.long() - 1  # the letters split labels a..z as 1..26
    sets = []
    for slot in range(2):
        classes = torch.tensor(kept[10 * slot : 10 * (slot + 1)])
        member = (letter_index[:, None] == classes[None, :])
        keep = member.any(1)
        relabelled = member[keep].long().argmax(1)
        name = "emnist_letters:" + "".join(letters[i] for i in classes.tolist())
        sets.append(ImageSet(_normalise(pixels[keep]), relabelled, name))
    return sets


def _load_digits(train: bool) -> List[ImageSet]:
    """scikit-learn's 1,797 8x8 digits, bilinearly resized to 28x28; a fixed 80/20 split."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    pixels = torch.as_tensor(bunch.images, dtype=torch.float32)[:, None] / 16.0
    pixels = F.interpolate(pixels, size=(28, 28), mode="bilinear", align_corners=False)[:, 0]
    labels = torch.as_tensor(bunch.target, dtype=torch.long)
    order = torch.randperm(len(labels), generator=torch.Generator().manual_seed(0))
    n_test = int(len(labels) * DIGITS_TEST_FRACTION)
    chosen = order[n_test:] if train else order[:n_test]
    images = ImageSet(_normalise(pixels[chosen].clamp(0, 1)), labels[chosen], "digits (offline smoke set)")
    return [images, images]


@functools.lru_cache(maxsize=4)
def _load_cached(dataset: str, root: Path, train: bool) -> Tuple[ImageSet, ...]:
    if dataset == "digits":
        return tuple(_load_digits(train))
    if dataset == "mnist":
        return tuple(_load_mnist(root, train))
    return tuple(_load_emnist_letters(root, train))


def load_image_sets(config: DataConfig, train: bool) -> List[ImageSet]:
    """The image set of each of the two input slots (the same set twice except for EMNIST letters).

    Loaded sets are cached per process (sweeps train many networks on the same data); treat the
    returned tensors as read-only.
    """
    root = resolve_data_root(config.data_root)
    return list(_load_cached(config.dataset, root, train))
