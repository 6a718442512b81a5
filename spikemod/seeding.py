"""The seed policy: every random draw of a run comes from one named stream of ``RunConfig.seed``.

A stream is a ``torch.Generator`` seeded with a 64-bit word that numpy's ``SeedSequence`` derives
from (seed, purpose). Different purposes and different seeds therefore never share a stream (the
old scheme's seed·4 + k and seed·16 + k made seed 0's pairs, shuffle and noise all start from
``manual_seed(0)``). The purposes, each drawn afresh from its stream wherever it is needed:

========================  ==========================================================================
``pairs/train``           the training split's digit pairs (:class:`~spikemod.task.PairDataset`)
``pairs/test``            the test split's digit pairs
``init``                  the initial weights (``build_model`` seeds the global RNG inside a fork)
``shuffle``               the order of the training batches, epoch after epoch
``training-noise``        input noise, random onsets and input spikes of the training batches
``inputs/train``          the measured input of the training pairs: what metric readouts train on
``inputs/test``           the measured input of the test pairs: the test accuracy, every metric,
                          the resource counts and the torch and Lava runs of the fidelity report
``deep-r``                Deep-R's random walk
``readouts``              metric readouts: initialisation and batch order
``correlation``           the partners of the correlation metric
``weight-mask``           edge-popup scores and batch order of the weight-mask metric
``bottleneck``            the bottleneck metric's readouts: initialisation and batch order
``router``                which spikes a random-policy router lets through (each forward pass)
========================  ==========================================================================

Because ``inputs/train`` and ``inputs/test`` are drawn afresh, with the same batches, by every
command that measures a network (training's evaluation, ``spikemod measure`` on a checkpoint or on
its export, the fidelity report, the resource counts), all of them see the same noisy inputs.
"""

from __future__ import annotations

from typing import Tuple

import numpy as np
import torch

__all__ = ["PURPOSES", "stream_seed", "generator", "inputs_purpose", "pairs_purpose"]

#: The named streams, in a fixed order (the index enters the seed word: only append).
PURPOSES: Tuple[str, ...] = (
    "pairs/train",
    "pairs/test",
    "init",
    "shuffle",
    "training-noise",
    "inputs/train",
    "inputs/test",
    "deep-r",
    "readouts",
    "correlation",
    "weight-mask",
    "bottleneck",
    "router",
)


def stream_seed(seed: int, purpose: str) -> int:
    """The 63-bit seed word of stream ``purpose`` of run seed ``seed`` (a non-negative integer)."""
    if purpose not in PURPOSES:
        raise ValueError(f"unknown random stream {purpose!r}; the streams are {', '.join(PURPOSES)}")
    if seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed}")
    high, low = np.random.SeedSequence([seed, PURPOSES.index(purpose)]).generate_state(2, np.uint32)
    return ((int(high) << 32) | int(low)) & (2**63 - 1)


def generator(seed: int, purpose: str) -> torch.Generator:
    """A fresh CPU generator at the start of stream ``purpose`` of run seed ``seed``."""
    return torch.Generator().manual_seed(stream_seed(seed, purpose))


def pairs_purpose(train: bool) -> str:
    """The stream of a split's digit pairs."""
    return "pairs/train" if train else "pairs/test"


def inputs_purpose(train: bool) -> str:
    """The stream of a split's measured inputs (noise, onsets, input spikes)."""
    return "inputs/train" if train else "inputs/test"
